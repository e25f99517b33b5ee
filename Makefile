# Task file. Each target builds its own virtual env in .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
N ?= 20000

.PHONY: demo test lint typecheck pytest bench bench-smoke clean

$(BIN)/enforcement-ledger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## demo: install, then build the seed story in a fresh store and print it
demo: $(BIN)/enforcement-ledger
	$(BIN)/enforcement-ledger demo

## test: install, then lint, type-check and run the whole suite (SQLite and PostgreSQL)
test: lint typecheck pytest

lint: $(BIN)/enforcement-ledger
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/enforcement-ledger
	$(BIN)/mypy

pytest: $(BIN)/enforcement-ledger
	$(BIN)/pytest -q

## bench: the full benchmark (N=1000000 by default); bench-smoke: a small run for CI
bench: $(BIN)/enforcement-ledger
	$(BIN)/python -m bench.run --events $(or $(EVENTS),1000000) --json bench/out/results.json

bench-smoke: $(BIN)/enforcement-ledger
	$(BIN)/python -m bench.run --events $(N) --smoke
	$(BIN)/python -m bench.run --events 5000 --smoke --store postgres

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
