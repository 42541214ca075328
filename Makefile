# The two set-up commands of the README: `make run` and `make test`.
# Everything they need is installed here, into .venv.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATADIR ?= $(HOME)/.timecoin/devnet
ARGS ?=

.PHONY: run test lint devnet bench clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --config-settings editable_mode=compat -e '.[test]'
	touch $@

# A single-node devnet in the foreground, data in ~/.timecoin/devnet (the
# default data dir, so timecoin-cli needs no flags).
run: $(BIN)/.installed
	@echo "timecoin devnet: data in $(DATADIR); try: $(BIN)/timecoin-cli getblockcount"
	$(BIN)/twistd --pidfile= -n timecoin --network devnet --datadir $(DATADIR) $(ARGS)

# The whole suite (lint, types, trial), ending with "N passed, N failed".
test: $(BIN)/.installed
	scripts/ensure-redis
	$(BIN)/python scripts/run-tests $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp* .mypy_cache .ruff_cache
