"""
Connecting peers' blocks to our chain one at a time (L{BlockConnector}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from timecoin.block import Block, CommitCertificate

if TYPE_CHECKING:
    from timecoin.node import Node


class BlockConnector:
    """
    Connects downloaded and announced blocks through one lock, so that
    they (and a reorganization) never interleave, and reads our hash at a
    height.

    @ivar lock: held while a block is connected or our tip replaced.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.lock = defer.DeferredLock()

    def connect(self, block: Block,
                commit: CommitCertificate) -> defer.Deferred[bool]:
        """
        Connect C{block} with its certificate, one block at a time; fires
        C{False} if it is no longer above our tip, C{True} once connected;
        fails with L{timecoin.chain.BlockInvalid}.
        """
        return self.lock.run(self._connect, block, commit)

    @defer.inlineCallbacks
    def _connect(self, block: Block, commit: CommitCertificate) -> Any:
        if block.height <= self.node.chain.height:
            return False
        yield self.node.chain.connect_block(block, commit)
        return True

    @defer.inlineCallbacks
    def our_hash(self, height: int) -> Any:
        """
        The hash of our main-chain block at C{height}, or C{None}.
        """
        chain = self.node.chain
        if height == chain.height:
            return chain.tip.hash
        if height > chain.height or height < 0:
            return None
        found = yield self.node.store.get_block_hash(height)
        return found
