# The README's two commands: `make run` (main example) and `make test` (whole suite).
# Each creates .venv and installs raysession into it first, from nothing but python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) examples/parameter_sweep.py

lint: $(VENV)/.installed
	$(PY) -m ruff check raysession tests examples benchmarks
	$(PY) -m mypy raysession

# pytest exits 5 when it collects no test; make treats that, like any non-zero exit, as failure.
test: lint
	$(PY) -m pytest -p no:cacheprovider -q -ra tests

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run

bench-quick: $(VENV)/.installed
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) build *.egg-info
