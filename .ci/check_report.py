"""CI check: a smoke run wrote its report and plots, and every row has numbers; with --memory,
the memory suite's sections, its figures and the notebook's table are there too; with --cost, the
cost suite's section and figures."""

import csv
import sys
from pathlib import Path

out = Path(sys.argv[1])
memory = "--memory" in sys.argv[2:]
cost = "--cost" in sys.argv[2:]
report = out / "report.md"
problems = []
if not report.is_file() or report.stat().st_size < 500:
    problems.append(f"{report} missing or too short")
plots = sorted((out / "plots").glob("*.png"))
if len(plots) < 3:
    problems.append(f"expected at least 3 plots in {out / 'plots'}, found {len(plots)}")
problems += [f"empty plot {p}" for p in plots if p.stat().st_size < 2000]
text = report.read_text() if report.is_file() else ""
problems += [f"report references missing {p}" for p in
             (part.split(")")[0] for part in text.split("](plots/")[1:]) if not (out / "plots" / p).is_file()]
with open(out / "summary.csv", newline="") as fh:
    rows = list(csv.DictReader(fh))
if not rows:
    problems.append("summary.csv has no rows")
for row in rows:
    acc = row.get("test_accuracy_mean") or row.get("test_accuracy")
    if not acc or acc.lower() in ("nan", "none", ""):
        problems.append(f"row {row.get('arch')} has no test accuracy")
if memory:
    for heading in ("## Memory horizons", "## Gradient flow", "The notebook's table, measured"):
        if heading not in text:
            problems.append(f"report has no {heading!r}")
    for figure in ("memory/memory_horizon.png", "gradient_flow.png"):
        if not (out / "plots" / figure).is_file():
            problems.append(f"missing plot plots/{figure}")
if cost:
    if "## Cost" not in text:
        problems.append("report has no '## Cost'")
    for figure in ("cost_time_vs_T.png", "cost_memory_vs_T.png", "cost_throughput_vs_batch.png"):
        if not (out / "plots" / figure).is_file():
            problems.append(f"missing plot plots/{figure}")
if problems:
    print("check_report: FAILED\n  " + "\n  ".join(problems))
    sys.exit(1)
print(f"check_report: ok ({len(rows)} rows, {len(plots)} plots, {report.stat().st_size} bytes of report)")
