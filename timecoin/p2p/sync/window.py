"""
The download window of block sync: the ranges of heights asked for or
received and not connected yet (L{Batch}, L{DownloadWindow}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IDelayedCall

from timecoin.block import Block, CommitCertificate
from timecoin.p2p.dependencies import Connection
from timecoin.p2p.sync.report import SyncReport


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

    def cancel_timers(self) -> None:
        """
        Cancel the timeout of every request for it.
        """
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()


def entry_size(block: Block, commit: CommitCertificate) -> int:
    """
    About the bytes one C{{block, commit}} entry takes on the wire.
    """
    return block.size + 137 + 220 * len(commit.votes)


class DownloadWindow:
    """
    The batches being downloaded or waiting to be connected, by first
    height, and the bytes they buffer.

    @ivar batches: ranges being downloaded or waiting to be connected, by
        first height.
    @ivar next_height: the first height no batch covers yet.
    @ivar generation: bumped by every L{reset}; replies to requests of an
        older generation are ignored.
    @ivar buffered_bytes: about the bytes of the blocks waiting.
    @ivar max_buffered: the most blocks ever waiting to be connected at
        once.
    """

    def __init__(self, report: SyncReport) -> None:
        self.counters = report.counters
        self.batches: dict[int, Batch] = {}
        self.next_height = 0
        self.generation = 0
        self.buffered_bytes = 0
        self.max_buffered = 0

    def in_flight(self) -> int:
        """
        C{get_blocks} requests in flight (not given up on).
        """
        return sum(b.active for b in self.batches.values())

    def buffered_blocks(self) -> int:
        """
        Blocks received and waiting to be connected.
        """
        return sum(len(b.entries or ()) for b in self.batches.values())

    def holds(self, batch: Batch) -> bool:
        """
        Whether C{batch} is still one of the window's.
        """
        return self.batches.get(batch.start) is batch

    def open(self, start: int, count: int) -> Batch:
        """
        A new batch of C{count} heights from C{start}, past every other.
        """
        batch = self.batches[start] = Batch(start, count)
        self.next_height = batch.end + 1
        return batch

    def cut(self, batch: Batch, count: int) -> None:
        """
        Keep the first C{count} heights in C{batch}; the rest becomes a new
        batch (that prefers the peers not tried for this one).
        """
        tail = Batch(batch.start + count, batch.count - count)
        tail.tried = set(batch.tried)
        batch.count = count
        self.batches[tail.start] = tail

    def fill(self, batch: Batch, entries: list[tuple[Block, CommitCertificate]],
             conn: Connection) -> None:
        """
        C{conn} delivered C{entries} for C{batch}: buffer them, and give up
        on every other request for it.
        """
        batch.entries = entries
        batch.source = conn
        batch.size = sum(entry_size(b, c) for b, c in entries)
        self.buffered_bytes += batch.size
        for other in batch.requests:
            batch.requests[other] = True
        batch.cancel_timers()

    def note_buffered(self) -> None:
        """
        Remember the most blocks ever waiting (L{max_buffered}).
        """
        self.max_buffered = max(self.max_buffered, self.buffered_blocks())

    def give_up(self, key: str) -> None:
        """
        Give up on every request peer C{key} holds (they count no more in
        flight; a late reply is still used).
        """
        for other in self.batches.values():
            if other.requests.get(key) is False:
                other.requests[key] = True
                timer = other.timers.pop(key, None)
                if timer is not None and timer.active():
                    timer.cancel()

    def take_next(self, ours: int) -> Batch | None:
        """
        Remove and return the lowest received batch that connects to our
        tip at C{ours}, if there is one.
        """
        ready = [b for b in self.batches.values()
                 if b.entries is not None and b.start <= ours + 1]
        if not ready:
            return None
        batch = min(ready, key=lambda b: b.start)
        del self.batches[batch.start]
        self.buffered_bytes -= batch.size
        return batch

    def put_back(self, batch: Batch, start: int) -> None:
        """
        The blocks of C{batch} from C{start} were not connected: download
        them again.
        """
        rest = Batch(start, batch.end - start + 1)
        rest.tried = set(batch.tried)
        self.batches[rest.start] = rest

    def distrust(self, conn: Connection) -> None:
        """
        C{conn} sent a bad block: whatever else it sent that waits in the
        window is dropped and asked of other peers.
        """
        for batch in self.batches.values():
            if batch.source is conn and batch.entries is not None:
                self.buffered_bytes -= batch.size
                batch.entries, batch.source, batch.size = None, None, 0
                self.counters["sync-distrusted"] += 1

    def reset(self, reason: str, ours: int) -> None:
        """
        Forget every batch; replies to requests already sent are ignored.
        """
        if self.batches:
            self.counters[f"download-reset:{reason}"] += 1
        self.generation += 1
        for batch in self.batches.values():
            batch.cancel_timers()
        self.batches.clear()
        self.buffered_bytes = 0
        self.next_height = ours + 1

    def prune(self, ours: int) -> None:
        """
        Drop batches entirely at or below our tip (another path connected
        them).
        """
        for start in [s for s, b in self.batches.items() if b.end <= ours]:
            self._drop(start)
        self.next_height = max(self.next_height, ours + 1)

    def drop_beyond(self, best: int) -> None:
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
            self._drop(start)
        self.next_height = min(self.next_height, first)

    def _drop(self, start: int) -> None:
        batch = self.batches.pop(start)
        self.buffered_bytes -= batch.size
        batch.cancel_timers()
