"""
Block sync: the state machine that brings this node to the network's
height and keeps it there.

States (L{BlockSync.state}), recomputed from facts on every event, every
tick (1 s) and every read, so no flag can stay set:

- C{idle}: no peer we can sync from has told us its height recently
  (none connected, all failed, or none heard from within
  C{sync_synced_ttl}).
- C{catching-up}: a usable peer I{showed} a block more than C{sync_lag}
  above our tip (with a commit certificate that verifies: proof), or a
  usable peer claims more while we have no evidence of being current (see
  L{BlockSync._judge}).  If no block is connected for
  C{sync_stall_timeout} seconds the download is reset, the peers ahead are
  skipped for C{sync_retry_after}, and the state falls back to idle or
  synced.
- C{synced}: a usable peer told us its height within C{sync_synced_ttl}
  and neither proof nor a counting claim says we are behind.

A claimed height is a hint for the downloader, never proof: a peer that
does not deliver what it claims is charged C{sync-undelivered}, its claims
stop counting, and its skip doubles per miss, so no peer (nor a few, with
fresh identities) can keep a node out of consensus by lying about height.

Heights come from C{hello}, C{tip} replies (every C{tip_interval}) and
block announcements.  When a peer is ahead, the missing range is cut into
batches of at most C{sync_batch} (≤ 100) blocks, requested with
C{get_blocks} from several peers in parallel: at most C{sync_window}
requests in flight, at most C{sync_peer_requests} per peer, paced below
the peer's C{get_blocks} rate limit, and never beyond C{sync_window ×
sync_batch} blocks past our tip (the download window: out-of-order replies
wait in memory only within it, and no new request starts while
C{sync_buffer_bytes} are buffered).  Blocks are validated and connected
strictly in height order, each with its commit certificate
(L{timecoin.chain.Chain.connect_block}).

A request not answered within C{sync_request_timeout} marks its peer slow:
every batch it holds is asked of another peer at once and the peer is not
asked again for C{sync_retry_after} (no score: slow is not malicious).  A
reply with the wrong heights is C{bad-response}; an invalid block or
certificate is C{invalid-block} (a ban); in both cases the rest of the
range is fetched elsewhere.  An empty reply lowers what we believe that
peer has.

Committed blocks are final (a block is only connected with a certificate
of 2/3 of the masternode weight), so a peer whose chain differs from ours
at a height we hold is never followed: when it proves its block with a
valid certificate we log a critical error with both hashes (more than a
third of the weight signed two blocks) and ban it (C{conflicting-block});
we keep ours.  The one reorganization the chain allows is replacing a tip
connected *without* its own certificate by a committed block at that
height (depth 1, see C{docs/sync.md}).

L{BlockSync.is_synced} is what block consensus and transaction voting
consult: a node takes part only once synced, or when its own weight alone
is a quorum (a one-masternode devnet) and no peer is ahead.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin import params
from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid, TxInvalid
from timecoin.p2p.dependencies import (
    Connection,
    Handler,
    PeerSet,
    RequestFailed,
)
from timecoin.p2p.messages import (
    MAX_BLOCKS_PER_REQUEST,
    MAX_LINE_BYTES,
    BlockMsg,
    Blocks,
    GetBlocks,
    GetTip,
    MessageError,
    Tip,
    blocks_reply,
)
from timecoin.p2p.ratelimit import TokenBucket
from timecoin.p2p.settings import P2PSettings

if TYPE_CHECKING:
    from timecoin.node import Node
    from timecoin.p2p.gossip import Gossip

log = Logger()

IDLE = "idle"
CATCHING_UP = "catching-up"
SYNCED = "synced"
STATES = (IDLE, CATCHING_UP, SYNCED)

SYNC_TICK = 1.0
"""Seconds between state evaluations, retries and rate samples."""
RATE_WINDOW = 10.0
"""Seconds over which C{blocks_per_s} is measured."""
CLOCK_PAUSE = 5.0
"""Seconds downloads pause after a block was refused as too far in the
future (our clock is behind: nobody's fault)."""
LOG_REPEAT_SECONDS = 60.0
"""A repeated warning (same kind, same peer) is logged at most this often."""

BENIGN_BLOCK_REASONS = frozenset({"bad-height", "time-too-new"})
"""Block refusals an honest peer can cause (a race with another path, our
clock behind theirs).  Every other refusal of a committed block scores its
sender: C{bad-prev-hash} means a chain that conflicts with ours and is
handled as such."""


@dataclass
class PeerSync:
    """
    What sync knows of one peer.

    @ivar height: the best height it claimed (lowered when it cannot
        serve a range it claimed): a hint of where to download from, never
        proof that we are behind.
    @ivar shown: the highest block it proved: delivered or announced with
        a commit certificate that verifies against the masternode
        snapshot (a liar cannot forge one).
    @ivar undelivered: requests in a row it let time out, or answered
        empty below its claim; while non-zero its claims count neither
        toward the sync state nor the best height, and each miss doubles
        its skip period.  Reset when it delivers blocks.
    @ivar unproven_until: a certificate it sent did not verify; no other
        is checked before this time.
    @ivar seen_at: when it last told us its height (or answered a range).
    @ivar failed_until: it is not asked for blocks before this time.
    @ivar in_flight: our C{get_blocks} requests it has not answered yet.
    @ivar bucket: paces our requests below its C{get_blocks} rate limit.
    """

    key: str
    height: int = -1
    shown: int = -1
    undelivered: int = 0
    unproven_until: float = 0.0
    seen_at: float = float("-inf")
    failed_until: float = 0.0
    in_flight: int = 0
    bucket: TokenBucket | None = None
    requests: int = 0
    blocks: int = 0
    slow: int = 0


@dataclass(eq=False)
class Batch:
    """
    A range of heights to download.

    @ivar requests: peer key → whether that request was given up on (slow,
        or superseded once another reply filled the batch).
    @ivar timers: peer key → the C{sync_request_timeout} call of that
        request.
    @ivar tried: peers asked for it so far (others are preferred).
    @ivar entries: the blocks received, waiting to be connected.
    @ivar source: the connection that sent C{entries}.
    """

    start: int
    count: int
    requests: dict[str, bool] = field(default_factory=dict)
    timers: dict[str, IDelayedCall] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)
    entries: list[tuple[Block, CommitCertificate]] | None = None
    source: Connection | None = None
    size: int = 0

    @property
    def end(self) -> int:
        """
        The last height of the batch.
        """
        return self.start + self.count - 1

    @property
    def active(self) -> int:
        """
        Requests for it still counted in flight.
        """
        return sum(1 for given_up in self.requests.values() if not given_up)

    @property
    def waiting(self) -> bool:
        """
        Whether it needs a (new) request: nothing received, nothing
        active.
        """
        return self.entries is None and not self.active


def entry_size(block: Block, commit: CommitCertificate) -> int:
    """
    About the bytes one C{{block, commit}} entry takes on the wire.
    """
    return block.size + 137 + 220 * len(commit.votes)


class BlockSync:
    """
    Follows the peers' heights, downloads and connects missing blocks, and
    says whether this node has caught up.

    @ivar peers: sync's view of each ready peer, by peer key.
    @ivar batches: ranges being downloaded or waiting to be connected, by
        first height.
    @ivar counters: every event counted by reason code.
    """

    STATES = STATES

    def __init__(self, node: Node, peerset: PeerSet, gossip: Gossip,
                 clock: IReactorTime, settings: P2PSettings) -> None:
        self.node = node
        self.peerset = peerset
        self.gossip = gossip
        self.clock = clock
        self.settings = settings
        self.batch_size = max(1, min(settings.sync_batch,
                                     MAX_BLOCKS_PER_REQUEST))
        rate, burst = settings.rate_limits.get("get_blocks", (2.0, 10.0))
        self._pace = (rate * 0.9, max(1.0, burst - 2))
        self.peers: dict[str, PeerSync] = {}
        self.batches: dict[int, Batch] = {}
        self.next_height = 0
        self.generation = 0
        self.buffered_bytes = 0
        self.max_buffered = 0
        """The most blocks ever waiting to be connected at once."""
        self.lock = defer.DeferredLock()
        self.counters: Counter[str] = Counter()
        now = clock.seconds()
        self._state = IDLE
        self._state_since = now
        self._progress_at = now
        self._started_at = now
        self._catchup_from = (now, 0)
        self._pause_until = 0.0
        self._last_progress_log = float("-inf")
        self._logged: dict[tuple[str, str], float] = {}
        self._rates: deque[tuple[float, int]] = deque()
        self._pumping = False
        self._pump_again = False
        self._draining = False
        self._wakeup: IDelayedCall | None = None
        self._tick: task.LoopingCall | None = None
        self._hooked = False
        self._was_synced = False

    # Lifecycle -----------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages sync handles, by type.
        """
        return {"get_blocks": self.serve_blocks,
                "block": self.block_announced}

    def start(self) -> None:
        """
        Start the state machine's tick and make block consensus and
        transaction voting wait until this node is synced.
        """
        self._started_at = self.clock.seconds()
        node = self.node
        node.consensus.synced = self.is_synced
        node.finality.synced = self.is_synced
        node.chain.block_connected.append(self._block_connected)
        self._hooked = True
        self._tick = task.LoopingCall(self.tick)
        self._tick.clock = self.clock
        self._tick.start(SYNC_TICK, now=False)

    def stop(self) -> None:
        """
        Stop the tick, forget every download, and unhook from the node.
        """
        if self._tick is not None and self._tick.running:
            self._tick.stop()
        self._tick = None
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self._reset_download("stopped")
        if self._hooked:
            node = self.node
            node.consensus.synced = _always
            node.finality.synced = _always
            if self._block_connected in node.chain.block_connected:
                node.chain.block_connected.remove(self._block_connected)
            self._hooked = False

    def tick(self) -> None:
        """
        Re-evaluate the state, sample the rate, log progress, and retry
        downloads whose peers became available again.
        """
        now = self.clock.seconds()
        self._rates.append((now, self.counters["sync-blocks"]))
        while self._rates and self._rates[0][0] < now - RATE_WINDOW:
            self._rates.popleft()
        self._pump()
        state = self._evaluate()
        self._synced_edge()
        if state == CATCHING_UP and now - self._last_progress_log >= \
                self.settings.sync_log_interval:
            self._last_progress_log = now
            height, best = self.node.chain.height, self.best_height()
            log.info("catching up: height {height} of {best} ({percent}%), "
                     "{rate} blocks/s, {peers} peers, {in_flight} requests "
                     "in flight", height=height, best=best,
                     percent=round(100.0 * height / max(best, 1), 1),
                     rate=round(self.blocks_per_s(), 1),
                     peers=len(self._usable(now)),
                     in_flight=self.in_flight())

    def _synced_edge(self) -> None:
        """
        When this node becomes synced, tell block consensus, which may
        have sat its round out while behind (L{BlockConsensus.resume}).
        """
        synced = self.is_synced()
        if synced and not self._was_synced and self._hooked:
            log.info("synced at height {height}: taking part in consensus",
                     height=self.node.chain.height)
            self.node.consensus.resume()
        self._was_synced = synced

    # Heights -------------------------------------------------------------

    @property
    def heights(self) -> dict[str, int]:
        """
        The best height each peer (by key) told us.
        """
        return {key: p.height for key, p in self.peers.items()}

    def _peer(self, key: str) -> PeerSync:
        peer = self.peers.get(key)
        if peer is None:
            peer = self.peers[key] = PeerSync(key)
        return peer

    def _heard(self, conn: Connection, height: int) -> PeerSync:
        peer = self._peer(conn.peer_key)
        peer.height = max(peer.height, height)
        peer.seen_at = self.clock.seconds()
        return peer

    def peer_tip(self, conn: Connection, height: int) -> None:
        """
        C{conn} has blocks up to C{height} (its C{hello}): compare, and
        catch up if it is ahead.
        """
        self._heard(conn, height)
        self._pump()
        self._evaluate()

    def peer_tip_only(self, conn: Connection, height: int) -> None:
        """
        Record C{height} for C{conn} without starting a download.
        """
        self._heard(conn, height)

    def peer_gone(self, conn: Connection) -> None:
        """
        C{conn} disconnected: forget it (its requests fail on their own).
        """
        self.peers.pop(conn.peer_key, None)
        self._evaluate()

    def poll(self) -> None:
        """
        Ask every ready peer for its tip (runs every C{tip_interval}).
        """
        for conn in list(self.peerset.ready.values()):
            d = conn.request(GetTip())
            d.addCallbacks(self._got_tip, self._tip_failed,
                           callbackArgs=(conn,))
            d.addErrback(self._internal_error)
        self._evaluate()

    def _got_tip(self, msg: Tip, conn: Connection) -> None:
        self._heard(conn, msg.height)
        if msg.height <= self.node.chain.height:
            d = self._compare_tip(conn, msg.height, msg.hash)
            d.addErrback(self._internal_error)
        self._pump()
        self._evaluate()

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
        ours = yield self._our_hash(height)
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
        yield self._conflict(conn, height, block.hash, commit, block)

    # State ---------------------------------------------------------------

    def _usable(self, now: float) -> list[PeerSync]:
        """
        Peers we may download from now: connected, not failed lately.
        """
        ready = self.peerset.ready
        return [p for key, p in self.peers.items()
                if key in ready and p.failed_until <= now]

    def target_height(self) -> int:
        """
        The best height a usable peer claims (our own if none is ahead).
        """
        now = self.clock.seconds()
        return max([self.node.chain.height]
                   + [p.height for p in self._usable(now)])

    def best_height(self) -> int:
        """
        RPC C{headers}: the best height usable peers showed us, or ours;
        while catching up also the claims of peers not found out (a liar's
        claim never shows here once its request failed, nor while we are
        synced).
        """
        now = self.clock.seconds()
        usable = self._usable(now)
        best = max([self.node.chain.height] + [p.shown for p in usable])
        if self._state == CATCHING_UP:
            best = max([best] + [p.height for p in usable
                                 if not p.undelivered])
        return best

    def _evaluate(self) -> str:
        """
        Recompute the state from what the peers showed and claimed, the
        clock and our height (L{_judge}); reset a download that made no
        progress for C{sync_stall_timeout}.
        """
        now = self.clock.seconds()
        ours = self.node.chain.height
        settings = self.settings
        new = self._judge(now, ours)
        if new == CATCHING_UP and self._state == CATCHING_UP and \
                now - self._progress_at >= settings.sync_stall_timeout:
            self._stalled(now, ours)
            new = self._judge(now, ours)
            if new == CATCHING_UP:
                self._progress_at = now
        if new != self._state:
            self._transition(new, now)
        return new

    def _fresh(self, now: float) -> list[PeerSync]:
        """
        Usable peers whose height report is younger than
        C{sync_synced_ttl}.
        """
        ttl = self.settings.sync_synced_ttl
        return [p for p in self._usable(now) if now - p.seen_at <= ttl]

    def _judge(self, now: float, ours: int) -> str:
        """
        The state the facts give, trusting nothing a peer says about
        itself until shown:

        - no fresh usable peer: C{idle};
        - a peer showed a certified block more than C{sync_lag} above our
          tip: C{catching-up} (proof);
        - a peer merely claims more (its claim not found out yet): that
          counts only while we have no evidence of being current, i.e. we
          were not synced a moment ago and no fresh peer is at our height
          (within C{sync_lag}).  So a node that starts empty next to peers
          ahead believes them, while a node in consensus -- or one whose
          peers agree with its height -- keeps taking part however many
          peers claim more; the downloader still asks those claims (hints),
          and a delivered block turns them into proof;
        - otherwise C{synced}.
        """
        fresh = self._fresh(now)
        if not fresh:
            return IDLE
        lag = self.settings.sync_lag
        if max(p.shown for p in fresh) > ours + lag:
            return CATCHING_UP
        claims = [p for p in fresh
                  if not p.undelivered and p.height > ours + lag]
        if claims and not self._current(fresh, ours):
            return CATCHING_UP
        return SYNCED

    def _current(self, fresh: list[PeerSync], ours: int) -> bool:
        """
        Whether we have evidence of being at the network's height: we were
        synced at the last evaluation (or a quorum alone), or a fresh peer
        reports our height within C{sync_lag}.
        """
        if self._state == SYNCED or (self._state == IDLE
                                     and self._was_synced):
            return True
        lag = self.settings.sync_lag
        return any(ours - lag <= p.height <= ours + lag for p in fresh)

    def _transition(self, new: str, now: float) -> None:
        old, height = self._state, self.node.chain.height
        self._state = new
        self._state_since = now
        self.counters[f"state:{new}"] += 1
        if self._hooked:
            self.clock.callLater(0, self._synced_edge)
        if new == CATCHING_UP:
            self._progress_at = now
            self._catchup_from = (now, height)
            self._last_progress_log = now
        if old == CATCHING_UP and new == SYNCED:
            since, start = self._catchup_from
            seconds = max(now - since, 1e-9)
            log.info("caught up at height {height}: {blocks} blocks in "
                     "{seconds} s ({rate} blocks/s)", height=height,
                     blocks=height - start, seconds=round(now - since, 1),
                     rate=round((height - start) / seconds, 1))
        else:
            log.info("sync state {old} -> {new} at height {height} (best "
                     "known {best})", old=old, new=new, height=height,
                     best=self.best_height())

    def _stalled(self, now: float, ours: int) -> None:
        """
        Catching up made no progress for C{sync_stall_timeout}: skip the
        peers that claim to be ahead, drop the download, start over.
        """
        self.counters["sync-stalled"] += 1
        ahead = [p for p in self._usable(now) if p.height > ours]
        log.warn("block sync stalled at height {height} for {seconds} s; "
                 "skipping {n} peers ahead and starting over",
                 height=ours, seconds=self.settings.sync_stall_timeout,
                 n=len(ahead))
        for peer in ahead:
            peer.failed_until = now + self.settings.sync_retry_after
        self._reset_download("stalled")

    @property
    def state(self) -> str:
        """
        The current state: C{idle}, C{catching-up} or C{synced}.
        """
        return self._evaluate()

    def is_synced(self) -> bool:
        """
        Whether this node may take part in consensus and vote: synced;
        or idle while its own weight alone is a quorum (a one-masternode
        devnet), once the peers it knows had C{sync_start_grace} seconds
        to tell it their heights.
        """
        state = self.state
        if state == SYNCED:
            return True
        if state == CATCHING_UP:
            return False
        return self._alone()

    def _alone(self) -> bool:
        node = self.node
        chain = node.chain
        snapshot = chain.committee_for(chain.height + 1)
        mine = [m for m in snapshot if m.pubkey == node.key.public]
        if not mine or not chain.quorum.approved(
                chain.quorum.weight(mine[0]), chain.total_weight(snapshot)):
            return False
        if self.clock.seconds() - self._started_at < \
                self.settings.sync_start_grace and (
                    self.peerset.ready or len(self.peerset.table)):
            return False
        return True

    def in_flight(self) -> int:
        """
        C{get_blocks} requests in flight (not given up on).
        """
        return sum(b.active for b in self.batches.values())

    def blocks_per_s(self) -> float:
        """
        Blocks connected by sync per second over the last C{RATE_WINDOW}.
        """
        if len(self._rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rates[0], self._rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def info(self) -> dict[str, Any]:
        """
        The sync state for RPC and metrics.
        """
        now = self.clock.seconds()
        return {
            "state": self.state,
            "since": self._state_since,
            "height": self.node.chain.height,
            "headers": self.best_height(),
            "peers": len(self._usable(now)),
            "in_flight": self.in_flight(),
            "blocks_per_s": round(self.blocks_per_s(), 1),
            "buffered_blocks": sum(len(b.entries or ())
                                   for b in self.batches.values()),
            "buffered_bytes": self.buffered_bytes,
            "synced_blocks": self.counters["sync-blocks"],
            "conflicts": self.counters["conflicting-block"],
        }

    def _block_connected(self, block: Block) -> None:
        self._progress_at = self.clock.seconds()

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
            self._heard(conn, header.height)
            self.counters["block-duplicate"] += 1
            return
        chain = self.node.chain
        height = chain.height
        if header.height <= height:
            self._heard(conn, header.height)
            if block_hash == chain.tip.hash:
                self.counters["block-known"] += 1
                return
            d = self._check_known(conn, msg)
            d.addErrback(self._internal_error)
            return
        unpacked = self._unpack(conn, msg)
        if unpacked is None:
            return
        block, commit = unpacked
        peer = self._heard(conn, block.height)
        if block.height > height + 1:
            self.counters["block-ahead"] += 1
            self._shown(peer, block, commit)
            self._pump()
            self._evaluate()
            return
        d = self.connect(block, commit)
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
        ours = yield self._our_hash(header.height)
        if ours == header.hash or ours is None:
            self.counters["block-known"] += 1
            return
        unpacked = self._unpack(conn, msg)
        if unpacked is None:
            return
        block, commit = unpacked
        replaced = yield self._conflict(conn, block.height, block.hash,
                                        commit, block)
        if replaced:
            self.gossip.relay_block(block, commit, exclude=conn)

    def _announced_connected(self, connected: bool, block: Block,
                             commit: CommitCertificate,
                             conn: Connection) -> None:
        if connected:
            self.counters["block-connected"] += 1
            self.gossip.relay_block(block, commit, exclude=conn)
        self._pump()

    def _announced_refused(self, failure: Failure, block: Block,
                           commit: CommitCertificate,
                           conn: Connection) -> Any:
        failure.trap(BlockInvalid)
        return self._refused(conn, block, commit, failure.value)

    def _connect_failed(self, failure: Failure) -> None:
        self.counters["errors"] += 1
        log.failure("connecting an announced block failed", failure)

    def _internal_error(self, failure: Failure) -> None:
        self.counters["errors"] += 1
        log.failure("block sync failed", failure)

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

    # Refusals and conflicts ----------------------------------------------

    @defer.inlineCallbacks
    def _refused(self, conn: Connection | None, block: Block,
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
            yield self._conflict(conn, block.height - 1,
                                 block.header.prev_hash, block.commit, None)
        elif reason == "time-too-new":
            self._pause_until = self.clock.seconds() + CLOCK_PAUSE
            self._warn(conn.peer, "clock",
                       "block {height} from {peer} is stamped too far in the "
                       "future: is this node's clock behind?",
                       height=block.height, peer=conn.peer)
        elif reason not in BENIGN_BLOCK_REASONS:
            conn.misbehaved("invalid-block",
                            f"{reason} at height {block.height}")
            self._penalize(conn.peer_key)
            self._distrust(conn)

    def certifies(self, cert: CommitCertificate | None, height: int,
                  block_hash: bytes) -> bool:
        """
        Whether C{cert} commits C{block_hash} at C{height}: valid
        signatures of the snapshot's masternodes reaching the quorum.
        """
        if cert is None or cert.height != height or \
                cert.block_hash != block_hash:
            return False
        chain = self.node.chain
        snapshot = chain.committee_for(height)
        members = {m.pubkey: m for m in snapshot}
        weight = sum(chain.quorum.weight(members[v])
                     for v in cert.valid_votes(chain.network.name)
                     if v in members)
        return bool(chain.quorum.approved(weight,
                                          chain.total_weight(snapshot)))

    @defer.inlineCallbacks
    def _conflict(self, conn: Connection, height: int, their_hash: bytes,
                  cert: CommitCertificate | None,
                  block: Block | None) -> Any:
        """
        C{conn} holds C{their_hash} at C{height}, where we may hold
        another block.  Fires whether our chain was changed (only when our
        tip there had no certificate of its own).
        """
        ours = yield self._our_hash(height)
        if ours is None or ours == their_hash:
            return False
        if not self.certifies(cert, height, their_hash):
            self.counters["conflict-unproven"] += 1
            conn.misbehaved("invalid-block", f"block {their_hash.hex()} at "
                            f"height {height} differs from ours without a "
                            "valid certificate")
            self._penalize(conn.peer_key)
            self._distrust(conn)
            return False
        chain = self.node.chain
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
        self._penalize(conn.peer_key)
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

        reverted = yield self.lock.run(revert)
        if reverted is None:
            return False
        self.counters["reorgs"] += 1
        log.warn("replaced our uncommitted tip {ours} at height {height} "
                 "with the committed block {theirs} from {peer}",
                 ours=reverted.hash.hex(), height=height,
                 theirs=their_hash.hex(), peer=conn.peer)
        self._reset_download("reorg")
        for tx in reverted.txs[1:]:
            d = self.node.finality.submit(tx)
            d.addErrback(lambda f: f.trap(TxInvalid))
            d.addErrback(self._internal_error)
        self._pump()
        return chain.tip.hash == their_hash

    @defer.inlineCallbacks
    def _our_hash(self, height: int) -> Any:
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

    # Download ------------------------------------------------------------

    def catch_up(self) -> None:
        """
        Start (or continue) downloading if a usable peer is ahead.
        """
        self._pump()

    def _distrust(self, conn: Connection) -> None:
        """
        C{conn} sent a bad block: whatever else it sent that waits in the
        window is dropped and asked of other peers.
        """
        for batch in self.batches.values():
            if batch.source is conn and batch.entries is not None:
                self.buffered_bytes -= batch.size
                batch.entries, batch.source, batch.size = None, None, 0
                self.counters["sync-distrusted"] += 1

    def _shown(self, peer: PeerSync, block: Block,
               commit: CommitCertificate) -> None:
        """
        C{peer} sent C{block} with C{commit}: if the certificate verifies,
        the block's height is shown (proof, not a claim), and the peer is
        no longer counted as undelivering.
        """
        if block.height <= max(peer.shown, self.node.chain.height):
            # Nothing to prove above our tip: only a delivery.
            peer.undelivered = 0
            return
        now = self.clock.seconds()
        if now < peer.unproven_until:
            self.counters["sync-unproven-skipped"] += 1
            return
        if not self._may_certify(commit, block.height) or \
                not self.certifies(commit, block.height, block.hash):
            # Checked at most once per sync_unproven_cooldown per peer, so
            # forged certificates cannot make us verify signatures at the
            # announcement rate.
            self.counters["sync-unproven"] += 1
            peer.unproven_until = now + self.settings.sync_unproven_cooldown
            return
        peer.shown = block.height
        peer.undelivered = 0

    def _may_certify(self, cert: CommitCertificate, height: int) -> bool:
        """
        Cheap checks before any signature: the certificate's voters are
        distinct masternodes of the snapshot whose weight reaches the
        quorum.
        """
        chain = self.node.chain
        snapshot = chain.committee_for(height)
        members = {m.pubkey: m for m in snapshot}
        voters = [v.voter for v in cert.votes]
        if len(set(voters)) != len(voters) or \
                any(v not in members for v in voters):
            return False
        weight = sum(chain.quorum.weight(members[v]) for v in voters)
        return bool(chain.quorum.approved(weight,
                                          chain.total_weight(snapshot)))

    def _undelivered(self, conn: Connection, peer: PeerSync, start: int,
                     count: int, charge: bool = True) -> None:
        """
        C{peer} claimed blocks from C{start} and delivered none of them
        (its request timed out, or it answered empty): its claims stop
        counting toward the state and the best height, it is skipped for
        C{sync_retry_after} doubled per miss in a row (at most
        C{sync_retry_max}), and charged C{sync-undelivered}.
        """
        peer.undelivered += 1
        skip = min(self.settings.sync_retry_after
                   * 2 ** (peer.undelivered - 1),
                   self.settings.sync_retry_max)
        peer.failed_until = max(peer.failed_until,
                                self.clock.seconds() + skip)
        self.counters["sync-undelivered"] += 1
        points = self.settings.sync_undelivered_points if charge else 0
        if self.peerset.offence(conn, "sync-undelivered",
                                f"claimed height {peer.height}, delivered "
                                f"none of {start}..{start + count - 1}",
                                points):
            conn.close("banned", "sync-undelivered")

    def _penalize(self, key: str) -> None:
        peer = self.peers.get(key)
        if peer is not None:
            peer.failed_until = self.clock.seconds() + \
                self.settings.sync_retry_after

    def _reset_download(self, reason: str) -> None:
        """
        Forget every batch; replies to requests already sent are ignored.
        """
        if self.batches:
            self.counters[f"download-reset:{reason}"] += 1
        self.generation += 1
        for batch in self.batches.values():
            for timer in batch.timers.values():
                if timer.active():
                    timer.cancel()
            batch.timers.clear()
        self.batches.clear()
        self.buffered_bytes = 0
        self.next_height = self.node.chain.height + 1

    def _prune(self, ours: int) -> None:
        """
        Drop batches entirely at or below our tip (another path connected
        them).
        """
        for start in [s for s, b in self.batches.items() if b.end <= ours]:
            batch = self.batches.pop(start)
            self.buffered_bytes -= batch.size
            for timer in batch.timers.values():
                if timer.active():
                    timer.cancel()
            batch.timers.clear()
        self.next_height = max(self.next_height, ours + 1)

    def _drop_beyond(self, best: int) -> None:
        """
        No usable peer claims the heights of a waiting batch any more
        (claims were lowered, peers left): drop it and everything above
        it, so downloads resume from there once someone has them.
        """
        stale = [b.start for b in self.batches.values()
                 if b.waiting and b.start > best]
        if not stale:
            return
        first = min(stale)
        for start in [s for s in self.batches if s >= first]:
            batch = self.batches.pop(start)
            self.buffered_bytes -= batch.size
            for timer in batch.timers.values():
                if timer.active():
                    timer.cancel()
            batch.timers.clear()
        self.next_height = min(self.next_height, first)

    def _pump(self) -> None:
        """
        Send requests while the window has room: batches to retry first
        (lowest first), then new ranges up to the best usable height.
        """
        if self._pumping:
            self._pump_again = True
            return
        self._pumping = True
        try:
            self._pump_again = True
            while self._pump_again:
                self._pump_again = False
                self._pump_once()
        finally:
            self._pumping = False
        self._drain()

    def _pump_once(self) -> None:
        if not self.peerset.running:
            return
        settings = self.settings
        now = self.clock.seconds()
        ours = self.node.chain.height
        self._prune(ours)
        if now < self._pause_until:
            self._wake(self._pause_until - now)
            return
        window_end = ours + settings.sync_window * self.batch_size
        best = self.target_height()
        target = min(best, window_end)
        self._drop_beyond(best)
        blocked = False
        for batch in sorted(self.batches.values(), key=lambda b: b.start):
            if self.in_flight() >= settings.sync_window:
                break
            if batch.waiting and not self._request(batch):
                blocked = True
                break
        while not blocked and self.in_flight() < settings.sync_window \
                and self.buffered_bytes < settings.sync_buffer_bytes \
                and self.next_height <= target:
            start = self.next_height
            batch = Batch(start, min(self.batch_size, target - start + 1))
            self.batches[start] = batch
            self.next_height = batch.end + 1
            if not self._request(batch):
                blocked = True
        if blocked:
            self._wake(self._retry_delay(now))

    def _retry_delay(self, now: float) -> float:
        """
        When a blocked download might proceed: the next pacing token or
        the end of a peer's skip period (at most one tick away).
        """
        delays = [SYNC_TICK]
        rate, burst = self._pace
        for peer in self._usable(now):
            if peer.bucket is not None:
                tokens = min(burst, peer.bucket.tokens
                             + (now - peer.bucket.at) * rate)
                delays.append(max(0.0, (1.0 - tokens) / rate))
        for peer in self.peers.values():
            if peer.failed_until > now:
                delays.append(peer.failed_until - now)
        return max(0.01, min(delays))

    def _wake(self, delay: float) -> None:
        if self._wakeup is not None and self._wakeup.active():
            if self._wakeup.getTime() <= self.clock.seconds() + delay:
                return
            self._wakeup.cancel()
        self._wakeup = self.clock.callLater(delay, self._woken)

    def _woken(self) -> None:
        self._wakeup = None
        self._pump()

    def _request(self, batch: Batch) -> bool:
        """
        Ask the best available peer for C{batch} (cut to what it has);
        returns whether a request went out.
        """
        now = self.clock.seconds()
        ready = self.peerset.ready
        candidates = sorted(
            (p for p in self._usable(now)
             if p.height >= batch.start and p.key not in batch.requests
             and p.in_flight < self.settings.sync_peer_requests),
            key=lambda p: (p.key in batch.tried, p.in_flight,
                           -min(p.height, batch.end), p.slow, p.requests,
                           p.key))
        chosen = None
        for peer in candidates:
            if peer.bucket is None:
                peer.bucket = TokenBucket(self.clock, *self._pace)
            if peer.bucket.take():
                chosen = peer
                break
        if chosen is None:
            return False
        if chosen.height < batch.end:
            tail = Batch(chosen.height + 1, batch.end - chosen.height)
            tail.tried = set(batch.tried)
            batch.count = chosen.height - batch.start + 1
            self.batches[tail.start] = tail
        conn = ready[chosen.key]
        key, gen = chosen.key, self.generation
        start, count = batch.start, batch.count
        chosen.in_flight += 1
        chosen.requests += 1
        batch.requests[key] = False
        batch.tried.add(key)
        batch.timers[key] = self.clock.callLater(
            self.settings.sync_request_timeout, self._slow, batch, key, gen)
        self.counters["sync-requests"] += 1
        log.debug("asking {peer} for blocks {start}..{end}", peer=conn.peer,
                  start=start, end=start + count - 1)
        d = conn.request(GetBlocks(start, count))
        d.addCallbacks(self._got_blocks, self._blocks_failed,
                       callbackArgs=(conn, batch, gen, start, count),
                       errbackArgs=(conn, batch, gen))
        d.addErrback(self._internal_error)
        return True

    def _finish(self, key: str, batch: Batch) -> bool | None:
        """
        Bookkeeping of one request to C{key} for C{batch} that ended;
        returns whether it had been given up on (C{None}: unknown).
        """
        peer = self.peers.get(key)
        if peer is not None and peer.in_flight > 0:
            peer.in_flight -= 1
        timer = batch.timers.pop(key, None)
        if timer is not None and timer.active():
            timer.cancel()
        return batch.requests.pop(key, None)

    def _slow(self, batch: Batch, key: str, gen: int) -> None:
        batch.timers.pop(key, None)
        if gen != self.generation or batch.requests.get(key) is not False:
            return
        self._peer_slow(key, batch)

    def _peer_slow(self, key: str, batch: Batch) -> None:
        """
        C{key} did not answer in C{sync_request_timeout}: give up on every
        request it holds (they go to other peers now) and skip it for
        C{sync_retry_after}.  Slow is not malicious: no score.
        """
        self.counters["sync-slow"] += 1
        peer = self.peers.get(key)
        if peer is not None:
            peer.slow += 1
            peer.failed_until = self.clock.seconds() + \
                self.settings.sync_retry_after
            conn = self.peerset.ready.get(key)
            if conn is not None:
                # A peer that delivered before and went slow mid-range is
                # skipped (its claims stop counting) but not charged.
                self._undelivered(conn, peer, batch.start, batch.count,
                                  charge=peer.blocks == 0)
        self._warn(key, "slow", "{peer} did not send blocks {start}..{end} "
                   "within {timeout} s; asking other peers", peer=key,
                   start=batch.start, end=batch.end,
                   timeout=self.settings.sync_request_timeout)
        for other in self.batches.values():
            if other.requests.get(key) is False:
                other.requests[key] = True
                timer = other.timers.pop(key, None)
                if timer is not None and timer.active():
                    timer.cancel()
        self._pump()
        self._evaluate()

    def _got_blocks(self, msg: Blocks, conn: Connection, batch: Batch,
                    gen: int, start: int, count: int) -> None:
        key = conn.peer_key
        self._finish(key, batch)
        peer = self.peers.get(key)
        if peer is not None:
            peer.seen_at = self.clock.seconds()
        heights = [b.height for b, _ in msg.blocks]
        if len(heights) > count or heights != list(
                range(start, start + len(heights))):
            conn.misbehaved("bad-response", f"blocks {heights[:3]}... for "
                            f"{start}+{count}")
            self._penalize(key)
            self._pump()
            return
        if gen != self.generation or self.batches.get(batch.start) \
                is not batch or batch.entries is not None:
            self.counters["sync-late"] += 1
            self._pump()
            return
        if not msg.blocks:
            self.counters["sync-empty"] += 1
            if peer is not None:
                if peer.height > start:
                    # It claimed start + 1 or more, so it holds start with
                    # a certificate (only a tip may lack one): a lie.
                    self._undelivered(conn, peer, start, count)
                peer.height = min(peer.height, start - 1)
            self._pump()
            self._evaluate()
            return
        entries = list(msg.blocks[:batch.count])
        if len(entries) < batch.count:
            tail = Batch(start + len(entries), batch.count - len(entries))
            tail.tried = set(batch.tried)
            batch.count = len(entries)
            self.batches[tail.start] = tail
        batch.entries = entries
        batch.source = conn
        batch.size = sum(entry_size(b, c) for b, c in entries)
        self.buffered_bytes += batch.size
        for other in batch.requests:
            batch.requests[other] = True
        for timer in batch.timers.values():
            if timer.active():
                timer.cancel()
        batch.timers.clear()
        if peer is not None:
            peer.blocks += len(entries)
            peer.height = max(peer.height, entries[-1][0].height)
            self._shown(peer, *entries[-1])
        self.peerset.delivered(conn, "blocks")
        self.counters["sync-received"] += len(entries)
        self.max_buffered = max(self.max_buffered, sum(
            len(b.entries or ()) for b in self.batches.values()))
        self._pump()

    def _blocks_failed(self, failure: Failure, conn: Connection,
                       batch: Batch, gen: int) -> None:
        failure.trap(RequestFailed)
        key = conn.peer_key
        given_up = self._finish(key, batch)
        reason = failure.value.reason
        self.counters[f"sync-{reason}"] += 1
        if reason == "timeout" and given_up is False and \
                gen == self.generation:
            self._peer_slow(key, batch)
            return
        if reason == "bad-response":
            self._penalize(key)
        self._pump()
        self._evaluate()

    @defer.inlineCallbacks
    def _drain(self) -> Any:
        """
        Connect received batches strictly in height order, as long as the
        next one is here.
        """
        if self._draining:
            return
        self._draining = True
        connected_any = False
        try:
            while True:
                gen = self.generation
                chain = self.node.chain
                ready = [b for b in self.batches.values()
                         if b.entries is not None
                         and b.start <= chain.height + 1]
                if not ready:
                    break
                batch = min(ready, key=lambda b: b.start)
                del self.batches[batch.start]
                self.buffered_bytes -= batch.size
                assert batch.entries is not None
                for block, commit in batch.entries:
                    if gen != self.generation:
                        break
                    if block.height <= chain.height:
                        continue
                    try:
                        connected = yield self.connect(block, commit)
                    except BlockInvalid as e:
                        yield self._refused(batch.source, block, commit, e)
                        if gen == self.generation and \
                                block.height > chain.height:
                            rest = Batch(block.height,
                                         batch.end - block.height + 1)
                            rest.tried = set(batch.tried)
                            self.batches[rest.start] = rest
                        break
                    if connected:
                        connected_any = True
                        self.counters["sync-blocks"] += 1
                        self._progress_at = self.clock.seconds()
        except Exception:
            log.failure("connecting downloaded blocks failed")
            self.counters["errors"] += 1
            self._reset_download("error")
        finally:
            self._draining = False
        if connected_any:
            self._pump()
            self._evaluate()

    def _warn(self, who: str, kind: str, fmt: str, **fields: Any) -> None:
        """
        Log a warning at most once per C{LOG_REPEAT_SECONDS} per (peer
        C{who}, kind).
        """
        now = self.clock.seconds()
        mark = (who, kind)
        if now - self._logged.get(mark, float("-inf")) < LOG_REPEAT_SECONDS:
            self.counters["log-suppressed"] += 1
            return
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged[mark] = now
        log.warn(fmt, **fields)

    # Serving -------------------------------------------------------------

    @defer.inlineCallbacks
    def serve_blocks(self, conn: Connection, msg: GetBlocks) -> Any:
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


def _always() -> bool:
    """
    The predicate consensus and finality use when sync is not running.
    """
    return True
