# Two commands do all set-up on a fresh machine:
#   make repro   create .venv if missing, install faceres, run the DVC pipeline (dvc repro)
#   make test    same set-up, then the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
STAMP := $(VENV)/.installed

.PHONY: setup repro test bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

setup: $(STAMP)

repro: setup
	$(BIN)/dvc repro

# pytest exits 5 when it collects no tests: that fails here, as any non-zero status does.
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
