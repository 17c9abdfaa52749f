# mmkit: two set-up commands on a fresh machine with Python >= 3.11 and make.
#   make run   - create .venv if missing, install, run the main job (the demo: mmkit run for 60 s)
#   make test  - create .venv if missing, install with [dev,dask], run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: run test test-fast bench clean venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mmkit needs Python >= 3.11 (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml setup.py $(wildcard mmkit/*.h mmkit/*/*.h mmkit/*/*.c) | $(BIN)/python
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml setup.py $(wildcard mmkit/*.h mmkit/*/*.h mmkit/*/*.c) | $(BIN)/python
	$(PIP) -e '.[dev,dask]'
	@touch $@ $(VENV)/.installed

venv: $(VENV)/.installed

run: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash commands/demo.sh

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

test-fast: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -m "not slow and not dask and not service"

# bench_run soaks for BENCH_RUN_MINUTES (the documented figures use 30: make bench BENCH_RUN_MINUTES=30)
BENCH_RUN_MINUTES ?= 2
bench: $(VENV)/.installed
	@for b in bench/bench_*.py; do echo "== $$b"; \
	  if [ "$$b" = bench/bench_run.py ]; then $(BIN)/python $$b --minutes $(BENCH_RUN_MINUTES) || exit 1; \
	  else $(BIN)/python $$b || exit 1; fi; done

clean:
	rm -rf $(VENV) artifacts build dist *.egg-info
