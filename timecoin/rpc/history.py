"""
Deposits and wallet history over RPC (issue 16: what exchanges call).

Entries of listtransactions, listsinceblock and gettransaction's details
come from the wallet's history (L{timecoin.wallettxs}): final
transactions only, shaped by L{timecoin.rpc.shapes.wallet_entries}.
confirmations counts blocks, as in Bitcoin; a finalized transaction not
yet in a block has 0 and is already final (it cannot be reversed,
replaced or double-spent): its entries say trusted true and final true.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from timecoin import params
from timecoin.rpc.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    RPCError,
)
from timecoin.rpc.params import check_address, ignored_bool, to_hash, to_int, to_str
from timecoin.rpc.shapes import confirmations_at, wallet_entries

if TYPE_CHECKING:
    from timecoin.node import Node


class WalletHistoryMethods:
    """
    The RPC methods that list what the wallet of one node received and
    sent.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def rpc_listtransactions(self, label: Any = None, count: Any = 10,
                             skip: Any = 0,
                             include_watchonly: Any = None) -> list[Any]:
        """
        listtransactions ( "label" count skip include_watchonly )

        The wallet's most recent final transactions, count entries
        (default 10) after skipping the skip most recent, oldest first, as
        Bitcoin Core's: [{address, category (receive, send or generate),
        amount (negative for send), label (always ""), vout, fee (send
        only, negative), abandoned (send only), final (always true),
        confirmations (blocks: 0 for a finalized transaction not yet in a
        block, which is final all the same), trusted (true when not yet
        in a block), blockhash, blockheight, blockindex, blocktime (once
        in a block), txid, time and timereceived (seconds since the
        epoch, when the node first saw it final), bip125-replaceable
        (always "no")}].  A transaction is listed once final: pending
        ones may still be rejected.  Change back to the wallet is not
        listed.  label: "*" (or null, or "", the label of every address)
        lists all; another label lists nothing (the wallet has no
        labels).  include_watchonly is accepted and ignored.  The history
        comes from the wallet's transaction log (see docs/operating.md,
        Exchanges).
        """
        wanted = "*" if label is None else to_str(label, "label")
        number = to_int(10 if count is None else count, "count")
        offset = to_int(0 if skip is None else skip, "skip")
        ignored_bool(include_watchonly, "include_watchonly")
        if wanted not in ("*", ""):
            return []
        entries: list[dict[str, Any]] = []
        for wtx in reversed(self.node.wallet_txs.order):
            if len(entries) >= number + offset:
                break
            entries[:0] = wallet_entries(self.node.chain, wtx)
        end = len(entries) - offset
        return entries[max(0, end - number):max(0, end)]

    @defer.inlineCallbacks
    def rpc_listsinceblock(self, blockhash: Any = None,
                           target_confirmations: Any = 1,
                           include_watchonly: Any = None,
                           include_removed: Any = None,
                           include_change: Any = None,
                           label: Any = None) -> Any:
        """
        listsinceblock ( "blockhash" target_confirmations include_watchonly ... )

        (The full argument list: blockhash target_confirmations
        include_watchonly include_removed include_change label.)  The
        wallet's final transactions not in blockhash or its
        ancestors, that is in later blocks or in no block yet (all of
        them without blockhash), as Bitcoin Core's: {transactions
        (entries as listtransactions shows them, oldest first), removed
        (always empty: a final transaction is never removed), lastblock
        (the hash of the main-chain block target_confirmations - 1 below
        the tip, default the tip: pass it to the next call)}.  The way
        an exchange follows deposits: call with the lastblock of the
        previous call; a finalized transaction appears first with 0
        confirmations and again once in a block.  A blockhash off the
        main chain counts from its last main-chain ancestor.
        include_change true lists change outputs too (as receive);
        include_watchonly is accepted and ignored; label "*" or null
        lists all, another lists nothing.  Error -5 if the block is
        unknown.
        """
        depth = to_int(1 if target_confirmations is None
                       else target_confirmations, "target_confirmations")
        if depth < 1:
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter")
        ignored_bool(include_watchonly, "include_watchonly")
        removed = include_removed is None or ignored_bool(
            include_removed, "include_removed")
        change = ignored_bool(include_change, "include_change")
        wanted = "*" if label is None else to_str(label, "label")
        since = -1
        if blockhash is not None and blockhash != "":
            block_hash = to_hash(blockhash, "blockhash")
            block = yield self.node.block_by_hash(block_hash)
            if block is None:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
            while block is not None:
                main = yield self.node.store.get_block_hash(block.height)
                if main == block.hash:
                    since = block.height
                    break
                block = yield self.node.block_by_hash(block.header.prev_hash)
        transactions: list[dict[str, Any]] = []
        if wanted in ("*", ""):
            for wtx in self.node.wallet_txs.order:
                if wtx.height is None or wtx.height > since:
                    transactions += wallet_entries(self.node.chain, wtx,
                                                   change)
        chain = self.node.chain
        last_height = max(0, chain.height + 1 - depth)
        if last_height == chain.height:
            last = chain.tip.hash
        else:
            last = yield self.node.store.get_block_hash(last_height)
        out: dict[str, Any] = {"transactions": transactions}
        if removed:
            out["removed"] = []
        out["lastblock"] = last.hex() if last is not None else None
        return out

    def rpc_getreceivedbyaddress(self, address: Any, minconf: Any = 1,
                                 include_immature_coinbase: Any = None
                                 ) -> Decimal:
        """
        getreceivedbyaddress "address" ( minconf include_immature_coinbase )

        The total TIME paid to address (one of the wallet's) by final
        transactions with at least minconf confirmations (default 1, as
        Bitcoin Core; 0 counts finalized transactions not yet in a
        block, which are final already).  Change returning to the address
        counts, as in Bitcoin Core.  include_immature_coinbase is accepted
        and ignored (no coinbase maturity here).  Errors: -5 invalid
        address, -4 not an address of this wallet.
        """
        text = to_str(address, "address")
        check_address(text, self.node.network)
        if not self.node.wallet.owns(text):
            raise RPCError(RPC_WALLET_ERROR, "Address not found in wallet")
        least = to_int(1 if minconf is None else minconf, "minconf")
        ignored_bool(include_immature_coinbase, "include_immature_coinbase")
        total = 0
        for wtx in self.node.wallet_txs.order:
            confirmations = 0 if wtx.height is None else \
                confirmations_at(self.node.chain, wtx.height)
            if confirmations < least:
                continue
            total += sum(value for _, to, value, category in wtx.outputs
                         if to == text and category != "send")
        return params.format_amount(total)
