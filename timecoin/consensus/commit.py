"""
The commit of a decided block (L{Committer}): its commit certificate from
the precommits of its quorum, the chain's connect (store first, then
memory), and the signal of every block this node commits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from timecoin.block import Block, CommitCertificate, Vote
from timecoin.chain import Chain
from timecoin.consensus.messages import BlockVote
from timecoin.signal import Signal

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""


class Committer:
    """
    Commits blocks to the chain, one at a time.

    @ivar committed: emitted with every block this node commits.
    @ivar busy: a committed block is being connected.
    """

    def __init__(self, chain: Chain, count: Callable[[str], None]) -> None:
        self.chain = chain
        self.count = count
        self.committed: Signal[Block] = Signal("consensus.committed")
        self.busy = False

    def commit(self, block: Block, round: int,
               precommits: list[BlockVote]) -> None:
        """
        Connect C{block} with the certificate of C{precommits} (signed in
        C{round}); count and announce it once connected, log a failure.
        """
        votes = tuple(sorted(
            (Vote(v.voter, v.signature) for v in precommits),
            key=lambda v: v.voter))
        cert = CommitCertificate(block.height, round, block.hash, votes)
        self.busy = True
        d = self.chain.connect_block(block, cert)

        def done(_: object) -> None:
            self.busy = False
            self.count("committed")
            log.info("committed block {height} {hash} in round {round} "
                     "with {n} txs", height=block.height,
                     hash=block.hash.hex(), round=round,
                     n=len(block.txs) - 1)
            self.committed.emit(block)

        def failed(failure: Any) -> None:
            self.busy = False
            log.failure("could not connect committed block {height}",
                        failure, height=block.height)

        d.addCallbacks(done, failed)
