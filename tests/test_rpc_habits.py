"""
Bitcoin call shapes (issue 16 item 4): the optional positional arguments
Bitcoin clients send are accepted (and ignored where they mean nothing
here), and replies come in the JSON-RPC version of each request, with the
one documented exception python-bitcoinrpc's C{batch_} needs.  In process,
against a devnet L{Node} on a L{Clock} (see L{tests.test_rpc}).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tests.helpers.rpc import HEX64, RPCTestBase
from timecoin.rpc.codec import encode_json


class CallShapeTests(RPCTestBase):
    """
    The argument lists python-bitcoinlib, python-bitcoinrpc and exchange
    scripts send, as Bitcoin Core accepts them.
    """

    def test_getbalance_star_minconf(self) -> None:
        """
        C{getbalance "*" 1 false false} (python-bitcoinlib's
        C{Proxy.getbalance} sends the first three) answers the same
        balance as C{getbalance}; a dummy other than "*" is error -32 as
        in Bitcoin Core, and a minconf that is not an integer is -32602.
        """
        plain = self.rpc("getbalance")
        self.assertEqual(self.rpc("getbalance", "*", 1), plain)
        self.assertEqual(self.rpc("getbalance", "*", 6, False, False), plain)
        self.assertEqual(self.rpc("getbalance", None, 0), plain)
        self.assertEqual(self.rpc_error("getbalance", "acct").code, -32)
        self.assertEqual(self.rpc_error("getbalance", "*", "x").code, -32602)

    def test_sendtoaddress_comments(self) -> None:
        """
        C{sendtoaddress ADDR 1 "comment" "comment_to" false} pays exactly
        1 TIME (comments ignored); subtractfeefromamount true is refused
        with -8 rather than silently paying a different amount; verbose
        true answers {txid, fee_reason}.
        """
        to = self.external_address()
        txid = self.rpc("sendtoaddress", to, 1, "comment", "comment_to",
                        False, False, 6, "unset", False, None)
        self.assertRegex(txid, HEX64)
        raw = self.rpc("getrawtransaction", txid, True)
        self.assertEqual([o["value"] for o in raw["vout"]
                          if o["address"] == to], [Decimal("1.00000000")])
        self.assertEqual(self.rpc_error("sendtoaddress", to, 1, "", "",
                                        True).code, -8)
        verbose = self.rpc("sendtoaddress", to, 1, "", "", False, None,
                           None, None, None, None, True)
        self.assertRegex(verbose["txid"], HEX64)
        self.assertIn("fee_reason", verbose)
        self.assertEqual(self.rpc_error("sendtoaddress", to, 1, 5).code,
                         -32602)

    def test_gettransaction_watchonly_verbose(self) -> None:
        """
        C{gettransaction TXID true} answers as without the flag;
        C{gettransaction TXID true true} adds decoded, the transaction as
        decoderawtransaction shows it.
        """
        txid = self.rpc("sendtoaddress", self.external_address(), 2)
        plain = self.rpc("gettransaction", txid)
        self.assertEqual(self.rpc("gettransaction", txid, True), plain)
        verbose = self.rpc("gettransaction", txid, True, True)
        self.assertEqual(verbose["decoded"],
                         self.rpc("decoderawtransaction", plain["hex"]))

    def test_listunspent_include_unsafe(self) -> None:
        """
        C{listunspent 0 9999999 [] true} lists what C{listunspent} does
        (an empty address list filters out everything, as in Bitcoin
        Core), and with null addresses every coin; each is safe.
        """
        everything = self.rpc("listunspent", 0, 9_999_999, None, True, {})
        self.assertEqual(everything, self.rpc("listunspent"))
        self.assertTrue(everything)
        self.assertTrue(all(c["safe"] for c in everything))
        self.assertEqual(self.rpc("listunspent", 0, 9_999_999, [], True), [])

    def test_sendrawtransaction_maxfeerate(self) -> None:
        """
        C{sendrawtransaction HEX 0.1} (a maxfeerate) and with a
        maxburnamount submits the transaction as without them.
        """
        to = self.external_address()
        coin = self.rpc("listunspent")[0]
        change = coin["amount"] - Decimal("11")
        raw = self.rpc("createrawtransaction",
                       [{"txid": coin["txid"], "vout": coin["vout"]}],
                       {to: 10, coin["address"]: change})
        signed = self.rpc("signrawtransactionwithwallet", raw)
        txid = self.rpc("sendrawtransaction", signed["hex"], 0.1, 0)
        self.assertEqual(self.rpc("gettransaction", txid)["state"],
                         "finalized")
        self.assertEqual(self.rpc_error("sendrawtransaction", signed["hex"],
                                        "x").code, -3)


class ReplyVersionTests(RPCTestBase):
    """
    Each request of a batch is answered in its own JSON-RPC version.
    """

    def raw_batch(self, batch: list[dict[str, Any]],
                  agent: str | None = None) -> list[dict[str, Any]]:
        """
        POST a batch, optionally with a User-Agent; the decoded replies.
        """
        headers = {"Content-Type": "application/json",
                   "Authorization": self.auth}
        if agent is not None:
            headers["User-Agent"] = agent
        d = self.stub.request("POST", "http://127.0.0.1:24201/",
                              data=encode_json(batch).encode(),
                              headers=headers)
        self.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(self.stub.content(response))
        replies: list[dict[str, Any]] = json.loads(body)
        return replies

    def test_mixed_versions(self) -> None:
        """
        In one batch a 1.0 request gets {result, error: null, id} and a
        2.0 request gets {jsonrpc, result, id} without an error member.
        """
        replies = self.raw_batch([
            {"id": 1, "method": "getblockcount"},
            {"jsonrpc": "2.0", "id": 2, "method": "getblockcount"},
            {"version": "1.1", "id": 3, "method": "getblockcount"}])
        self.assertEqual(replies, [
            {"result": 0, "error": None, "id": 1},
            {"jsonrpc": "2.0", "result": 0, "id": 2},
            {"result": 0, "error": None, "id": 3}])

    def test_python_bitcoinrpc_batch(self) -> None:
        """
        python-bitcoinrpc's C{batch_} (User-Agent C{AuthServiceProxy/0.1},
        2.0 requests) gets C{"error": null} in its successful replies and
        the error object in failed ones; another client sending the same
        batch gets strict 2.0 replies.
        """
        batch = [{"jsonrpc": "2.0", "id": 1, "method": "getblockcount",
                  "params": []},
                 {"jsonrpc": "2.0", "id": 2, "method": "nosuch",
                  "params": []}]
        replies = self.raw_batch(batch, "AuthServiceProxy/0.1")
        self.assertEqual(replies[0], {"jsonrpc": "2.0", "result": 0,
                                      "id": 1, "error": None})
        self.assertEqual(replies[1]["error"]["code"], -32601)
        strict = self.raw_batch(batch, "curl/8.0")
        self.assertEqual(strict[0], {"jsonrpc": "2.0", "result": 0, "id": 1})
