"""
An in-memory L{IChainStore}: the reference implementation of the contract,
used by unit tests and the simulator.  Each write is applied in full or not
at all (checks happen before the first mutation).
"""

from __future__ import annotations

from twisted.internet import defer
from zope.interface import implementer

from timecoin.interfaces import IChainStore
from timecoin.storage import BlockChange, BlockRevert, StoreError


@implementer(IChainStore)
class MemoryStore:
    """
    Dictionaries behind the L{IChainStore} contract.
    """

    def __init__(self) -> None:
        self.meta: dict[str, bytes] = {}
        self.blocks: dict[bytes, bytes] = {}
        self.undo: dict[bytes, bytes] = {}
        self.heights: dict[int, bytes] = {}
        self.utxos: dict[bytes, bytes] = {}
        self.tx_index: dict[bytes, int] = {}
        self.tx_records: dict[bytes, bytes] = {}
        self._tip: tuple[int, bytes] | None = None

    def open(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    def get_meta(self, key: str) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.meta.get(key))

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        self.meta[key] = value
        return defer.succeed(None)

    def tip(self) -> defer.Deferred[tuple[int, bytes] | None]:
        return defer.succeed(self._tip)

    def get_block(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.blocks.get(block_hash))

    def get_block_hash(self, height: int) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.heights.get(height))

    def get_undo(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.undo.get(block_hash))

    def get_utxo(self, key: bytes) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.utxos.get(key))

    def load_utxos(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        return defer.succeed(list(self.utxos.items()))

    def get_tx_location(
            self, txid: bytes) -> defer.Deferred[tuple[int, bytes] | None]:
        height = self.tx_index.get(txid)
        if height is None:
            return defer.succeed(None)
        return defer.succeed((height, self.heights[height]))

    def apply_block(self, change: BlockChange) -> defer.Deferred[None]:
        expected = (0, None) if self._tip is None else (
            self._tip[0] + 1, self._tip[1])
        if change.height != expected[0] or (
                expected[1] is not None and change.prev_hash != expected[1]):
            return defer.fail(StoreError(
                f"block {change.height} does not extend the tip"))
        self.blocks[change.block_hash] = change.block
        self.undo[change.block_hash] = change.undo
        self.heights[change.height] = change.block_hash
        for key in change.spent:
            self.utxos.pop(key, None)
        self.utxos.update(change.created)
        for txid in change.txids:
            self.tx_index[txid] = change.height
        for txid in change.archived:
            self.tx_records.pop(txid, None)
        self._tip = (change.height, change.block_hash)
        return defer.succeed(None)

    def revert_block(self, change: BlockRevert) -> defer.Deferred[None]:
        if self._tip != (change.height, change.block_hash) or \
                change.height == 0:
            return defer.fail(StoreError(
                f"block {change.height} is not a revertible tip"))
        if self.heights.get(change.height - 1) != change.prev_hash:
            return defer.fail(StoreError(
                "prev_hash is not the parent of the tip"))
        del self.heights[change.height]
        for key in change.removed:
            self.utxos.pop(key, None)
        self.utxos.update(change.restored)
        for txid in change.txids:
            if self.tx_index.get(txid) == change.height:
                del self.tx_index[txid]
        self._tip = (change.height - 1, change.prev_hash)
        return defer.succeed(None)

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        self.tx_records[txid] = record
        return defer.succeed(None)

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        return defer.succeed(self.tx_records.get(txid))

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        self.tx_records.pop(txid, None)
        return defer.succeed(None)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        return defer.succeed(list(self.tx_records.items()))
