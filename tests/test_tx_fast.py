"""
The hand-written encoders and parser of L{timecoin.tx} against the
reference: for any transaction, L{Transaction.encode} and the txid equal
L{canonical} of the object (and its body), and L{Transaction.from_obj}
accepts and refuses exactly what the checked parser does.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin.encoding import EncodingError, canonical, decode, sha256
from timecoin.tx import (
    KINDS,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    UtxoEntry,
    _from_obj_fast,
)

_ints = st.one_of(st.integers(0, 2**32 - 1), st.integers(-2**70, 2**70))
_text = st.text(max_size=70)
_address = st.one_of(
    st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
            min_size=1, max_size=40).map(lambda s: "TIME0" + s),
    _text)
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _ints, _text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12)
_data = st.one_of(st.just({}), st.dictionaries(_text, _json, max_size=5),
                  st.fixed_dictionaries({"height": st.integers(0, 10**9)}))


@st.composite
def transactions(draw: Any) -> Transaction:
    """
    Any transaction: every kind, up to 40 inputs and outputs, odd data,
    odd strings, unsigned or oddly sized signatures, numbers far out of
    range (a constructed transaction is not checked).
    """
    inputs = tuple(
        TxIn(OutPoint(draw(st.binary(min_size=32, max_size=32)),
                      draw(_ints)),
             draw(st.binary(min_size=32, max_size=32)),
             draw(st.one_of(st.just(b""), st.binary(min_size=64,
                                                    max_size=64),
                            st.binary(max_size=70))))
        for _ in range(draw(st.integers(0, 40))))
    outputs = tuple(TxOut(draw(_ints), draw(_address))
                    for _ in range(draw(st.integers(0, 40))))
    kind = draw(st.one_of(st.sampled_from(KINDS), _text))
    return Transaction(inputs, outputs, kind, draw(_data), draw(_ints),
                       draw(st.one_of(st.just(1), _ints)))


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
        C{encode} equals C{canonical(to_obj())} and the txid is SHA-256 of
        C{canonical(body_obj())}, for any transaction.
        """
        self.assertEqual(tx.encode(), canonical(tx.to_obj()))
        self.assertEqual(tx.txid, sha256(canonical(tx.body_obj())))

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
