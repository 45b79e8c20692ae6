# One command to run the service, one to prove it. Both bootstrap their own tools from the lock.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: serve test lint types layers pytest services sync clean browser bench reliability

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(BIN)/booking: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-groups
	@touch $@

sync: $(BIN)/booking

serve: sync
	$(BIN)/booking serve $(ARGS)

lint: sync
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

types: sync
	$(BIN)/mypy --strict src

layers: sync
	$(BIN)/lint-imports

services: sync
	scripts/ensure-services

browser:
	scripts/ensure-browser

pytest: sync services browser
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint types layers pytest

bench: sync services
	$(BIN)/python -m bench.run $(BENCH_ARGS)

reliability: sync services
	$(BIN)/python -m tests.reliability.report $(RELIABILITY_ARGS)

clean:
	rm -rf .tools $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
