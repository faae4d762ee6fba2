# Quick start: `make demo` and `make test` each create .venv if missing and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Tests run in 2 processes with one torch thread each (2 cores; more threads oversubscribe).
PYTEST_WORKERS ?= 2

.PHONY: demo test install bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

# torch 2.13.0: where its CPU build lies on disk (pip's find-links, as on this project's CI machines)
# pip takes it and the venv is ~2 GB; a CUDA build adds ~4.5 GB, more than a CI disk may have free.
# Elsewhere pip takes PyPI's 2.13.0. Another torch, in a new venv: `make clean test TORCH=torch==2.14.1`.
TORCH ?= torch==2.13.0

# Reinstall only when the declared dependencies (or the torch pin above) change.
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install "$(TORCH)" -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the comparison suite on the built-in default tasks, then its report and plots.
DEMO_DIR ?= runs
demo: $(STAMP)
	$(VENV)/bin/aees-gym suite experiments/demo.toml --results-dir $(DEMO_DIR) --report
	@echo "Report: $(DEMO_DIR)/demo/report/ (report.md, CSV tables, PNG plots)"

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(PYTEST_WORKERS) -p no:cacheprovider

bench: $(STAMP)
	$(PY) bench/overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
