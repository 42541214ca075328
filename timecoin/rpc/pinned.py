"""
L{PinnedStore}: the read-only view of the node's store that C{verifychain}
replays, pinned at one tip so that the UTXO set it compares against is of
the same height while the node keeps connecting blocks.

Imports the storage interface; imported by L{timecoin.rpc.chain}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from timecoin.encoding import sha256
from timecoin.interfaces import IChainStore
from timecoin.storage import BlockChange, BlockRevert, StoreError

VERIFY_YIELD_EVERY = 64
"""Blocks C{verifychain} replays before letting the reactor run."""
VERIFY_PIN_ATTEMPTS = 10
"""Times C{verifychain} tries to read the UTXO set and tip together."""


class StoredChainBroken(Exception):
    """
    The stored chain lacks data a replay needs (a height, block or undo).
    """


@implementer(IChainStore)
class PinnedStore:
    """
    A read-only view of a live store for L{timecoin.verify.replay},
    pinned at one tip.

    C{tip()} reads the tip and the whole UTXO set together (retrying while
    blocks land in between), so that the replay, which stops at that tip,
    compares against the UTXO set of the same height even while the node
    keeps connecting blocks.  Every L{VERIFY_YIELD_EVERY} heights the
    replay waits one reactor turn, so a long replay on a synchronous store
    (SQLite) does not starve the node.

    @ivar reading: the height whose block the replay read last.
    @ivar pinned: C{(height, hash)} of the tip, once read.
    """

    def __init__(self, store: IChainStore, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock
        self._utxos: list[tuple[bytes, bytes]] = []
        self.pinned: tuple[int, bytes] | None = None
        self.reading = 0

    def stored_hash(self) -> bytes:
        """
        The utxo_hash of the pinned stored UTXO set.
        """
        return sha256(b"".join(k + v for k, v in sorted(self._utxos)))

    @defer.inlineCallbacks
    def tip(self) -> Any:
        """
        Read and pin the tip with the UTXO set at that tip.
        """
        for _ in range(VERIFY_PIN_ATTEMPTS):
            before = yield self._store.tip()
            utxos = yield self._store.load_utxos()
            after = yield self._store.tip()
            if before == after:
                if after is None:
                    raise StoredChainBroken("the store is empty")
                self._utxos, self.pinned = utxos, after
                return after
        raise StoreError(f"the tip kept moving during "
                         f"{VERIFY_PIN_ATTEMPTS} reads of the UTXO set")

    def load_utxos(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        The UTXO set read with the pinned tip.
        """
        return defer.succeed(self._utxos)

    @defer.inlineCallbacks
    def get_block_hash(self, height: int) -> Any:
        """
        The stored hash at C{height}; pauses a reactor turn now and then.
        """
        self.reading = height
        if height % VERIFY_YIELD_EVERY == 0:
            yield task.deferLater(self._clock, 0, lambda: None)
        block_hash = yield self._store.get_block_hash(height)
        if block_hash is None:
            raise StoredChainBroken(f"no block hash stored at height "
                                    f"{height}")
        return block_hash

    @defer.inlineCallbacks
    def get_block(self, block_hash: bytes) -> Any:
        """
        The stored block C{block_hash}; missing is broken.
        """
        raw = yield self._store.get_block(block_hash)
        if raw is None:
            raise StoredChainBroken(f"block {block_hash.hex()} not stored")
        return raw

    @defer.inlineCallbacks
    def get_undo(self, block_hash: bytes) -> Any:
        """
        The stored undo data of C{block_hash}; missing is broken.
        """
        raw = yield self._store.get_undo(block_hash)
        if raw is None:
            raise StoredChainBroken(f"undo data of {block_hash.hex()} not "
                                    f"stored")
        return raw

    def open(self) -> defer.Deferred[None]:
        """
        Nothing: the node's store is already open.
        """
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        """
        Nothing: the node owns its store.
        """
        return defer.succeed(None)

    def get_meta(self, key: str) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_meta(key)

    def get_utxo(self, key: bytes) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_utxo(key)

    def get_tx_location(
            self, txid: bytes) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_tx_location(txid)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Delegate to the node's store.
        """
        return self._store.load_tx_records()

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_tx_record(txid)

    def _read_only(self, *args: Any) -> defer.Deferred[None]:
        return defer.fail(StoreError("verifychain never writes"))

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(key, value)

    def apply_block(self, change: BlockChange) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(change)

    def revert_block(self, change: BlockRevert) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(change)

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(txid, record)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(txid)
