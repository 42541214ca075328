"""
The one canonical encoding of everything that is hashed or signed.

Objects are encoded as compact JSON with sorted keys, ASCII only, no
insignificant whitespace, integers only (floats are refused), and byte strings
written as lowercase hex.  ``canonical(obj)`` returns the UTF-8 bytes; hashes
are SHA-256 over those bytes.  ``docs/encoding.md`` documents the layout of
each object.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

ZERO_HASH = b"\x00" * 32

MAX_DEPTH = 64
"""Nesting depth of arrays and objects L{decode} accepts by default (the
deepest object we encode, a C{blocks} reply, nests less than ten).  Like
the line length, a limit of the format every node must agree on, so a
constant rather than a setting."""


class EncodingError(ValueError):
    """
    Raised when bytes or objects do not follow the canonical encoding.
    """


def _reject_float(value: str) -> Any:
    raise EncodingError("floats are not allowed in the canonical encoding")


def canonical_reference(obj: Any) -> bytes:
    """
    L{canonical} by the standard library's encoder alone: the definition
    of the encoding, the fallback of L{canonical} for anything its fast
    path does not take, and what the tests compare it with.
    """
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")


_FAST_ENCODER = msgspec.json.Encoder(order="sorted")
"""msgspec's encoder, keys sorted: the same bytes as L{canonical_reference}
for plain objects (L{_plain}) whose strings are printable ASCII; it
writes other characters as UTF-8 (and DEL as itself) where the reference
escapes them, so such output is left to the reference."""

_LEAVES = frozenset({str, int, bool, type(None)})


def _plain(obj: Any) -> bool:
    """
    Whether C{obj} is built of exactly dicts with str keys, lists,
    tuples, str, int, bool and None: the objects msgspec encodes as the
    standard library does (a float, a subclass or any other type goes to
    L{canonical_reference}, which encodes or refuses it as it always did).
    """
    kind = type(obj)
    if kind is dict:
        for key, value in obj.items():
            if type(key) is not str or (type(value) not in _LEAVES
                                        and not _plain(value)):
                return False
        return True
    if kind is list or kind is tuple:
        for value in obj:
            if type(value) not in _LEAVES and not _plain(value):
                return False
        return True
    return kind in _LEAVES


def canonical(obj: Any) -> bytes:
    """
    Encode C{obj} (dicts, lists, str, int, bool, None) canonically.

    The bytes are L{canonical_reference}'s; plain objects are encoded by
    msgspec (about five times faster), anything else, and any output
    holding a byte the reference would have escaped, by the reference.
    """
    try:
        if _plain(obj):
            out = _FAST_ENCODER.encode(obj)
            if out.isascii() and b"\x7f" not in out:
                return out
    except (TypeError, ValueError, RecursionError):
        pass
    return canonical_reference(obj)


_DECODER = json.JSONDecoder(parse_float=_reject_float,
                            parse_constant=_reject_float)
"""The one float-refusing decoder: C{json.loads} with hooks would build a
new C{JSONDecoder} (and scanner) for every call."""

_FAST_DECODER = msgspec.json.Decoder(float_hook=_reject_float)
"""msgspec's decoder, floats refused: for the UTF-8 input it accepts, the
same objects as L{_DECODER} (it refuses what the standard library would
accept in other ways -- other encodings, escaped lone surrogates, a
byte-order mark -- and L{decode} then asks L{decode_reference})."""


_KEEP = b'"[]{}'
_DROP = bytes(range(256)).translate(None, _KEEP)
_BRACKETS = bytes.maketrans(b"[]{}", b"()()")
_STRING = re.compile(rb'"[^"]*"')


def nesting_within(data: bytes, max_depth: int) -> bool:
    """
    Whether the arrays and objects of the JSON text C{data} nest at most
    C{max_depth} deep, found without parsing: escapes are removed, then
    everything but quotes and brackets, then strings, and each pass of
    removing the innermost C{()} pairs peels one level.  A few C-speed
    passes over the line (about a sixth of what decoding it costs), so a
    line nested thousands deep is refused before the decoder recurses.
    A few brackets left unbalanced (invalid JSON anyway) do not count:
    the decoder reports them; more unclosed ones than C{max_depth} do.
    A line with no more than C{max_depth} opening brackets in all,
    strings included (a vote, a batch of 50 decisions), cannot nest
    deeper: counted on the first pass's output (brackets and quotes).
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    shape = data.translate(_BRACKETS, _DROP)
    if shape.count(b"(") <= max_depth:
        return True
    shape = shape.replace(b'""', b"")
    if b'"' in shape:
        shape = _STRING.sub(b"", shape)
    for _ in range(max_depth):
        if b"()" not in shape:
            break
        shape = shape.replace(b"()", b"")
    return b"()" not in shape and shape.count(b"(") <= max_depth


def decode(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """
    Parse canonical JSON; floats and NaN are refused, and so is nesting
    deeper than C{max_depth} (L{nesting_within}).  Same input rules and
    errors as C{json.loads} (bytes in any of its detected encodings; a
    UTF-8 byte-order mark in text is refused); every failure, a
    C{RecursionError} of the decoder included, is an L{EncodingError}.

    The result is L{decode_reference}'s: UTF-8 within the depth is parsed
    by msgspec (about three times faster); whatever it refuses goes to the
    reference, which returns the same object or raises the same error as
    it always did (so a bad line costs two attempts, a good one one).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) \
        else data
    if nesting_within(raw, max_depth):
        try:
            return _FAST_DECODER.decode(raw)
        except (ValueError, RecursionError):
            # msgspec.DecodeError is a ValueError; so is a refused float.
            pass
    return decode_reference(data, max_depth)


def decode_reference(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """
    L{decode} by the standard library's decoder alone: the definition of
    what L{decode} accepts and of its errors, its fallback, and what the
    tests compare it with.
    """
    try:
        if isinstance(data, str):
            raw = data.encode("utf-8", "surrogatepass")
        else:
            encoding = json.detect_encoding(data)
            raw = data
            data = data.decode(encoding, "surrogatepass")
            if encoding != "utf-8":
                raw = data.encode("utf-8", "surrogatepass")
        if not nesting_within(raw, max_depth):
            raise EncodingError(
                f"invalid JSON: nested deeper than {max_depth}")
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError(
                "Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        return _DECODER.decode(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        if isinstance(e, EncodingError):
            raise
        raise EncodingError(f"invalid JSON: {e}") from e


def sha256(data: bytes) -> bytes:
    """
    SHA-256 digest of C{data}.
    """
    return hashlib.sha256(data).digest()


def hash_obj(obj: Any) -> bytes:
    """
    SHA-256 of the canonical encoding of C{obj}.
    """
    return sha256(canonical(obj))


def unhex(value: Any, length: int | None = None, what: str = "value") -> bytes:
    """
    Decode a lowercase hex string, optionally of an exact byte length.
    """
    if not isinstance(value, str):
        raise EncodingError(f"{what} must be a hex string")
    if value != value.lower():
        raise EncodingError(f"{what} must be lowercase hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise EncodingError(f"{what} is not hex") from e
    if length is not None and len(raw) != length:
        raise EncodingError(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


def need_int(value: Any, what: str, low: int = 0, high: int = 2**63 - 1) -> int:
    """
    Check that C{value} is an int (not a bool) within [low, high].
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise EncodingError(f"{what} must be an integer")
    if not low <= value <= high:
        raise EncodingError(f"{what} out of range [{low}, {high}]")
    return value


def need_str(value: Any, what: str, max_len: int = 256) -> str:
    """
    Check that C{value} is a str of at most C{max_len} characters.
    """
    if not isinstance(value, str):
        raise EncodingError(f"{what} must be a string")
    if len(value) > max_len:
        raise EncodingError(f"{what} longer than {max_len}")
    return value


def need_dict(value: Any, what: str, keys: set[str],
              optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    """
    Check that C{value} is a dict with exactly C{keys} (plus C{optional}).
    """
    if not isinstance(value, dict):
        raise EncodingError(f"{what} must be an object")
    present = set(value)
    missing = keys - present
    extra = present - keys - optional
    if missing:
        raise EncodingError(f"{what} is missing {sorted(missing)}")
    if extra:
        raise EncodingError(f"{what} has unknown fields {sorted(extra)}")
    return value


def need_list(value: Any, what: str, max_len: int) -> list[Any]:
    """
    Check that C{value} is a list of at most C{max_len} items.
    """
    if not isinstance(value, list):
        raise EncodingError(f"{what} must be a list")
    if len(value) > max_len:
        raise EncodingError(f"{what} has more than {max_len} items")
    return value
