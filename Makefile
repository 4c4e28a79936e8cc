# Two entry points (see README): `make report` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# The benchmark suite (tests/benchmarks) and its regression gate (bench/gate.py); see README.
BENCH_JSON ?= .benchmarks/latest.json
BENCH_BASELINE ?= tests/benchmarks/baseline.json
BENCH_BASELINE_RUNS ?= 3
RUNS ?=
PYTEST_BENCH := $(PY) -m pytest tests/benchmarks -q --benchmark-columns=min,median,rounds

.PHONY: report test unit bench bench-save bench-compare bench-baseline gpu-check lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

report: $(VENV)/.installed  ## run the comparison and write the report (ARGS="--profile smoke" etc.)
	$(PY) run_all.py $(ARGS)

test: $(VENV)/.installed  ## unit tests, then the benchmark suite, then the regression gate over it
	$(PY) -m pytest tests --ignore=tests/benchmarks -q
	@mkdir -p $(dir $(BENCH_JSON))
	$(PYTEST_BENCH) --benchmark-json=$(BENCH_JSON)
	$(PY) -m bench.gate check $(BENCH_JSON) --baseline $(BENCH_BASELINE)

bench: $(VENV)/.installed  ## the benchmark suite alone (a table of times; no gate)
	$(PYTEST_BENCH)

bench-save: $(VENV)/.installed  ## the suite, saved under .benchmarks/ for bench-compare
	$(PYTEST_BENCH) --benchmark-autosave

bench-compare: $(VENV)/.installed  ## compare the two newest saved runs, or RUNS="0001 0003"
	$(VENV)/bin/pytest-benchmark compare --group-by=group --columns=min,median,rounds \
	  $(or $(RUNS),$(shell ls -t .benchmarks/*/*.json 2>/dev/null | head -n 2))

bench-baseline: $(VENV)/.installed  ## refresh the committed baseline from BENCH_BASELINE_RUNS runs
	@mkdir -p .benchmarks && rm -f .benchmarks/baseline-run-*.json
	for i in $$(seq $(BENCH_BASELINE_RUNS)); do \
	  $(PYTEST_BENCH) --benchmark-json=.benchmarks/baseline-run-$$i.json || exit 1; done
	$(PY) -m bench.gate baseline .benchmarks/baseline-run-*.json --output $(BENCH_BASELINE)

GPU_CHECK_OUT ?= results/gpu-check
gpu-check: $(VENV)/.installed  ## CUDA tests, benchmarks, padding/precision measurements, full grid (~5 min on a GPU)
	$(PY) -m bench.gpu_check --out $(GPU_CHECK_OUT) $(ARGS)

unit: $(VENV)/.installed
	$(PY) -m pytest tests --ignore=tests/benchmarks -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
