"""
The RPC's params: each helper checks one JSON value a client sent and
returns it converted (an integer in range, a hash as bytes, an amount in
units, ...), or raises the L{RPCError} Bitcoin Core answers for it.

Imports L{timecoin.rpc.errors} and the node's data model (addresses,
amounts, transactions); imported by the method areas.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from timecoin import params
from timecoin.address import AddressError, decode_address
from timecoin.rpc.errors import (
    INVALID_PARAMS,
    RPC_DESERIALIZATION_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_METHOD_DEPRECATED,
    RPC_TYPE_ERROR,
    RPCError,
)

if TYPE_CHECKING:
    from timecoin.params import Network
    from timecoin.tx import Transaction


def to_int(value: Any, name: str, low: int = 0,
           high: int = 2**63 - 1) -> int:
    """
    The integer param C{name}, in [low, high].
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise RPCError(INVALID_PARAMS, f"{name} must be an integer")
    if not low <= value <= high:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} out of range [{low}, {high}]")
    return value


def to_str(value: Any, name: str) -> str:
    """
    The string param C{name}.
    """
    if not isinstance(value, str):
        raise RPCError(INVALID_PARAMS, f"{name} must be a string")
    return value


def to_flag(value: Any, name: str, default: int, high: int) -> int:
    """
    A verbosity: an integer in [0, high], or a boolean (true is 1).
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    return to_int(value, name, 0, high)


def to_hash(value: Any, name: str) -> bytes:
    """
    The 32-byte hash param C{name}, given as 64 hex digits.
    """
    text = to_str(value, name)
    if len(text) != 64:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be of length 64 (not {len(text)})")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal") from None


def to_amount(value: Any) -> int:
    """
    An amount param (TIME, as a JSON number or a string) in units.
    """
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise RPCError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        return params.parse_amount(value)
    except ValueError as e:
        raise RPCError(RPC_TYPE_ERROR, f"Invalid amount: {e}") from None


def to_seconds(value: Any, name: str, high: float) -> float:
    """
    The duration param C{name} in seconds, in [0, high].
    """
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise RPCError(INVALID_PARAMS, f"{name} must be a number")
    if not 0 <= value <= high:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} out of range [0, {high:g}]")
    return float(value)


def dummy_star(value: Any) -> None:
    """
    Bitcoin Core's dummy first argument of C{getbalance}: absent, null or
    C{"*"}.
    """
    if value is not None and value != "*":
        raise RPCError(RPC_METHOD_DEPRECATED, 'dummy first argument must be '
                       'excluded or set to "*".')


def ignored_bool(value: Any, name: str) -> bool:
    """
    An optional boolean a Bitcoin client may send: checked for its type
    (null is false) and returned.
    """
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RPCError(INVALID_PARAMS, f"{name} must be a boolean")
    return value


def ignored_int(value: Any, name: str) -> int | None:
    """
    An optional integer a Bitcoin client may send and the node ignores:
    checked for its type (null passes) and returned.
    """
    if value is None:
        return None
    return to_int(value, name, -(2**63), 2**63 - 1)


def hex_of(txid: bytes) -> str:
    """
    C{txid} as the RPC shows it: lowercase hex.
    """
    return txid.hex()


def check_address(address: str, network: Network) -> None:
    """
    Refuse C{address} unless it is a valid address of C{network}.

    @raise RPCError: C{RPC_INVALID_ADDRESS_OR_KEY}.
    """
    try:
        decode_address(address, network.address_prefix)
    except AddressError as e:
        raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                       f"Invalid address {address}: {e}") from None


def decode_tx(hexstring: Any, decode: Callable[[str], Transaction]
              ) -> Transaction:
    """
    The transaction the param C{hexstring} encodes, decoded by C{decode}
    (the node's decoder, which checks its size).

    @raise RPCError: C{RPC_DESERIALIZATION_ERROR} if it does not decode.
    """
    text = to_str(hexstring, "hexstring")
    try:
        return decode(text)
    except ValueError as e:
        raise RPCError(RPC_DESERIALIZATION_ERROR,
                       f"TX decode failed: {e}") from None
