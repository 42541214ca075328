"""
The C{wallet} area of the RPC: addresses, balance, coins, payments and
signing with the node's wallet.  Its keys and encryption are in
L{timecoin.rpc.walletkeys}, its history in L{timecoin.rpc.history}.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from timecoin import params
from timecoin.address import AddressError, address_of, decode_address
from timecoin.rpc.deferreds import then
from timecoin.rpc.errors import (
    INVALID_PARAMS,
    RPC_INVALID_PARAMETER,
    RPC_METHOD_DEPRECATED,
    RPC_TYPE_ERROR,
    RPCError,
)
from timecoin.rpc.params import (
    check_address,
    decode_tx,
    dummy_star,
    hex_of,
    ignored_bool,
    ignored_int,
    to_amount,
    to_int,
    to_str,
)
from timecoin.rpc.shapes import confirmations_at
from timecoin.tx import SIG_DOMAIN, Transaction, TxIn, input_signature_ok, sighash
from timecoin.wallettxs import build_sendmany

if TYPE_CHECKING:
    from timecoin.node import Node


class WalletMethods:
    """
    The RPC methods that spend from, or look into, the wallet of one node.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def rpc_getnewaddress(self) -> str:
        """
        getnewaddress

        A new receiving address of the node's wallet: the next of its
        keypool (addresses derived ahead from its HD seed), so it works
        while the wallet is locked; error -12 when a locked wallet's
        keypool ran out (unlock it, or keypoolrefill).
        """
        return self.node.new_address()

    def rpc_getbalance(self, dummy: Any = None, minconf: Any = None,
                       include_watchonly: Any = None,
                       avoid_reuse: Any = None) -> Decimal:
        """
        getbalance ( "*" minconf include_watchonly avoid_reuse )

        The wallet's spendable balance in TIME: its outputs unspent on
        chain or created by finalized transactions, minus those locked by
        pending spenders.  The arguments Bitcoin clients send are accepted
        and ignored: dummy must be "*" (or null), minconf (an integer)
        changes nothing because a finalized transaction is final at 0
        confirmations, and the wallet has no watch-only addresses and no
        address-reuse tracking.  Error -32 if dummy is anything else (as
        Bitcoin Core).
        """
        dummy_star(dummy)
        ignored_int(minconf, "minconf")
        ignored_bool(include_watchonly, "include_watchonly")
        ignored_bool(avoid_reuse, "avoid_reuse")
        return params.format_amount(self.node.balance())

    def rpc_listunspent(self, minconf: Any = 0, maxconf: Any = 9_999_999,
                        addresses: Any = None, include_unsafe: Any = None,
                        query_options: Any = None) -> list[dict[str, Any]]:
        """
        listunspent ( minconf maxconf ["address",...] include_unsafe query_options )

        The wallet's spendable outputs with between minconf (default 0)
        and maxconf confirmations, optionally only those paying the given
        addresses: [{txid, vout, address, amount, confirmations,
        coinbase, spendable, safe}].  Outputs of finalized transactions
        not yet in a block have 0 confirmations and are spendable and
        safe (final).  include_unsafe (a boolean) is accepted and ignored:
        every listed output is final, none is unsafe.  query_options (an
        object, as Bitcoin Core's) is accepted and ignored.
        """
        ignored_bool(include_unsafe, "include_unsafe")
        if query_options is not None and not isinstance(query_options, dict):
            raise RPCError(INVALID_PARAMS, "query_options must be an object")
        low = to_int(0 if minconf is None else minconf, "minconf")
        high = to_int(9_999_999 if maxconf is None else maxconf, "maxconf")
        wanted: set[str] | None = None
        if addresses is not None:
            if not isinstance(addresses, list):
                raise RPCError(INVALID_PARAMS, "addresses must be an array")
            wanted = set()
            for address in addresses:
                address = to_str(address, "address")
                check_address(address, self.node.network)
                if address in wanted:
                    raise RPCError(RPC_INVALID_PARAMETER,
                                   f"Invalid parameter, duplicated address: "
                                   f"{address}")
                wanted.add(address)
        unmined = self.node.mempool.outputs
        coins = []
        for outpoint, entry in sorted(self.node.spendable()):
            if wanted is not None and entry.address not in wanted:
                continue
            confirmations = 0 if outpoint in unmined else \
                confirmations_at(self.node.chain, entry.height)
            if not low <= confirmations <= high:
                continue
            coins.append({
                "txid": outpoint.txid.hex(), "vout": outpoint.vout,
                "address": entry.address,
                "amount": params.format_amount(entry.value),
                "confirmations": confirmations, "coinbase": entry.coinbase,
                "spendable": True, "safe": True})
        return coins

    def rpc_sendtoaddress(self, address: Any, amount: Any,
                          comment: Any = None, comment_to: Any = None,
                          subtractfeefromamount: Any = None,
                          replaceable: Any = None, conf_target: Any = None,
                          estimate_mode: Any = None, avoid_reuse: Any = None,
                          fee_rate: Any = None, verbose: Any = None) -> Any:
        """
        sendtoaddress "address" amount ( "comment" "comment_to" subtractfee... )

        Pay amount TIME to address from the wallet, with the minimum fee
        (1,000 units + 0.1 % of the amount) and change back to the wallet;
        returns the txid.  Errors: -5 bad address (or one of another
        network), -3 bad amount, -6 insufficient funds, -26 refused
        (node-busy while the node is busy, as sendrawtransaction).

        The wallet spends outputs on chain or finalized, never those of a
        payment still being voted on: change is spendable once its payment
        finalizes (about a second; no block needed).  Sending back to back
        from a wallet with one coin, wait for each payment
        (waitfortransaction) before the next.  When the money is there
        but awaits finality, the -6 message says so and how much.

        The optional arguments Bitcoin clients send, in Bitcoin Core's
        order (comment comment_to subtractfeefromamount replaceable
        conf_target estimate_mode avoid_reuse fee_rate verbose), are
        accepted: comment
        and comment_to (strings) are ignored (the wallet keeps no notes);
        subtractfeefromamount false is the only behaviour (true is error
        -8); replaceable, conf_target, estimate_mode, avoid_reuse and
        fee_rate are ignored (finality replaces nothing and the fee is the
        fixed minimum of docs/rules.md); verbose true returns {txid,
        fee_reason} instead of the txid.
        """
        address = to_str(address, "address")
        check_address(address, self.node.network)
        units = to_amount(amount)
        if units <= 0:
            raise RPCError(RPC_TYPE_ERROR, "Invalid amount for send")
        for value, name in ((comment, "comment"), (comment_to, "comment_to"),
                            (estimate_mode, "estimate_mode")):
            if value is not None:
                to_str(value, name)
        if ignored_bool(subtractfeefromamount, "subtractfeefromamount"):
            raise RPCError(RPC_INVALID_PARAMETER, "subtractfeefromamount is "
                           "not supported: the fee is added to the amount")
        ignored_bool(replaceable, "replaceable")
        ignored_int(conf_target, "conf_target")
        ignored_bool(avoid_reuse, "avoid_reuse")
        if fee_rate is not None:
            to_amount(fee_rate)
        d = self.node.send_to_address(address, units)
        if ignored_bool(verbose, "verbose"):
            return then(d, lambda txid: {"txid": txid.hex(),
                                         "fee_reason": "Minimum fee rule"})
        return then(d, hex_of)

    def rpc_sendmany(self, dummy: Any, amounts: Any, minconf: Any = None,
                     comment: Any = None, subtractfeefrom: Any = None,
                     replaceable: Any = None, conf_target: Any = None,
                     estimate_mode: Any = None, fee_rate: Any = None,
                     verbose: Any = None) -> Any:
        """
        sendmany "" {"address":amount,...} ( minconf "comment" ... )

        (The full argument list: dummy amounts minconf comment
        subtractfeefrom replaceable conf_target estimate_mode fee_rate
        verbose.)  Pay several addresses in one transaction from the wallet, with the
        minimum fee (on the total sent) and change back to the wallet;
        returns the txid (with verbose true {txid, fee_reason}).  dummy
        must be "" or "*" (Bitcoin Core's; null also passes); minconf,
        comment, replaceable, conf_target, estimate_mode and fee_rate are
        accepted and ignored as by sendtoaddress; subtractfeefrom must be
        empty (error -8 otherwise).  Errors: -5 bad address, -8
        duplicated address, -3 bad amount, -6 insufficient funds, -26
        refused (node-busy while the node is busy).
        """
        if dummy not in (None, "", "*"):
            raise RPCError(RPC_METHOD_DEPRECATED, 'Dummy value must be set '
                           'to ""')
        if not isinstance(amounts, dict) or not amounts:
            raise RPCError(INVALID_PARAMS, "amounts must be a non-empty "
                           "object address → amount")
        ignored_int(minconf, "minconf")
        for value, name in ((comment, "comment"),
                            (estimate_mode, "estimate_mode")):
            if value is not None:
                to_str(value, name)
        if subtractfeefrom is not None:
            if not isinstance(subtractfeefrom, list):
                raise RPCError(INVALID_PARAMS, "subtractfeefrom must be an "
                               "array")
            if subtractfeefrom:
                raise RPCError(RPC_INVALID_PARAMETER, "subtractfeefrom is "
                               "not supported: the fee is added to the "
                               "amounts")
        ignored_bool(replaceable, "replaceable")
        ignored_int(conf_target, "conf_target")
        if fee_rate is not None:
            to_amount(fee_rate)
        pairs: list[tuple[str, int]] = []
        for address, amount in amounts.items():
            check_address(address, self.node.network)
            units = to_amount(amount)
            if units <= 0:
                raise RPCError(RPC_TYPE_ERROR, "Invalid amount for send")
            pairs.append((address, units))
        node = self.node
        node.admission.check()
        tx = build_sendmany(node.wallet, node.spendable(), pairs,
                            node.network.name)
        d = node.submit(tx)
        if ignored_bool(verbose, "verbose"):
            return then(d, lambda txid: {"txid": txid.hex(),
                                         "fee_reason": "Minimum fee rule"})
        return then(d, hex_of)

    def rpc_signrawtransactionwithwallet(self,
                                         hexstring: Any) -> dict[str, Any]:
        """
        signrawtransactionwithwallet "hexstring"

        Sign every input of a transaction (hex, as createrawtransaction
        makes it) whose public key belongs to the wallet; inputs already
        carrying a valid signature are kept as they are.  Returns {hex (the
        transaction with the signatures), complete (every input has a valid
        signature), errors ([{txid, vout, error}] for the inputs still
        unsigned; present only when not complete)}.  The outputs spent are
        not looked up: sendrawtransaction checks them.  Error -22 if the
        hex does not decode.
        """
        tx = decode_tx(hexstring, self.node.decode_tx)
        network = self.node.network
        signed: list[TxIn] = []
        errors: list[dict[str, Any]] = []
        for index, txin in enumerate(tx.inputs):
            if input_signature_ok(tx, network.name, index):
                signed.append(txin)
                continue
            address = address_of(txin.pubkey, network.address_prefix)
            if not self.node.wallet.owns(address):
                signed.append(txin)
                errors.append({"txid": txin.prevout.txid.hex(),
                               "vout": txin.prevout.vout,
                               "error": "Unable to sign input: its public "
                                        "key is not in the wallet"})
                continue
            key = self.node.wallet.key_for(address)
            signed.append(TxIn(txin.prevout, txin.pubkey, key.sign(
                SIG_DOMAIN, sighash(network.name, tx.txid, index))))
        result = Transaction(tuple(signed), tx.outputs, tx.kind, tx.data,
                             tx.lock_time, tx.version)
        out: dict[str, Any] = {"hex": result.encode().hex(),
                               "complete": not errors}
        if errors:
            out["errors"] = errors
        return out

    def rpc_validateaddress(self, address: Any) -> dict[str, Any]:
        """
        validateaddress "address"

        Whether address is a valid address of this network: {isvalid,
        address, ismine} or {isvalid: false, error}.
        """
        text = to_str(address, "address")
        try:
            decode_address(text, self.node.network.address_prefix)
        except AddressError as e:
            return {"isvalid": False, "error": str(e)}
        return {"isvalid": True, "address": text,
                "ismine": self.node.wallet.owns(text)}

    def rpc_getwalletinfo(self) -> dict[str, Any]:
        """
        getwalletinfo

        The wallet: {walletname (""), walletversion (2), format ("json"),
        balance (spendable TIME, as getbalance), keypoolsize (public keys
        derived ahead), unlocked_until (encrypted wallets only: 0 when
        locked, else when it locks again, seconds since the epoch),
        private_keys_enabled, hdseedid (the id of the HD seed: a hash of
        its master public key; absent for a wallet of imported keys only),
        addresses (how many handed out or imported)}.  txcount is left out:
        the node keeps no per-wallet history.
        """
        wallet = self.node.wallet
        info: dict[str, Any] = {
            "walletname": "", "walletversion": 2, "format": "json",
            "balance": params.format_amount(self.node.balance()),
            "keypoolsize": wallet.keypool_size_now(),
            "private_keys_enabled": True,
            "addresses": len(wallet.addresses())}
        if wallet.encrypted:
            info["unlocked_until"] = int(wallet.unlocked_until)
        if wallet.seed_id is not None:
            info["hdseedid"] = wallet.seed_id
        return info

    def rpc_getaddressesbylabel(self, label: Any) -> dict[str, Any]:
        """
        getaddressesbylabel "label"

        The wallet's addresses handed out or imported, oldest first, as
        {address: {purpose: "receive"}}.  The wallet has no labels: every
        address has the label "" and any other label is error -11, as in
        Bitcoin Core for an unknown label.
        """
        if to_str(label, "label") != "":
            raise RPCError(-11, f"No addresses with label {label}")
        return {a: {"purpose": "receive"}
                for a in self.node.wallet.addresses()}
