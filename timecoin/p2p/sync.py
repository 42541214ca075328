"""
Block announcements and catch-up.

Every peer's best height is learned from its C{hello}, from C{tip} replies
(asked every C{tip_interval} seconds) and from the blocks it announces.
When a peer is ahead, we ask it for the next range with C{get_blocks}
(at most C{sync_batch} blocks), connect every block in order through full
validation, and ask again until we are level.  One request is in flight at
a time; it times out after C{request_timeout}, and a peer that failed (time
out, empty or bad reply, invalid block) is skipped for C{sync_retry_after}
seconds so the next attempt goes to another peer.  No state outlives its
request: a timeout or a lost connection clears it.

A multi-peer sync state machine (parallel ranges from several peers) is a
later step; this one is simple and bounded.

Blocks are connected one at a time through a lock, whichever path they
came by (announcement or range), and a block at or below the tip is
skipped as known before validation.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid
from timecoin.p2p.messages import (
    MAX_BLOCKS_PER_REQUEST,
    MAX_LINE_BYTES,
    BlockMsg,
    Blocks,
    GetBlocks,
    GetTip,
    Tip,
    blocks_reply,
)
from timecoin.p2p.protocol import RequestFailed
from timecoin.p2p.settings import P2PSettings

if TYPE_CHECKING:
    from timecoin.node import Node
    from timecoin.p2p.gossip import Gossip
    from timecoin.p2p.manager import PeerManager
    from timecoin.p2p.protocol import PeerProtocol

log = Logger()

BENIGN_BLOCK_REASONS = frozenset({
    "bad-height", "bad-prev-hash", "time-too-new", "time-too-old",
})
"""Block refusals an honest peer can cause (a race, another fork, clock
skew); every other reason scores the sender as an invalid block."""


class BlockSync:
    """
    Follows the peers' heights and fetches missing blocks.

    @ivar heights: the best height each peer (by key) told us.
    @ivar active: the connection our range request is waiting on.
    """

    def __init__(self, node: Node, manager: PeerManager, gossip: Gossip,
                 clock: IReactorTime, settings: P2PSettings) -> None:
        self.node = node
        self.manager = manager
        self.gossip = gossip
        self.clock = clock
        self.settings = settings
        self.heights: dict[str, int] = {}
        self.failed_until: dict[str, float] = {}
        self.active: PeerProtocol | None = None
        self.lock = defer.DeferredLock()
        self.counters: Counter[str] = Counter()
        self._next: Any = None

    # Heights -------------------------------------------------------------

    def peer_tip(self, conn: PeerProtocol, height: int) -> None:
        """
        C{conn} has blocks up to C{height}; catch up if that is above ours.
        """
        key = conn.peer_key
        if height > self.heights.get(key, -1):
            self.heights[key] = height
        if height > self.node.chain.height:
            self.catch_up()

    def peer_gone(self, conn: PeerProtocol) -> None:
        """
        C{conn} disconnected: forget its height.
        """
        self.heights.pop(conn.peer_key, None)

    def poll(self) -> None:
        """
        Ask every ready peer for its tip (runs every C{tip_interval}).
        """
        for conn in list(self.manager.ready.values()):
            d = conn.request(GetTip())
            d.addCallbacks(self._got_tip, self._tip_failed,
                           callbackArgs=(conn,))

    def _got_tip(self, msg: Tip, conn: PeerProtocol) -> None:
        self.heights[conn.peer_key] = msg.height
        if msg.height > self.node.chain.height:
            self.catch_up()

    def _tip_failed(self, failure: Failure) -> None:
        failure.trap(RequestFailed)
        self.counters["tip-failed"] += 1

    # Announcements -------------------------------------------------------

    def block_announced(self, conn: PeerProtocol, msg: BlockMsg) -> None:
        """
        A peer announced a committed block: connect it if it extends our
        tip (then relay it), fetch the gap if it is further ahead.
        """
        block, commit = msg.block, msg.commit
        self.peer_tip_only(conn, block.height)
        if block.hash in self.gossip.seen_blocks:
            self.counters["block-duplicate"] += 1
            return
        height = self.node.chain.height
        if block.height <= height:
            self.counters["block-known"] += 1
            return
        if block.height > height + 1:
            self.counters["block-ahead"] += 1
            self.catch_up()
            return
        d = self.connect(block, commit)
        d.addCallbacks(self._announced_connected, self._block_refused,
                       callbackArgs=(block, commit, conn),
                       errbackArgs=(conn,))
        d.addErrback(self._connect_failed)

    def peer_tip_only(self, conn: PeerProtocol, height: int) -> None:
        """
        Record C{height} for C{conn} without starting a catch-up.
        """
        if height > self.heights.get(conn.peer_key, -1):
            self.heights[conn.peer_key] = height

    def _announced_connected(self, connected: bool, block: Block,
                             commit: CommitCertificate,
                             conn: PeerProtocol) -> None:
        if connected:
            self.counters["block-connected"] += 1
            self.gossip.relay_block(block, commit, exclude=conn)
        self.catch_up()

    def _connect_failed(self, failure: Failure) -> None:
        self.counters["errors"] += 1
        log.failure("connecting an announced block failed", failure)

    def _block_refused(self, failure: Failure, conn: PeerProtocol) -> None:
        failure.trap(BlockInvalid)
        reason = failure.value.reason
        self.counters[f"block-refused:{reason}"] += 1
        if reason not in BENIGN_BLOCK_REASONS:
            conn.misbehaved("invalid-block", reason)

    def connect(self, block: Block,
                commit: CommitCertificate) -> defer.Deferred[bool]:
        """
        Connect C{block} with its certificate, one block at a time; fires
        C{False} if it is no longer above our tip, C{True} once connected;
        fails with L{BlockInvalid}.
        """
        return self.lock.run(self._connect, block, commit)

    @defer.inlineCallbacks
    def _connect(self, block: Block, commit: CommitCertificate) -> Any:
        if block.height <= self.node.chain.height:
            return False
        yield self.node.chain.connect_block(block, commit)
        return True

    # Catch-up ------------------------------------------------------------

    def catch_up(self) -> None:
        """
        If a peer is ahead and no range request is in flight, ask the
        highest one (not recently failed) for the next batch.
        """
        if self.active is not None or not self.manager.running:
            return
        ours = self.node.chain.height
        now = self.clock.seconds()
        for key in [k for k, t in self.failed_until.items() if t <= now]:
            del self.failed_until[key]
        candidates = sorted(
            (-height, key) for key, height in self.heights.items()
            if height > ours and key in self.manager.ready
            and self.failed_until.get(key, 0.0) <= now)
        if not candidates:
            return
        best, key = candidates[0]
        conn = self.manager.ready[key]
        start = ours + 1
        count = min(self.settings.sync_batch, MAX_BLOCKS_PER_REQUEST,
                    -best - ours)
        self.active = conn
        self.counters["requests"] += 1
        log.debug("asking {peer} for blocks {start}..{end}", peer=conn.peer,
                  start=start, end=start + count - 1)
        d = conn.request(GetBlocks(start, count))
        d.addCallback(self._got_blocks, conn, start, count)
        d.addErrback(self._sync_failed, conn)
        d.addBoth(self._sync_done)

    @defer.inlineCallbacks
    def _got_blocks(self, msg: Blocks, conn: PeerProtocol, start: int,
                    count: int) -> Any:
        key = conn.peer_key
        if not msg.blocks:
            self.counters["sync-empty"] += 1
            self.heights[key] = self.node.chain.height
            self._penalize(key)
            return
        heights = [b.height for b, _ in msg.blocks]
        if len(heights) > count or heights != list(
                range(start, start + len(heights))):
            conn.misbehaved("bad-response", f"blocks {heights[:3]}... for "
                            f"{start}+{count}")
            self._penalize(key)
            return
        for block, commit in msg.blocks:
            try:
                yield self.connect(block, commit)
            except BlockInvalid as e:
                self.counters[f"block-refused:{e.reason}"] += 1
                if e.reason not in BENIGN_BLOCK_REASONS:
                    conn.misbehaved("invalid-block", e.reason)
                self._penalize(key)
                return
            self.counters["sync-blocks"] += 1
        log.info("synced to height {height} from {peer}",
                 height=self.node.chain.height, peer=conn.peer)

    def _sync_failed(self, failure: Failure, conn: PeerProtocol) -> None:
        failure.trap(RequestFailed)
        self.counters[f"sync-{failure.value.reason}"] += 1
        self._penalize(conn.peer_key)

    def _penalize(self, key: str) -> None:
        self.failed_until[key] = self.clock.seconds() + \
            self.settings.sync_retry_after

    def _sync_done(self, result: Any) -> None:
        self.active = None
        if isinstance(result, Failure):
            log.failure("block sync failed", result)
        if self.manager.running and (
                self._next is None or not self._next.active()):
            self._next = self.clock.callLater(0, self.catch_up)

    # Serving -------------------------------------------------------------

    @defer.inlineCallbacks
    def serve_blocks(self, conn: PeerProtocol, msg: GetBlocks) -> Any:
        """
        Answer C{get_blocks}: consecutive main-chain blocks with their
        certificates, within the reply size cap.
        """
        entries: list[tuple[Block, CommitCertificate]] = []
        try:
            end = min(self.node.chain.height, msg.start + msg.count - 1)
            size = 0
            for height in range(msg.start, end + 1):
                found = yield self.node.committed_block(height)
                if found is None or found[1] is None:
                    break
                entries.append(found)
                size += found[0].size
                if size >= MAX_LINE_BYTES:
                    break
        except Exception:
            log.failure("reading blocks for {peer} failed", peer=conn.peer)
        self.counters["served-requests"] += 1
        conn.send(blocks_reply(msg.id, entries))
