"""
Transactions.

A transaction spends outpoints and creates outputs paying addresses.  Its
txid is the hash of its *body*: everything except the input signatures, so a
signature can never change a txid (no malleability).  Input ``i`` is signed
over ``sighash(network, txid, i)``; the input's pubkey must hash to the
address of the output it spends, which the chain checks against the UTXO set.

``kind`` is ``"transfer"`` for ordinary payments, ``"coinbase"`` for the
first transaction of a block (no inputs; ``data.height`` makes each unique),
and ``"mn_register"`` for a masternode registration (``data`` carries it;
see L{timecoin.registration}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from timecoin import params
from timecoin.address import AddressError, decode_address
from timecoin.encoding import (
    EncodingError,
    canonical,
    hash_obj,
    need_dict,
    need_int,
    need_list,
    need_str,
    unhex,
)
from timecoin.keys import PrivateKey, verify

TX_VERSION = 1
SIG_DOMAIN = b"TIMECOIN/tx-input"
KINDS = ("transfer", "coinbase", "mn_register")


@dataclass(frozen=True, order=True)
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


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
                   raw[17:].decode("ascii"),
                   int.from_bytes(raw[8:16], "big"), raw[16:17] == b"\x01")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class Transaction:
    """
    A transaction; immutable, with its txid and encoding computed once.
    """

    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    kind: str = "transfer"
    data: dict[str, Any] = field(default_factory=dict, compare=False)
    lock_time: int = 0
    version: int = TX_VERSION

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
        cached = self.__dict__.get("_txid")
        if cached is None:
            cached = hash_obj(self.body_obj())
            object.__setattr__(self, "_txid", cached)
        return cached

    def encode(self) -> bytes:
        """
        The canonical encoding (what is sized, stored and sent).
        """
        cached = self.__dict__.get("_raw")
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


def check_shape(tx: Transaction, prefix: str) -> str | None:
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
        if tx.data and tx.kind != "mn_register":
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
