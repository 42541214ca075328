"""
The C{transactions} area of the RPC: looking transactions up, raw
transactions (create, decode, send), waiting for finality and the feed of
finalized txids.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from timecoin import params
from timecoin.block import Block
from timecoin.finality import Finalized
from timecoin.mempool import PENDING
from timecoin.rpc.deferreds import shielded, then
from timecoin.rpc.errors import (
    INVALID_PARAMS,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_TYPE_ERROR,
    RPC_VERIFY_ALREADY_IN_CHAIN,
    RPCError,
)
from timecoin.rpc.params import (
    check_address,
    decode_tx,
    hex_of,
    ignored_bool,
    to_amount,
    to_flag,
    to_hash,
    to_int,
    to_seconds,
)
from timecoin.rpc.shapes import confirmations_at, tx_to_json, vote_json, wallet_entries
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut

if TYPE_CHECKING:
    from timecoin.node import Node

MAX_WAIT_SECONDS = 3_600.0
"""Longest C{waitfortransaction} timeout accepted."""
MAX_FINALIZED_FEED = 100_000
"""Finalized txids C{listfinalizedsince} remembers."""


class TransactionMethods:
    """
    The RPC methods about the transactions of one node; remembers the
    newest L{MAX_FINALIZED_FEED} txids it finalized for
    C{listfinalizedsince}.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._finalized: deque[bytes] = deque(maxlen=MAX_FINALIZED_FEED)
        self._finalized_count = 0
        node.finality.finalized.connect(self._tx_finalized)

    def _tx_finalized(self, finalized: Finalized) -> None:
        self._finalized.append(finalized.txid)
        self._finalized_count += 1

    @defer.inlineCallbacks
    def _mined_fee(self, tx: Transaction) -> Any:
        """
        The fee of a transaction archived in a block, from the outputs its
        inputs spent, or C{None} if one cannot be found.
        """
        if tx.is_coinbase:
            return None
        blocks: dict[bytes, Block] = {}
        total_in = 0
        for txin in tx.inputs:
            location = yield self.node.store.get_tx_location(
                txin.prevout.txid)
            if location is None:
                return None
            block = blocks.get(location[1])
            if block is None:
                block = yield self.node.block_by_hash(location[1])
                if block is None:
                    return None
                blocks[location[1]] = block
            prev = next((t for t in block.txs if t.txid == txin.prevout.txid),
                        None)
            if prev is None or txin.prevout.vout >= len(prev.outputs):
                return None
            total_in += prev.outputs[txin.prevout.vout].value
        return total_in - sum(o.value for o in tx.outputs)

    @defer.inlineCallbacks
    def rpc_gettransaction(self, txid: Any, include_watchonly: Any = None,  # noqa: C901
                           verbose: Any = None) -> Any:
        """
        gettransaction "txid" ( include_watchonly verbose )

        What the node knows of a transaction: txid, state (pending,
        finalized, rejected), confirmations (0 until in a block), and once
        in a block blockheight, blockhash and blocktime; fee (TIME), votes
        ([{voter, decision, height}] held, also after it is mined while
        its certificate is kept), weights ({approve, reject, total} of the
        votes over the masternode snapshot), certificate (the signed
        approving votes with their Merkle branches, once they reach the
        quorum), conflict (true while it contends with a pending spender
        of its inputs), reason (if rejected), hex.  Error -5 if the node
        never saw it.  For a wallet transaction (one listtransactions
        lists: final, paying or spending the wallet) also Bitcoin Core's
        amount (the net change of the wallet's balance, fee excluded:
        negative for a payment to others), details (its entries as
        listtransactions shows them, without the transaction fields),
        time, timereceived, blockindex once mined and trusted (true) until
        then; for any other transaction amount is 0 and details empty
        (Bitcoin Core refuses them; this node answers for any it knows).
        fee stays the transaction's fee, positive (Bitcoin Core's is
        negative and for the wallet's payments only; details' send
        entries carry that one).  confirmations counts blocks: a finalized
        transaction not yet in a block has 0 and is final all the same.
        include_watchonly (a boolean) is accepted and
        ignored (no watch-only addresses); verbose true adds decoded (the
        transaction as decoderawtransaction shows it).
        """
        tx_hash = to_hash(txid, "txid")
        ignored_bool(include_watchonly, "include_watchonly")
        decoded = ignored_bool(verbose, "verbose")
        info = yield self.node.transaction(tx_hash)
        if info is None or (info["state"] == "rejected"
                            and info.get("tx") is None):
            info = self.node.finality.info(tx_hash) or info
        if info is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "No such mempool or blockchain transaction")
        tx = info.get("tx")
        obj: dict[str, Any] = {"txid": tx_hash.hex(), "state": info["state"]}
        fee = info.get("fee")
        if info.get("height") is not None:
            obj["blockheight"] = info["height"]
            obj["blockhash"] = info["block_hash"].hex()
            obj["confirmations"] = confirmations_at(self.node.chain,
                                                    info["height"])
            block = yield self.node.block_by_hash(info["block_hash"])
            if block is not None:
                obj["blocktime"] = block.header.timestamp // 1000
            if fee is None and tx is not None:
                fee = yield self._mined_fee(tx)
        else:
            obj["confirmations"] = 0
        if fee is not None:
            obj["fee"] = params.format_amount(fee)
        cert = yield self.node.finality.certificate(tx_hash)
        votes = info.get("votes") or (cert["votes"] if cert else [])
        obj["votes"] = [v for v in map(vote_json, votes) if v is not None]
        if cert is not None:
            obj["weights"] = {"approve": cert["approve_weight"],
                              "reject": cert["reject_weight"],
                              "total": cert["total_weight"]}
            if cert["certificate"] is not None:
                obj["certificate"] = [v.to_obj() for v in cert["certificate"]]
        if info.get("conflict"):
            obj["conflict"] = True
        if info.get("reason"):
            obj["reason"] = info["reason"]
        if tx is not None:
            obj["hex"] = tx.encode().hex()
            if decoded:
                obj["decoded"] = tx_to_json(tx)
        wtx = self.node.wallet_txs.txs.get(tx_hash)
        obj["amount"] = params.format_amount(0 if wtx is None else wtx.amount)
        obj["details"] = [] if wtx is None else wallet_entries(self.node.chain,
            wtx, common=False)
        if wtx is not None:
            obj["time"] = obj["timereceived"] = wtx.time
            if wtx.block_index is not None:
                obj["blockindex"] = wtx.block_index
            if wtx.height is None:
                obj["trusted"] = True
        return obj

    @defer.inlineCallbacks
    def rpc_getrawtransaction(self, txid: Any, verbose: Any = False) -> Any:
        """
        getrawtransaction "txid" ( verbose )

        The transaction as hex of its canonical encoding, or with verbose
        true decoded (txid, version, kind, size, locktime, data, vin, vout,
        hex) plus state, and blockhash, confirmations, blocktime once in a
        block.  Error -5 if the node does not hold it.
        """
        tx_hash = to_hash(txid, "txid")
        level = to_flag(verbose, "verbose", 0, 1)
        info = yield self.node.transaction(tx_hash)
        if info is None or info.get("tx") is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "No such mempool or blockchain transaction")
        tx = info["tx"]
        if level == 0:
            return tx.encode().hex()
        obj = tx_to_json(tx)
        obj["state"] = info["state"]
        if info.get("height") is not None:
            obj["blockhash"] = info["block_hash"].hex()
            obj["confirmations"] = confirmations_at(self.node.chain,
                                                    info["height"])
            block = yield self.node.block_by_hash(info["block_hash"])
            if block is not None:
                obj["blocktime"] = block.header.timestamp // 1000
        else:
            obj["confirmations"] = 0
        return obj

    def rpc_sendrawtransaction(self, hexstring: Any, maxfeerate: Any = None,
                               maxburnamount: Any = None) -> Any:
        """
        sendrawtransaction "hexstring" ( maxfeerate maxburnamount )

        Submit a signed transaction (hex of its canonical encoding) for
        finality voting; returns its txid.  Error -22 if it does not
        decode, -27 if already in a block, -26 with the reason code (e.g.
        double-spend, fee-too-low, missing-or-spent-input) if refused.
        Submitting a transaction the mempool already holds returns its
        txid.  While the node is busy ([rpc] max_undecided transactions
        undecided, or [rpc] max_unmined finalized ones waiting for a
        block) every call gets -26 with the reason node-busy at once,
        whatever its params, before the transaction is even decoded: not a
        verdict on the transaction, send it again later.  (-26 as Bitcoin
        Core refuses with "mempool full": a refusal of this transaction
        now, with its reason code; -28 would tell clients the whole node
        is starting.)  maxfeerate and maxburnamount (amounts, as Bitcoin
        clients send them) are accepted and ignored: the fee rule of
        docs/rules.md bounds nothing from above and no output burns.
        """
        node = self.node
        node.admission.check()
        for value in (maxfeerate, maxburnamount):
            if value is not None:
                to_amount(value)
        tx = decode_tx(hexstring, self.node.decode_tx)
        txid = tx.txid
        if txid in node.mempool.entries:
            return txid.hex()
        if tx.inputs and all(txin.prevout in node.chain.utxos
                             for txin in tx.inputs):
            # Its inputs are unspent on chain, so no block holds it: no
            # store read (an SQLite query on a persistent node).
            return self._submit(tx)
        return then(node.store.get_tx_location(txid),
                    self._submit_unless_mined, tx)

    def _submit_unless_mined(self, location: Any, tx: Transaction) -> Any:
        if location is not None:
            raise RPCError(RPC_VERIFY_ALREADY_IN_CHAIN,
                           "Transaction already in block chain")
        return self._submit(tx)

    def _submit(self, tx: Transaction) -> Any:
        return then(self.node.submit(tx), hex_of)

    def rpc_createrawtransaction(self, inputs: Any, outputs: Any,
                                 locktime: Any = 0) -> str:
        """
        createrawtransaction [{"txid","vout"},...] {"address":amount,...} ( locktime )

        An unsigned transaction spending the given outpoints ({"txid":
        hex, "vout": n}) and paying the given amounts (TIME) to the given
        addresses (plus locktime, default 0), as hex of its
        canonical encoding, to sign with signrawtransactionwithwallet and
        send with sendrawtransaction.  Outputs is an object address →
        amount (kept in its order) or an array of such objects.  Each input
        names the public key of the output it spends; the node takes it
        from the wallet key owning that output, so every outpoint must be
        an output paying this wallet, unspent on chain or created by a
        finalized transaction: otherwise error -8.  No fee or change is
        added: the fee is the inputs' total minus the outputs' and must
        meet the minimum of docs/rules.md.  Errors: -8 malformed,
        duplicated or unknown input, or duplicated address; -5 bad
        address; -3 bad amount.
        """
        if not isinstance(inputs, list):
            raise RPCError(INVALID_PARAMS, "inputs must be an array")
        lock_time = to_int(0 if locktime is None else locktime, "locktime",
                           0, 2**32 - 1)
        txins: list[TxIn] = []
        seen: set[OutPoint] = set()
        for item in inputs:
            if not isinstance(item, dict):
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, input must be an object")
            if "vout" not in item:
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, missing vout key")
            outpoint = OutPoint(to_hash(item.get("txid"), "txid"),
                                to_int(item["vout"], "vout", 0, 2**32 - 1))
            if outpoint in seen:
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, duplicated input "
                               f"{outpoint}")
            seen.add(outpoint)
            entry = self.node.chain.utxos.get(outpoint) or \
                self.node.mempool.outputs.get(outpoint)
            if entry is None or not self.node.wallet.owns(entry.address):
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, input {outpoint} is not "
                               f"an unspent output of this wallet (its "
                               f"public key is unknown)")
            txins.append(TxIn(outpoint, self.node.wallet.pubkey_for(
                entry.address)))
        if isinstance(outputs, dict):
            pairs = list(outputs.items())
        elif isinstance(outputs, list) and all(
                isinstance(o, dict) and len(o) == 1 for o in outputs):
            pairs = [next(iter(o.items())) for o in outputs]
        else:
            raise RPCError(INVALID_PARAMS, "outputs must be an object "
                           "address → amount, or an array of such objects "
                           "with one key each")
        txouts: list[TxOut] = []
        addresses: set[str] = set()
        for address, amount in pairs:
            check_address(address, self.node.network)
            if address in addresses:
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, duplicated address: "
                               f"{address}")
            addresses.add(address)
            units = to_amount(amount)
            if units <= 0:
                raise RPCError(RPC_TYPE_ERROR, "Invalid amount")
            txouts.append(TxOut(units, address))
        tx = Transaction(tuple(txins), tuple(txouts), lock_time=lock_time)
        return tx.encode().hex()

    def rpc_decoderawtransaction(self, hexstring: Any) -> dict[str, Any]:
        """
        decoderawtransaction "hexstring"

        The transaction a hex string encodes (signed or not), decoded as
        getrawtransaction verbose shows it: txid, version, kind, size,
        locktime, data, vin, vout, hex.  It is not looked up or checked
        against the chain.  Error -22 if it does not decode.
        """
        return tx_to_json(decode_tx(hexstring, self.node.decode_tx))

    @defer.inlineCallbacks
    def rpc_waitfortransaction(self, txid: Any,
                               timeout_seconds: Any = 10) -> Any:
        """
        waitfortransaction "txid" ( timeout_seconds )

        Wait until the transaction is decided (finalized or rejected) or
        the timeout (default 10 s, at most 3600) passes; returns {txid,
        state, reason (if rejected)} where state is finalized, rejected,
        pending (still voting at the timeout) or unknown (never seen).
        """
        tx_hash = to_hash(txid, "txid")
        timeout = to_seconds(10 if timeout_seconds is None
                             else timeout_seconds,
                             "timeout_seconds", MAX_WAIT_SECONDS)
        info = yield self.node.transaction(tx_hash)
        if info is None or info["state"] == PENDING:
            yield shielded(self.node.finality.wait(tx_hash, timeout))
            info = yield self.node.transaction(tx_hash)
        if info is None:
            return {"txid": tx_hash.hex(), "state": "unknown"}
        obj = {"txid": tx_hash.hex(), "state": info["state"]}
        if info.get("reason"):
            obj["reason"] = info["reason"]
        return obj

    def rpc_listfinalizedsince(self, cursor: Any = 0) -> dict[str, Any]:
        """
        listfinalizedsince ( cursor )

        The txids this node finalized since cursor (a count of
        finalizations since the node started; 0 for all it remembers, the
        newest 100,000), in finalization order: {cursor (pass it to the
        next call), txids, missed (how many after the given cursor were
        forgotten already)}.  A cheap finality feed for wallets and load
        generators: no query per transaction.
        """
        since = to_int(cursor, "cursor")
        count = self._finalized_count
        since = min(since, count)
        oldest = count - len(self._finalized)
        start = max(since, oldest)
        # The newest count - start, read from the right: a poll costs what
        # it returns, not the whole kept history.
        newest = list(itertools.islice(reversed(self._finalized),
                                       count - start))
        newest.reverse()
        return {"cursor": count, "txids": [t.hex() for t in newest],
                "missed": start - since}
