"""
Durable finality records: their encodings, their writes, and the two
kinds of state kept from them, the approvals this masternode released
(L{ReleasedApprovals}) and the index of archived certificates
(L{Certificates}).

One record per txid in the store (C{IChainStore.put_tx_record}).  The
pending, finalized and archived records are written in the compact
binary form of L{timecoin.finality.compact}; the released records, and
any record that form cannot hold, in the canonical encoding of their
object (spliced together from the transaction's and the votes' own
encodings: a test checks that the bytes are the canonical ones), which
is also what nodes wrote before the compact form.  L{decode_record} reads
both into the same object:

  - C{pending}: C{{"seq", "state", "tx"}}, written before this node votes
    approve;
  - C{finalized}: C{{"seq", "state", "tx", "votes"}}, written before the
    node reports finality, and kept as the certificate once mined;
  - C{released}: C{{"height", "inputs", "state"}}, an approval of a
    transaction that was then rejected;
  - C{archived}: C{{"height", "state", "votes"}}, the certificate of a
    transaction finalized while the block mining it was being written.

Table of who writes and deletes what: ``docs/finality.md``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.encoding import canonical
from timecoin.finality.compact import (
    compact_archived,
    compact_finalized,
    compact_pending,
    decode_record,
)
from timecoin.finality.votes import RELEASED_BLOCKS, TxVote
from timecoin.interfaces import IChainStore
from timecoin.mempool import Entry
from timecoin.tx import OutPoint, Transaction

log = Logger(namespace="timecoin.finality")
"""The finality engine's log lines keep the namespace they always had."""

ARCHIVED = "archived"
RELEASED = "released"

Record = tuple[int, bytes, dict[str, Any]]
"""One decoded record: (its order, txid, object); the order is the
C{seq} of a pending or finalized record, the C{height} of the others."""


def pending_record(entry: Entry) -> bytes:
    """
    The stored pending record of C{entry}: compact, else canonical JSON.
    """
    tx = entry.tx
    return compact_pending(entry.seq, tx.encode()) or pending_json(entry)


def finalized_record(entry: Entry) -> bytes:
    """
    The stored finalized record of C{entry}, with its votes: compact,
    else canonical JSON.
    """
    tx = entry.tx
    votes = [v for v in entry.votes.values() if isinstance(v, TxVote)]
    return compact_finalized(entry.seq, tx.txid, tx.encode(), votes) or \
        finalized_json(entry)


def archived_record(height: int, votes: list[TxVote]) -> bytes:
    """
    The stored archived record (certificate) of C{votes}, all on one
    transaction, mined at C{height}: compact, else canonical JSON.
    """
    compact = compact_archived(height, votes[0].txid, votes) \
        if votes else None
    return compact or archived_json(height, votes)


def pending_json(entry: Entry) -> bytes:
    """
    C{canonical({"state": "pending", "seq": .., "tx": ..})}, with the
    transaction's own encoding spliced in.
    """
    return b'{"seq":%d,"state":"pending","tx":%b}' % (
        entry.seq, entry.tx.encode())


def finalized_json(entry: Entry) -> bytes:
    """
    C{canonical({"state": "finalized", "seq", "tx", "votes"})}, spliced
    from the encodings of the transaction and of each vote.
    """
    return b'{"seq":%d,"state":"finalized","tx":%b,"votes":[%b]}' % (
        entry.seq, entry.tx.encode(), b",".join(
            v.encode() for v in entry.votes.values()
            if isinstance(v, TxVote)))


def archived_json(height: int, votes: list[TxVote]) -> bytes:
    """
    C{canonical({"state": "archived", "height": .., "votes": ..})}, spliced
    from each vote's kept encoding.
    """
    return b'{"height":%d,"state":"archived","votes":[%b]}' % (
        height, b",".join(v.encode() for v in votes))


def released_record(height: int, inputs: Iterable[OutPoint]) -> bytes:
    """
    C{canonical({"state": "released", "height": .., "inputs": ..})}.
    """
    return canonical({"state": RELEASED, "height": height,
                      "inputs": [op.key().hex() for op in inputs]})


def group_records(records: Iterable[tuple[bytes, bytes]]
                  ) -> dict[str, list[Record]]:
    """
    Decode the records C{load_tx_records} gave (compact or canonical
    JSON), grouped by state.
    """
    by_state: dict[str, list[Record]] = {}
    for txid, raw in records:
        obj = decode_record(raw)
        order = obj.get("seq", obj.get("height", 0))
        by_state.setdefault(obj["state"], []).append((order, txid, obj))
    return by_state


class RecordWriter:
    """
    Writes and deletes finality records, counting (C{store_errors}) and
    logging every write the store fails.
    """

    def __init__(self, store: IChainStore, counters: Counter[str]) -> None:
        self.store = store
        self._counters = counters

    def failed(self, failure: Failure, what: str, txid: bytes) -> None:
        """
        Count and log a failed write of C{what} for C{txid}.
        """
        self._counters["store_errors"] += 1
        log.failure("could not store the {what} of {txid}", failure,
                    what=what, txid=txid.hex())

    def put(self, txid: bytes, raw: bytes, what: str) -> None:
        """
        Write the record of C{txid} (a failure is logged as C{what}).
        """
        d = self.store.put_tx_record(txid, raw)
        d.addErrback(self.failed, what, txid)

    def delete(self, txid: bytes) -> None:
        """
        Delete the record of C{txid}.
        """
        d = self.store.delete_tx_record(txid)
        d.addErrback(self.failed, "record deletion", txid)


@dataclass
class Released:
    """
    A transaction this masternode approved that was then rejected: until
    its votes leave the height window, this node votes reject on any other
    spender of its inputs (its approval could still complete a
    certificate).
    """

    height: int
    inputs: tuple[OutPoint, ...]


class ReleasedApprovals:
    """
    The transactions this masternode approved and then saw rejected, with
    their inputs, while their votes can still count (the vote window), at
    most C{limit}; each is stored as a C{released} record.

    @ivar by_input: each such input → the txid this node approved for it.
    """

    def __init__(self, records: RecordWriter, limit: int) -> None:
        self.records = records
        self.limit = limit
        self._released: OrderedDict[bytes, Released] = OrderedDict()
        self.by_input: dict[OutPoint, bytes] = {}

    def __len__(self) -> int:
        return len(self._released)

    def release(self, txid: bytes, height: int, tx: Transaction) -> bool:
        """
        Remember (and store) that this node's approval of C{tx}, or its
        rejections of C{tx}'s contenders, stamped up to C{height}, may
        still count though C{tx} was rejected; whether any input was kept
        (none is when each is kept already for another transaction, whose
        memory must not be cut short).
        """
        inputs = tuple(i.prevout for i in tx.inputs
                       if self.by_input.get(i.prevout, txid) == txid)
        if not inputs:
            return False
        self._add(txid, Released(height, inputs))
        self.records.put(txid, released_record(height, inputs),
                         "released record")
        while len(self._released) > self.limit:
            self.forget(next(iter(self._released)))
        return True

    def extend(self, txids: Iterable[bytes], height: int
               ) -> defer.Deferred[None] | None:
        """
        This node is about to reject, at C{height}, a spender of inputs it
        keeps for C{txids}: keep them until L{RELEASED_BLOCKS} after that
        rejection, stored first (the returned Deferred fires once the
        records are written; C{None} if none needed it).  Else the memory
        could end a few blocks after this rejection, the spender would get
        approve, and a node could hold both votes -- an honest masternode
        equivocating (lifecycle seed 657 of seven/two, with one window).
        """
        writes = []
        for txid in sorted(set(txids)):
            released = self._released.get(txid)
            if released is None or released.height >= height:
                continue
            released.height = height
            self._released.move_to_end(txid)
            writes.append(self.records.store.put_tx_record(
                txid, released_record(height, released.inputs)))
        if not writes:
            return None
        d = defer.gatherResults(writes, consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _add(self, txid: bytes, released: Released) -> None:
        self._released[txid] = released
        for outpoint in released.inputs:
            self.by_input[outpoint] = txid

    def forget(self, txid: bytes, delete: bool = True) -> None:
        """
        Forget that this node approved C{txid} (if it did), deleting its
        released record unless another record replaced it.
        """
        released = self._released.pop(txid, None)
        if released is None:
            return
        for outpoint in released.inputs:
            if self.by_input.get(outpoint) == txid:
                del self.by_input[outpoint]
        if delete:
            self.records.delete(txid)

    def expire(self, height: int) -> None:
        """
        Forget the approvals older than L{RELEASED_BLOCKS} at chain height
        C{height}.
        """
        for txid in [t for t, r in self._released.items()
                     if r.height + RELEASED_BLOCKS < height]:
            self.forget(txid)

    @defer.inlineCallbacks
    def recover(self, records: list[Record], height: int) -> Any:
        """
        Restore the released records of a restart (deleting those out of
        L{RELEASED_BLOCKS} at chain height C{height}).
        """
        for released_at, txid, obj in sorted(records):
            if released_at + RELEASED_BLOCKS < height:
                yield self.records.store.delete_tx_record(txid)
                continue
            self._add(txid, Released(released_at, tuple(
                OutPoint.from_key(bytes.fromhex(k)) for k in obj["inputs"])))


class Certificates:
    """
    The index of archived finality certificates (the txids of the
    transactions finalized here and mined, by block), kept for C{blocks}
    blocks, at most C{limit}, oldest first out.  The certificates
    themselves stay in the store: a finalized record, or an C{archived}
    one.

    Laid out for a full index (C{max_certificates}, 100,000 by default): a
    set of the txids and, in the order they were archived, each block's
    height with a list of its txids; about 117 bytes a certificate, where
    an ordered dict of txid to height took 171 (C{benchmarks/
    memory_sizes.py}).
    """

    def __init__(self, records: RecordWriter, blocks: int,
                 limit: int) -> None:
        self.records = records
        self.blocks = blocks
        self.limit = limit
        self._txids: set[bytes] = set()
        self._by_block: deque[tuple[int, list[bytes]]] = deque()

    def __contains__(self, txid: object) -> bool:
        return txid in self._txids

    def __len__(self) -> int:
        return len(self._txids)

    def _index(self, txid: bytes, height: int) -> None:
        if txid in self._txids:
            # Archived again (a reorg mined it anew): it moves to the
            # newer block.  Rare, so the scan is fine.
            for _, txids in self._by_block:
                if txid in txids:
                    txids.remove(txid)
                    break
        self._txids.add(txid)
        if not self._by_block or self._by_block[-1][0] != height:
            self._by_block.append((height, []))
        self._by_block[-1][1].append(txid)

    def archive(self, txid: bytes, entry: Entry, height: int,
                retired: frozenset[bytes]) -> None:
        """
        Index the certificate of C{txid}, finalized here and mined at
        C{height}; if the block's write deleted its record (C{retired}),
        write its votes back as an C{archived} record.
        """
        self._index(txid, height)
        if txid not in retired:
            # Its finalized record stayed: it is the certificate.
            return
        # Finalized after the block was validated, so the block's write
        # deleted the record: write the certificate back.
        votes = sorted((v for v in entry.votes.values()
                        if isinstance(v, TxVote)), key=lambda v: v.voter)
        self.records.put(txid, archived_record(height, votes), "certificate")

    def restore(self, found: list[tuple[int, bytes]]) -> None:
        """
        Index the certificates (height, txid) a restart found.
        """
        for height, txid in sorted(found):
            self._index(txid, height)

    def prune(self, height: int) -> None:
        """
        Drop (and delete) the certificates too old at chain height
        C{height}, or beyond the limit, oldest first.
        """
        oldest = height - self.blocks
        while self._by_block:
            mined, txids = self._by_block[0]
            if mined < oldest:
                drop = len(txids)
            else:
                drop = min(len(txids), len(self._txids) - self.limit)
                if drop <= 0 and txids:
                    break
            for txid in txids[:drop]:
                self._txids.discard(txid)
                self.records.delete(txid)
            del txids[:drop]
            if not txids:
                self._by_block.popleft()

    def votes(self, txid: bytes) -> defer.Deferred[list[TxVote]]:
        """
        The votes of the archived certificate of C{txid}, from the store;
        empty if there is none.
        """
        if txid not in self._txids:
            return defer.succeed([])

        def parsed(raw: bytes | None) -> list[TxVote]:
            if raw is None:
                return []
            return [TxVote.from_obj(v)
                    for v in decode_record(raw).get("votes", [])]

        return self.records.store.get_tx_record(txid).addCallback(parsed)
