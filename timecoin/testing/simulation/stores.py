"""
The simulated nodes' stores: L{GroupCommitStore}, a memory store that
commits finality records in groups, late, as SQLite does under a real
node, and can hold a signing-state write for a crash inside a consensus
step.

Imports nothing from the rest of the simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock

from timecoin.consensus import SIGNING_STATE_KEY
from timecoin.storage.memory import MemoryStore

__all__ = ["GroupCommitStore"]


class GroupCommitStore(MemoryStore):
    """
    A L{MemoryStore} whose finality-record writes wait for a group commit
    C{delay} seconds after the first, as L{timecoin.storage.sqlite}'s do
    under a real node: their Deferreds fire late, and a crash loses what
    was not committed yet (L{lose_pending}).  Block writes, record reads
    and C{close} commit what is queued first.
    """

    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self._queued: list[tuple[bytes, bytes | None,
                                 defer.Deferred[None]]] = []
        self._call: Any = None
        self.trap: Callable[[bytes], bool] | None = None
        """Armed by a C{step-crash}: given each signing-state value
        written; when it says so, that write and every later meta write
        are held (not done, their Deferreds unfired) until L{release}: the
        process is dying in the middle of the write."""
        self.held: list[tuple[str, bytes]] | None = None

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        if self.held is None and self.trap is not None and \
                key == SIGNING_STATE_KEY and self.trap(value):
            self.trap = None
            self.held = []
        if self.held is not None:
            self.held.append((key, value))
            return defer.Deferred()
        return super().put_meta(key, value)

    def release(self, keep: bool) -> None:
        """
        The process died during the held writes: they are done (C{keep},
        the disk got them) or lost.
        """
        held, self.held = self.held or [], None
        if keep:
            for key, value in held:
                super().put_meta(key, value)

    def _queue(self, txid: bytes, record: bytes | None
               ) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._queued.append((txid, record, d))
        if self._call is None:
            self._call = self.clock.callLater(self.delay, self.commit)
        return d

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        return self._queue(txid, record)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        return self._queue(txid, None)

    def commit(self) -> None:
        """
        Apply the queued record writes in order, then fire their Deferreds.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        queued, self._queued = self._queued, []
        for txid, record, _ in queued:
            if record is None:
                super().delete_tx_record(txid)
            else:
                super().put_tx_record(txid, record)
        for _, _, d in queued:
            d.callback(None)

    def lose_pending(self) -> None:
        """
        The process died: queued writes never happen, their Deferreds never
        fire.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._queued = []

    def apply_block(self, change: Any) -> defer.Deferred[None]:
        self.commit()
        return super().apply_block(change)

    def revert_block(self, change: Any) -> defer.Deferred[None]:
        self.commit()
        return super().revert_block(change)

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        self.commit()
        return super().get_tx_record(txid)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        self.commit()
        return super().load_tx_records()

    def close(self) -> defer.Deferred[None]:
        self.commit()
        return super().close()

