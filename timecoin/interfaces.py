"""
Every plug-in point of the node, as zope.interface interfaces.

Each interface has an in-memory implementation used by the tests and a
``verifyObject`` test for every implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from timecoin.masternodes import Masternode, Snapshot
    from timecoin.storage import BlockChange, BlockRevert


class IChainStore(Interface):
    """
    Durable storage of the chain: blocks, the height index, the UTXO set,
    undo data, a transaction index, finality records and small metadata.

    Every method returns a C{Deferred}.  Keys and values are bytes; the
    store never interprets them beyond what is said here.  Outpoint keys
    are the 36-byte L{timecoin.tx.OutPoint.key}; UTXO values are
    L{timecoin.tx.UtxoEntry.pack} bytes.

    A store's writes are atomic per call: after a crash at any instant
    (SIGKILL), reopening the store shows either all of an
    C{apply_block}/C{revert_block} or none of it.  A write's Deferred fires
    only once the data is durable; the node acknowledges a block only after
    that.

    The schema version is the store's own business, kept apart from the
    C{get_meta}/C{put_meta} namespace.  C{close} may be called twice.
    """

    def open() -> Deferred[None]:
        """
        Create or check the schema.  Fires with C{None}; fails with
        L{timecoin.storage.StoreError} on a schema version it cannot read.
        """

    def close() -> Deferred[None]:
        """
        Release the underlying resources.  Fires with C{None}.
        """

    def get_meta(key: str) -> Deferred[bytes | None]:
        """
        Fires with the bytes stored under C{key}, or C{None}.
        """

    def put_meta(key: str, value: bytes) -> Deferred[None]:
        """
        Store C{value} under C{key}, durably.  Fires with C{None}.
        """

    def tip() -> Deferred[tuple[int, bytes] | None]:
        """
        Fires with C{(height, block_hash)} of the best block, or C{None}
        for an empty store.
        """

    def get_block(block_hash: bytes) -> Deferred[bytes | None]:
        """
        Fires with the encoded block of C{block_hash}, or C{None}.
        """

    def get_block_hash(height: int) -> Deferred[bytes | None]:
        """
        Fires with the hash of the main-chain block at C{height}, or
        C{None} above the tip.
        """

    def get_undo(block_hash: bytes) -> Deferred[bytes | None]:
        """
        Fires with the undo bytes stored with C{block_hash}, or C{None}.
        """

    def get_utxo(key: bytes) -> Deferred[bytes | None]:
        """
        Fires with the packed entry of outpoint C{key}, or C{None} when it
        is not unspent.
        """

    def load_utxos() -> Deferred[list[tuple[bytes, bytes]]]:
        """
        Fires with a list of C{(key, packed_entry)} for the whole UTXO set.
        """

    def get_tx_location(txid: bytes) -> Deferred[tuple[int, bytes] | None]:
        """
        Fires with C{(height, block_hash)} of the main-chain block holding
        C{txid}, or C{None}.
        """

    def apply_block(change: BlockChange) -> Deferred[None]:
        """
        Atomically make a L{timecoin.storage.BlockChange} the new tip:
        store the block and its undo data, index its height and its
        transactions, delete the spent outpoints, add the created ones, and
        delete the finality records the block archives.  Fails with
        L{timecoin.storage.StoreError} (nothing written) if C{change.height}
        is not tip height + 1 or C{change.prev_hash} is not the tip hash.
        """

    def revert_block(change: BlockRevert) -> Deferred[None]:
        """
        Atomically undo the tip block described by a
        L{timecoin.storage.BlockRevert}: remove its height and transaction
        index entries, delete the outputs it created, restore the outputs it
        spent.  The block bytes and undo data are kept.  Fails (nothing
        written) if C{change.block_hash} is not the tip.
        """

    def put_tx_record(txid: bytes, record: bytes) -> Deferred[None]:
        """
        Durably store the finality record of a transaction (finalized or
        pending a vote, or the certificate of one already in a block; see
        L{timecoin.finality}).  Fires with C{None}.
        """

    def get_tx_record(txid: bytes) -> Deferred[bytes | None]:
        """
        Fires with the finality record of C{txid}, or C{None}.
        """

    def delete_tx_record(txid: bytes) -> Deferred[None]:
        """
        Delete a finality record (rejected or expired).  Fires with C{None}.
        """

    def load_tx_records() -> Deferred[list[tuple[bytes, bytes]]]:
        """
        Fires with a list of C{(txid, record)} of every stored record.
        """


class ISelectionPolicy(Interface):
    """
    A deterministic block-producer selection policy, discovered as a
    Twisted plugin and chosen by C{name} in the config.

    It must be a pure function of its arguments: the same inputs give the
    same output in every process, whatever the hash seed or clock.
    """

    name = Attribute("The policy's name as written in the config.")

    def candidates(snapshot: Snapshot, height: int, prev_hash: bytes,
                   round: int) -> list[bytes]:
        """
        Order the masternodes of C{snapshot} (a canonically sorted tuple of
        L{timecoin.masternodes.Masternode}) for producing block C{height}
        after C{prev_hash} in C{round}.  Returns a list of operator public
        keys drawn from C{snapshot} only; C{result[0]} proposes.
        """


class IQuorumRule(Interface):
    """
    How votes are weighed into a decision; a network picks one rule.
    Quorum is always computed over the snapshot's total weight, never
    over the votes received.
    """

    name = Attribute("The rule's name as written in the config.")

    def weight(masternode: Masternode) -> int:
        """
        The voting weight of a L{timecoin.masternodes.Masternode}.
        """

    def approved(approving: int, total: int) -> bool:
        """
        Whether C{approving} weight out of C{total} commits or finalizes.
        """

    def rejected(rejecting: int, total: int) -> bool:
        """
        Whether C{rejecting} weight out of C{total} makes approval
        impossible (more than one third).
        """
