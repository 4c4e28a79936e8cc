# Two entry points (see README): `make report` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
# The benchmark suite (tests/benchmarks) and its gate (bench/dev/gate.py): this tree against the
# baseline commit named in tests/benchmarks/baseline-commit, interleaved on this machine; see docs/gate.md.
BENCH_PASSES ?= 5  # pass pairs: with 3 a noisy stretch of a shared machine failed a commit (docs/gate.md)
BENCH_SELECT ?= ci
PYTEST_BENCH := $(PY) -m pytest tests/benchmarks -q --benchmark-columns=min,median,rounds

.PHONY: report test unit bench bench-gate gpu-check lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray]'  # ray: the --executor ray test runs, as in CI
	touch $@

report: $(VENV)/.installed  ## run the comparison and write the report (ARGS="--profile smoke" etc.)
	$(PY) run_all.py $(ARGS)

# The unit tests run one file per worker, a worker per core (pytest-xdist): no unit test times
# anything, so sharing the cores changes no result; the gate's benchmarks run alone after them.
UNIT_WORKERS ?= auto
test: $(VENV)/.installed  ## unit tests (in parallel), then the benchmark gate (the CI selection, A/B against the baseline commit)
	$(PY) -m pytest tests --ignore=tests/benchmarks -q -n $(UNIT_WORKERS) --dist loadfile --durations=25
	$(PY) -m bench.gate run --select $(BENCH_SELECT) --passes $(BENCH_PASSES)

bench: $(VENV)/.installed  ## the whole benchmark suite on this tree alone (a table of times; no gate)
	$(PYTEST_BENCH)

bench-gate: $(VENV)/.installed  ## the gate over the whole suite (BENCH_SELECT=all)
	$(PY) -m bench.gate run --select all --passes $(BENCH_PASSES)

GPU_CHECK_OUT ?= results/gpu-check
gpu-check: $(VENV)/.installed  ## CUDA tests, benchmarks, padding/precision measurements, full grid (~5 min on a GPU)
	$(PY) -m bench.gpu_check --out $(GPU_CHECK_OUT) $(ARGS)

unit: $(VENV)/.installed  ## the unit tests alone, in parallel (UNIT_WORKERS=0: one process)
	$(PY) -m pytest tests --ignore=tests/benchmarks -q -n $(UNIT_WORKERS) --dist loadfile

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
