# The two commands a newcomer needs: `make run` (the whole pipeline on the cpu profile, ending with the
# built book) and `make test` (lint and the test suite). Both create or reuse the project's virtual
# environment from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROFILE ?= cpu

.PHONY: venv run test test-fast lint format data bench book clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)  ## main job: notebooks 01..09 with papermill, then the book (book/_build/html/index.html)
	$(PY) -m qrh_lib.workflow.pipeline run --profile $(PROFILE)

test: $(STAMP)  ## lint, then every test (library, notebooks chain, book build)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

test-fast: $(STAMP)  ## lint, then the quick tests (not the notebook chain, book builds or others marked slow)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format qrh_lib tests benchmarks

data: $(STAMP)  ## a dataset alone, e.g. make data ARGS="--n-samples 2000"
	$(PY) -m qrh_lib.pricer.generate $(ARGS)

bench: $(STAMP)  ## benchmarks, writing JSON to benchmarks/results/
	$(PY) benchmarks/bench_engine.py
	$(PY) benchmarks/convergence.py

book: $(STAMP)
	$(PY) -m qrh_lib.workflow.pipeline book

clean:
	rm -rf book/_build runs .pytest_cache .ruff_cache
