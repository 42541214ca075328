"""
Builders shared by the unit tests: deterministic keys, a devnet genesis,
a chain on a memory store, and signed payments.

The fixtures that several test modules share live in this package, never
in a C{test_*} module (no test module imports another:
L{tests.test_architecture} checks it): L{tests.helpers.clusters} (whole
nodes on a fake network), L{tests.helpers.rpc}, L{tests.helpers.p2p},
L{tests.helpers.chain}, L{tests.helpers.wallet} and
L{tests.helpers.redisserver}.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from timecoin import params
from timecoin.address import address_of
from timecoin.block import Block
from timecoin.chain import Chain
from timecoin.consensus import BlockConsensus
from timecoin.encoding import sha256
from timecoin.genesis import make_genesis
from timecoin.keys import PrivateKey
from timecoin.masternodes import Masternode, Snapshot, make_snapshot
from timecoin.mempool import Mempool, MempoolSettings
from timecoin.producer import BlockBuilder
from timecoin.quorum import CountQuorum
from timecoin.selection import RoundRobin
from timecoin.storage.memory import MemoryStore
from timecoin.testing.cluster import fired
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs

DEVNET = params.NETWORKS["devnet"]
START = 1_800_000_000.0


def key(n: int) -> PrivateKey:
    """
    A deterministic test key number C{n}.
    """
    return PrivateKey(sha256(b"timecoin test key %d" % n))


def addr(k: PrivateKey) -> str:
    """
    The devnet address of C{k}.
    """
    return address_of(k.public, DEVNET.address_prefix)


def widen_snapshot(chain: Chain, extra: tuple[int, ...]) -> Snapshot:
    """
    Make every snapshot of C{chain} its first one plus masternodes of test
    keys C{extra} (so that the node's own vote is no longer a quorum);
    returns that snapshot.
    """
    bigger = make_snapshot([*chain.snapshot_for(1), *(
        Masternode(key(i).public, "x:1", addr(key(i)), "free")
        for i in extra)])
    chain.snapshot_for = lambda height: bigger  # type: ignore[method-assign]
    return bigger


def result_of(d: defer.Deferred[Any]) -> Any:
    """
    The result of an already-fired Deferred (raises its failure): the
    cluster fixture's L{fired}.
    """
    return fired(d)


def wait_until(testcase: TestCase, predicate: Callable[[], Any],
               timeout: float, what: str, step: float = 0.1) -> float:
    """
    Poll C{predicate} (exceptions count as false: a node still starting)
    every C{step} seconds of wall time until it holds, failing
    C{testcase} with C{what} after C{timeout}; the seconds it took.
    For tests of real processes.
    """
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:
            pass
        testcase.assertLess(time.monotonic() - started, timeout, what)
        time.sleep(step)


class Harness:
    """
    A one-masternode devnet chain on a memory store and a fake clock, with
    a funded wallet key, a mempool, a block builder and block consensus.
    """

    def __init__(self, funds: list[int] | None = None,
                 store: MemoryStore | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.mn_key = key(0)
        self.payer = key(1)
        self.store = store if store is not None else MemoryStore()
        amounts = funds or [1_000 * params.COIN]
        self.genesis = make_genesis(
            "devnet", int(START * 1000),
            [TxOut(a, addr(self.payer)) for a in amounts],
            [Masternode(self.mn_key.public, "127.0.0.1:24200",
                        addr(self.mn_key), "free")])
        self.chain = Chain(DEVNET, self.store, self.genesis, RoundRobin(),
                           CountQuorum(),
                           lambda: int(self.clock.seconds() * 1000))
        result_of(self.chain.load())
        self.mempool = Mempool(self.chain, MempoolSettings(), self.clock.seconds)
        self.builder = BlockBuilder(self.chain, self.mempool, self.mn_key,
                                    self.clock)
        self.consensus = BlockConsensus(self.chain, self.mn_key, self.clock,
                                        2.0, 2.0, self.builder.build_block)
        self.chain.block_connected.connect(self.mempool.block_connected)

    def funding(self, index: int = 0) -> OutPoint:
        """
        The genesis output number C{index} (paid to C{payer}).
        """
        return OutPoint(self.genesis.txs[0].txid, index)

    def pay(self, prevouts: list[OutPoint], outputs: list[tuple[str, int]],
            signer: PrivateKey | None = None) -> Transaction:
        """
        A transaction spending C{prevouts} (all owned by C{signer}, default
        C{payer}) to C{outputs}, signed.
        """
        signer = signer or self.payer
        tx = Transaction(tuple(TxIn(p, signer.public) for p in prevouts),
                         tuple(TxOut(v, a) for a, v in outputs))
        return sign_inputs(tx, DEVNET.name, [signer] * len(prevouts))

    def next_block(self) -> Block:
        """
        Advance the clock one block time: the (single) masternode proposes,
        votes and commits the next block, which is returned.
        """
        if not self.consensus.running:
            self.consensus.start()
        height = self.chain.height
        due = self.chain.tip.header.timestamp / 1000.0 + 2.0
        self.clock.advance(max(2.0, due - self.clock.seconds()))
        assert self.chain.height == height + 1, "no block was committed"
        return self.chain.tip


def one_utxo_set(sample: Any, timeout: float = 30.0) -> str:
    """
    The one UTXO set several running nodes hold: C{sample()} returns their
    C{gettxoutsetinfo} answers (one list per call).  A block may land
    between two nodes' answers, so one sample of a moving chain can show
    two tips: sample until all are at one best block.  Every sample must
    give one C{utxo_hash} per best block; fails (AssertionError) if not,
    or if no sample within C{timeout} seconds has one best block.
    Returns the hash.
    """
    import time

    by_block: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout
    while True:
        infos = sample()
        for info in infos:
            by_block.setdefault(info["bestblock"], set()).add(
                info["utxo_hash"])
        for block, hashes in by_block.items():
            assert len(hashes) == 1, f"block {block}: UTXO sets {hashes}"
        if len({i["bestblock"] for i in infos}) == 1:
            return str(infos[0]["utxo_hash"])
        assert time.monotonic() < deadline, \
            f"no common best block in {timeout} s: {infos}"
        time.sleep(0.05)
