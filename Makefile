PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: deps venv test test-unit check demo bench clean

deps:
	@scripts/install-deps

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --upgrade pip >/dev/null
	@$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

test: deps venv
	$(BIN)/pytest -q -ra

test-unit: venv
	$(BIN)/pytest -q tests/unit

check: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

demo: deps venv
	$(BIN)/python -m shipyard.lab.demo

bench: deps venv
	$(BIN)/python benchmarks/deploy_under_load.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
