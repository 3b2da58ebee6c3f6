# The two commands a fresh machine needs are `make run` and `make test`; both install first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help install run test test-fast fmt bench

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed  ## create .venv with tolem and its dev tools

run: install  ## migrate, then serve with the Payme sweep beside it (unless TOLEM_DATABASE_URL is set, a private PostgreSQL per user: `tolem db status` says where)
	$(BIN)/tolem migrate
	$(BIN)/tolem sweep & sweep=$$!; trap 'kill $$sweep 2>/dev/null' EXIT INT TERM; $(BIN)/tolem serve

test: install  ## lint, type-check and run the whole test suite against a real PostgreSQL
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

test-fast: install  ## the suite without its slow runs (server subprocesses, chaos, deployment, browser): for the edit-test loop
	$(BIN)/pytest -m "not slow and not browser"

bench: install  ## benchmark tolem beside the bare reference (needs wrk; BENCH_ARGS="--peer --prior 1000000")
	$(BIN)/python -m bench $(BENCH_ARGS)

fmt: install  ## format and auto-fix
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench
