"""
Tests of the JSON-RPC server (L{timecoin.rpc}): authentication, JSON-RPC
1.0/2.0 framing, batches, errors, body limits, and every method, against a
real devnet L{Node} on a L{MemoryStore} and a L{Clock}, over HTTP in
process with L{StubTreq}.
"""

from __future__ import annotations

import inspect
import json
import os
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from tests.helpers.rpc import HEX64, URL, RPCTestBase, basic
from timecoin import params
from timecoin.block import Block
from timecoin.config import Config
from timecoin.node import DEVNET_FUNDS
from timecoin.rpc.auth import BasicAuth
from timecoin.rpc.chain import ChainMethods
from timecoin.rpc.control import ControlMethods
from timecoin.rpc.dispatch import MAX_BATCH
from timecoin.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RPC_IN_WARMUP,
    UNAUTHORIZED,
)
from timecoin.rpc.methods import AREAS, RPCMethods, method_docs
from timecoin.rpc.server import RPCServer
from timecoin.rpc.settings import RPCSettings
from timecoin.rpc.site import build_rpc_site
from timecoin.rpc.table import DuplicateMethod, area_methods, method_table
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint, Transaction
from timecoin.wallet import Wallet
from timecoin.wiring import build


class AuthTests(RPCTestBase):
    """
    HTTP Basic authentication by cookie or configured user/password.
    """

    def test_no_auth(self) -> None:
        """
        A request without credentials gets 401, a Basic challenge for the
        jsonrpc realm, and a JSON error body.
        """
        status, headers, body = self.http(
            '{"method": "getblockcount", "id": 1}', auth=None)
        self.assertEqual(status, 401)
        self.assertEqual(headers.getRawHeaders("WWW-Authenticate"),
                         ['Basic realm="jsonrpc"'])
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["application/json"])
        self.assertEqual(json.loads(body)["error"]["code"], UNAUTHORIZED)

    def test_wrong_cookie(self) -> None:
        """
        The cookie user with another secret, a non-Basic scheme, or
        undecodable base64 are all refused with 401.
        """
        for auth in (basic("__cookie__", "0" * 64), "Bearer abc",
                     "Basic !!!notbase64"):
            status, _, body = self.http('{"method": "getblockcount"}',
                                        auth=auth)
            self.assertEqual(status, 401, auth)
            self.assertEqual(json.loads(body)["error"]["code"], UNAUTHORIZED)

    def test_cookie(self) -> None:
        """
        The cookie file holds C{__cookie__:} and a 64-hex secret, has mode
        0600, and its content is accepted as Basic credentials.
        """
        path = Path(self.config.datadir) / ".cookie"
        user, _, secret = path.read_text().partition(":")
        self.assertEqual(user, "__cookie__")
        self.assertRegex(secret, HEX64)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        status, reply = self.post({"method": "getblockcount", "id": 1})
        self.assertEqual((status, reply["result"]), (200, 0))

    def test_fresh_cookie_each_start(self) -> None:
        """
        Building the site again (a restart) writes a new secret; the old
        cookie no longer authenticates against the new site.
        """
        old_auth = self.auth
        site = build_rpc_site(self.node, self.config)
        cookie = (Path(self.config.datadir) / ".cookie").read_text()
        self.assertNotEqual(basic(*cookie.split(":")), old_auth)
        stub = StubTreq(site.resource)
        status, _, _ = self.http('{"method": "uptime"}', auth=old_auth,
                                 stub=stub)
        self.assertEqual(status, 401)
        status, _, _ = self.http('{"method": "uptime"}',
                                 auth=basic(*cookie.split(":")), stub=stub)
        self.assertEqual(status, 200)

    def test_user_password(self) -> None:
        """
        With rpc_user and rpc_password configured, those credentials are
        accepted as well as the cookie; a wrong password is not.
        """
        config = self.make_config(rpc_user="alice", rpc_password="s3cret")
        stub = StubTreq(build_rpc_site(self.node, config).resource)
        status, _, body = self.http('{"method": "getblockcount", "id": 1}',
                                    auth=basic("alice", "s3cret"), stub=stub)
        self.assertEqual((status, json.loads(body)["result"]), (200, 0))
        status, _, _ = self.http('{"method": "getblockcount"}',
                                 auth=basic("alice", "s3cre"), stub=stub)
        self.assertEqual(status, 401)

    def test_user_without_password(self) -> None:
        """
        A configured user without a password enables no credentials: an
        empty password is never accepted.
        """
        auth = BasicAuth([("__cookie__", "x" * 64)])
        self.assertFalse(auth.check(basic("alice", "").encode()))
        config = self.make_config(rpc_user="alice")
        stub = StubTreq(build_rpc_site(self.node, config).resource)
        status, _, _ = self.http('{"method": "uptime"}',
                                 auth=basic("alice", ""), stub=stub)
        self.assertEqual(status, 401)


class FramingTests(RPCTestBase):
    """
    JSON-RPC 1.0 and 2.0 request and response shapes.
    """

    def test_legacy_shape(self) -> None:
        """
        A request without C{jsonrpc} gets exactly C{result}, C{error}
        (null) and C{id}.
        """
        status, reply = self.post({"method": "getblockcount", "params": [],
                                   "id": 1})
        self.assertEqual(status, 200)
        self.assertEqual(reply, {"result": 0, "error": None, "id": 1})

    def test_legacy_version_member(self) -> None:
        """
        C{"jsonrpc": "1.0"} (as old documentation sent) is a 1.0 request.
        """
        _, reply = self.post({"jsonrpc": "1.0", "method": "getblockcount",
                              "id": "a"})
        self.assertEqual(reply, {"result": 0, "error": None, "id": "a"})

    def test_legacy_error_shape(self) -> None:
        """
        A 1.0 error reply has a null C{result} and Bitcoin Core's HTTP
        status: 404 for an unknown method, 500 for other errors.
        """
        status, reply = self.post({"method": "nosuch", "id": 3})
        self.assertEqual(status, 404)
        self.assertEqual(reply, {"result": None, "id": 3, "error": {
            "code": METHOD_NOT_FOUND, "message": "Method not found"}})
        status, reply = self.post({"method": "getblockhash",
                                   "params": [99], "id": 4})
        self.assertEqual(status, 500)
        self.assertEqual(reply["error"]["code"], -8)

    def test_v2_shape(self) -> None:
        """
        A 2.0 success reply has C{jsonrpc}, C{result} and C{id}, and no
        C{error} member.
        """
        status, reply = self.post({"jsonrpc": "2.0", "method":
                                   "getblockcount", "id": 1})
        self.assertEqual(status, 200)
        self.assertEqual(reply, {"jsonrpc": "2.0", "result": 0, "id": 1})

    def test_v2_error_shape(self) -> None:
        """
        A 2.0 error reply has C{jsonrpc}, C{error} and C{id}, no
        C{result}, and HTTP status 200.
        """
        status, reply = self.post({"jsonrpc": "2.0", "method": "nosuch",
                                   "id": 2})
        self.assertEqual(status, 200)
        self.assertEqual(reply, {"jsonrpc": "2.0", "id": 2, "error": {
            "code": METHOD_NOT_FOUND, "message": "Method not found"}})

    def test_ids(self) -> None:
        """
        Numeric (integer, fractional, huge), string, null and structured
        ids are echoed unchanged, in 1.0 and 2.0.
        """
        for request_id in (0, -5, 12345678901234567890, Decimal("1.25"),
                           "abc", "", None, [1, "x"], {"k": 1}):
            for version in ({}, {"jsonrpc": "2.0"}):
                _, reply = self.post(dict(version, method="getblockcount",
                                          id=request_id))
                self.assertEqual(reply["id"], request_id)
                self.assertEqual(reply["result"], 0)

    def test_fractional_id_text(self) -> None:
        """
        A fractional id is echoed with its exact digits, not as a float.
        """
        _, _, raw = self.http('{"method": "uptime", "id": 0.10000000000000001}')
        self.assertIn(b'"id":0.10000000000000001', raw)

    def test_notification(self) -> None:
        """
        A 2.0 request without an id is a notification: it runs, and the
        answer is HTTP 204 with no body.
        """
        status, _, body = self.http(
            '{"jsonrpc": "2.0", "method": "getnewaddress"}')
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(len(self.node.wallet.addresses()), 2)

    def test_legacy_without_id(self) -> None:
        """
        A 1.0 request without an id is answered, with a null id.
        """
        _, reply = self.post({"method": "getblockcount"})
        self.assertEqual(reply, {"result": 0, "error": None, "id": None})

    def test_named_params(self) -> None:
        """
        Named params bind by name, and mix with defaults.
        """
        genesis = self.node.chain.tip.hash.hex()
        self.assertEqual(self.rpc_named("getblockhash", height=0), genesis)
        self.assertEqual(
            self.rpc_named("getblock", blockhash=genesis, verbosity=0),
            self.node.chain.tip.encode().hex())
        self.assertEqual(self.rpc_named("getblock", blockhash=genesis)["hash"],
                         genesis)

    def rpc_named(self, method: str, **params: Any) -> Any:
        """
        Call C{method} with named params; return the result.
        """
        _, reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method,
                              "params": params})
        self.assertNotIn("error", reply)
        return reply["result"]

    def test_positional_params(self) -> None:
        """
        Positional params bind in order; omitted optional ones take their
        defaults, and null stands for an omitted one.
        """
        genesis = self.node.chain.tip.hash.hex()
        self.assertEqual(self.rpc("getblockhash", 0), genesis)
        self.assertIsInstance(self.rpc("getblock", genesis), dict)
        self.assertIsInstance(self.rpc("getblock", genesis, None), dict)
        self.assertIsInstance(self.rpc("getblock", genesis, 0), str)

    def test_parse_error(self) -> None:
        """
        A body that is not JSON (or NaN, or absurdly nested) gets -32700
        as a JSON body, with a null id.
        """
        for body in (b"{not json", b'{"method": "x", "id": NaN}',
                     b"[" * 100_000, b"\xff\xfe\x00"):
            status, headers, raw = self.http(body)
            self.assertEqual(status, 500)
            reply = json.loads(raw)
            self.assertEqual(reply["error"]["code"], PARSE_ERROR)
            self.assertIsNone(reply["id"])

    def test_empty_body(self) -> None:
        """
        An empty POST body is a parse error, in JSON.
        """
        status, _, raw = self.http(b"")
        self.assertEqual(json.loads(raw)["error"]["code"], PARSE_ERROR)

    def test_invalid_request(self) -> None:
        """
        A request that is not an object, whose method is not a string,
        whose params are neither array nor object, or whose version is
        unknown gets -32600 (HTTP 400 in 1.0).
        """
        for obj in (5, "getblockcount", {"id": 1}, {"method": 5, "id": 1},
                    {"method": "getblockcount", "params": 5, "id": 1},
                    {"method": "getblockcount", "params": "x", "id": 1},
                    {"jsonrpc": "3.0", "method": "getblockcount", "id": 1}):
            status, reply = self.post(obj)
            self.assertEqual(status, 400, obj)
            self.assertEqual(reply["error"]["code"], INVALID_REQUEST, obj)
        status, reply = self.post({"jsonrpc": "2.0", "method": 5, "id": 9})
        self.assertEqual((status, reply["id"]), (200, 9))
        self.assertEqual(reply["error"]["code"], INVALID_REQUEST)

    def test_method_not_found(self) -> None:
        """
        An unknown method gets -32601.
        """
        self.assertEqual(self.rpc_error("getinfo").code, METHOD_NOT_FOUND)

    def test_invalid_params(self) -> None:
        """
        Too many positional params, an unknown or missing named param, and
        a param of the wrong type get -32602.
        """
        self.assertEqual(self.rpc_error("getblockcount", 1).code,
                         INVALID_PARAMS)
        self.assertEqual(self.rpc_error("getblockhash").code, INVALID_PARAMS)
        self.assertEqual(self.rpc_error("getblockhash", "0").code,
                         INVALID_PARAMS)
        self.assertEqual(self.rpc_error("getblockhash", True).code,
                         INVALID_PARAMS)
        _, reply = self.post({"jsonrpc": "2.0", "id": 1, "method":
                              "getblockhash", "params": {"heigth": 0}})
        self.assertEqual(reply["error"]["code"], INVALID_PARAMS)

    def test_batch(self) -> None:
        """
        A batch answers an array in request order, errors included, with
        notifications left out, and HTTP 200.
        """
        status, reply = self.post([
            {"jsonrpc": "2.0", "method": "getblockcount", "id": 1},
            {"method": "nosuch", "id": "b"},
            {"jsonrpc": "2.0", "method": "uptime"},
            7,
            {"jsonrpc": "2.0", "method": "getblockhash", "params": [0],
             "id": None},
        ])
        self.assertEqual(status, 200)
        self.assertEqual(len(reply), 4)
        self.assertEqual(reply[0], {"jsonrpc": "2.0", "result": 0, "id": 1})
        self.assertEqual(reply[1]["error"]["code"], METHOD_NOT_FOUND)
        self.assertEqual(reply[1]["id"], "b")
        self.assertEqual(reply[2]["error"]["code"], INVALID_REQUEST)
        self.assertEqual(reply[3]["result"], self.node.chain.tip.hash.hex())
        self.assertIsNone(reply[3]["id"])

    def test_batch_of_notifications(self) -> None:
        """
        A batch of only notifications gets HTTP 204 and no body.
        """
        status, _, body = self.http(json.dumps(
            [{"jsonrpc": "2.0", "method": "uptime"}] * 3))
        self.assertEqual((status, body), (204, b""))

    def test_batch_bounds(self) -> None:
        """
        An empty batch and one over L{MAX_BATCH} requests are refused
        whole with -32600; a batch of exactly L{MAX_BATCH} is served.
        """
        one = {"jsonrpc": "2.0", "method": "getblockcount", "id": 1}
        for batch in ([], [one] * (MAX_BATCH + 1)):
            status, reply = self.post(batch)
            self.assertEqual(status, 400)
            self.assertEqual(reply["error"]["code"], INVALID_REQUEST)
        status, reply = self.post([one] * MAX_BATCH)
        self.assertEqual((status, len(reply)), (200, MAX_BATCH))

    def test_body_too_large(self) -> None:
        """
        A body over C{rpc_max_body_bytes} gets 413 with a JSON error and
        is not run.
        """
        config = self.make_config(rpc_max_body_bytes=200)
        stub = StubTreq(build_rpc_site(self.node, config).resource)
        cookie = (Path(config.datadir) / ".cookie").read_text()
        auth = basic(*cookie.split(":"))
        body = json.dumps({"jsonrpc": "2.0", "method": "getnewaddress",
                           "id": "x" * 300})
        status, headers, raw = self.http(body, auth=auth, stub=stub)
        self.assertEqual(status, 413)
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["application/json"])
        self.assertEqual(json.loads(raw)["error"]["code"], INVALID_REQUEST)
        self.assertEqual(len(self.node.wallet.addresses()), 1)
        status, _, _ = self.http('{"method": "uptime"}', auth=auth, stub=stub)
        self.assertEqual(status, 200)

    def test_other_http_methods_and_paths(self) -> None:
        """
        PUT on C{/} gets 405 (with C{Allow: GET, POST}: GET is the status
        page) and an unknown path 404, both as JSON, never HTML.
        """
        status, headers, raw = self.http(b"", method="PUT")
        self.assertEqual(status, 405)
        self.assertEqual(headers.getRawHeaders("Allow"), ["GET, POST"])
        self.assertEqual(json.loads(raw)["error"]["code"], INVALID_REQUEST)
        status, headers, raw = self.http(b"{}", url=URL + "wallet")
        self.assertEqual(status, 404)
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["application/json"])
        json.loads(raw)

    def test_amount_encoding(self) -> None:
        """
        Amounts are JSON numbers with exactly 8 decimals.
        """
        _, _, raw = self.http('{"method": "getbalance", "id": 1}')
        self.assertIn(b'"result":1000000.00000000', raw)
        _, _, raw = self.http('{"method": "getmempoolinfo", "id": 1}')
        self.assertIn(b'"total_fee":0.00000000', raw)


class ServerTests(unittest.TestCase):
    """
    L{RPCServer} with a registry of its own.
    """

    def call(self, server: RPCServer, obj: Any) -> Any:
        """
        Run C{obj} through C{server}; return the decoded reply.
        """
        status, body = self.successResultOf(
            server.handle_body(json.dumps(obj).encode()))
        return json.loads(body)

    def test_internal_error(self) -> None:
        """
        A method raising an unexpected exception gets -32603 "Internal
        error" with no traceback or exception text, and the failure is
        logged.
        """
        def boom() -> None:
            """
            boom
            """
            raise ZeroDivisionError("secret detail")

        server = RPCServer({"boom": boom}, BasicAuth([]), 1000)
        reply = self.call(server, {"method": "boom", "id": 1})
        self.assertEqual(reply["error"], {"code": INTERNAL_ERROR,
                                          "message": "Internal error"})
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_warmup(self) -> None:
        """
        While the node is not ready, chain methods get -28 and C{uptime},
        C{help} and C{stop} still answer.
        """
        clock = Clock()
        config = Config(network="devnet", datadir=self.mktemp())
        config.resolve()
        node = build(config, clock, store=MemoryStore(), with_p2p=False).node
        server = RPCServer(RPCMethods(node).registry(), BasicAuth([]), 1000,
                           ready=lambda: False)
        reply = self.call(server, {"method": "getblockcount", "id": 1})
        self.assertEqual(reply["error"]["code"], RPC_IN_WARMUP)
        reply = self.call(server, {"method": "uptime", "id": 1})
        self.assertEqual(reply["result"], 0)

    def test_bounded_request(self) -> None:
        """
        Over a real HTTP channel, the site refuses a body whose declared
        length exceeds its limit with 413 and JSON, without buffering it;
        a small body is served.
        """
        clock = Clock()
        config = Config(network="devnet", datadir=self.mktemp(),
                        rpc=RPCSettings(max_body_bytes=100))
        config.resolve()
        node = build(config, clock, store=MemoryStore(), with_p2p=False).node
        node.startService()
        self.addCleanup(node.stopService)
        site = build_rpc_site(node, config)
        cookie = (Path(config.datadir) / ".cookie").read_text()
        auth = basic(*cookie.split(":")).encode()
        for body, expect in ((b"x" * 5000, b"413"),
                             (b'{"method":"getblockcount","id":1}', b"200")):
            client = IPv4Address("TCP", "127.0.0.1", 1)
            channel = site.buildProtocol(client)
            transport = StringTransport(peerAddress=client)
            channel.makeConnection(transport)
            channel.dataReceived(
                b"POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: "
                + auth + b"\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\n\r\n" + body)
            response = transport.value()
            self.assertTrue(response.startswith(b"HTTP/1.1 " + expect),
                            response[:80])
            self.assertIn(b"application/json", response)
            channel.connectionLost(None)


class BlockchainMethodTests(RPCTestBase):
    """
    Chain queries: getblockchaininfo, getblockcount, getbestblockhash,
    getblockhash, getblock, gettxoutsetinfo.
    """

    def test_blockchaininfo(self) -> None:
        """
        getblockchaininfo names the network and reports the tip, a median
        time in seconds, full progress and the UTXO hash.
        """
        self.block()
        info = self.rpc("getblockchaininfo")
        self.assertEqual(info["chain"], "devnet")
        self.assertEqual((info["blocks"], info["headers"]), (1, 1))
        self.assertEqual(info["bestblockhash"], self.node.chain.tip.hash.hex())
        self.assertEqual(info["verificationprogress"], 1)
        self.assertIs(info["initialblockdownload"], False)
        self.assertEqual(info["utxo_hash"], self.node.chain.utxo_hash().hex())
        self.assertEqual(info["mediantime"],
                         self.node.chain.tip.header.timestamp // 1000)

    def test_counts_and_hashes(self) -> None:
        """
        getblockcount and getbestblockhash follow the tip; getblockhash
        maps heights to main-chain hashes and refuses heights outside the
        chain with -8.
        """
        genesis = self.node.chain.tip.hash.hex()
        self.block()
        self.block()
        self.assertEqual(self.rpc("getblockcount"), 2)
        self.assertEqual(self.rpc("getbestblockhash"),
                         self.node.chain.tip.hash.hex())
        self.assertEqual(self.rpc("getblockhash", 0), genesis)
        self.assertEqual(self.rpc("getblockhash", 2),
                         self.node.chain.tip.hash.hex())
        for height in (3, -1, 2**70):
            self.assertEqual(self.rpc_error("getblockhash", height).code, -8)

    def test_getblock_verbosity(self) -> None:
        """
        getblock verbosity 0 is the canonical encoding in hex; 1 has the
        header fields, txids, confirmations and links to the neighbours;
        2 has decoded transactions.
        """
        genesis = self.node.chain.tip
        self.block()
        tip = self.node.chain.tip
        raw = self.rpc("getblock", tip.hash.hex(), 0)
        self.assertEqual(Block.decode(bytes.fromhex(raw)).hash, tip.hash)
        one = self.rpc("getblock", tip.hash.hex())
        self.assertEqual(one["hash"], tip.hash.hex())
        self.assertEqual(one["height"], 1)
        self.assertEqual(one["tx"], [t.txid.hex() for t in tip.txs])
        self.assertEqual(one["size"], tip.size)
        self.assertEqual(one["confirmations"], 1)
        self.assertEqual(one["producer"], self.node.key.public.hex())
        self.assertEqual(one["round"], 0)
        self.assertEqual(one["previousblockhash"], genesis.hash.hex())
        self.assertNotIn("nextblockhash", one)
        first = self.rpc("getblock", genesis.hash.hex(), 1)
        self.assertNotIn("previousblockhash", first)
        self.assertEqual(first["nextblockhash"], tip.hash.hex())
        self.assertEqual(first["confirmations"], 2)
        two = self.rpc("getblock", tip.hash.hex(), 2)
        coinbase = two["tx"][0]
        self.assertEqual(coinbase["txid"], tip.txs[0].txid.hex())
        self.assertEqual(coinbase["kind"], "coinbase")
        self.assertEqual(coinbase["vout"][0]["value"],
                         params.format_amount(tip.txs[0].outputs[0].value))
        self.assertEqual(
            Transaction.decode(bytes.fromhex(coinbase["hex"])).txid,
            tip.txs[0].txid)

    def test_getblock_errors(self) -> None:
        """
        getblock of an unknown hash is -5; a malformed hash or verbosity
        is -8.
        """
        self.assertEqual(self.rpc_error("getblock", "ab" * 32).code, -5)
        self.assertEqual(self.rpc_error("getblock", "ab").code, -8)
        self.assertEqual(self.rpc_error("getblock", "zz" * 32).code, -8)
        self.assertEqual(self.rpc_error(
            "getblock", self.node.chain.tip.hash.hex(), 3).code, -8)

    def test_txoutsetinfo(self) -> None:
        """
        gettxoutsetinfo reports the genesis funds, one output, and a 64-hex
        UTXO hash equal to the chain's.
        """
        info = self.rpc("gettxoutsetinfo")
        self.assertEqual(info["height"], 0)
        self.assertEqual(info["txouts"], 1)
        self.assertEqual(info["total_amount"],
                         params.format_amount(DEVNET_FUNDS))
        self.assertRegex(info["utxo_hash"], HEX64)
        self.assertEqual(info["utxo_hash"], self.node.chain.utxo_hash().hex())
        self.assertEqual(info["bestblock"], self.node.chain.tip.hash.hex())


class TransactionMethodTests(RPCTestBase):
    """
    Payments, their finality and their records.
    """

    def test_send_finalize_confirm(self) -> None:
        """
        sendtoaddress returns a txid that gettransaction shows finalized at
        once (1-of-1 devnet quorum) with the node's approving vote and
        0 confirmations; after a block time it is in block 1 with one
        confirmation, and its fee is still reported.
        """
        txid = self.rpc("sendtoaddress", self.external_address(), 12.5)
        self.assertRegex(txid, HEX64)
        info = self.rpc("gettransaction", txid)
        self.assertEqual(info["state"], "finalized")
        self.assertEqual(info["confirmations"], 0)
        self.assertNotIn("blockheight", info)
        self.assertEqual(info["votes"], [{
            "voter": self.node.key.public.hex(), "decision": "approve",
            "height": 0}])
        fee = params.min_fee(12_5000_0000)
        self.assertEqual(info["fee"], params.format_amount(fee))
        self.assertEqual(Transaction.decode(bytes.fromhex(info["hex"])).txid
                         .hex(), txid)
        self.block()
        info = self.rpc("gettransaction", txid)
        self.assertEqual(info["state"], "finalized")
        self.assertEqual(info["blockheight"], 1)
        self.assertEqual(info["blockhash"], self.rpc("getblockhash", 1))
        self.assertGreaterEqual(info["confirmations"], 1)
        self.assertEqual(info["fee"], params.format_amount(fee))
        self.block()
        self.assertEqual(self.rpc("gettransaction", txid)["confirmations"], 2)

    def test_balance_drops_by_amount_and_fee(self) -> None:
        """
        Paying an address of a second wallet lowers the sender's balance
        by exactly amount + fee, to the unit, and the second wallet's
        address receives exactly the amount.
        """
        other = Wallet(Path(self.mktemp()) / "wallet.json", "TIME0")
        other.load()
        to = other.addresses()[0]
        before = self.rpc("getbalance")
        amount = Decimal("1234.56789012")
        txid = self.rpc("sendtoaddress", to, amount)
        after = self.rpc("getbalance")
        units = params.parse_amount(amount)
        fee = params.min_fee(units)
        self.assertEqual(params.parse_amount(before - after), units + fee)
        self.assertEqual(self.rpc("gettransaction", txid)["fee"],
                         params.format_amount(fee))
        vout = self.rpc("getrawtransaction", txid, True)["vout"]
        self.assertIn({"value": amount, "n": 0, "address": to}, vout)
        self.assertEqual(self.node.balance(), DEVNET_FUNDS - units - fee)

    def test_send_string_amount(self) -> None:
        """
        An amount given as a decimal string is exact.
        """
        self.rpc("sendtoaddress", self.external_address(), "0.00001")
        self.assertEqual(self.node.balance(),
                         DEVNET_FUNDS - 1000 - params.min_fee(1000))

    def test_send_errors(self) -> None:
        """
        sendtoaddress refuses a mainnet or malformed address (-5), a zero,
        negative, over-precise or non-numeric amount (-3), and more than
        the wallet holds (-6).
        """
        to = self.external_address()
        self.assertEqual(self.rpc_error(
            "sendtoaddress", self.external_address("TIME1"), 1).code, -5)
        self.assertEqual(self.rpc_error("sendtoaddress", "TIME0xyz", 1).code,
                         -5)
        for amount in (0, -1, "1.123456789", "abc", True, [1]):
            self.assertEqual(self.rpc_error("sendtoaddress", to,
                                            amount).code, -3, amount)
        self.assertEqual(self.rpc_error("sendtoaddress", to,
                                        2_000_000).code, -6)
        self.assertEqual(self.node.balance(), DEVNET_FUNDS)

    def test_double_spend_refused(self) -> None:
        """
        sendrawtransaction of a transaction spending an output a finalized
        payment already spends is refused with -26 naming double-spend.
        """
        coins = self.node.spendable()
        self.rpc("sendtoaddress", self.external_address(), 10)
        conflict = self.node.wallet.build_payment(
            coins, self.external_address(), 20 * params.COIN, "devnet")
        error = self.rpc_error("sendrawtransaction", conflict.encode().hex())
        self.assertEqual(error.code, -26)
        self.assertIn("double-spend", error.message)
        info = self.rpc("gettransaction", conflict.txid.hex())
        self.assertEqual(info["state"], "rejected")
        self.assertEqual(info["reason"], "double-spend")

    def test_sendrawtransaction(self) -> None:
        """
        sendrawtransaction of a valid signed transaction returns its txid
        and the transaction finalizes; sending it again returns the txid;
        once mined it is -27.
        """
        tx = self.node.wallet.build_payment(
            self.node.spendable(), self.external_address(), params.COIN,
            "devnet")
        txid = self.rpc("sendrawtransaction", tx.encode().hex())
        self.assertEqual(txid, tx.txid.hex())
        self.assertEqual(self.rpc("gettransaction", txid)["state"],
                         "finalized")
        self.assertEqual(self.rpc("sendrawtransaction", tx.encode().hex()),
                         txid)
        self.block()
        self.assertEqual(self.rpc_error("sendrawtransaction",
                                        tx.encode().hex()).code, -27)

    def test_sendrawtransaction_decode_error(self) -> None:
        """
        Hex that is not a canonical transaction is -22.
        """
        for raw in ("zz", "7b7d", ""):
            self.assertEqual(self.rpc_error("sendrawtransaction", raw).code,
                             -22)

    def test_sendrawtransaction_invalid(self) -> None:
        """
        A transaction spending an output that does not exist is -26 with
        its reason code.
        """
        tx = self.node.wallet.build_payment(
            [(OutPoint(b"\x01" * 32, 0),
              self.node.chain.utxos[next(iter(self.node.chain.utxos))])],
            self.external_address(), params.COIN, "devnet")
        error = self.rpc_error("sendrawtransaction", tx.encode().hex())
        self.assertEqual(error.code, -26)
        self.assertIn("missing-or-spent-input", error.message)

    def test_gettransaction_unknown(self) -> None:
        """
        gettransaction and getrawtransaction of an unknown txid are -5.
        """
        self.assertEqual(self.rpc_error("gettransaction", "00" * 32).code, -5)
        self.assertEqual(self.rpc_error("getrawtransaction", "00" * 32).code,
                         -5)

    def test_getrawtransaction(self) -> None:
        """
        getrawtransaction returns the canonical hex, or with verbose the
        decoded transaction with its state and, once mined, its block.
        """
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        raw = self.rpc("getrawtransaction", txid)
        self.assertEqual(Transaction.decode(bytes.fromhex(raw)).txid.hex(),
                         txid)
        decoded = self.rpc("getrawtransaction", txid, True)
        self.assertEqual((decoded["txid"], decoded["state"]),
                         (txid, "finalized"))
        self.assertEqual(decoded["confirmations"], 0)
        self.block()
        decoded = self.rpc("getrawtransaction", txid, 1)
        self.assertEqual(decoded["blockhash"], self.rpc("getbestblockhash"))
        self.assertEqual(decoded["confirmations"], 1)

    def test_waitfortransaction_decided(self) -> None:
        """
        waitfortransaction of a finalized transaction answers at once,
        also after it is mined.
        """
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        self.assertEqual(self.rpc("waitfortransaction", txid),
                         {"txid": txid, "state": "finalized"})
        self.block()
        self.assertEqual(self.rpc("waitfortransaction", txid, 0),
                         {"txid": txid, "state": "finalized"})

    def test_waitfortransaction_timeout(self) -> None:
        """
        waitfortransaction of a transaction the node never sees answers
        "unknown" once the timeout has passed on the node's clock, not
        before.
        """
        d = self.stub.post(URL, headers={"Authorization": self.auth},
                           data=json.dumps({"method": "waitfortransaction",
                                            "params": ["11" * 32, 5],
                                            "id": 1}).encode())
        self.stub.flush()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.stub.flush()
        response = self.successResultOf(d)
        reply = json.loads(self.successResultOf(self.stub.content(response)))
        self.assertEqual(reply["result"], {"txid": "11" * 32,
                                           "state": "unknown"})

    def test_waitfortransaction_bad_timeout(self) -> None:
        """
        A negative or too long timeout is -8.
        """
        for timeout in (-1, 100_000):
            self.assertEqual(self.rpc_error("waitfortransaction", "11" * 32,
                                            timeout).code, -8)

    def test_mempool(self) -> None:
        """
        getmempoolinfo and getrawmempool show a finalized payment until a
        block archives it.
        """
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        info = self.rpc("getmempoolinfo")
        self.assertEqual((info["size"], info["pending"], info["finalized"]),
                         (1, 0, 1))
        self.assertEqual(info["bytes"], self.node.mempool.total_bytes)
        self.assertGreater(info["bytes"], 0)
        self.assertEqual(info["maxmempool"], self.config.mempool.max_bytes)
        self.assertEqual(info["maxcount"], self.config.mempool.max_count)
        self.assertEqual(self.rpc("getrawmempool"), [txid])
        verbose = self.rpc("getrawmempool", True)
        self.assertEqual(verbose[txid]["state"], "finalized")
        self.block()
        self.assertEqual(self.rpc("getmempoolinfo")["size"], 0)
        self.assertEqual(self.rpc("getrawmempool"), [])

    def test_rejection_counts(self) -> None:
        """
        getmempoolinfo counts refusals by reason code.
        """
        coins = self.node.spendable()
        self.rpc("sendtoaddress", self.external_address(), 10)
        conflict = self.node.wallet.build_payment(
            coins, self.external_address(), params.COIN, "devnet")
        self.rpc_error("sendrawtransaction", conflict.encode().hex())
        self.assertEqual(self.rpc("getmempoolinfo")["rejections"],
                         {"double-spend": 1})


class WalletMethodTests(RPCTestBase):
    """
    getnewaddress, getbalance, listunspent, validateaddress.
    """

    def test_listunspent(self) -> None:
        """
        listunspent lists the genesis output with confirmations counted
        from its block; after a payment, the finalized-but-unmined change
        has 0 confirmations and is listed as spendable; after a block it
        has 1.  minconf/maxconf filter by confirmations.
        """
        coins = self.rpc("listunspent")
        self.assertEqual(len(coins), 1)
        self.assertEqual(coins[0]["confirmations"], 1)
        self.assertEqual(coins[0]["amount"],
                         params.format_amount(DEVNET_FUNDS))
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        coins = self.rpc("listunspent")
        self.assertEqual(len(coins), 1)
        self.assertEqual((coins[0]["txid"], coins[0]["confirmations"],
                          coins[0]["spendable"]), (txid, 0, True))
        self.assertEqual(self.rpc("listunspent", 1), [])
        self.block()
        coins = self.rpc("listunspent")
        by_txid = {c["txid"]: c for c in coins}
        self.assertEqual(by_txid[txid]["confirmations"], 1)
        self.assertEqual(len(self.rpc("listunspent", 0, 0)), 0)
        self.assertEqual(sum(c["amount"] for c in coins),
                         self.rpc("getbalance"))

    def test_listunspent_addresses(self) -> None:
        """
        listunspent filters by address; an invalid address is -5 and a
        duplicated one -8.
        """
        mine = self.node.wallet.addresses()[0]
        new = self.rpc("getnewaddress")
        self.assertEqual(len(self.rpc("listunspent", 0, 9999, [mine])), 1)
        self.assertEqual(self.rpc("listunspent", 0, 9999, [new]), [])
        self.assertEqual(self.rpc_error("listunspent", 0, 9999,
                                        ["TIME1nope"]).code, -5)
        self.assertEqual(self.rpc_error("listunspent", 0, 9999,
                                        [mine, mine]).code, -8)

    def test_spend_unmined_change(self) -> None:
        """
        Outputs of a finalized payment are spendable before any block: a
        second payment right after the first finalizes too.
        """
        self.rpc("sendtoaddress", self.external_address(), 1)
        txid = self.rpc("sendtoaddress", self.external_address(), 2)
        self.assertEqual(self.rpc("gettransaction", txid)["state"],
                         "finalized")

    def test_change_awaiting_finality(self) -> None:
        """
        While the wallet's only coin is locked by a payment still being
        voted on, sendtoaddress is -6 and says how much of the wallet's
        money awaits finality; once that payment finalizes the same call
        succeeds.
        """
        node = self.node
        tx = node.wallet.build_payment(node.spendable(),
                                       self.external_address(),
                                       params.COIN, node.network.name)
        entry = node.mempool.add(tx, params.min_fee(params.COIN))
        change = sum(o.value for o in tx.outputs
                     if node.wallet.owns(o.address))
        error = self.rpc_error("sendtoaddress", self.external_address(), 1)
        self.assertEqual(error.code, -6)
        self.assertIn(f"{params.format_amount(change)} TIME", error.message)
        self.assertIn("await finality", error.message)
        node.mempool.finalize(entry.tx.txid)
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        self.assertEqual(self.rpc("gettransaction", txid)["state"],
                         "finalized")

    def test_insufficient_funds_plain(self) -> None:
        """
        With nothing awaiting finality, paying more than the balance is
        the plain -6 "Insufficient funds".
        """
        error = self.rpc_error("sendtoaddress", self.external_address(),
                               params.MAX_MONEY // params.COIN)
        self.assertEqual((error.code, error.message),
                         (-6, "Insufficient funds"))

    def test_validateaddress(self) -> None:
        """
        validateaddress accepts this network's addresses (saying which the
        wallet owns) and refuses mainnet (TIME1) and malformed ones with
        a reason.
        """
        mine = self.rpc("getnewaddress")
        self.assertEqual(self.rpc("validateaddress", mine),
                         {"isvalid": True, "address": mine, "ismine": True})
        other = self.external_address()
        self.assertEqual(self.rpc("validateaddress", other)["ismine"], False)
        mainnet = self.external_address("TIME1")
        result = self.rpc("validateaddress", mainnet)
        self.assertIs(result["isvalid"], False)
        self.assertIn("network", result["error"])
        self.assertIs(self.rpc("validateaddress", "hello")["isvalid"], False)

    def test_getnewaddress(self) -> None:
        """
        getnewaddress returns a fresh devnet address of the wallet.
        """
        first = self.rpc("getnewaddress")
        second = self.rpc("getnewaddress")
        self.assertNotEqual(first, second)
        self.assertTrue(first.startswith("TIME0"))
        self.assertTrue(self.node.wallet.owns(second))


class ControlMethodTests(RPCTestBase):
    """
    uptime, stop and help.
    """

    def test_uptime(self) -> None:
        """
        uptime counts seconds on the node's clock.
        """
        self.assertEqual(self.rpc("uptime"), 0)
        self.clock.advance(5)
        self.assertEqual(self.rpc("uptime"), 5)

    def test_stop(self) -> None:
        """
        stop answers "timecoin stopping", then stops the process.
        """
        self.assertEqual(self.rpc("stop"), "timecoin stopping")
        self.assertEqual(self.stopped, [])
        self.clock.advance(1)
        self.assertEqual(self.stopped, [True])

    def test_help(self) -> None:
        """
        help lists every method by its usage line; help METHOD gives its
        docstring; an unknown method is said to be unknown.
        """
        listing = self.rpc("help").splitlines()
        names = sorted(RPCMethods(self.node).registry())
        self.assertEqual([line.split()[0] for line in listing], names)
        for name in ("getblockchaininfo", "sendtoaddress", "getblock",
                     "waitfortransaction", "validateaddress", "stop"):
            self.assertIn(name, names)
        text = self.rpc("help", "getblock")
        self.assertTrue(text.startswith('getblock "blockhash"'))
        self.assertIn("verbosity", text)
        self.assertEqual(self.rpc("help", "nosuch"),
                         "help: unknown command: nosuch")


class MethodTableTests(unittest.TestCase):
    """
    L{method_table}: the areas' C{rpc_NAME} methods merged into one table.
    """

    def test_every_area_method_is_in_the_table(self) -> None:
        """
        The table of L{AREAS} holds each C{rpc_NAME} of each area under
        NAME, and its docstrings are what L{method_docs} gives.
        """
        table = method_table(AREAS)
        count = sum(len(area_methods(area)) for area in AREAS)
        self.assertEqual(len(table), count)
        self.assertIs(table["getblock"], ChainMethods.rpc_getblock)
        self.assertEqual(method_docs()["help"],
                         inspect.getdoc(ControlMethods.rpc_help))

    def test_duplicate_name_refused(self) -> None:
        """
        Two areas defining a method of the same name is an error when the
        table is built, naming both.
        """

        class Other:
            def rpc_getblock(self) -> None:
                """
                getblock
                """

        e = self.assertRaises(DuplicateMethod, method_table,
                              [ChainMethods, Other])
        self.assertIn("getblock", str(e))
        self.assertIn("ChainMethods", str(e))
        self.assertIn("Other", str(e))
