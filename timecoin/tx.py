"""
Transactions.

A transaction spends outpoints and creates outputs paying addresses.  Its
txid is the hash of its *body*: everything except the input signatures, so a
signature can never change a txid (no malleability).  Input ``i`` is signed
over ``sighash(network, txid, i)``; the input's pubkey must hash to the
address of the output it spends, which the chain checks against the UTXO set.

``kind`` is ``"transfer"`` for ordinary payments, ``"coinbase"`` for the
first transaction of a block (no inputs; ``data.height`` makes each unique),
``"mn_register"`` for a masternode registration (``data`` carries it;
see L{timecoin.registration}) and ``"mn_activate"`` for its activation
(L{timecoin.mnstate}).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from timecoin import params
from timecoin.address import AddressError, decode_address
from timecoin.encoding import (
    EncodingError,
    canonical,
    need_dict,
    need_int,
    need_list,
    need_str,
    unhex,
)
from timecoin.keys import PrivateKey, verify

TX_VERSION = 1
SIG_DOMAIN = b"TIMECOIN/tx-input"
KINDS = ("transfer", "coinbase", "mn_register", "mn_activate")


@dataclass(frozen=True, order=True, slots=True)
class OutPoint:
    """
    A reference to output C{vout} of transaction C{txid}.
    """

    txid: bytes
    vout: int

    def __str__(self) -> str:
        return f"{self.txid.hex()}:{self.vout}"

    def key(self) -> bytes:
        """
        A fixed 36-byte key: txid ‖ vout (big-endian u32), for storage.
        """
        return self.txid + self.vout.to_bytes(4, "big")

    @classmethod
    def from_key(cls, key: bytes) -> OutPoint:
        """
        Inverse of L{key}.
        """
        return cls(key[:32], int.from_bytes(key[32:36], "big"))


@dataclass(frozen=True, slots=True)
class TxOut:
    """
    An output: C{value} units payable to C{address}.
    """

    value: int
    address: str

    def to_obj(self) -> dict[str, Any]:
        return {"value": self.value, "address": self.address}

    @classmethod
    def from_obj(cls, obj: Any) -> TxOut:
        need_dict(obj, "output", {"value", "address"})
        return cls(need_int(obj["value"], "output value", 0, params.MAX_MONEY),
                   need_str(obj["address"], "output address", 64))


@dataclass(frozen=True, slots=True)
class UtxoEntry:
    """
    An unspent output as the UTXO set keeps it: the output, the height of
    the block that created it, and whether it came from a coinbase.
    """

    value: int
    address: str
    height: int
    coinbase: bool = False

    def pack(self) -> bytes:
        """
        Fixed layout for storage: value u64 ‖ height u64 ‖ coinbase u8 ‖
        address (ASCII), big-endian.
        """
        return (self.value.to_bytes(8, "big") + self.height.to_bytes(8, "big")
                + (b"\x01" if self.coinbase else b"\x00")
                + self.address.encode("ascii"))

    @classmethod
    def unpack(cls, raw: bytes) -> UtxoEntry:
        """
        Inverse of L{pack}.
        """
        return cls(int.from_bytes(raw[:8], "big"),
                   sys.intern(raw[17:].decode("ascii")),
                   int.from_bytes(raw[8:16], "big"), raw[16:17] == b"\x01")


@dataclass(frozen=True, slots=True)
class TxIn:
    """
    An input spending C{prevout}, with the spender's C{pubkey} and
    C{signature} (64 bytes, or empty while unsigned).
    """

    prevout: OutPoint
    pubkey: bytes
    signature: bytes = b""

    def body_obj(self) -> dict[str, Any]:
        return {"txid": self.prevout.txid.hex(), "vout": self.prevout.vout,
                "pubkey": self.pubkey.hex()}

    def to_obj(self) -> dict[str, Any]:
        obj = self.body_obj()
        obj["signature"] = self.signature.hex()
        return obj

    @classmethod
    def from_obj(cls, obj: Any) -> TxIn:
        need_dict(obj, "input", {"txid", "vout", "pubkey", "signature"})
        return cls(
            OutPoint(unhex(obj["txid"], 32, "input txid"),
                     need_int(obj["vout"], "input vout", 0, 2**32 - 1)),
            unhex(obj["pubkey"], 32, "input pubkey"),
            unhex(obj["signature"], None, "input signature"),
        )


@dataclass(frozen=True, slots=True)
class Transaction:
    """
    A transaction; immutable, with its txid and encoding computed once.

    Slotted, as are its parts: a payment held by the mempool, a block or
    the parsed-transaction cache costs about half what it did with an
    attribute dictionary per object (C{benchmarks/memory_sizes.py}).
    """

    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    kind: str = "transfer"
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    lock_time: int = 0
    version: int = TX_VERSION
    _txid: bytes | None = field(default=None, init=False, repr=False,
                                compare=False)
    _raw: bytes | None = field(default=None, init=False, repr=False,
                               compare=False)

    def body_obj(self) -> dict[str, Any]:
        """
        The signed part: everything but the input signatures.
        """
        return {
            "version": self.version, "kind": self.kind, "data": self.data,
            "inputs": [i.body_obj() for i in self.inputs],
            "outputs": [o.to_obj() for o in self.outputs],
            "lock_time": self.lock_time,
        }

    def to_obj(self) -> dict[str, Any]:
        """
        The full object, signatures included.
        """
        obj = self.body_obj()
        obj["inputs"] = [i.to_obj() for i in self.inputs]
        return obj

    @property
    def txid(self) -> bytes:
        cached = self._txid
        if cached is None:
            body = _encode_fast(self, False)
            if body is None:
                body = canonical(self.body_obj())
            cached = hashlib.sha256(body).digest()
            object.__setattr__(self, "_txid", cached)
        return cached

    def encode(self) -> bytes:
        """
        The canonical encoding (what is sized, stored and sent).
        """
        cached = self._raw
        if cached is None:
            cached = _encode_fast(self, True)
            if cached is None:
                cached = canonical(self.to_obj())
            object.__setattr__(self, "_raw", cached)
        return cached

    @property
    def size(self) -> int:
        return len(self.encode())

    @property
    def is_coinbase(self) -> bool:
        return self.kind == "coinbase"

    @classmethod
    def from_obj(cls, obj: Any) -> Transaction:
        """
        Parse a transaction object, checking its shape (not its validity
        against the chain).

        @raise EncodingError: with the reason.
        """
        fast = _from_obj_fast(obj)
        if fast is not None:
            return fast
        need_dict(obj, "transaction",
                  {"version", "kind", "data", "inputs", "outputs",
                   "lock_time"})
        version = need_int(obj["version"], "version", TX_VERSION, TX_VERSION)
        kind = need_str(obj["kind"], "kind", 16)
        if kind not in KINDS:
            raise EncodingError(f"unknown transaction kind {kind!r}")
        if not isinstance(obj["data"], dict):
            raise EncodingError("data must be an object")
        inputs = tuple(TxIn.from_obj(i) for i in need_list(
            obj["inputs"], "inputs", params.MAX_TX_INPUTS))
        outputs = tuple(TxOut.from_obj(o) for o in need_list(
            obj["outputs"], "outputs", params.MAX_TX_OUTPUTS))
        lock_time = need_int(obj["lock_time"], "lock_time", 0, 2**32 - 1)
        return cls(inputs, outputs, kind, obj["data"], lock_time, version)

    @classmethod
    def decode(cls, raw: bytes) -> Transaction:
        """
        Parse canonical bytes; the bytes must be exactly canonical.
        """
        from timecoin.encoding import decode
        tx = cls.from_obj(decode(raw))
        if tx.encode() != raw:
            raise EncodingError("transaction is not canonically encoded")
        if type(raw) is bytes:
            # Equal bytes: keep the caller's object, so the encoding the
            # transaction is sized, stored and relayed with is shared.
            object.__setattr__(tx, "_raw", raw)
        return tx


# Fast paths ------------------------------------------------------------------
#
# The fixed layouts (a transaction, its body) are written by hand: the same
# bytes as canonical(), member order being the sorted key order.  Anything
# unusual (a non-int number, a string that needs escaping) is left to
# canonical() or to the checked parser below, so the two can never differ
# (tests/test_tx_fast.py compares them over random transactions).

_TX_KEYS = frozenset({"version", "kind", "data", "inputs", "outputs",
                      "lock_time"})
_IN_KEYS = frozenset({"txid", "vout", "pubkey", "signature"})
_OUT_KEYS = frozenset({"value", "address"})
_escape = json.encoder.encode_basestring_ascii
_new = object.__new__
_set = object.__setattr__
"""Build the frozen dataclasses below without their generated
C{__init__} (its checks and defaults: half the parse); every field is
set, so the objects equal those the constructors make."""
_intern = sys.intern
"""Addresses are interned as they are parsed (and as UTXO entries are
read back): many outputs pay one address, and the UTXO set, which the
chain holds in memory, keeps one string per address instead of one per
output (88 bytes each; C{benchmarks/memory_sizes.py}, C{utxo_set}).  An
interned string is freed with its last user."""


def _plain(text: str) -> bool:
    """
    Whether C{text} is encoded as itself between quotes (no escapes).
    """
    return text.isascii() and text.isalnum()


def _json_str(text: str) -> str:
    return '"' + text + '"' if _plain(text) else _escape(text)


def _encode_fast(tx: Transaction, signatures: bool) -> bytes | None:
    """
    The canonical encoding of C{tx} (C{signatures}) or of its body, or
    C{None} if some field is of an unusual type (the caller then uses
    L{canonical}).
    """
    if type(tx.version) is not int or type(tx.lock_time) is not int or \
            type(tx.kind) is not str or type(tx.data) is not dict:
        return None
    parts = ['{"data":', canonical(tx.data).decode("ascii")
             if tx.data else "{}", ',"inputs":[']
    first = True
    for txin in tx.inputs:
        vout = txin.prevout.vout
        if type(vout) is not int:
            return None
        parts.append('{"pubkey":"' if first else ',{"pubkey":"')
        first = False
        parts.append(txin.pubkey.hex())
        if signatures:
            parts.append('","signature":"')
            parts.append(txin.signature.hex())
        parts.append('","txid":"')
        parts.append(txin.prevout.txid.hex())
        parts.append('","vout":')
        parts.append(str(vout))
        parts.append("}")
    parts.append('],"kind":')
    parts.append(_json_str(tx.kind))
    parts.append(',"lock_time":')
    parts.append(str(tx.lock_time))
    parts.append(',"outputs":[')
    first = True
    for out in tx.outputs:
        if type(out.value) is not int or type(out.address) is not str:
            return None
        parts.append('{"address":' if first else ',{"address":')
        first = False
        parts.append(_json_str(out.address))
        parts.append(',"value":')
        parts.append(str(out.value))
        parts.append("}")
    parts.append('],"version":')
    parts.append(str(tx.version))
    parts.append("}")
    return "".join(parts).encode("ascii")


def _hex32(value: Any) -> bytes | None:
    """
    32 bytes from 64 lowercase hex digits, or C{None}.
    """
    if type(value) is not str or len(value) != 64:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if len(raw) == 32 and raw.hex() == value else None


def _from_obj_fast(obj: Any) -> Transaction | None:
    """
    L{Transaction.from_obj} for a well-formed ordinary object, or C{None}
    for anything else (the checked parser then gives the reason).
    """
    if type(obj) is not dict or obj.keys() != _TX_KEYS:
        return None
    version, kind, data = obj["version"], obj["kind"], obj["data"]
    lock_time, raw_in, raw_out = obj["lock_time"], obj["inputs"], \
        obj["outputs"]
    if version != TX_VERSION or type(version) is not int or \
            type(kind) is not str or kind not in KINDS or \
            type(data) is not dict or type(lock_time) is not int or \
            not 0 <= lock_time <= 2**32 - 1 or \
            type(raw_in) is not list or \
            len(raw_in) > params.MAX_TX_INPUTS or \
            type(raw_out) is not list or \
            len(raw_out) > params.MAX_TX_OUTPUTS:
        return None
    inputs = []
    for item in raw_in:
        if type(item) is not dict or item.keys() != _IN_KEYS:
            return None
        txid, pubkey, vout = _hex32(item["txid"]), _hex32(item["pubkey"]), \
            item["vout"]
        signature = item["signature"]
        if txid is None or pubkey is None or type(vout) is not int or \
                not 0 <= vout <= 2**32 - 1 or type(signature) is not str:
            return None
        try:
            sig = bytes.fromhex(signature)
        except ValueError:
            return None
        if sig.hex() != signature:
            return None
        outpoint = _new(OutPoint)
        _set(outpoint, "txid", txid)
        _set(outpoint, "vout", vout)
        txin = _new(TxIn)
        _set(txin, "prevout", outpoint)
        _set(txin, "pubkey", pubkey)
        _set(txin, "signature", sig)
        inputs.append(txin)
    outputs = []
    for item in raw_out:
        if type(item) is not dict or item.keys() != _OUT_KEYS:
            return None
        value, address = item["value"], item["address"]
        if type(value) is not int or not 0 <= value <= params.MAX_MONEY or \
                type(address) is not str or len(address) > 64:
            return None
        txout = _new(TxOut)
        _set(txout, "value", value)
        _set(txout, "address", _intern(address))
        outputs.append(txout)
    tx = _new(Transaction)
    _set(tx, "inputs", tuple(inputs))
    _set(tx, "outputs", tuple(outputs))
    _set(tx, "kind", kind)
    _set(tx, "data", data)
    _set(tx, "lock_time", lock_time)
    _set(tx, "version", version)
    _set(tx, "_txid", None)
    _set(tx, "_raw", None)
    return tx


def sighash(network: str, txid: bytes, index: int) -> bytes:
    """
    What input C{index} of transaction C{txid} signs on C{network}.
    """
    return network.encode("ascii") + b"\x00" + txid + index.to_bytes(4, "big")


def sign_inputs(tx: Transaction, network: str,
                keys: list[PrivateKey]) -> Transaction:
    """
    Return C{tx} with input C{i} signed by C{keys[i]} (whose public key the
    input must already name).
    """
    if len(keys) != len(tx.inputs):
        raise ValueError("one key per input")
    signed = []
    for index, (txin, key) in enumerate(zip(tx.inputs, keys)):
        if key.public != txin.pubkey:
            raise ValueError(f"key for input {index} does not match pubkey")
        sig = key.sign(SIG_DOMAIN, sighash(network, tx.txid, index))
        signed.append(TxIn(txin.prevout, txin.pubkey, sig))
    return Transaction(tuple(signed), tx.outputs, tx.kind, tx.data,
                       tx.lock_time, tx.version)


def input_signature_ok(tx: Transaction, network: str, index: int) -> bool:
    """
    Whether input C{index} carries a valid signature by its own pubkey.
    """
    txin = tx.inputs[index]
    return verify(txin.pubkey, SIG_DOMAIN, sighash(network, tx.txid, index),
                  txin.signature)


def check_shape(tx: Transaction, prefix: str) -> str | None:  # noqa: C901
    """
    Context-free checks of a transaction.  Returns a reason code, or
    C{None} when the transaction is well formed.
    """
    if tx.size > params.MAX_TX_BYTES:
        return "tx-too-large"
    if tx.is_coinbase:
        if tx.inputs:
            return "coinbase-has-inputs"
    else:
        if not tx.inputs:
            return "no-inputs"
        if tx.data and tx.kind not in ("mn_register", "mn_activate"):
            return "unexpected-data"
        if len({i.prevout for i in tx.inputs}) != len(tx.inputs):
            return "duplicate-input"
    if not tx.outputs:
        return "no-outputs"
    total = 0
    for out in tx.outputs:
        try:
            decode_address(out.address, prefix)
        except AddressError:
            return "bad-address"
        if out.value <= 0:
            return "zero-output"
        if not tx.is_coinbase and out.value < params.DUST_LIMIT:
            return "dust-output"
        total += out.value
    if total > params.MAX_MONEY:
        return "value-out-of-range"
    return None
