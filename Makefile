# Two entry points (see README): `make report` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: report test unit bench bench-save bench-compare lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

report: $(VENV)/.installed  ## run the comparison and write the report (ARGS="--profile smoke" etc.)
	$(PY) run_all.py $(ARGS)

test: $(VENV)/.installed  ## unit tests, then the benchmark regression gate
	$(PY) -m pytest tests --ignore=tests/benchmarks -q
	$(PY) -m pytest tests/benchmarks -q

unit: $(VENV)/.installed
	$(PY) -m pytest tests --ignore=tests/benchmarks -q

lint: $(VENV)/.installed
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks build *.egg-info
