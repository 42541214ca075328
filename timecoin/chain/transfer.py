"""
The rule of a transfer: a non-coinbase transaction checked against the
outputs it spends (shape, inputs unspent, keys, amounts, fee,
signatures).  The mempool checks a newcomer with it, the block validator
every transaction of a block.

Imports the core (C{params}, C{address}, C{tx}) and L{errors}.
"""

from __future__ import annotations

from collections.abc import Callable

from timecoin import params
from timecoin.address import decode_address, payload_of
from timecoin.chain.errors import TxInvalid
from timecoin.tx import (
    OutPoint,
    Transaction,
    UtxoEntry,
    check_shape,
    input_signature_ok,
)

__all__ = ["UtxoLookup", "check_transfer", "sent_amount", "verified_key"]

UtxoLookup = Callable[[OutPoint], "UtxoEntry | None"]


def verified_key(tx: Transaction) -> bytes:
    """
    The key under which a transaction's verified signatures are cached:
    its txid and the exact signatures it carries (a txid alone does not
    cover the signatures).
    """
    return tx.txid + b"".join(i.signature for i in tx.inputs)


def sent_amount(tx: Transaction, spent: list[UtxoEntry]) -> int:
    """
    The amount a transaction sends to others: its outputs to addresses
    that none of its inputs came from (change is not "sent").
    """
    own = {entry.address for entry in spent}
    return sum(o.value for o in tx.outputs if o.address not in own)


def check_transfer(tx: Transaction, network: params.Network,
                   lookup: UtxoLookup,
                   verified: set[bytes] | None = None) -> int:
    """
    Validate a non-coinbase transaction against the outputs C{lookup}
    finds; return its fee.

    @param verified: L{verified_key}s of transactions whose signatures
        were already checked (and are added here once checked).
    @raise TxInvalid: with a reason code.
    """
    if tx.is_coinbase:
        raise TxInvalid("unexpected-coinbase")
    reason = check_shape(tx, network.address_prefix)
    if reason:
        raise TxInvalid(reason)
    spent = []
    for txin in tx.inputs:
        entry = lookup(txin.prevout)
        if entry is None:
            raise TxInvalid("missing-or-spent-input", str(txin.prevout))
        if payload_of(txin.pubkey) != decode_address(entry.address):
            raise TxInvalid("pubkey-address-mismatch", str(txin.prevout))
        spent.append(entry)
    total_in = sum(e.value for e in spent)
    total_out = sum(o.value for o in tx.outputs)
    if total_in < total_out:
        raise TxInvalid("outputs-exceed-inputs")
    fee = total_in - total_out
    if fee < params.min_fee(sent_amount(tx, spent)):
        raise TxInvalid("fee-too-low",
                        f"{fee} < {params.min_fee(sent_amount(tx, spent))}")
    key = verified_key(tx)
    if verified is None or key not in verified:
        for index in range(len(tx.inputs)):
            if not input_signature_ok(tx, network.name, index):
                raise TxInvalid("bad-signature", f"input {index}")
        if verified is not None:
            verified.add(key)
    return fee
