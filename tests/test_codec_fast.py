"""
The msgspec fast paths of L{timecoin.encoding} and of the RPC body parser
against their references (the standard library): for any object
L{canonical} writes the bytes L{canonical_reference} writes (or raises
what it raises), and for any input L{decode} and
L{timecoin.rpc.dispatch.parse_body} return what the reference returns or
raise what it raises.
"""

from __future__ import annotations

import decimal
import enum
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from tests.helpers.strategies import (
    block_votes,
    blocks,
    transactions,
    tx_vote_batches,
    tx_votes,
)
from timecoin.block import Block
from timecoin.encoding import (
    EncodingError,
    canonical,
    canonical_reference,
    decode,
    decode_reference,
    nesting_within,
)
from timecoin.rpc.dispatch import _refuse_constant, parse_body

_leaf_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet='[]{}"\\', max_size=8),
    st.text(alphabet=st.characters(max_codepoint=0x9f), max_size=30),
    st.sampled_from(["\x7f", "\x00", "\u2028", "\ud800", "\udfff",
                     "\U0001f600", "\\", '"', "/", "\x1f\b\f\n\r\t"]))
_leaf_ints = st.one_of(st.integers(-2**64 - 2, 2**64 + 2),
                       st.integers(-10**80, 10**80))
_objects = st.recursive(
    st.one_of(st.none(), st.booleans(), _leaf_ints, _leaf_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_leaf_text, inner, max_size=5)),
    max_leaves=30)
"""JSON-able objects: nested dicts, lists and tuples of str (unicode,
control characters, DEL, lone surrogates), ints of any size and sign,
bools and None."""


class Colour(enum.Enum):
    """
    A type neither encoder should treat as JSON.
    """

    RED = 1


class Count(enum.IntEnum):
    """
    An int subclass (the reference writes its value).
    """

    ONE = 1


_odd = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([Colour.RED, Count.ONE, b"ab", bytearray(b"ab"),
                     {1, 2}, frozenset(), decimal.Decimal("1.5"),
                     {1: 2}, {True: "x"}, {None: 1}, object()]))
_odd_objects = st.recursive(
    st.one_of(_odd, st.none(), st.booleans(), _leaf_ints, _leaf_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_leaf_text, inner, max_size=4)),
    max_leaves=10)
"""Objects holding what is not plain JSON: floats (NaN and infinities
too), enums, bytes, sets, Decimals, non-str keys, arbitrary objects."""


def _outcome(function: Any, *args: Any) -> tuple[str, Any]:
    """
    C{("ok", result)} or C{("error", (type, message))} of a call.
    """
    try:
        return "ok", function(*args)
    except Exception as e:  # noqa: BLE001 -- compared, not handled
        return "error", (type(e), str(e))


def _shape(value: Any) -> Any:
    """
    C{value} with every type and every dict's member order made explicit,
    so C{1 == True} or a reordered dict cannot pass for the same result.
    """
    if isinstance(value, dict):
        return ("dict", [(_shape(k), _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_shape(v) for v in value])
    return (type(value).__name__, repr(value))


class CanonicalTests(unittest.TestCase):
    """
    L{canonical} is byte for byte L{canonical_reference}.
    """

    @settings(max_examples=600, deadline=None)
    @given(_objects)
    def test_json_objects(self, obj: Any) -> None:
        """
        Any JSON-able object encodes to the reference's bytes.
        """
        self.assertEqual(canonical(obj), canonical_reference(obj))

    @settings(max_examples=300, deadline=None)
    @given(_odd_objects)
    def test_odd_objects(self, obj: Any) -> None:
        """
        An object holding a float, an enum, bytes, a set or a non-str key
        is encoded or refused exactly as the reference does (the fast
        path leaves it to the reference).
        """
        self.assertEqual(_outcome(canonical, obj),
                         _outcome(canonical_reference, obj))

    def test_known_traps(self) -> None:
        """
        The differences between msgspec and the standard library that the
        fast path must not let through: non-ASCII, DEL, floats, NaN,
        integers beyond 64 bits, an enum, a tuple, deep nesting.
        """
        deep: Any = []
        for _ in range(5000):
            deep = [deep]
        for n, obj in enumerate(["\u00e9", "\x7f", {"a": "\U0001f600"}, 1.0, 1e16,
                    float("nan"), float("inf"), 2**64, -2**63 - 1, 10**400,
                    Colour.RED, Count.ONE, (1, [2, (3,)]), {"b": 1, "a": 2},
                    {"a": None, "b": [True, False]}, deep]):
            self.assertEqual(_outcome(canonical, obj),
                             _outcome(canonical_reference, obj), n)
        self.assertEqual(canonical({"é": 1, "z": [1.5]}),
                         b'{"z":[1.5],"\\u00e9":1}')

    @settings(max_examples=150, deadline=None)
    @given(transactions())
    def test_transactions(self, tx: Any) -> None:
        """
        Any transaction's object and body encode to the reference's bytes.
        """
        self.assertEqual(canonical(tx.to_obj()),
                         canonical_reference(tx.to_obj()))
        self.assertEqual(canonical(tx.body_obj()),
                         canonical_reference(tx.body_obj()))

    @settings(max_examples=60, deadline=None)
    @given(blocks())
    def test_blocks(self, block: Block) -> None:
        """
        Any block (and its header and commit) encodes to the reference's
        bytes, and so does the spliced L{Block.encode}.
        """
        self.assertEqual(canonical(block.to_obj()),
                         canonical_reference(block.to_obj()))
        self.assertEqual(block.encode(), canonical_reference(block.to_obj()))
        self.assertEqual(canonical(block.header.to_obj()),
                         canonical_reference(block.header.to_obj()))

    @settings(max_examples=150, deadline=None)
    @given(tx_votes(), tx_vote_batches(), block_votes())
    def test_votes(self, vote: Any, batch: Any, block_vote: Any) -> None:
        """
        Any transaction vote, vote batch and block vote encodes to the
        reference's bytes.
        """
        for obj in (vote.to_obj(), batch.to_obj(), block_vote.to_obj(),
                    {"type": "tx_votes", "batch": batch.to_obj()}):
            self.assertEqual(canonical(obj), canonical_reference(obj))
        self.assertEqual(vote.encode(), canonical_reference(vote.to_obj()))


_json_bytes = st.one_of(
    _objects.map(canonical_reference),
    _objects.map(lambda o: json.dumps(o, ensure_ascii=False,
                                      indent=1).encode("utf-8",
                                                       "surrogatepass")),
    _objects.map(lambda o: json.dumps(o).encode("utf-16")),
    st.binary(max_size=40),
    st.text(alphabet='{}[]":,.-+eE0123456789 \t\n\r\\ntruefalsnul\u00e9\ufeff',
            max_size=40).map(lambda s: s.encode("utf-8")),
    st.sampled_from([b"1.5", b"[1e5]", b"-0.0", b"NaN", b"[Infinity]",
                     b"-Infinity", b'"\\ud800"', b'"\xed\xa0\x80"',
                     b"\xef\xbb\xbf[1]", b'{"a":1,"a":2}', b"9" * 4300,
                     b"9" * 4301, b"[" * 65 + b"]" * 65,
                     b"[" * 64 + b"]" * 64, b"[" * 5000, b'"a\x01"',
                     b'"\x7f"', b" [1, 2] ", b"01", b"[1,]", b"",
                     b'{"a":[1,{"b":null}]} x', b'"\\u00e9\\/"']))
"""Inputs to parse: canonical and loose encodings (whitespace, UTF-8,
UTF-16), random bytes and JSON-ish text, and the known traps."""


def _depth(value: Any) -> int:
    """
    How deep the arrays and objects of C{value} nest (a scalar: 0).
    """
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


class NestingTests(unittest.TestCase):
    """
    L{nesting_within}, with its shortcut for lines of few brackets, says
    exactly whether a line nests within the limit.
    """

    @settings(max_examples=400, deadline=None)
    @given(_objects, st.integers(0, 8))
    def test_depth(self, obj: Any, limit: int) -> None:
        """
        For any object's encoding (strings holding brackets and escaped
        quotes included), the answer is whether the object's depth is
        within C{limit}.
        """
        raw = canonical_reference(obj)
        self.assertEqual(nesting_within(raw, limit), _depth(obj) <= limit)


class DecodeTests(unittest.TestCase):
    """
    L{decode} returns or raises what L{decode_reference} does, and
    L{parse_body} what C{json.loads(body, parse_float=Decimal)} does.
    """

    def _same(self, data: bytes | str, max_depth: int = 64) -> None:
        fast = _outcome(decode, data, max_depth)
        reference = _outcome(decode_reference, data, max_depth)
        if fast[0] == "ok":
            self.assertEqual(reference[0], "ok", data[:60])
            self.assertEqual(_shape(fast[1]), _shape(reference[1]))
        else:
            self.assertEqual(fast, reference, data[:60])
            self.assertIs(fast[1][0], EncodingError)

    @settings(max_examples=600, deadline=None)
    @given(_json_bytes)
    def test_bytes(self, data: bytes) -> None:
        """
        Any bytes decode to the reference's object or fail with the
        reference's L{EncodingError} and message.
        """
        self._same(data)
        self._same(data, 3)

    @settings(max_examples=300, deadline=None)
    @given(_json_bytes)
    def test_text(self, data: bytes) -> None:
        """
        The same for text (what L{timecoin.p2p.messages.parse_line}
        passes).
        """
        try:
            text = data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        self._same(text)

    @settings(max_examples=100, deadline=None)
    @given(transactions(), blocks(), tx_vote_batches())
    def test_objects_round_trip(self, tx: Any, block: Block,
                                batch: Any) -> None:
        """
        The encodings of transactions, blocks and vote batches decode to
        the reference's objects.
        """
        for raw in (tx.encode(), block.encode(),
                    canonical(batch.to_obj())):
            self._same(raw)

    def test_refusals_keep_their_errors(self) -> None:
        """
        A float, NaN, a too-deep line and an over-long integer are
        refused with the reference's error.
        """
        for data, message in [
                (b'{"a":1.5}', "floats are not allowed"),
                (b"NaN", "floats are not allowed"),
                (b"[" * 65 + b"]" * 65, "nested deeper than 64"),
                (b"9" * 4301, "Exceeds the limit"),
                (b'{"a":1', "Expecting")]:
            with self.assertRaises(EncodingError) as caught:
                decode(data)
            self.assertIn(message, str(caught.exception))

    def _same_body(self, body: bytes) -> None:
        def reference(body: bytes) -> Any:
            return json.loads(body, parse_float=decimal.Decimal,
                              parse_constant=_refuse_constant)
        fast = _outcome(parse_body, body)
        slow = _outcome(reference, body)
        if fast[0] == "ok":
            self.assertEqual(slow[0], "ok", body[:60])
            self.assertEqual(_shape(fast[1]), _shape(slow[1]))
        else:
            self.assertEqual(fast, slow, body[:60])

    @settings(max_examples=400, deadline=None)
    @given(_json_bytes)
    def test_rpc_bodies(self, body: bytes) -> None:
        """
        Any body parses to C{json.loads}'s object (Decimals included) or
        raises its error.
        """
        self._same_body(body)

    def test_rpc_numbers(self) -> None:
        """
        Numbers with a fraction or exponent are the same Decimals; what
        C{Decimal} cannot hold and NaN raise as before.
        """
        for body in [b'{"params":[1.50,1E5,-0.0,1e-7,2]}',
                     b"[1.0000000000000000000001]", b"1e99999999999999999999",
                     b"[NaN]", b'{"jsonrpc":"2.0","id":1,"method":"x"}']:
            self._same_body(body)
        self.assertEqual(str(parse_body(b"[1.50]")[0]), "1.50")
