# Two entry points, each doing its own set-up on a fresh machine (Python 3.11):
#   make drill   run the disaster drill on the built-in simulated providers (no keys, no network)
#   make test    lint, type-check and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: drill test bench install clean

$(BIN)/failover: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/failover

install: $(BIN)/failover

drill: install
	$(BIN)/failover drill

test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .failover .pytest_cache .mypy_cache .ruff_cache
