"""
TIME Coin addresses: ``TIME1`` (mainnet) or ``TIME0`` (testnet, devnet)
followed by Base58 of a 20-byte payload and a 4-byte checksum.

payload = SHA-256(pubkey)[:20]; checksum = SHA-256(SHA-256(payload))[:4].
"""

from __future__ import annotations

import base58

from timecoin.encoding import sha256

PREFIXES = ("TIME0", "TIME1")
MAX_CACHED = 100_000
"""Valid addresses whose payload L{decode_address} remembers: checking
one costs a Base58 decode, a re-encode and two SHA-256 (more than the
signature check of a payment, which has two or three addresses)."""
_decoded: dict[str, bytes] = {}


class AddressError(ValueError):
    """
    Raised for a malformed address or one of another network.
    """


def payload_of(pubkey: bytes) -> bytes:
    """
    The 20-byte address payload of an Ed25519 public key.
    """
    return sha256(pubkey)[:20]


def encode_address(payload: bytes, prefix: str) -> str:
    """
    Encode a 20-byte C{payload} as an address with C{prefix}.
    """
    if len(payload) != 20 or prefix not in PREFIXES:
        raise AddressError("bad payload or prefix")
    check = sha256(sha256(payload))[:4]
    return prefix + base58.b58encode(payload + check).decode("ascii")


def address_of(pubkey: bytes, prefix: str) -> str:
    """
    The address of an Ed25519 public key on a network with C{prefix}.
    """
    return encode_address(payload_of(pubkey), prefix)


def decode_address(address: str, prefix: str | None = None) -> bytes:
    """
    Check an address and return its 20-byte payload.

    @param prefix: if given, the address must carry this network prefix.
    @raise AddressError: with the reason.
    """
    if not isinstance(address, str) or not 30 <= len(address) <= 45:
        raise AddressError("address has the wrong length")
    head, body = address[:5], address[5:]
    known = _decoded.get(address)
    if known is not None:
        if prefix is not None and head != prefix:
            raise AddressError(
                f"address is for another network (want {prefix})")
        return known
    if head not in PREFIXES:
        raise AddressError("address must start with TIME0 or TIME1")
    if prefix is not None and head != prefix:
        raise AddressError(f"address is for another network (want {prefix})")
    try:
        raw = base58.b58decode(body)
    except ValueError as e:
        raise AddressError("address is not Base58") from e
    if len(raw) != 24:
        raise AddressError("address payload has the wrong length")
    payload, check = raw[:20], raw[20:]
    if sha256(sha256(payload))[:4] != check:
        raise AddressError("address checksum mismatch")
    if base58.b58encode(raw).decode("ascii") != body:
        raise AddressError("address is not canonical Base58")
    if len(_decoded) >= MAX_CACHED:
        _decoded.clear()
    _decoded[address] = payload
    return payload


def is_valid(address: str, prefix: str | None = None) -> bool:
    """
    Whether C{address} is well formed (and of C{prefix}, if given).
    """
    try:
        decode_address(address, prefix)
    except AddressError:
        return False
    return True
