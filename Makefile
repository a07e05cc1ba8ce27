# Two entry points, each doing its own set-up on a fresh machine (Python 3.11):
#   make drill   run the disaster drill on the built-in simulated providers (no keys, no network)
#   make test    lint, type-check and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: drill test bench interop install clean

$(BIN)/failover: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/failover

install: $(BIN)/failover

drill: install
	$(BIN)/failover drill

test: install
	$(BIN)/ruff check src tests benchmarks interop
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m benchmarks.run

# Opt-in: failover against LiteLLM's proxy (installed into its own venv, started on
# loopback with mock-answering models); see docs/compatible-servers.md.
INTEROP_VENV ?= .interop-venv
LITELLM      ?= litellm[proxy]==1.108.0

$(INTEROP_VENV)/bin/litellm:
	$(PYTHON) -m venv $(INTEROP_VENV)
	$(INTEROP_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(INTEROP_VENV)/bin/python -m pip install --quiet '$(LITELLM)'

interop: install $(INTEROP_VENV)/bin/litellm
	FAILOVER_LITELLM=$(abspath $(INTEROP_VENV))/bin/litellm \
		interop/run $(BIN)/python -m pytest interop -p no:cacheprovider

clean:
	rm -rf $(VENV) $(INTEROP_VENV) .failover .pytest_cache .mypy_cache .ruff_cache
