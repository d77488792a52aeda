PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint typecheck imports deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff format --check src tests
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The import contracts in pyproject.toml ([tool.importlinter]): layers, no cycles.
imports: $(STAMP)
	$(BIN)/lint-imports

# Every third-party package imported by the library is declared in pyproject.toml.
deps: $(STAMP)
	$(BIN)/deptry src

test: lint typecheck imports deps
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/fetchpipe demo --out demo.duckdb --report demo-report.html
	$(BIN)/fetchpipe bench seed --scale 0.04
	@echo "the demo's HTML report: $(CURDIR)/demo-report.html"

clean:
	rm -rf $(VENV) demo.duckdb demo-report.html .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
