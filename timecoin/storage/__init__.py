"""
Chain stores: the L{timecoin.interfaces.IChainStore} implementations and
the change records they apply atomically.

``memory`` is the in-memory store (tests, simulation), ``sqlite`` the
embedded default, ``redis`` the Redis one.  ``open_store(kind, ...)`` picks
one by the config's name (see L{timecoin.node.open_store}).

The stores import only the pure core (encoding, keys, transactions,
blocks) and L{timecoin.interfaces}; state and the node import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = 1


class StoreError(Exception):
    """
    A store refused a write (wrong tip, unknown schema) or failed.
    """


@dataclass(frozen=True)
class BlockChange:
    """
    Everything that connecting one block to the tip changes, computed by
    the chain and written by the store in one atomic step.

    @ivar spent: outpoint keys deleted from the UTXO set (outputs created
        and spent inside the same block appear in neither list).
    @ivar created: C{(key, packed UtxoEntry)} pairs added to the UTXO set.
    @ivar txids: every transaction of the block, indexed to this height.
    @ivar archived: txids whose finality records the block retires (its
        transactions but those finalized on this node, whose records stay
        as their certificates).
    """

    height: int
    block_hash: bytes
    prev_hash: bytes
    block: bytes
    undo: bytes
    spent: list[bytes] = field(default_factory=list)
    created: list[tuple[bytes, bytes]] = field(default_factory=list)
    txids: list[bytes] = field(default_factory=list)
    archived: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class BlockRevert:
    """
    Everything that disconnecting the tip block changes.

    @ivar removed: outpoint keys the block created, now deleted.
    @ivar restored: C{(key, packed UtxoEntry)} pairs the block spent, now
        unspent again.
    """

    height: int
    block_hash: bytes
    prev_hash: bytes
    removed: list[bytes] = field(default_factory=list)
    restored: list[tuple[bytes, bytes]] = field(default_factory=list)
    txids: list[bytes] = field(default_factory=list)
