"""
The JSON shapes of the node's objects in RPC replies: transactions, block
headers, finality votes, confirmations and the entries of the wallet's
history, as Bitcoin Core shows them where it has them.

Imports the node's data model; imported by the method areas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin import params
from timecoin.block import Block
from timecoin.finality import TxVote
from timecoin.tx import Transaction
from timecoin.wallettxs import WalletTx

if TYPE_CHECKING:
    from timecoin.chain import Chain


def tx_to_json(tx: Transaction) -> dict[str, Any]:
    """
    A transaction decoded for RPC (C{getrawtransaction} verbose,
    C{getblock} verbosity 2).
    """
    return {
        "txid": tx.txid.hex(), "version": tx.version, "kind": tx.kind,
        "size": tx.size, "locktime": tx.lock_time, "data": tx.data,
        "vin": [{"txid": i.prevout.txid.hex(), "vout": i.prevout.vout,
                 "pubkey": i.pubkey.hex(), "signature": i.signature.hex()}
                for i in tx.inputs],
        "vout": [{"value": params.format_amount(o.value), "n": n,
                  "address": o.address} for n, o in enumerate(tx.outputs)],
        "hex": tx.encode().hex(),
    }


def block_header_json(block: Block) -> dict[str, Any]:
    """
    The header fields of C{block} as C{getblock} shows them.
    """
    header = block.header
    obj: dict[str, Any] = {
        "hash": block.hash.hex(), "height": header.height,
        "version": header.version, "merkleroot": header.merkle_root.hex(),
        "time": header.timestamp // 1000, "time_ms": header.timestamp,
        "producer": header.producer.hex(), "round": header.round,
        "commit_hash": header.commit_hash.hex(), "size": block.size,
        "nTx": len(block.txs),
    }
    if header.height > 0:
        obj["previousblockhash"] = header.prev_hash.hex()
    return obj


def vote_json(vote: Any) -> dict[str, Any] | None:
    """
    A finality vote as C{gettransaction} lists it.
    """
    if not isinstance(vote, TxVote):
        return None
    return {"voter": vote.voter.hex(), "decision": vote.decision,
            "height": vote.height}


def confirmations_at(chain: Chain, height: int) -> int:
    """
    The confirmations of a block at C{height} of C{chain}'s main chain
    (1 for the tip).
    """
    return chain.height - height + 1


def _wallet_common(chain: Chain, wtx: WalletTx) -> dict[str, Any]:
    obj: dict[str, Any] = {"final": True}
    if wtx.height is None:
        obj["confirmations"] = 0
        obj["trusted"] = True
    else:
        obj["confirmations"] = confirmations_at(chain, wtx.height)
        assert wtx.block_hash is not None
        obj.update({"blockhash": wtx.block_hash.hex(),
                    "blockheight": wtx.height,
                    "blockindex": wtx.block_index,
                    "blocktime": wtx.block_time})
    obj.update({"txid": wtx.txid.hex(), "time": wtx.time,
                "timereceived": wtx.time, "bip125-replaceable": "no"})
    return obj


def wallet_entries(chain: Chain, wtx: WalletTx, include_change: bool = False,
                   common: bool = True) -> list[dict[str, Any]]:
    """
    Bitcoin Core's entries of one wallet transaction: one per output
    paying the wallet (category receive, or generate for a coinbase;
    change only with include_change, as receive) and one per output
    the wallet paid to others (send, negative amount and fee).
    """
    base = _wallet_common(chain, wtx) if common else {}
    entries = []
    for vout, address, value, category in wtx.outputs:
        if category == "change":
            if not include_change:
                continue
            category = "receive"
        entry: dict[str, Any] = {
            "address": address, "category": category,
            "amount": params.format_amount(
                -value if category == "send" else value),
            "label": "", "vout": vout}
        if category == "send":
            if wtx.fee is not None:
                entry["fee"] = params.format_amount(-wtx.fee)
            entry["abandoned"] = False
        entry.update(base)
        entries.append(entry)
    return entries
