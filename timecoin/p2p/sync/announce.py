"""
What peers tell block sync of their chains: C{tip} polls and C{block}
announcements (L{Announcements}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid
from timecoin.p2p.dependencies import Connection, PeerSet, RequestFailed
from timecoin.p2p.messages import BlockMsg, GetBlocks, GetTip, MessageError, Tip
from timecoin.p2p.sync.conflicts import ChainGuard
from timecoin.p2p.sync.connect import BlockConnector
from timecoin.p2p.sync.downloader import Downloader
from timecoin.p2p.sync.peers import SyncPeers
from timecoin.p2p.sync.report import SyncReport
from timecoin.p2p.sync.state import SyncState

if TYPE_CHECKING:
    from timecoin.chain import Chain
    from timecoin.p2p.gossip import Gossip

log = Logger()


class Announcements:
    """
    Asks every ready peer for its tip, and takes the blocks peers
    announce: connects one that extends our tip (and relays it), fetches
    the gap to one further ahead, and checks one at a height we hold
    against ours.
    """

    def __init__(self, chain: Chain, peerset: PeerSet, gossip: Gossip,
                 peers: SyncPeers, connector: BlockConnector,
                 guard: ChainGuard, downloader: Downloader,
                 machine: SyncState, report: SyncReport) -> None:
        self.chain = chain
        self.peerset = peerset
        self.gossip = gossip
        self.peers = peers
        self.connector = connector
        self.guard = guard
        self.downloader = downloader
        self.machine = machine
        self.report = report
        self.counters = report.counters

    # Tips ----------------------------------------------------------------

    def poll(self) -> None:
        """
        Ask every ready peer for its tip (runs every C{tip_interval}).
        """
        for conn in list(self.peerset.ready.values()):
            d = conn.request(GetTip())
            d.addCallbacks(self._got_tip, self._tip_failed,
                           callbackArgs=(conn,))
            d.addErrback(self.report.internal_error)
        self.machine.evaluate()

    def _got_tip(self, msg: Tip, conn: Connection) -> None:
        self.peers.heard(conn, msg.height)
        if msg.height <= self.chain.height:
            d = self._compare_tip(conn, msg.height, msg.hash)
            d.addErrback(self.report.internal_error)
        self.downloader.pump()
        self.machine.evaluate()

    def _tip_failed(self, failure: Failure) -> None:
        failure.trap(RequestFailed)
        self.counters["tip-failed"] += 1

    @defer.inlineCallbacks
    def _compare_tip(self, conn: Connection, height: int,
                     their_hash: bytes) -> Any:
        """
        A peer's tip is at or below ours: its hash must be ours at that
        height.  If not, ask it for the block to see whether it holds a
        conflicting committed chain.
        """
        ours = yield self.connector.our_hash(height)
        if ours is None or ours == their_hash:
            return
        self.counters["tip-mismatch"] += 1
        if height == 0:
            conn.misbehaved("bad-response", "tip at height 0 is not genesis")
            return
        try:
            reply = yield conn.request(GetBlocks(height, 1))
        except RequestFailed:
            return
        if not reply.blocks or reply.blocks[0][0].height != height:
            conn.misbehaved("bad-response", f"did not serve its tip {height}")
            return
        block, commit = reply.blocks[0]
        if block.hash == ours:
            conn.misbehaved("bad-response", "tip hash is not its block")
            return
        yield self.guard.conflict(conn, height, block.hash, commit, block)

    # Announcements -------------------------------------------------------

    def block_announced(self, conn: Connection, msg: BlockMsg) -> None:
        """
        A peer announced a committed block: connect it if it extends our
        tip (then relay it), fetch the gap if it is further ahead, check
        it against ours if we hold its height.  A block we hold (or saw)
        is recognised by its header's hash before its transactions and
        certificate are parsed (L{BlockMsg.unpack}); a rest that does not
        parse costs C{bad-message}.
        """
        header = msg.header
        block_hash = header.hash
        if block_hash in self.gossip.seen_blocks:
            self.peers.heard(conn, header.height)
            self.counters["block-duplicate"] += 1
            return
        chain = self.chain
        height = chain.height
        if header.height <= height:
            self.peers.heard(conn, header.height)
            if block_hash == chain.tip.hash:
                self.counters["block-known"] += 1
                return
            d = self._check_known(conn, msg)
            d.addErrback(self.report.internal_error)
            return
        unpacked = self._unpack(conn, msg)
        if unpacked is None:
            return
        block, commit = unpacked
        peer = self.peers.heard(conn, block.height)
        if block.height > height + 1:
            self.counters["block-ahead"] += 1
            self.peers.shown(peer, block, commit)
            self.downloader.pump()
            self.machine.evaluate()
            return
        d = self.connector.connect(block, commit)
        d.addCallbacks(self._announced_connected, self._announced_refused,
                       callbackArgs=(block, commit, conn),
                       errbackArgs=(block, commit, conn))
        d.addErrback(self._connect_failed)

    def _unpack(self, conn: Connection,
                msg: BlockMsg) -> tuple[Block, CommitCertificate] | None:
        """
        The announced block and certificate, or C{None} (the sender
        scored) if they do not parse.
        """
        try:
            return msg.unpack()
        except MessageError as e:
            self.counters["block-bad-message"] += 1
            conn.misbehaved(e.reason, e.detail)
            return None

    @defer.inlineCallbacks
    def _check_known(self, conn: Connection, msg: BlockMsg) -> Any:
        header = msg.header
        ours = yield self.connector.our_hash(header.height)
        if ours == header.hash or ours is None:
            self.counters["block-known"] += 1
            return
        unpacked = self._unpack(conn, msg)
        if unpacked is None:
            return
        block, commit = unpacked
        replaced = yield self.guard.conflict(conn, block.height, block.hash,
                                             commit, block)
        if replaced:
            self.gossip.relay_block(block, commit, exclude=conn)

    def _announced_connected(self, connected: bool, block: Block,
                             commit: CommitCertificate,
                             conn: Connection) -> None:
        if connected:
            self.counters["block-connected"] += 1
            self.gossip.relay_block(block, commit, exclude=conn)
        self.downloader.pump()

    def _announced_refused(self, failure: Failure, block: Block,
                           commit: CommitCertificate,
                           conn: Connection) -> Any:
        failure.trap(BlockInvalid)
        error = failure.value
        assert isinstance(error, BlockInvalid)
        return self.guard.refused(conn, block, commit, error)

    def _connect_failed(self, failure: Failure) -> None:
        self.counters["errors"] += 1
        log.failure("connecting an announced block failed", failure)
