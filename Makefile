# `make demo` shows the first proof live against the simulated lab; `make test` runs everything against real
# backends. Both set up what they need on a fresh machine (a venv here; Docker and Home Assistant for tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint install bench figures clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/argobox demo

test: install
	bash scripts/test.sh

# ruff, the format check, pyright and the size budget (make test runs them first).
lint: install
	bash scripts/lint.sh

# What ArgoBox adds to a read call, against a bare MCP server, on the real backends (BENCH_ARGS=--quick: 1-2 minutes).
bench: install
	bash scripts/bench.sh $(BENCH_ARGS)

# The figures of docs/security.md and the README (crash points, executions, inputs, leaks), from the tests that report
# them, run against the real backends.
figures: install
	$(PY) scripts/reliability.py --write

clean:
	rm -rf $(VENV) .state
