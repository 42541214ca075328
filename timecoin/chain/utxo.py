"""
The UTXO set as validation and comparison see it: L{BlockView}, the
outputs as the transactions of one block being validated see them (the
set at the tip, less what earlier transactions of the block spent, plus
what they created), and the state pairs and hash (C{utxo_hash}) two
nodes at one height compare.

The set itself is a plain C{dict} of L{OutPoint} to L{UtxoEntry} that
L{timecoin.chain.bestchain.Chain} owns and changes only after the store's
write.  Imports the core (C{encoding}, C{tx}).
"""

from __future__ import annotations

from collections.abc import Mapping

from timecoin.encoding import sha256
from timecoin.tx import OutPoint, UtxoEntry

__all__ = ["BlockView", "state_hash", "utxo_pairs"]


class BlockView:
    """
    The outputs seen by the transactions of one block in validation: no
    double spend inside the block or against the set.

    @ivar spent: the entries of the set at the tip the block spends.
    @ivar created: the outputs the block creates and does not spend
        itself.
    """

    def __init__(self, utxos: Mapping[OutPoint, UtxoEntry]) -> None:
        self.utxos = utxos
        self.created: dict[OutPoint, UtxoEntry] = {}
        self.spent: dict[OutPoint, UtxoEntry] = {}

    def lookup(self, outpoint: OutPoint) -> UtxoEntry | None:
        """
        The entry C{outpoint} holds for the next transaction of the
        block, or C{None} if it is spent or unknown.
        """
        if outpoint in self.spent:
            return None
        entry = self.created.get(outpoint)
        return entry if entry is not None else self.utxos.get(outpoint)

    def spend(self, outpoint: OutPoint) -> None:
        """
        Spend C{outpoint} (already found by L{lookup}): an output of the
        block itself disappears, one of the set is recorded as spent.
        """
        entry = self.created.pop(outpoint, None)
        if entry is None:
            self.spent[outpoint] = self.utxos[outpoint]

    def create(self, outpoint: OutPoint, entry: UtxoEntry) -> None:
        """
        Add an output the block creates.
        """
        self.created[outpoint] = entry


def utxo_pairs(utxos: Mapping[OutPoint, UtxoEntry]
               ) -> list[tuple[bytes, bytes]]:
    """
    The UTXO set as stored: (outpoint key, packed entry) pairs, unsorted.
    """
    return [(op.key(), e.pack()) for op, e in utxos.items()]


def state_hash(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """
    SHA-256 over state C{pairs} (in key order): key ‖ value for each.
    """
    return sha256(b"".join(k + v for k, v in pairs))
