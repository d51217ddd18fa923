# kiln's two front doors: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# The real interpreter, not the pyenv shim, so PIDs we hold are the processes.
PYTHON ?= $(shell python3 -c 'import sys; print(sys.executable)')
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup demo test lint typecheck contracts unit integration e2e bench docs clean

help:
	@echo "make demo   run kiln's whole story on the example service"
	@echo "make test   ruff, mypy --strict, import-linter, pytest (warnings are errors)"
	@echo "make bench  run the benchmarks in benchmarks/ (tables + JSON in .bench/)"
	@echo "make docs   regenerate docs/reference from the schema and the CLI"

$(STAMP): requirements.lock requirements-build.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-build.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m kiln.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

contracts: $(STAMP)
	$(VENV)/bin/lint-imports

test: lint typecheck contracts
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

bench: $(STAMP)
	$(PY) -m benchmarks

docs: $(STAMP)
	$(PY) -m kiln.docsgen

clean:
	rm -rf $(VENV) .bench .pytest_cache .mypy_cache .ruff_cache
