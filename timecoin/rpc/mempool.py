"""
The C{mempool} part of the RPC's transactions area: what the mempool
holds and whether the node refuses new transactions now.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin import params
from timecoin.mempool import FINALIZED, PENDING
from timecoin.rpc.errors import RPC_INVALID_ADDRESS_OR_KEY, RPCError
from timecoin.rpc.params import to_flag, to_hash
from timecoin.tx import OutPoint

if TYPE_CHECKING:
    from timecoin.node import Node


class MempoolMethods:
    """
    The RPC methods about the mempool of one node.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def rpc_getmempoolinfo(self) -> dict[str, Any]:
        """
        getmempoolinfo

        The mempool: size (transactions), bytes, pending and finalized
        counts, total_fee (TIME), maxmempool (byte limit), maxcount (count
        limit), rejections (count per reason code since start; node-busy
        counts the refusals of admission control), undecided (transactions
        admitted and not yet finalized or rejected, contenders included),
        maxundecided (the bound at which sendrawtransaction and
        sendtoaddress refuse with node-busy; 0: none), maxunmined (the
        bound on finalized transactions waiting for a block at which they
        refuse too; 0: none), busy (whether the node refuses now, and why
        in busyreason).
        """
        node = self.node
        mempool = node.mempool
        undecided = node.admission.undecided()
        why = node.admission.backlog()
        states = [e.state for e in mempool.entries.values()]
        busy: dict[str, Any] = {"busy": why is not None}
        if why is not None:
            busy["busyreason"] = why
        return {
            "loaded": True, "size": len(mempool), "bytes": mempool.total_bytes,
            "pending": states.count(PENDING),
            "finalized": states.count(FINALIZED),
            "total_fee": params.format_amount(
                sum(e.fee for e in mempool.entries.values())),
            "maxmempool": mempool.limits.max_bytes,
            "maxcount": mempool.limits.max_count,
            "rejections": dict(sorted(mempool.rejections.items())),
            "undecided": undecided,
            "maxundecided": node.config.rpc.max_undecided,
            "maxunmined": node.config.rpc.max_unmined, **busy,
        }

    def rpc_getrawmempool(self, verbose: Any = False) -> Any:
        """
        getrawmempool ( verbose )

        The txids in the mempool, oldest first; with verbose true an
        object txid → {size, fee, state, time, votes}.
        """
        level = to_flag(verbose, "verbose", 0, 1)
        entries = sorted(self.node.mempool.entries.values(),
                         key=lambda e: e.seq)
        if level == 0:
            return [e.tx.txid.hex() for e in entries]
        return {e.tx.txid.hex(): {
            "size": e.tx.size, "fee": params.format_amount(e.fee),
            "state": e.state, "time": int(e.received), "votes": len(e.votes)}
            for e in entries}

    def rpc_getmempoolentry(self, txid: Any) -> dict[str, Any]:
        """
        getmempoolentry "txid"

        The mempool's entry of a transaction: {size, vsize (the same),
        fee and fees: {base, modified} (TIME), time (when it was received,
        seconds since the epoch), state (pending or finalized), votes
        (count), conflict (true for a contender), depends (txids of mempool
        transactions whose outputs it spends), spentby (mempool
        transactions spending its outputs), bip125-replaceable (always
        "no")}.  Error -5 if it is not in the mempool.
        """
        tx_hash = to_hash(txid, "txid")
        mempool = self.node.mempool
        entry = mempool.entries.get(tx_hash)
        if entry is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "Transaction not in mempool")
        fee = params.format_amount(entry.fee)
        depends = sorted({i.prevout.txid.hex() for i in entry.tx.inputs
                          if i.prevout.txid in mempool.entries})
        spentby = sorted({mempool.locks[op].hex() for op in (
            OutPoint(tx_hash, n) for n in range(len(entry.tx.outputs)))
            if op in mempool.locks})
        return {"size": entry.tx.size, "vsize": entry.tx.size, "fee": fee,
                "fees": {"base": fee, "modified": fee},
                "time": int(entry.received), "state": entry.state,
                "votes": len(entry.votes), "conflict": entry.conflict,
                "depends": depends, "spentby": spentby,
                "bip125-replaceable": "no"}
