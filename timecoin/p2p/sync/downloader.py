"""
The block downloader of block sync: which peer is asked for which range,
pacing, timeouts and retries, and connecting what arrived in height order
(L{Downloader}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid
from timecoin.p2p.dependencies import Connection, PeerSet, RequestFailed
from timecoin.p2p.messages import MAX_BLOCKS_PER_REQUEST, Blocks, GetBlocks
from timecoin.p2p.ratelimit import TokenBucket
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync.connect import BlockConnector
from timecoin.p2p.sync.peers import SyncPeers
from timecoin.p2p.sync.report import SyncReport
from timecoin.p2p.sync.window import Batch, DownloadWindow

if TYPE_CHECKING:
    from timecoin.chain import Chain

log = Logger()

SYNC_TICK = 1.0
"""Seconds between state evaluations, retries and rate samples."""

Refused = Callable[[Connection | None, Block, CommitCertificate,
                    BlockInvalid], "defer.Deferred[Any]"]
"""What is told of a block the chain refused: its sender (C{None} if
unknown), the block, its certificate and the refusal."""


class Downloader:
    """
    Cuts the heights usable peers claim above our tip into batches, asks
    several peers for them at once within the window, and connects what
    arrives strictly in height order.

    @ivar window: the batches asked for or received.
    """

    def __init__(self, chain: Chain, peerset: PeerSet, peers: SyncPeers,
                 connector: BlockConnector, clock: IReactorTime,
                 settings: P2PSettings, report: SyncReport, *,
                 refused: Refused, evaluate: Callable[[], object],
                 progressed: Callable[[], None]) -> None:
        """
        @param refused: told of every downloaded block the chain refused.
        @param evaluate: re-evaluates the sync state (after a reply, a
            failure or a connected block).
        @param progressed: told when a downloaded block was connected.
        """
        self.chain = chain
        self.peerset = peerset
        self.peers = peers
        self.connector = connector
        self.clock = clock
        self.settings = settings
        self.report = report
        self.counters = report.counters
        self.refused = refused
        self.evaluate = evaluate
        self.progressed = progressed
        self.window = DownloadWindow(report)
        self.batch_size = max(1, min(settings.sync_batch,
                                     MAX_BLOCKS_PER_REQUEST))
        rate, burst = settings.rate_limits.get("get_blocks", (2.0, 10.0))
        self._pace = (rate * 0.9, max(1.0, burst - 2))
        self._pause_until = 0.0
        self._pumping = False
        self._pump_again = False
        self._draining = False
        self._wakeup: IDelayedCall | None = None

    def pause(self, seconds: float) -> None:
        """
        Start no request for C{seconds} (our clock seems behind).
        """
        self._pause_until = self.clock.seconds() + seconds

    def reset(self, reason: str) -> None:
        """
        Forget every batch; replies to requests already sent are ignored.
        """
        self.window.reset(reason, self.chain.height)

    def stop(self) -> None:
        """
        Cancel the pending wake-up and forget every download.
        """
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self.reset("stopped")

    def pump(self) -> None:
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
        settings, window = self.settings, self.window
        now = self.clock.seconds()
        ours = self.chain.height
        window.prune(ours)
        if now < self._pause_until:
            self._wake(self._pause_until - now)
            return
        window_end = ours + settings.sync_window * self.batch_size
        best = self.peers.target_height()
        target = min(best, window_end)
        window.drop_beyond(best)
        blocked = False
        for batch in sorted(window.batches.values(), key=lambda b: b.start):
            if window.in_flight() >= settings.sync_window:
                break
            if batch.waiting and not self._request(batch):
                blocked = True
                break
        while not blocked and window.in_flight() < settings.sync_window \
                and window.buffered_bytes < settings.sync_buffer_bytes \
                and window.next_height <= target:
            start = window.next_height
            batch = window.open(start, min(self.batch_size,
                                           target - start + 1))
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
        for peer in self.peers.usable(now):
            if peer.bucket is not None:
                tokens = min(burst, peer.bucket.tokens
                             + (now - peer.bucket.at) * rate)
                delays.append(max(0.0, (1.0 - tokens) / rate))
        for peer in self.peers.peers.values():
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
        self.pump()

    def _request(self, batch: Batch) -> bool:
        """
        Ask the best available peer for C{batch} (cut to what it has);
        returns whether a request went out.  Best: not asked for it yet,
        claiming no more than L{SyncPeers.plausible_height}, fewest
        requests in flight, most of the batch.
        """
        now = self.clock.seconds()
        ready = self.peerset.ready
        plausible = self.peers.plausible_height(now)
        candidates = sorted(
            (p for p in self.peers.usable(now)
             if p.height >= batch.start and p.key not in batch.requests
             and p.in_flight < self.settings.sync_peer_requests),
            key=lambda p: (p.key in batch.tried, p.height > plausible,
                           p.in_flight, -min(p.height, batch.end), p.slow,
                           p.requests, p.key))
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
            self.window.cut(batch, chosen.height - batch.start + 1)
        conn = ready[chosen.key]
        key, gen = chosen.key, self.window.generation
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
        d.addErrback(self.report.internal_error)
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
        if gen != self.window.generation or \
                batch.requests.get(key) is not False:
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
                self.peers.undelivered(conn, peer, batch.start, batch.count,
                                       charge=peer.blocks == 0)
        self.report.warn(key, "slow", "{peer} did not send blocks "
                         "{start}..{end} within {timeout} s; asking other "
                         "peers", peer=key, start=batch.start, end=batch.end,
                         timeout=self.settings.sync_request_timeout)
        self.window.give_up(key)
        self.pump()
        self.evaluate()

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
            self.peers.penalize(key)
            self.pump()
            return
        if gen != self.window.generation or not self.window.holds(batch) \
                or batch.entries is not None:
            self.counters["sync-late"] += 1
            self.pump()
            return
        if not msg.blocks:
            self.counters["sync-empty"] += 1
            if peer is not None:
                if peer.height > start:
                    # It claimed start + 1 or more, so it holds start with
                    # a certificate (only a tip may lack one): a lie.
                    self.peers.undelivered(conn, peer, start, count)
                peer.height = min(peer.height, start - 1)
            self.pump()
            self.evaluate()
            return
        entries = list(msg.blocks[:batch.count])
        if len(entries) < batch.count:
            self.window.cut(batch, len(entries))
        self.window.fill(batch, entries, conn)
        if peer is not None:
            peer.blocks += len(entries)
            peer.height = max(peer.height, entries[-1][0].height)
            self.peers.shown(peer, *entries[-1])
        self.peerset.delivered(conn, "blocks")
        self.counters["sync-received"] += len(entries)
        self.window.note_buffered()
        self.pump()

    def _blocks_failed(self, failure: Failure, conn: Connection,
                       batch: Batch, gen: int) -> None:
        failure.trap(RequestFailed)
        key = conn.peer_key
        given_up = self._finish(key, batch)
        error = failure.value
        assert isinstance(error, RequestFailed)
        reason = error.reason
        self.counters[f"sync-{reason}"] += 1
        if reason == "timeout" and given_up is False and \
                gen == self.window.generation:
            self._peer_slow(key, batch)
            return
        if reason == "bad-response":
            self.peers.penalize(key)
        self.pump()
        self.evaluate()

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
        window, chain = self.window, self.chain
        try:
            while True:
                gen = window.generation
                batch = window.take_next(chain.height)
                if batch is None:
                    break
                assert batch.entries is not None
                for block, commit in batch.entries:
                    if gen != window.generation:
                        break
                    if block.height <= chain.height:
                        continue
                    try:
                        connected = yield self.connector.connect(block,
                                                                 commit)
                    except BlockInvalid as e:
                        yield self.refused(batch.source, block, commit, e)
                        if gen == window.generation and \
                                block.height > chain.height:
                            window.put_back(batch, block.height)
                        break
                    if connected:
                        connected_any = True
                        self.counters["sync-blocks"] += 1
                        self.progressed()
        except Exception:
            log.failure("connecting downloaded blocks failed")
            self.counters["errors"] += 1
            self.reset("error")
        finally:
            self._draining = False
        if connected_any:
            self.pump()
            self.evaluate()
