"""
Block-sync benchmark: how fast an empty node catches up over the P2P
protocol, against how fast this machine validates and connects the same
blocks in one process, both measured in the same run.

::

    python benchmarks/sync_bench.py [--blocks 2000] [--txs 4] [--peers 3]

1. A one-masternode devnet node commits C{--blocks} blocks on a fake clock
   (block time 50 ms of fake time), each with C{--txs} signed payments
   (chained: each spends the previous one's change).
2. *Raw validation*: the same blocks, with their commit certificates, are
   connected with L{timecoin.chain.Chain.connect_block} into a fresh chain
   on a memory store, one after the other (full validation: producer
   signature, certificate signatures, every input signature, UTXO
   changes): blocks/s of wall time.
3. *Sync*: C{--peers} nodes hold the chain (the producer, plus copies made
   by connecting its blocks); an empty node connects to all of them on an
   in-memory TCP network (L{timecoin.p2p.testing.FakeNetwork}, iosim) and
   catches up with the real sync code: C{get_blocks} batches from several
   peers in parallel, JSON encoding and parsing on both sides, in-order
   validation.  Blocks/s of wall time from its first connection until it
   holds the whole chain (fake time advances 0.1 s per step; pacing below
   the peers' rate limits is in fake time, so wall time is CPU time).

The last line printed is one JSON object: blocks, txs, both rates, their
ratio (sync / raw: the share of the validation speed the protocol keeps),
the same without the serving peers' CPU (in a real network they are other
machines), the peers that served ranges, and the fake seconds the
catch-up took.
Memory stores throughout, so storage speed (see storage_bench.py) does not
enter either figure.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import defer  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from timecoin import params  # noqa: E402
from timecoin.address import address_of  # noqa: E402
from timecoin.chain import Chain  # noqa: E402
from timecoin.config import Config  # noqa: E402
from timecoin.encoding import sha256  # noqa: E402
from timecoin.genesis import make_genesis, write_genesis  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.masternodes import Masternode  # noqa: E402
from timecoin.node import Node  # noqa: E402
from timecoin.p2p.service import P2PService  # noqa: E402
from timecoin.p2p.settings import P2PSettings  # noqa: E402
from timecoin.p2p.testing import FakeNetwork  # noqa: E402
from timecoin.quorum import QUORUM_RULES  # noqa: E402
from timecoin.selection import load_policy  # noqa: E402
from timecoin.storage.memory import MemoryStore  # noqa: E402
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs  # noqa: E402
from timecoin.wallet import write_private  # noqa: E402
from timecoin.wiring import attach_p2p, build  # noqa: E402

START = 1_800_000_000.0
BLOCK_TIME = 0.05
PORT = 24200
NETWORK = "devnet"
PREFIX = params.NETWORKS[NETWORK].address_prefix


def bench_key(n: int) -> PrivateKey:
    """
    A deterministic key number C{n}.
    """
    return PrivateKey(sha256(b"timecoin sync bench key %d" % n))


def result_of(d: defer.Deferred[Any]) -> Any:
    """
    The result of a Deferred that already fired (memory stores fire at
    once).
    """
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class Bench:
    """
    Nodes on one fake clock and network, sharing a genesis whose only
    masternode is key 0 and whose funds belong to key 1.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.clock = Clock()
        self.clock.advance(START)
        self.net = FakeNetwork(self.clock)
        self.payer = bench_key(1)
        self.genesis_path = base / "genesis.json"
        self.genesis = make_genesis(
            NETWORK, int(START * 1000),
            [TxOut(10_000_000 * params.COIN,
                   address_of(self.payer.public, PREFIX))],
            [Masternode(bench_key(0).public, f"10.0.0.1:{PORT}",
                        address_of(bench_key(0).public, PREFIX), "free")])
        write_genesis(self.genesis_path, self.genesis)
        self.coin = (OutPoint(self.genesis.txs[0].txid, 0),
                     10_000_000 * params.COIN)
        self.rng = random.Random(11)
        self.services: list[P2PService] = []

    def node(self, name: str, n: int) -> Node:
        """
        A started node with key C{n} on a memory store.
        """
        datadir = self.base / name
        write_private(datadir / "private" / "node_key",
                      bench_key(n).seed.hex().encode() + b"\n")
        config = Config(network=NETWORK, datadir=str(datadir),
                        block_time=BLOCK_TIME, p2p=P2PSettings(port=PORT),
                        genesis=str(self.genesis_path))
        config.resolve()
        node = build(config, self.clock, store=MemoryStore(),
                     with_p2p=False).node
        node.startService()
        result_of(node.ready)
        return node

    def serve(self, node: Node, ip: str, connect: tuple[str, ...] = ()
              ) -> P2PService:
        """
        Start the P2P service of C{node} at C{ip}.
        """
        settings = replace(node.config.p2p, bind=ip, connect=tuple(
            f"{c}:{PORT}" for c in connect))
        service = attach_p2p(node, self.net.reactor(ip), settings,
                             random.Random(len(self.services)))
        service.startService()
        self.services.append(service)
        return service

    def pay(self, node: Node) -> None:
        """
        Submit one signed payment (spending the last change) to C{node}.
        """
        outpoint, value = self.coin
        amount = self.rng.randrange(1_000, 100_000) * 1_000
        fee = params.min_fee(amount)
        dest = address_of(bench_key(100 + self.rng.randrange(100)).public,
                          PREFIX)
        tx = Transaction((TxIn(outpoint, self.payer.public),),
                         (TxOut(amount, dest),
                          TxOut(value - amount - fee,
                                address_of(self.payer.public, PREFIX))))
        tx = sign_inputs(tx, NETWORK, [self.payer])
        result_of(node.submit(tx))
        self.coin = (OutPoint(tx.txid, 1), value - amount - fee)

    def produce(self, node: Node, blocks: int, txs: int) -> int:
        """
        Let C{node} commit C{blocks} blocks with C{txs} payments each;
        returns the number of payments.
        """
        paid = 0
        while node.chain.height < blocks:
            for _ in range(txs):
                self.pay(node)
                paid += 1
            height = node.chain.height
            while node.chain.height == height:
                self.clock.advance(BLOCK_TIME)
        node.consensus.stop()
        return paid


def timed_serving(service: P2PService, total: list[float]) -> None:
    """
    Add the wall time C{service} spends answering C{get_blocks} (reading
    and encoding blocks: work a remote peer does on its own CPU) to
    C{total[0]}.
    """
    serve = service.sync.server.serve_blocks

    def timed(conn: Any, msg: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return serve(conn, msg)
        finally:
            total[0] += time.perf_counter() - t0

    service.sync.server.serve_blocks = timed  # type: ignore[method-assign]


def fresh_chain(node: Node) -> Chain:
    """
    An empty chain (genesis only) of C{node}'s network on a memory store.
    """
    chain = Chain(node.network, MemoryStore(), node.genesis,
                  load_policy(node.config.policy, ()),
                  QUORUM_RULES[node.config.quorum],
                  lambda: int(node.clock.seconds() * 1000))
    result_of(chain.load())
    return chain


def run(blocks: int, txs: int, peers: int) -> dict[str, Any]:
    """
    Build the chain, measure raw validation and sync; the figures.
    """
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp))
        producer = bench.node("producer", 0)
        t0 = time.perf_counter()
        paid = bench.produce(producer, blocks, txs)
        build_s = time.perf_counter() - t0
        entries = [result_of(producer.committed_block(h))
                   for h in range(1, blocks + 1)]

        chain = fresh_chain(producer)
        t0 = time.perf_counter()
        for block, commit in entries:
            result_of(chain.connect_block(block, commit))
        raw_s = time.perf_counter() - t0
        assert chain.tip.hash == producer.chain.tip.hash

        servers = [producer]
        for i in range(1, peers):
            copy = bench.node(f"server{i}", 20 + i)
            for block, commit in entries:
                result_of(copy.chain.connect_block(block, commit))
            servers.append(copy)
        ips = [f"10.0.0.{i + 1}" for i in range(peers)]
        serving = [0.0]
        for node, ip in zip(servers, ips):
            timed_serving(bench.serve(node, ip), serving)
        bench.net.flush()

        empty = bench.node("empty", 50)
        fake_start = bench.clock.seconds()
        t0 = time.perf_counter()
        syncing = bench.serve(empty, "10.0.0.50", tuple(ips))
        while empty.chain.height < blocks:
            bench.net.advance(0.1, step=0.1)
            if bench.clock.seconds() - fake_start > 3600:
                raise RuntimeError("sync did not finish in an hour of "
                                   "fake time")
        sync_s = time.perf_counter() - t0
        fake_s = bench.clock.seconds() - fake_start
        assert empty.chain.tip.hash == producer.chain.tip.hash
        assert empty.chain.utxo_hash() == producer.chain.utxo_hash()
        used = sum(1 for s in bench.services[:peers]
                   if s.sync.counters["served-requests"])
        requests = syncing.sync.counters["sync-requests"]
        max_buffered = syncing.sync.max_buffered
        for service in bench.services:
            service.stopService()
    raw = blocks / raw_s
    synced = blocks / sync_s
    client = blocks / (sync_s - serving[0])
    return {
        "benchmark": "sync", "blocks": blocks, "txs": paid,
        "txs_per_block": txs, "peers": peers, "peers_used": used,
        "requests": requests, "max_buffered_blocks": max_buffered,
        "build_s": round(build_s, 2),
        "raw_validation_blocks_per_s": round(raw, 1),
        "raw_validation_s": round(raw_s, 3),
        "sync_blocks_per_s": round(synced, 1),
        "sync_s": round(sync_s, 3),
        "sync_fake_s": round(fake_s, 1),
        "serving_s": round(serving[0], 3),
        "sync_client_blocks_per_s": round(client, 1),
        "ratio_sync_to_raw": round(synced / raw, 3),
        "ratio_client_to_raw": round(client / raw, 3),
    }


def main(argv: list[str] | None = None) -> int:
    """
    Parse arguments, run, print the figures and the JSON line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=2000)
    parser.add_argument("--txs", type=int, default=4,
                        help="payments per block")
    parser.add_argument("--peers", type=int, default=3,
                        help="nodes holding the chain")
    args = parser.parse_args(argv)
    figures = run(args.blocks, args.txs, args.peers)
    print(f"built {figures['blocks']} blocks with {figures['txs']} txs in "
          f"{figures['build_s']} s")
    print(f"raw validation (connect_block, one process): "
          f"{figures['raw_validation_blocks_per_s']} blocks/s")
    print(f"sync from {figures['peers_used']} of {figures['peers']} peers "
          f"({figures['requests']} requests): "
          f"{figures['sync_blocks_per_s']} blocks/s "
          f"({figures['sync_fake_s']} s of fake time)")
    print(f"  of which serving (the peers' side, here in the same process): "
          f"{figures['serving_s']} s; the syncing node alone: "
          f"{figures['sync_client_blocks_per_s']} blocks/s")
    print(f"ratio sync/raw: {figures['ratio_sync_to_raw']} "
          f"(syncing node alone: {figures['ratio_client_to_raw']})")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
