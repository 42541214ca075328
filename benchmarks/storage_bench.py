"""
Storage benchmark: blocks committed per second and UTXO lookups per second
on the SQLite and Redis stores, with the memory store for reference, all
measured in one run on the same generated workload.

::

    python benchmarks/storage_bench.py [--blocks 200] [--lookups 20000]

The workload is generated up front from a seeded C{random.Random}, with
the real model's encodings: a genesis change creating C{--initial} UTXOs,
then C{--blocks} L{timecoin.storage.BlockChange}s of C{--spends} spent
outpoints (drawn from the current UTXO set) and C{--creates} created ones,
each with block bytes the size of a block of that many payments, real
undo data, the txids indexed and as many finality records retired.  Each
backend then:

- commits the blocks one after the other, each C{apply_block} awaited
  (so durable) before the next: blocks/s;
- looks up C{--lookups} outpoints (nine in ten unspent, one in ten spent)
  with C{get_utxo}, one at a time (latency-bound: lookups/s) and with 64
  in flight (throughput: lookups/s concurrent);
- reads the whole UTXO set once with C{load_utxos} (what a start costs).

SQLite runs on a file in a temporary directory (WAL, C{synchronous=FULL});
Redis is a private C{redis-server} on a free loopback port with
C{appendonly yes} and C{appendfsync always} (a masternode's settings),
stopped at the end.  Redis calls need the running reactor: the benchmark
runs under C{twisted.internet.task.react}.  The last line printed is one
JSON object with every figure and the SQLite/Redis ratios.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import defer, task  # noqa: E402

from timecoin.address import address_of  # noqa: E402
from timecoin.chain import BlockUndo  # noqa: E402
from timecoin.encoding import sha256  # noqa: E402
from timecoin.interfaces import IChainStore  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.storage import BlockChange  # noqa: E402
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, UtxoEntry  # noqa: E402

IN_FLIGHT = 64
"""Concurrent C{get_utxo} calls in the throughput measurement."""
NETWORK = "benchnet"


def payment_bytes() -> int:
    """
    The encoded size of a typical signed payment (one input, an output
    and change), from the real model.
    """
    k = PrivateKey(sha256(b"bench payer"))
    to = address_of(k.public, "TIME0")
    tx = Transaction((TxIn(OutPoint(b"\x01" * 32, 0), k.public, b"\x02" * 64),),
                     (TxOut(10**8, to), TxOut(5 * 10**8, to)))
    return len(tx.encode())


class Workload:
    """
    The generated blocks and lookup keys, the same for every backend.

    @ivar genesis: the change of height 0, creating the initial UTXOs.
    @ivar blocks: the changes of heights 1..N.
    @ivar lookups: outpoint keys to look up afterwards.
    """

    def __init__(self, rng: random.Random, blocks: int, spends: int,
                 creates: int, initial: int, lookups: int) -> None:
        self.spends, self.creates = spends, creates
        addresses = [address_of(PrivateKey(sha256(b"bench %d" % i)).public,
                                "TIME0") for i in range(64)]
        block_size = payment_bytes() * spends

        def entry(height: int) -> bytes:
            return UtxoEntry(rng.randrange(1, 10**12), rng.choice(addresses),
                             height).pack()

        def randbytes(n: int) -> bytes:
            return rng.getrandbits(8 * n).to_bytes(n, "big")

        unspent: dict[bytes, bytes] = {}
        created = [(OutPoint(randbytes(32), i).key(), entry(0))
                   for i in range(initial)]
        unspent.update(created)
        prev = randbytes(32)
        self.genesis = BlockChange(0, prev, b"\x00" * 32, randbytes(400),
                                   BlockUndo([], None).encode(), [], created,
                                   [randbytes(32)], [])
        spent_ever: list[bytes] = []
        self.blocks: list[BlockChange] = []
        keys = list(unspent)
        for height in range(1, blocks + 1):
            picked: set[bytes] = set()
            while len(picked) < spends:
                i = rng.randrange(len(keys))
                if keys[i] in unspent:
                    picked.add(keys[i])
            spent = sorted(picked)
            undo = BlockUndo([(k, unspent.pop(k)) for k in spent], None).encode()
            spent_ever.extend(spent)
            txids = [randbytes(32) for _ in range(spends + 1)]
            new = [(OutPoint(txids[1 + i // 2], i % 2).key(), entry(height))
                   for i in range(creates)]
            unspent.update(new)
            keys = [k for k in keys if k in unspent] + [k for k, _ in new]
            block_hash = randbytes(32)
            self.blocks.append(BlockChange(
                height, block_hash, prev, randbytes(block_size), undo,
                spent, new, txids, txids[1:]))
            prev = block_hash
        self.utxos = len(unspent)
        live = list(unspent)
        self.lookups = [rng.choice(spent_ever) if spent_ever and
                        rng.random() < 0.1 else rng.choice(live)
                        for _ in range(lookups)]
        self.hits = sum(1 for k in self.lookups if k in unspent)
        self.block_bytes = block_size


async def measure(store: IChainStore, work: Workload) -> dict[str, Any]:
    """
    Open C{store}, commit the workload, run the lookups, load the UTXO
    set, close it; return the figures.
    """
    await store.open()
    try:
        await store.apply_block(work.genesis)
        started = time.perf_counter()
        for change in work.blocks:
            await store.apply_block(change)
        commit = time.perf_counter() - started

        started = time.perf_counter()
        hits = 0
        for key in work.lookups:
            if await store.get_utxo(key) is not None:
                hits += 1
        sequential = time.perf_counter() - started
        if hits != work.hits:
            raise AssertionError(f"{hits} hits, expected {work.hits}")

        started = time.perf_counter()
        for i in range(0, len(work.lookups), IN_FLIGHT):
            await defer.gatherResults(
                [store.get_utxo(k) for k in work.lookups[i:i + IN_FLIGHT]],
                consumeErrors=True)
        concurrent = time.perf_counter() - started

        started = time.perf_counter()
        loaded = await store.load_utxos()
        load = time.perf_counter() - started
        if len(loaded) != work.utxos:
            raise AssertionError(f"{len(loaded)} UTXOs, expected "
                                 f"{work.utxos}")
    finally:
        await store.close()
    n = len(work.lookups)
    return {"blocks_per_s": round(len(work.blocks) / commit, 1),
            "ms_per_block": round(1000 * commit / len(work.blocks), 2),
            "lookups_per_s": round(n / sequential),
            "lookups_per_s_concurrent": round(n / concurrent),
            "load_utxos_s": round(load, 3)}


async def run(reactor: Any, options: argparse.Namespace) -> dict[str, Any]:
    """
    Generate the workload and measure every backend, in one process.
    """
    from timecoin.storage.memory import MemoryStore
    from timecoin.storage.redis import RedisStore
    from timecoin.storage.sqlite import SqliteStore

    rng = random.Random(options.seed)
    work = Workload(rng, options.blocks, options.spends, options.creates,
                    options.initial, options.lookups)
    print(f"workload: {options.blocks} blocks of {options.spends} spends + "
          f"{options.creates} creates (~{work.block_bytes // 1000} kB block "
          f"bytes each), {options.initial} initial UTXOs, {work.utxos} at "
          f"the end; {options.lookups} lookups ({work.hits} hits)",
          flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="timecoin-bench-") as tmp:
        results["memory"] = await measure(MemoryStore(), work)
        results["sqlite"] = await measure(
            SqliteStore(str(Path(tmp) / "chain.sqlite")), work)
        from tests.helpers.redisserver import RedisServer
        server = RedisServer(tmp, durable=True)
        server.start()
        try:
            results["redis"] = await measure(
                RedisStore(server.url(), NETWORK, reactor), work)
        finally:
            server.kill()
    for name in ("memory", "sqlite", "redis"):
        r = results[name]
        print(f"{name:>7}: {r['blocks_per_s']:>9.1f} blocks/s "
              f"({r['ms_per_block']} ms each), {r['lookups_per_s']:>8} "
              f"lookups/s one at a time, {r['lookups_per_s_concurrent']:>8} "
              f"with {IN_FLIGHT} in flight, load_utxos "
              f"{r['load_utxos_s']} s", flush=True)
    sqlite, redis = results["sqlite"], results["redis"]
    ratios = {
        "blocks_sqlite_over_redis": round(
            sqlite["blocks_per_s"] / redis["blocks_per_s"], 2),
        "lookups_sqlite_over_redis": round(
            sqlite["lookups_per_s"] / redis["lookups_per_s"], 2),
    }
    print(f"SQLite/Redis: {ratios['blocks_sqlite_over_redis']}x blocks/s, "
          f"{ratios['lookups_sqlite_over_redis']}x lookups/s", flush=True)
    return {"blocks": options.blocks, "spends": options.spends,
            "creates": options.creates, "initial_utxos": options.initial,
            "final_utxos": work.utxos, "lookups": options.lookups,
            "seed": options.seed, **results, "ratios": ratios}


def main(argv: list[str] | None = None) -> None:
    """
    Parse the options and run the benchmark under the reactor; print the
    summary JSON last.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--spends", type=int, default=200)
    parser.add_argument("--creates", type=int, default=400)
    parser.add_argument("--initial", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)

    async def body(reactor: Any) -> None:
        summary = await run(reactor, options)
        print(json.dumps(summary), flush=True)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(body(reactor)))


if __name__ == "__main__":
    main()
