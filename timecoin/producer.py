"""
Slot-based block production.

Every ``block_time`` seconds after the tip's timestamp, the node asks the
selection policy who produces the next block; if it is this node's
masternode key, it builds a block from the finalized transactions (in
finalization order, within the size limit), pays the coinbase by the shared
reward rule, signs it, and hands it to block voting.

Block voting here commits a block once this node's own signed vote reaches
the quorum of the snapshot's total weight, which a one-masternode devnet
does at once; collecting other masternodes' votes over P2P, and the round
timeouts that replace an absent proposer, build on the same
L{CommitCertificate} path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from timecoin import params, rewards
from timecoin.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    commit_hash_of,
    merkle_root,
    sign_block,
    sign_block_vote,
)
from timecoin.chain import BlockInvalid, Chain
from timecoin.keys import PrivateKey
from timecoin.mempool import Mempool
from timecoin.tx import Transaction

log = Logger()

COINBASE_RESERVE = 100_000
"""Bytes kept free in a block for its header, coinbase and certificate."""


class BlockProducer:
    """
    Produces and commits blocks when the policy picks this node.
    """

    def __init__(self, chain: Chain, mempool: Mempool, key: PrivateKey,
                 clock: IReactorTime, block_time: float) -> None:
        self.chain = chain
        self.mempool = mempool
        self.key = key
        self.clock = clock
        self.block_time = block_time
        self._call: IDelayedCall | None = None
        self._running = False
        self._busy = False
        self.block_committed: list[Callable[[Block], None]] = []
        self.counters = {"produced": 0, "failed": 0}

    def start(self) -> None:
        """
        Begin producing at the next slot.
        """
        self._running = True
        self._schedule()

    def stop(self) -> None:
        """
        Stop producing; a block being committed still completes.
        """
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def _schedule(self) -> None:
        if not self._running:
            return
        due = self.chain.tip.header.timestamp / 1000.0 + self.block_time
        delay = max(0.0, due - self.clock.seconds())
        self._call = self.clock.callLater(delay, self._slot)

    def _slot(self) -> None:
        self._call = None
        if self._busy:
            return
        height = self.chain.height + 1
        producer = self.chain.expected_producer(height, self.chain.tip.hash, 0)
        if producer != self.key.public:
            self._call = self.clock.callLater(self.block_time, self._slot)
            return
        self._busy = True
        d = self.produce()
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _failed(self, failure: Any) -> None:
        self.counters["failed"] += 1
        log.failure("block production failed", failure)

    def _done(self, _: object) -> None:
        self._busy = False
        self._schedule()

    def build_block(self, round: int = 0) -> Block:
        """
        Build and sign the next block from finalized transactions.
        """
        chain = self.chain
        height = chain.height + 1
        txs = self.mempool.block_candidates(
            params.MAX_BLOCK_BYTES - COINBASE_RESERVE)
        fees = sum(self.mempool.entries[t.txid].fee for t in txs)
        outputs = rewards.coinbase_outputs(
            chain.snapshot_for(height), chain.network.block_reward, fees)
        coinbase = Transaction((), outputs, "coinbase", {"height": height})
        all_txs = (coinbase, *txs)
        commit = chain.tip_commit if height > 1 else None
        header = BlockHeader(
            height=height, prev_hash=chain.tip.hash,
            merkle_root=merkle_root([t.txid for t in all_txs]),
            timestamp=max(self._now_ms(), chain.tip.header.timestamp + 1),
            producer=self.key.public, round=round,
            commit_hash=commit_hash_of(commit))
        return sign_block(self.key, chain.network.name, header, all_txs,
                          commit)

    def vote(self, block: Block) -> CommitCertificate:
        """
        This node's vote on C{block}, as a certificate of one vote.
        """
        vote = sign_block_vote(self.key, self.chain.network.name,
                               block.height, block.header.round, block.hash)
        return CommitCertificate(block.height, block.header.round,
                                 block.hash, (vote,))

    @defer.inlineCallbacks
    def produce(self) -> Any:
        """
        Build, vote on and connect the next block.  Fires with the block,
        or C{None} when the vote did not reach quorum alone.
        """
        block = self.build_block()
        cert = self.vote(block)
        try:
            self.chain.check_commit(cert, block)
        except BlockInvalid:
            log.info("block {height} needs votes from other masternodes",
                     height=block.height)
            return None
        yield self.chain.connect_block(block, cert)
        self.counters["produced"] += 1
        log.info("committed block {height} {hash} with {n} txs",
                 height=block.height, hash=block.hash.hex(),
                 n=len(block.txs) - 1)
        for callback in list(self.block_committed):
            callback(block)
        return block
