"""
The hand-written encoders and parser of L{timecoin.tx} against the
reference: for any transaction, L{Transaction.encode} and the txid equal
L{canonical_reference} (the standard library's encoding) of the object
(and its body), and L{Transaction.from_obj} accepts and refuses exactly
what the checked parser does.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from twisted.trial import unittest

from tests.helpers.strategies import transactions
from timecoin.encoding import (
    EncodingError,
    canonical,
    canonical_reference,
    decode,
    sha256,
)
from timecoin.tx import (
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    UtxoEntry,
    _from_obj_fast,
)


def _slow_from_obj(obj: Any) -> Any:
    """
    The checked parser alone (the fast path disabled), or the error.
    """
    import timecoin.tx as txmod
    fast = txmod._from_obj_fast
    txmod._from_obj_fast = lambda obj: None  # type: ignore[assignment]
    try:
        return Transaction.from_obj(obj)
    except (EncodingError, ValueError) as e:
        return type(e)
    finally:
        txmod._from_obj_fast = fast


class FastEncodingTests(unittest.TestCase):
    """
    The hand-written encoding is byte for byte the canonical one.
    """

    @settings(max_examples=400, deadline=None)
    @given(transactions())
    def test_encode_is_canonical(self, tx: Transaction) -> None:
        """
        C{encode} equals C{canonical_reference(to_obj())} and the txid is
        SHA-256 of C{canonical_reference(body_obj())}, for any transaction.
        """
        self.assertEqual(tx.encode(), canonical_reference(tx.to_obj()))
        self.assertEqual(tx.txid, sha256(canonical_reference(tx.body_obj())))

    @settings(max_examples=400, deadline=None)
    @given(transactions())
    def test_parse_same_as_checked(self, tx: Transaction) -> None:
        """
        C{from_obj} gives the same transaction (or refusal) as the
        checked parser, and a canonical transaction decodes to itself
        with its encoding kept.
        """
        obj = decode(canonical(tx.to_obj()))
        slow = _slow_from_obj(copy.deepcopy(obj))
        try:
            fast: Any = Transaction.from_obj(obj)
        except (EncodingError, ValueError) as e:
            fast = type(e)
        if isinstance(slow, Transaction):
            self.assertIsInstance(fast, Transaction)
            self.assertEqual(fast.encode(), slow.encode())
            self.assertEqual(fast.txid, slow.txid)
            self.assertEqual(fast, slow)
            raw = canonical(obj)
            decoded = Transaction.decode(raw)
            self.assertIs(decoded.encode(), raw)
        else:
            self.assertEqual(fast, slow)

    def test_unusual_members_fall_back(self) -> None:
        """
        Members the fast parser does not take (uppercase or spaced hex,
        a bool for an int, an extra key) go to the checked parser, which
        gives its usual answer.
        """
        tx = Transaction((TxIn(OutPoint(b"\x01" * 32, 0), b"\x02" * 32,
                               b"\x03" * 64),),
                         (TxOut(1000, "TIME0abc"),))
        good = tx.to_obj()
        self.assertIsNotNone(_from_obj_fast(good))
        for change in (
                lambda o: o["inputs"][0].update(txid="AB" * 32),
                lambda o: o["inputs"][0].update(signature="ab cd"),
                lambda o: o["inputs"][0].update(vout=True),
                lambda o: o.update(version=True),
                lambda o: o.update(extra=1),
                lambda o: o["outputs"][0].update(value=-1)):
            obj = copy.deepcopy(good)
            change(obj)
            self.assertIsNone(_from_obj_fast(obj))
        spaced = copy.deepcopy(good)
        spaced["inputs"][0]["signature"] = "03 " * 63 + "03"
        parsed = Transaction.from_obj(spaced)
        self.assertEqual(parsed.inputs[0].signature, b"\x03" * 64)
        self.assertRaises(EncodingError, Transaction.decode,
                          canonical(spaced))
        upper = copy.deepcopy(good)
        upper["inputs"][0]["txid"] = "AB" * 32
        self.assertRaises(EncodingError, Transaction.from_obj, upper)


class InternedAddressTests(unittest.TestCase):
    """
    Addresses parsed from the wire or read back from the UTXO store are
    interned: the outputs and coins paying one address share one string.
    """

    def test_parsed_outputs_share_their_address(self) -> None:
        """
        Two transactions parsed from separate bytes, paying one address,
        hold the same string object (and equal transactions otherwise).
        """
        address = "TIME0" + "a1" * 19
        raw = ('{"data":{},"inputs":[{"pubkey":"%s","signature":"%s",'
               '"txid":"%s","vout":%d}],"kind":"transfer","lock_time":0,'
               '"outputs":[{"address":"%s","value":5000}],"version":1}')
        first = Transaction.decode(
            (raw % ("11" * 32, "22" * 64, "33" * 32, 0, address)).encode())
        second = Transaction.decode(
            (raw % ("11" * 32, "22" * 64, "44" * 32, 1, address)).encode())
        self.assertIs(first.outputs[0].address, second.outputs[0].address)
        self.assertEqual(first.outputs[0].address, address)

    def test_unpacked_coins_share_their_address(self) -> None:
        """
        L{UtxoEntry.unpack} interns the address it decodes.
        """
        packed = UtxoEntry(7, "TIME0" + "b2" * 19, 3).pack()
        a, b = UtxoEntry.unpack(packed), UtxoEntry.unpack(bytes(packed))
        self.assertIs(a.address, b.address)
        self.assertEqual(a, UtxoEntry(7, "TIME0" + "b2" * 19, 3))
