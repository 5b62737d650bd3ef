# One venv per Django line, made on first use; `make test` needs nothing run before it.
PYTHON ?= python3
VENV ?= .venv
DJANGO ?= Django>=4.2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint format bench demo serve ci clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]" "$(DJANGO)"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ci:
	bash .ci/run

clean:
	rm -rf .venv .venv-* .mypy_cache .ruff_cache .pytest_cache *.egg-info
