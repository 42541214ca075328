"""
Crash-safety harness: SIGKILL a real node process at seeded random moments
under load, restart it, and check that nothing it acknowledged was lost
and nothing was created from nothing.

::

    python benchmarks/crash_harness.py --backend sqlite --kills 50 --seed 1
    python benchmarks/crash_harness.py --backend redis --kills 50 --seed 1

One run starts a devnet node (L{tests.nodeprocess.NodeProcess}, a real
C{twistd timecoin} child) with a short block time on the chosen store; for
Redis, a private C{redis-server} on a free loopback port with C{appendonly
yes} and C{appendfsync always} and its own directory.  Then, C{kills}
times:

1. a load thread pays 0.01 TIME to an external address through RPC
   C{sendtoaddress} as fast as a rate limit allows, and records every txid
   C{waitfortransaction} reports C{finalized} and the highest C{(height,
   bestblockhash)} C{getblockchaininfo} reports: what the node
   acknowledged;
2. after a seeded random delay the node is SIGKILLed mid-load (on Redis,
   one kill in four SIGKILLs the Redis server first, and restarts it from
   its append-only file);
3. the node is restarted on the same data and checked:

   - its height is at least the acknowledged height, and its block at
     that height is the acknowledged block (history not rewritten);
   - every acknowledged finalized transaction is known, state
     C{finalized} (still in the mempool or in a block), all of them
     checked after every restart;
   - C{gettxoutsetinfo} C{total_amount} is exactly 1,000,000 + 100 ×
     height TIME: the supply never inflates, so no spent output came back;
   - RPC C{verifychain} is ok: the stored UTXO set equals a replay of the
     stored blocks from genesis.

A kill is survived when every check after it passes.  The summary's last
line is one JSON object C{{backend, kills, survived, failures, seconds,
...}}; the exit status is 1 if any check failed.  All children (node,
Redis) are killed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.nodeprocess import NodeProcess, RpcError  # noqa: E402
from timecoin.address import address_of  # noqa: E402
from timecoin.encoding import sha256  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402

BACKENDS = ("sqlite", "redis")
GENESIS_FUNDS = Decimal(1_000_000)
REWARD = Decimal(100)
PAYMENT = "0.01"
MAX_BATCH = 1_000
"""Requests per JSON-RPC batch when checking the acknowledged txids."""
BLOCK_TIME = 0.25
"""Seconds between blocks of the node under test."""
PAYMENTS_PER_SECOND = 60.0
"""The load thread's rate limit."""
KILL_DELAY = (0.05, 1.5)
"""Bounds, in seconds, of the seeded delay between a start and its kill."""
REDIS_KILL_CHANCE = 0.25
"""Share of the kills on Redis that also SIGKILL the Redis server."""
FINALITY_WAIT = 2
"""Seconds the load waits for each payment to be decided."""


class CheckFailed(Exception):
    """
    A node broke a crash-safety property; the message says which.
    """


def batch(node: NodeProcess, calls: list[tuple[str, list[Any]]]
          ) -> list[tuple[Any, Any]]:
    """
    Run C{calls} (C{(method, params)}) as JSON-RPC batches on C{node};
    return C{(result, error)} per call, in order, with amounts parsed as
    exact Decimals.
    """
    cookie = (node.datadir / ".cookie").read_text().strip()
    auth = "Basic " + base64.b64encode(cookie.encode()).decode()
    out: list[tuple[Any, Any]] = []
    for start in range(0, len(calls), MAX_BATCH):
        chunk = calls[start:start + MAX_BATCH]
        body = json.dumps([
            {"jsonrpc": "2.0", "id": i, "method": m, "params": p}
            for i, (m, p) in enumerate(chunk)]).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{node.rpc_port}/", data=body,
            headers={"Content-Type": "application/json",
                     "Authorization": auth})
        with urllib.request.urlopen(request, timeout=120) as response:
            replies = json.loads(response.read(), parse_float=Decimal)
        by_id = {r["id"]: r for r in replies}
        out.extend((by_id[i].get("result"), by_id[i].get("error"))
                   for i in range(len(chunk)))
    return out


def call(node: NodeProcess, method: str, *params: Any) -> Any:
    """
    One call with exact amounts; raises L{RpcError} on an RPC error.
    """
    [(result, error)] = batch(node, [(method, list(params))])
    if error:
        raise RpcError(error)
    return result


@dataclass
class Acknowledged:
    """
    What the node under test acknowledged over RPC, across all its lives.

    @ivar height: the highest height reported.
    @ivar block_hash: the best block hash reported with C{height}.
    @ivar finalized: txids reported finalized, in order.
    """

    height: int = 0
    block_hash: str | None = None
    finalized: list[str] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw_tip(self, height: int, block_hash: str) -> None:
        """
        Record a reported tip if it is higher than any before.
        """
        with self.lock:
            if height > self.height:
                self.height, self.block_hash = height, block_hash


class Load(threading.Thread):
    """
    Pays C{PAYMENT} to C{address} through C{node}'s RPC at up to C{rate}
    payments a second, recording acknowledgements, until stopped or until
    the node stops answering.
    """

    def __init__(self, node: NodeProcess, address: str, acked: Acknowledged,
                 rate: float = PAYMENTS_PER_SECOND) -> None:
        super().__init__(name="crash-load", daemon=True)
        self.node = node
        self.address = address
        self.acked = acked
        self.interval = 1.0 / rate
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        """
        The load loop; ends quietly when the node goes away.
        """
        next_at = time.monotonic()
        while not self.halt.is_set():
            try:
                info = self.node.call("getblockchaininfo")
                self.acked.saw_tip(info["blocks"], info["bestblockhash"])
                try:
                    txid = self.node.call("sendtoaddress", self.address,
                                          PAYMENT)
                    self.sent += 1
                    state = self.node.call("waitfortransaction", txid,
                                           FINALITY_WAIT)["state"]
                    if state == "finalized":
                        with self.acked.lock:
                            self.acked.finalized.append(txid)
                except RpcError:
                    with self.acked.lock:
                        self.acked.refused += 1
            except (OSError, ValueError, KeyError,
                    http.client.HTTPException):
                return
            next_at += self.interval
            self.halt.wait(max(0.0, next_at - time.monotonic()))


def check_node(node: NodeProcess, acked: Acknowledged) -> dict[str, Any]:
    """
    Check the restarted C{node} against what was C{acked}; return a few
    figures, or raise L{CheckFailed} naming the first broken property.
    """
    info = call(node, "getblockchaininfo")
    if info["blocks"] < acked.height:
        raise CheckFailed(f"height {info['blocks']} below acknowledged "
                          f"{acked.height}")
    if acked.block_hash is not None:
        at = call(node, "getblockhash", acked.height)
        if at != acked.block_hash:
            raise CheckFailed(f"block at acknowledged height {acked.height} "
                              f"is {at}, was {acked.block_hash}")
    with acked.lock:
        txids = list(acked.finalized)
    started = time.monotonic()
    # waitfortransaction with no wait: the state alone, cheaper than
    # gettransaction (which also reads the spent outputs for the fee).
    replies = batch(node, [("waitfortransaction", [t, 0]) for t in txids])
    txs_seconds = time.monotonic() - started
    for txid, (result, error) in zip(txids, replies, strict=True):
        state = None if error else result["state"]
        if state != "finalized":
            raise CheckFailed(f"acknowledged finalized tx {txid} is now "
                              f"{state or error}")
    utxo = call(node, "gettxoutsetinfo")
    expected = GENESIS_FUNDS + REWARD * utxo["height"]
    if Decimal(utxo["total_amount"]) != expected:
        raise CheckFailed(f"supply {utxo['total_amount']} at height "
                          f"{utxo['height']}, expected {expected}")
    started = time.monotonic()
    verdict = call(node, "verifychain")
    verify_seconds = time.monotonic() - started
    if not verdict["ok"]:
        raise CheckFailed(f"verifychain: {verdict}")
    if verdict["height"] < acked.height:
        raise CheckFailed(f"verifychain at {verdict['height']} below "
                          f"acknowledged {acked.height}")
    return {"height": utxo["height"], "txids": len(txids),
            "txs_seconds": round(txs_seconds, 2),
            "verify_seconds": round(verify_seconds, 2)}


def payee() -> str:
    """
    A fixed devnet address no wallet of the node holds.
    """
    key = PrivateKey(sha256(b"timecoin crash harness payee"))
    return address_of(key.public, "TIME0")


class CrashHarness:
    """
    One backend's kill-and-restart run in C{workdir}; call L{close} at the
    end (the tests register it as a cleanup) to kill every child.
    """

    def __init__(self, backend: str, workdir: Path, seed: int,
                 block_time: float = BLOCK_TIME,
                 say: Callable[[str], None] = print) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}")
        self.backend = backend
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.seed = seed
        self.block_time = block_time
        self.say = say
        self.redis: Any = None
        self.node: NodeProcess | None = None
        self.acked = Acknowledged()
        self.failures: list[str] = []

    def setup(self) -> None:
        """
        Start Redis (for that backend) and the node for the first time.
        """
        args: list[str] = []
        if self.backend == "redis":
            from tests.helpers.redisserver import RedisServer
            directory = self.workdir / "redis"
            directory.mkdir(parents=True, exist_ok=True)
            self.redis = RedisServer(str(directory), durable=True)
            self.redis.start()
            args = ["--storage", "redis", "--redis-url", self.redis.url()]
        self.node = NodeProcess(self.workdir / "node", *args,
                                block_time=self.block_time)
        self.node.start()

    def close(self) -> None:
        """
        Kill the node and the Redis server, if running.  Safe to repeat.
        """
        if self.node is not None:
            self.node.kill()
        if self.redis is not None:
            self.redis.kill()

    def run(self, kills: int) -> dict[str, Any]:
        """
        Set up, then kill, restart and check C{kills} times; return the
        summary (also the JSON line of the script).
        """
        started = time.monotonic()
        survived = 0
        figures: dict[str, Any] = {}
        self.setup()
        assert self.node is not None
        address = payee()
        for n in range(1, kills + 1):
            load = Load(self.node, address, self.acked)
            load.start()
            delay = self.rng.uniform(*KILL_DELAY)
            with_redis = self.redis is not None and \
                self.rng.random() < REDIS_KILL_CHANCE
            time.sleep(delay)
            if with_redis:
                self.redis.kill()
            self.node.kill()
            load.halt.set()
            load.join(30)
            what = "node+redis" if with_redis else "node"
            try:
                if with_redis:
                    self.redis.start()
                self.node.start()
            except (AssertionError, RuntimeError, OSError) as e:
                self.failures.append(f"kill {n}: restart failed: {e}")
                self.say(f"kill {n}/{kills} ({what} at {delay:.2f}s): "
                         f"RESTART FAILED: {e}")
                break
            try:
                figures = check_node(self.node, self.acked)
            except (CheckFailed, RpcError, OSError, ValueError,
                    http.client.HTTPException) as e:
                self.failures.append(f"kill {n}: {e}")
                self.say(f"kill {n}/{kills} ({what} at {delay:.2f}s): "
                         f"FAILED: {e}")
                continue
            survived += 1
            self.say(f"kill {n}/{kills} ({what} at {delay:.2f}s): height "
                     f"{figures['height']} >= acked {self.acked.height}, "
                     f"{figures['txids']} finalized txs kept "
                     f"({figures['txs_seconds']}s), supply ok, verifychain "
                     f"ok ({figures['verify_seconds']}s)")
        self.close()
        return {"backend": self.backend, "kills": kills,
                "survived": survived, "failures": len(self.failures),
                "seconds": round(time.monotonic() - started, 1),
                "seed": self.seed, "final_height": figures.get("height"),
                "finalized_txs": len(self.acked.finalized),
                "refused_payments": self.acked.refused}


def main(argv: list[str] | None = None) -> int:
    """
    Run the harness from the command line; exit status 1 on any failure.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-time", type=float, default=BLOCK_TIME)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the node's data here (default: a "
                             "temporary directory, removed afterwards)")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="timecoin-crash-") as tmp:
        workdir = options.workdir or Path(tmp)
        harness = CrashHarness(options.backend, workdir, options.seed,
                               options.block_time)
        try:
            summary = harness.run(options.kills)
        finally:
            harness.close()
    print(f"{summary['backend']}: survived {summary['survived']} of "
          f"{summary['kills']} SIGKILLs in {summary['seconds']}s "
          f"(seed {summary['seed']}, final height {summary['final_height']}"
          f", {summary['finalized_txs']} finalized payments checked after "
          f"every restart)")
    for failure in harness.failures:
        print(f"  failure: {failure}")
    print(json.dumps(summary))
    return 1 if harness.failures else 0


if __name__ == "__main__":
    sys.exit(main())
