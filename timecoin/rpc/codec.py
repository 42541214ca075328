"""
JSON as the RPC writes it: L{encode_json} (Decimal amounts as plain JSON
numbers with all their digits, as C{timecoin-cli} prints them too) and
L{dumps}, the server's fast path to the same bytes.

Imports only the standard library, so the CLI (which starts without the
reactor) imports it too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


def encode_json(obj: Any, indent: int | None = None) -> str:
    """
    Encode C{obj} as JSON, writing C{Decimal} values as plain JSON numbers
    with all their digits (amounts keep their 8 decimals: C{1.50000000},
    C{0.00000000}).

    @param indent: C{None} for compact output, else the indent per level.
    @raise TypeError: for values that are not JSON types or Decimals.
    @raise ValueError: for NaN or infinite numbers.
    """
    parts: list[str] = []
    _encode(obj, indent, 0, parts)
    return "".join(parts)


def _encode(obj: Any, indent: int | None, level: int,
            out: list[str]) -> None:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot encode {obj} as JSON")
        exponent = obj.as_tuple().exponent
        # Positional notation, except for absurd exponents (an echoed id
        # like 1e999999999 must not expand to a billion digits).
        plain = isinstance(exponent, int) and -64 <= exponent <= 64
        out.append(format(obj, "f") if plain else str(obj))
    elif obj is None or isinstance(obj, (str, bool, int, float)):
        out.append(json.dumps(obj, allow_nan=False))
    elif isinstance(obj, (dict, list, tuple)):
        is_dict = isinstance(obj, dict)
        opening, closing = ("{", "}") if is_dict else ("[", "]")
        if not obj:
            out.append(opening + closing)
            return
        if indent is None:
            inner, sep, tail, colon = "", ",", "", ":"
        else:
            inner = "\n" + " " * (indent * (level + 1))
            sep, tail, colon = "," + inner, "\n" + " " * (indent * level), \
                ": "
        out.append(opening + inner)
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for n, (key, value) in enumerate(items):
            if n:
                out.append(sep)
            if is_dict:
                if not isinstance(key, str):
                    raise TypeError(f"JSON object keys must be strings, "
                                    f"not {type(key).__name__}")
                out.append(json.dumps(key) + colon)
            _encode(value, indent, level + 1, out)
        out.append(tail + closing)
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")


class _NeedsDecimals(Exception):
    """
    Raised by L{_fast_default}: the object holds a value (a Decimal) only
    L{encode_json} writes.
    """


def _fast_default(value: Any) -> Any:
    raise _NeedsDecimals()


_fast_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                                default=_fast_default).encode


def dumps(obj: Any) -> bytes:
    """
    Compact JSON with Decimal amounts as numbers, newline-terminated.

    Objects of plain JSON types (most replies: txids, counts, hashes) go
    through the C encoder, which writes what L{encode_json} writes for
    them; one holding a Decimal through L{encode_json}.
    """
    try:
        text = _fast_encode(obj)
    except _NeedsDecimals:
        text = encode_json(obj)
    return text.encode("utf-8") + b"\n"


def error_body(code: int, message: str, request_id: Any = None) -> bytes:
    """
    A JSON-RPC 1.0-shaped error response body.
    """
    return dumps({"result": None, "error": {"code": code, "message": message},
                  "id": request_id})
