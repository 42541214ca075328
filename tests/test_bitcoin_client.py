"""
A well-known Bitcoin-family JSON-RPC client, python-bitcoinrpc's
C{AuthServiceProxy}, used unchanged against a real ``twistd timecoin``
node process: the node speaks what existing Bitcoin tooling sends.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from tests.nodeprocess import NodeProcess

try:
    from bitcoinrpc.authproxy import AuthServiceProxy, JSONRPCException
except ImportError:  # pragma: no cover - the test extras are not installed
    AuthServiceProxy = JSONRPCException = None


class BitcoinClientTests(unittest.TestCase):
    """
    python-bitcoinrpc's C{AuthServiceProxy} against one devnet node.
    """

    if AuthServiceProxy is None:
        skip = "python-bitcoinrpc is not installed (pip install .[test])"

    def setUp(self) -> None:
        self.node = NodeProcess(Path(self.mktemp()).resolve(),
                                block_time=0.5)
        self.addCleanup(self.node.kill)
        self.node.start()
        self.node.wait_for(lambda: self.node.call("getblockcount") >= 1, 10)

    def proxy(self) -> Any:
        """
        A fresh C{AuthServiceProxy} with the node's cookie in its URL,
        exactly as a Bitcoin Core user would build one.
        """
        secret = (self.node.datadir / ".cookie").read_text().strip()
        user, _, password = secret.partition(":")
        self.assertEqual(user, "__cookie__")
        return AuthServiceProxy(
            f"http://__cookie__:{password}@127.0.0.1:{self.node.rpc_port}",
            timeout=10)

    def test_getblockchaininfo(self) -> None:
        """
        C{getblockchaininfo} answers the chain, a height and its best hash.
        """
        info = self.proxy().getblockchaininfo()
        self.assertGreaterEqual(info["blocks"], 1)
        self.assertEqual(len(info["bestblockhash"]), 64)
        self.assertIn("chain", info)

    def test_getblock_of_best_hash(self) -> None:
        """
        C{getblock} of the hash C{getbestblockhash} gives reads that block.
        """
        rpc = self.proxy()
        best = rpc.getbestblockhash()
        block = rpc.getblock(best)
        self.assertEqual(block["hash"], best)
        self.assertGreaterEqual(block["height"], 1)

    def test_sendtoaddress_decimal_amount(self) -> None:
        """
        C{sendtoaddress} with a Decimal amount (sent by the client as a JSON
        number) pays exactly that amount to a fresh TIME0 address, and
        amounts come back to the client as exact Decimals.
        """
        rpc = self.proxy()
        address = rpc.getnewaddress()
        self.assertTrue(address.startswith("TIME0"), address)
        txid = rpc.sendtoaddress(address, Decimal("1.25"))
        self.assertEqual(len(txid), 64)
        self.assertEqual(rpc.gettransaction(txid)["txid"], txid)
        tx = rpc.getrawtransaction(txid, True)
        paid = [o["value"] for o in tx["vout"] if o["address"] == address]
        self.assertEqual(paid, [Decimal("1.25")])
        self.assertIsInstance(paid[0], Decimal)

    def test_batch(self) -> None:
        """
        A batch through python-bitcoinlib's proxy (python-bitcoinrpc 1.0's
        C{batch_} cannot read any strict JSON-RPC 2.0 reply, ours or
        Bitcoin Core 28's: upstream bug jgarzik/python-bitcoinrpc#112)
        gets every result in order, matched by id.
        """
        from bitcoin.rpc import RawProxy
        secret = (self.node.datadir / ".cookie").read_text().strip()
        proxy = RawProxy(
            service_url=f"http://{secret}@127.0.0.1:{self.node.rpc_port}",
            timeout=10)
        replies = proxy._batch([
            {"version": "1.1", "id": 1, "method": "getblockcount",
             "params": []},
            {"version": "1.1", "id": 2, "method": "getbestblockhash",
             "params": []},
            {"version": "1.1", "id": 3, "method": "getblockhash",
             "params": [0]},
            {"version": "1.1", "id": 4, "method": "nosuchmethod",
             "params": []}])
        by_id = {r["id"]: r for r in replies}
        self.assertGreaterEqual(by_id[1]["result"], 1)
        self.assertEqual(len(by_id[2]["result"]), 64)
        self.assertEqual(by_id[3]["result"], self.proxy().getblockhash(0))
        self.assertEqual(by_id[4]["error"]["code"], -32601)

    def test_unknown_method(self) -> None:
        """
        An unknown method raises C{JSONRPCException} with -32601, and the
        same connection serves the next call.
        """
        rpc = self.proxy()
        with self.assertRaises(JSONRPCException) as caught:
            rpc.nosuchmethod()
        self.assertEqual(caught.exception.code, -32601)
        self.assertGreaterEqual(rpc.getblockcount(), 1)
