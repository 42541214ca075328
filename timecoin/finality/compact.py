"""
The compact stored form of the pending, finalized and archived finality
records (``docs/storage.md``, "Finality records"): the same content as
their canonical JSON, in a binary layout with the hashes, keys and
signatures as raw bytes -- about half the size (hex doubled the votes'
Merkle branches, most of a record).

A compact record starts with the byte L{COMPACT} (0x01); a record in
canonical JSON (written by earlier nodes, and still for C{released}
records and anything the layout cannot hold) starts with C{{}.
L{decode_record} reads both into the same object, so a node upgraded in
place loads the store it had.  Only the stored form changes: certificates
are served to peers and over RPC from the decoded votes, in their own
encodings.

Layout (integers big-endian, unsigned)::

    record    = 0x01, state (1: "p" pending, "f" finalized, "a" archived),
                order (8: the seq, or the height of an archived record),
                [tx], [votes]          -- tx unless archived, votes unless pending
    tx        = length (4), the transaction's canonical encoding
    votes     = txid (32), count (2), count x vote
    vote      = decision (1: 1 approve, 0 reject), height (8), voter (32),
                signature (64), index (2), branch length (1),
                branch (32 each)

Every vote of a record is on the record's transaction, so its txid is
written once.  The encoders return C{None} for what the layout cannot
hold (a vote on another txid, a field out of range), and the caller
writes canonical JSON instead.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

from timecoin.encoding import EncodingError, decode
from timecoin.finality.votes import APPROVE, MAX_BRANCH, REJECT, TxVote

COMPACT = b"\x01"
"""The first byte of a compact record (canonical JSON starts with C{{})."""

PENDING_TAG = b"p"
FINALIZED_TAG = b"f"
ARCHIVED_TAG = b"a"
_STATES = {PENDING_TAG[0]: "pending", FINALIZED_TAG[0]: "finalized",
           ARCHIVED_TAG[0]: "archived"}

_LENGTH = struct.Struct(">I")
_COUNT = struct.Struct(">H")
_VOTE = struct.Struct(">BQ32s64sHB")
_DECISION_BYTES = {APPROVE: 1, REJECT: 0}
_DECISIONS = {1: APPROVE, 0: REJECT}
_U64 = 2**64


def _order(order: int) -> bool:
    return type(order) is int and 0 <= order < _U64


def _votes(txid: bytes, votes: Iterable[TxVote]) -> bytes | None:
    """
    The votes section over C{txid}, or C{None} if one vote does not fit.
    """
    parts = [txid, b""]
    pack = _VOTE.pack
    count = 0
    for v in votes:
        branch = v.branch
        if v.txid != txid or type(v.height) is not int or \
                not 0 <= v.height < _U64 or type(v.index) is not int or \
                not 0 <= v.index < 2**len(branch) or \
                len(branch) > MAX_BRANCH or len(v.voter) != 32 or \
                len(v.signature) != 64 or v.decision not in _DECISION_BYTES:
            return None
        joined = b"".join(branch)
        if len(joined) != 32 * len(branch) or \
                any(len(h) != 32 for h in branch):
            return None
        parts.append(pack(_DECISION_BYTES[v.decision], v.height, v.voter,
                          v.signature, v.index, len(branch)))
        parts.append(joined)
        count += 1
    if len(txid) != 32 or count >= 2**16:
        return None
    parts[1] = _COUNT.pack(count)
    return b"".join(parts)


def _tx(raw: bytes) -> bytes | None:
    return _LENGTH.pack(len(raw)) + raw if len(raw) < 2**32 else None


def compact_pending(seq: int, tx_raw: bytes) -> bytes | None:
    """
    The compact pending record of the transaction encoded C{tx_raw},
    numbered C{seq}; C{None} if it does not fit the layout.
    """
    tx = _tx(tx_raw)
    if tx is None or not _order(seq):
        return None
    return COMPACT + PENDING_TAG + seq.to_bytes(8, "big") + tx


def compact_finalized(seq: int, txid: bytes, tx_raw: bytes,
                      votes: Iterable[TxVote]) -> bytes | None:
    """
    The compact finalized record of transaction C{txid} (encoded
    C{tx_raw}) with C{votes}; C{None} if it does not fit the layout.
    """
    tx = _tx(tx_raw)
    section = _votes(txid, votes)
    if tx is None or section is None or not _order(seq):
        return None
    return COMPACT + FINALIZED_TAG + seq.to_bytes(8, "big") + tx + section


def compact_archived(height: int, txid: bytes,
                     votes: Iterable[TxVote]) -> bytes | None:
    """
    The compact archived record (certificate) of C{txid} mined at
    C{height}; C{None} if it does not fit the layout.
    """
    section = _votes(txid, votes)
    if section is None or not _order(height):
        return None
    return COMPACT + ARCHIVED_TAG + height.to_bytes(8, "big") + section


class _Reader:
    """
    Reads a compact record front to back, failing with L{EncodingError}
    on anything short.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.at = 0

    def take(self, n: int) -> bytes:
        """
        The next C{n} bytes.
        """
        end = self.at + n
        if end > len(self.raw):
            raise EncodingError("compact record is truncated")
        chunk = self.raw[self.at:end]
        self.at = end
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple[Any, ...]:
        """
        The next fields laid out as C{layout}.
        """
        return layout.unpack(self.take(layout.size))


def _read_votes(reader: _Reader) -> list[dict[str, Any]]:
    """
    The votes section, as the objects of the votes' canonical JSON.
    """
    txid = reader.take(32)
    (count,) = reader.unpack(_COUNT)
    votes = []
    for _ in range(count):
        decision, height, voter, signature, index, length = \
            reader.unpack(_VOTE)
        if decision not in _DECISIONS:
            raise EncodingError(f"unknown decision byte {decision}")
        if length > MAX_BRANCH or index >= 2**length:
            raise EncodingError("vote index does not fit its branch")
        branch = reader.take(32 * length)
        votes.append(TxVote(
            txid, _DECISIONS[decision], height, voter, signature, index,
            tuple(branch[i:i + 32] for i in range(0, len(branch), 32))
        ).to_obj())
    return votes


def decode_record(raw: bytes) -> dict[str, Any]:
    """
    The object of a stored finality record, compact or canonical JSON:
    for a compact one, the object its canonical JSON would decode to.

    @raise EncodingError: if C{raw} is neither.
    """
    if raw[:1] != COMPACT:
        parsed = decode(raw)
        if not isinstance(parsed, dict):
            raise EncodingError("a finality record must be an object")
        return parsed
    reader = _Reader(raw)
    reader.take(1)
    state = _STATES.get(reader.take(1)[0])
    if state is None:
        raise EncodingError("unknown compact record state")
    order = int.from_bytes(reader.take(8), "big")
    obj: dict[str, Any] = {"state": state}
    if state == "archived":
        obj["height"] = order
    else:
        obj["seq"] = order
        (length,) = reader.unpack(_LENGTH)
        obj["tx"] = decode(reader.take(length))
    if state != "pending":
        obj["votes"] = _read_votes(reader)
    if reader.at != len(raw):
        raise EncodingError("trailing bytes after a compact record")
    return obj
