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
	scripts/ensure-chromium
	scripts/ensure-promtool || echo "promtool unavailable: the promtool tests will skip"
	$(BIN)/python scripts/run-tests $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info _trial_temp* .mypy_cache .ruff_cache

# Crash safety: a real node SIGKILLed KILLS times under load on each
# persistent backend (SQLite, then a private redis-server), restarted and
# checked each time; see benchmarks/crash_harness.py.
KILLS ?= 50
SEED ?= 1
.PHONY: crash bench-storage bench-memory
crash: $(BIN)/.installed
	scripts/ensure-redis >/dev/null
	rc=0; for backend in sqlite redis; do \
	    $(BIN)/python benchmarks/crash_harness.py --backend $$backend \
	        --kills $(KILLS) --seed $(SEED) || rc=1; \
	done; exit $$rc

# Blocks committed/s and UTXO lookups/s on SQLite and Redis (and memory),
# measured in one run; see benchmarks/storage_bench.py.
bench-storage: $(BIN)/.installed
	scripts/ensure-redis >/dev/null
	$(BIN)/python benchmarks/storage_bench.py $(ARGS)

# The load benchmark: a 4-node devnet of real processes driven with
# pre-signed payments; ARGS sets --rate, --duration, --nodes and more (see
# benchmarks/load_bench.py).  Its last line is one JSON object.  The
# single-node ingest benchmark is bench-ingest.  See docs/performance.md.
.PHONY: bench-ingest
bench: $(BIN)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/load_bench.py $(ARGS)

bench-ingest: $(BIN)/.installed
	$(BIN)/python benchmarks/ingest_bench.py $(ARGS)

# Resident memory of one node with 1,000 blocks of certificates and a full
# mempool (issue 18); see benchmarks/memory_bench.py.
bench-memory: $(BIN)/.installed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/memory_bench.py $(ARGS)

# One masternode's traffic, copies per message, CPU and finality latency
# as the network grows (issue 19), in the simulator: ARGS sets --sizes
# (default 10,20,30), --seed, --seeds (several seeds averaged), --seconds,
# --tx-rate, --committee; the plot needs
# matplotlib (the "bench" extra).  See benchmarks/scale_bench.py.
.PHONY: bench-scale
bench-scale: $(BIN)/.installed
	$(BIN)/pip install -q --config-settings editable_mode=compat -e '.[test,bench]'
	PYTHONHASHSEED=0 $(BIN)/python benchmarks/scale_bench.py --png scale.png $(ARGS)

# The real-network harness alone (network namespaces, needs root; it also
# runs in make test), and the soak run: the same network for MINUTES
# (default 30) under a steady payment load, figures as one JSON line.  See
# docs/operating.md and timecoin/testing/netns.py.
MINUTES ?= 30
.PHONY: netns soak
netns: $(BIN)/.installed
	$(BIN)/python scripts/run-tests tests.test_netns

soak: $(BIN)/.installed
	$(BIN)/python benchmarks/soak.py --minutes $(MINUTES) $(ARGS)
