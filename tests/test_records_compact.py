"""
The compact stored form of finality records (L{timecoin.finality.compact})
against their canonical JSON: for any transaction and votes, the record
written decodes to exactly the object of its canonical JSON; what the
layout cannot hold is written as canonical JSON; damaged compact records
are refused.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin.encoding import EncodingError, decode
from timecoin.finality.compact import COMPACT, decode_record
from timecoin.finality.records import (
    archived_json,
    archived_record,
    finalized_json,
    finalized_record,
    pending_json,
    pending_record,
)
from timecoin.finality.votes import APPROVE, MAX_BRANCH, REJECT, TxVote
from timecoin.mempool import Entry
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut

_hash = st.binary(min_size=32, max_size=32)


@st.composite
def votes_on(draw: Any, txid: bytes) -> TxVote:
    """
    Any well-formed vote on C{txid}: either decision, any height, a
    branch of up to L{MAX_BRANCH} hashes with an index that fits it.
    """
    branch = tuple(draw(st.lists(_hash, max_size=MAX_BRANCH)))
    index = draw(st.integers(0, 2**len(branch) - 1))
    return TxVote(txid, draw(st.sampled_from([APPROVE, REJECT])),
                  draw(st.integers(0, 2**63 - 1)), draw(_hash),
                  draw(st.binary(min_size=64, max_size=64)), index, branch)


@st.composite
def entries(draw: Any) -> Entry:
    """
    A mempool entry of a transaction with up to six votes on it.
    """
    tx = Transaction(
        tuple(TxIn(OutPoint(draw(_hash), draw(st.integers(0, 2**32 - 1))),
                   draw(_hash), draw(st.binary(min_size=64, max_size=64)))
              for _ in range(draw(st.integers(1, 3)))),
        tuple(TxOut(draw(st.integers(1, 2**60)), "TIME0abc" + str(i))
              for i in range(draw(st.integers(1, 3)))))
    entry = Entry(tx, 1, draw(st.integers(0, 2**64 - 1)), 0.0)
    for vote in draw(st.lists(votes_on(tx.txid), max_size=6)):
        entry.votes[vote.voter] = vote
    return entry


class CompactRecordTests(unittest.TestCase):
    """
    Round trips of the compact records, and their refusals.
    """

    @settings(max_examples=200, deadline=None)
    @given(entries())
    def test_same_object_as_canonical_json(self, entry: Entry) -> None:
        """
        The pending, finalized and archived records of any entry are
        compact and decode to the objects of their canonical JSON.
        """
        votes = [v for v in entry.votes.values() if isinstance(v, TxVote)]
        pairs = [(pending_record(entry), pending_json(entry)),
                 (finalized_record(entry), finalized_json(entry))]
        if votes:
            pairs.append((archived_record(7, votes), archived_json(7, votes)))
        for stored, as_json in pairs:
            self.assertEqual(stored[:1], COMPACT)
            self.assertEqual(decode_record(stored), decode(as_json))
            self.assertEqual(decode_record(as_json), decode(as_json))
        self.assertEqual(
            [TxVote.from_obj(v)
             for v in decode_record(finalized_record(entry))["votes"]],
            votes)

    @settings(max_examples=50, deadline=None)
    @given(entries(), st.data())
    def test_truncated_or_extended_refused(self, entry: Entry,
                                           data: Any) -> None:
        """
        A compact record cut anywhere, or with bytes after its end, is
        refused with L{EncodingError}.
        """
        stored = finalized_record(entry)
        cut = data.draw(st.integers(1, len(stored) - 1))
        self.assertRaises(EncodingError, decode_record, stored[:cut])
        self.assertRaises(EncodingError, decode_record, stored + b"\x00")

    def test_what_the_layout_cannot_hold_is_json(self) -> None:
        """
        A vote on another transaction, or a seq out of range, makes the
        record canonical JSON, which reads as before.
        """
        tx = Transaction((TxIn(OutPoint(b"\x01" * 32, 0), b"\x02" * 32,
                               b"\x03" * 64),), (TxOut(5, "TIME0abc"),))
        entry = Entry(tx, 1, 3, 0.0)
        other = TxVote(b"\x09" * 32, APPROVE, 1, b"\x04" * 32, b"\x05" * 64)
        entry.votes[other.voter] = other
        self.assertEqual(finalized_record(entry), finalized_json(entry))
        self.assertEqual(decode_record(finalized_record(entry))["votes"],
                         [other.to_obj()])
        entry = Entry(tx, 1, 2**64, 0.0)
        self.assertEqual(pending_record(entry), pending_json(entry))
        self.assertEqual(archived_record(4, []), archived_json(4, []))

    def test_damaged_compact_refused(self) -> None:
        """
        An unknown state byte, an unknown decision byte and an index that
        does not fit its branch are each refused.
        """
        tx = Transaction((TxIn(OutPoint(b"\x01" * 32, 0), b"\x02" * 32,
                               b"\x03" * 64),), (TxOut(5, "TIME0abc"),))
        entry = Entry(tx, 1, 3, 0.0)
        vote = TxVote(tx.txid, APPROVE, 1, b"\x04" * 32, b"\x05" * 64, 1,
                      (b"\x06" * 32,))
        entry.votes[vote.voter] = vote
        stored = finalized_record(entry)
        self.assertEqual(decode_record(stored)["votes"], [vote.to_obj()])
        self.assertRaises(EncodingError, decode_record,
                          stored[:1] + b"x" + stored[2:])
        votes_at = len(stored) - (1 + 8 + 32 + 64 + 2 + 1 + 32)
        self.assertRaises(EncodingError, decode_record,
                          stored[:votes_at] + b"\x07" + stored[votes_at + 1:])
        index_at = votes_at + 1 + 8 + 32 + 64
        self.assertRaises(EncodingError, decode_record,
                          stored[:index_at] + b"\x00\x02"
                          + stored[index_at + 2:])
        self.assertRaises(EncodingError, decode_record, b"[]")
