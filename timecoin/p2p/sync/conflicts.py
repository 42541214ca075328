"""
What block sync does with a peer's block the chain refused, and with a
peer whose chain differs from ours at a height we hold (L{ChainGuard}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin import params
from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid, TxInvalid
from timecoin.p2p.dependencies import Connection
from timecoin.p2p.sync.connect import BlockConnector
from timecoin.p2p.sync.downloader import Downloader
from timecoin.p2p.sync.peers import SyncPeers
from timecoin.p2p.sync.proof import certifies
from timecoin.p2p.sync.report import SyncReport

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

CLOCK_PAUSE = 5.0
"""Seconds downloads pause after a block was refused as too far in the
future (our clock is behind: nobody's fault)."""

BENIGN_BLOCK_REASONS = frozenset({"bad-height", "time-too-new"})
"""Block refusals an honest peer can cause (a race with another path, our
clock behind theirs).  Every other refusal of a committed block scores its
sender: C{bad-prev-hash} means a chain that conflicts with ours and is
handled as such."""


class ChainGuard:
    """
    Scores the senders of refused blocks, refuses a conflicting committed
    chain (committed blocks are final: we keep ours and ban the peer), and
    replaces our tip only when it was connected without a certificate of
    its own (the one reorganization, depth 1).
    """

    def __init__(self, node: Node, connector: BlockConnector,
                 peers: SyncPeers, downloader: Downloader,
                 clock: IReactorTime, report: SyncReport) -> None:
        self.node = node
        self.connector = connector
        self.peers = peers
        self.downloader = downloader
        self.clock = clock
        self.report = report
        self.counters = report.counters

    @defer.inlineCallbacks
    def refused(self, conn: Connection | None, block: Block,
                commit: CommitCertificate, error: BlockInvalid) -> Any:
        """
        C{conn} sent C{block}, which we refused with C{error}: score it,
        unless an honest peer could have caused it; a parent that differs
        from our tip is a conflicting chain.
        """
        reason = error.reason
        self.counters[f"block-refused:{reason}"] += 1
        if conn is None:
            return
        if reason == "bad-prev-hash" and \
                block.height == self.node.chain.height + 1:
            yield self.conflict(conn, block.height - 1,
                                block.header.prev_hash, block.commit, None)
        elif reason == "time-too-new":
            self.downloader.pause(CLOCK_PAUSE)
            self.report.warn(conn.peer, "clock",
                             "block {height} from {peer} is stamped too far "
                             "in the future: is this node's clock behind?",
                             height=block.height, peer=conn.peer)
        elif reason not in BENIGN_BLOCK_REASONS:
            conn.misbehaved("invalid-block",
                            f"{reason} at height {block.height}")
            self._distrust(conn)

    def _distrust(self, conn: Connection) -> None:
        """
        C{conn} sent a bad block: skip it, and ask other peers for
        whatever else it sent that waits in the window.
        """
        self.peers.penalize(conn.peer_key)
        self.downloader.window.distrust(conn)

    @defer.inlineCallbacks
    def conflict(self, conn: Connection, height: int, their_hash: bytes,
                 cert: CommitCertificate | None,
                 block: Block | None) -> Any:
        """
        C{conn} holds C{their_hash} at C{height}, where we may hold
        another block.  Fires whether our chain was changed (only when our
        tip there had no certificate of its own).
        """
        ours = yield self.connector.our_hash(height)
        if ours is None or ours == their_hash:
            return False
        chain = self.node.chain
        if not certifies(chain, cert, height, their_hash):
            self.counters["conflict-unproven"] += 1
            conn.misbehaved("invalid-block", f"block {their_hash.hex()} at "
                            f"height {height} differs from ours without a "
                            "valid certificate")
            self._distrust(conn)
            return False
        if height == chain.height and height > 0 and chain.tip_commit is None:
            replaced = yield self._replace_uncommitted_tip(
                conn, height, their_hash, cert, block)
            return replaced
        self.counters["conflicting-block"] += 1
        log.critical(
            "peer {peer} proves a committed block {theirs} at height "
            "{height} where our committed block is {ours}: two certificates "
            "for one height need a forged or equivocating third of the "
            "masternode weight; keeping ours, banning the peer",
            peer=conn.peer, height=height, theirs=their_hash.hex(),
            ours=ours.hex())
        conn.misbehaved("conflicting-block",
                        f"height {height}: {their_hash.hex()} against our "
                        f"{ours.hex()}")
        self._distrust(conn)
        return False

    @defer.inlineCallbacks
    def _replace_uncommitted_tip(self, conn: Connection, height: int,
                                 their_hash: bytes,
                                 cert: CommitCertificate | None,
                                 block: Block | None) -> Any:
        """
        Our tip at C{height} was connected without its own certificate and
        the network committed another block there: revert ours (depth 1,
        with its undo data) and take theirs.  The reverted block's
        transactions go back to the mempool.
        """
        chain = self.node.chain

        @defer.inlineCallbacks
        def revert() -> Any:
            if chain.height != height or chain.tip_commit is not None:
                return None
            depth = chain.height - height + 1
            if depth > params.MAX_REORG_DEPTH:
                log.critical("refusing a reorganization of {depth} blocks",
                             depth=depth)
                return None
            if depth > params.ALERT_REORG_DEPTH:
                log.critical("reorganizing {depth} blocks", depth=depth)
            reverted = yield chain.disconnect_tip()
            if block is not None:
                try:
                    yield chain.connect_block(block, cert)
                except BlockInvalid as e:
                    conn.misbehaved("invalid-block", e.reason)
            return reverted

        reverted = yield self.connector.lock.run(revert)
        if reverted is None:
            return False
        self.counters["reorgs"] += 1
        log.warn("replaced our uncommitted tip {ours} at height {height} "
                 "with the committed block {theirs} from {peer}",
                 ours=reverted.hash.hex(), height=height,
                 theirs=their_hash.hex(), peer=conn.peer)
        self.downloader.reset("reorg")
        for tx in reverted.txs[1:]:
            d = self.node.finality.submit(tx)
            d.addErrback(lambda f: f.trap(TxInvalid))
            d.addErrback(self.report.internal_error)
        self.downloader.pump()
        return chain.tip.hash == their_hash
