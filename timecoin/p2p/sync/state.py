"""
The catching-up/synced state machine of block sync (L{SyncState}) and its
three states.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.p2p.dependencies import PeerSet
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync.downloader import Downloader
from timecoin.p2p.sync.peers import PeerSync, SyncPeers
from timecoin.p2p.sync.report import SyncReport

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

IDLE = "idle"
CATCHING_UP = "catching-up"
SYNCED = "synced"
STATES = (IDLE, CATCHING_UP, SYNCED)

RATE_WINDOW = 10.0
"""Seconds over which C{blocks_per_s} is measured."""


class SyncState:
    """
    Whether this node is C{idle}, C{catching-up} or C{synced},
    recomputed from what the peers showed and claimed, the clock and our
    height at every event and every read, so no flag can stay set; and
    whether the node may take part in consensus (L{is_synced}).

    @ivar running: whether sync runs (started and not stopped): only then
        is block consensus told when the node becomes synced.
    """

    def __init__(self, node: Node, peerset: PeerSet, peers: SyncPeers,
                 downloader: Downloader, clock: IReactorTime,
                 settings: P2PSettings, report: SyncReport) -> None:
        self.node = node
        self.peerset = peerset
        self.peers = peers
        self.downloader = downloader
        self.clock = clock
        self.settings = settings
        self.counters = report.counters
        now = clock.seconds()
        self.running = False
        self._state = IDLE
        self.since = now
        """When the current state began."""
        self._progress_at = now
        self._started_at = now
        self._catchup_from = (now, 0)
        self._last_progress_log = float("-inf")
        self._rates: deque[tuple[float, int]] = deque()
        self._was_synced = False

    def start(self) -> None:
        """
        Sync starts: the start grace of L{is_synced} runs from now.
        """
        self._started_at = self.clock.seconds()
        self.running = True

    def stop(self) -> None:
        """
        Sync stops: block consensus is told nothing more.
        """
        self.running = False

    @property
    def state(self) -> str:
        """
        The current state: C{idle}, C{catching-up} or C{synced}.
        """
        return self.evaluate()

    def evaluate(self) -> str:
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
        fresh = self.peers.fresh(now)
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
        self.since = now
        self.counters[f"state:{new}"] += 1
        if self.running:
            self.clock.callLater(0, self.synced_edge)
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
        skipped = self.peers.skip_ahead(ours, now)
        log.warn("block sync stalled at height {height} for {seconds} s; "
                 "skipping {n} peers ahead and starting over",
                 height=ours, seconds=self.settings.sync_stall_timeout,
                 n=skipped)
        self.downloader.reset("stalled")

    def progressed(self) -> None:
        """
        A block was connected: the download is not stalled.
        """
        self._progress_at = self.clock.seconds()

    def block_connected(self, block: Block) -> None:
        """
        The chain connected C{block} (by any path): L{progressed}.
        """
        self.progressed()

    def synced_edge(self) -> None:
        """
        When this node becomes synced, tell block consensus, which may
        have sat its round out while behind (L{BlockConsensus.resume}).
        """
        synced = self.is_synced()
        if synced and not self._was_synced and self.running:
            log.info("synced at height {height}: taking part in consensus",
                     height=self.node.chain.height)
            self.node.consensus.resume()
        self._was_synced = synced

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

    def best_height(self) -> int:
        """
        RPC C{headers}: the best height usable peers showed us, or ours;
        while catching up also the claims of peers not found out (a liar's
        claim never shows here once its request failed, nor while we are
        synced).
        """
        now = self.clock.seconds()
        usable = self.peers.usable(now)
        best = max([self.node.chain.height] + [p.shown for p in usable])
        if self._state == CATCHING_UP:
            best = max([best] + [p.height for p in usable
                                 if not p.undelivered])
        return best

    def sample(self, now: float) -> None:
        """
        Sample the blocks connected so far, for L{blocks_per_s}.
        """
        self._rates.append((now, self.counters["sync-blocks"]))
        while self._rates and self._rates[0][0] < now - RATE_WINDOW:
            self._rates.popleft()

    def blocks_per_s(self) -> float:
        """
        Blocks connected by sync per second over the last C{RATE_WINDOW}.
        """
        if len(self._rates) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._rates[0], self._rates[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def log_progress(self, state: str, now: float) -> None:
        """
        While catching up, log progress every C{sync_log_interval}.
        """
        if state == CATCHING_UP and now - self._last_progress_log >= \
                self.settings.sync_log_interval:
            self._last_progress_log = now
            height, best = self.node.chain.height, self.best_height()
            log.info("catching up: height {height} of {best} ({percent}%), "
                     "{rate} blocks/s, {peers} peers, {in_flight} requests "
                     "in flight", height=height, best=best,
                     percent=round(100.0 * height / max(best, 1), 1),
                     rate=round(self.blocks_per_s(), 1),
                     peers=len(self.peers.usable(now)),
                     in_flight=self.downloader.window.in_flight())
