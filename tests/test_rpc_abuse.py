"""
Hostile input to the RPC port: garbage bodies, bodies over
C{rpc_max_body_bytes}, wrong credentials, deeply nested JSON, unknown
methods and absurd parameters each get the right JSON-RPC error code and
HTTP status (Bitcoin Core's: 500 for a parse error, 400 for an invalid
request, 404 for an unknown method in a 1.0 request, 401 without valid
auth, 413 for a body too large), never an HTML page or a traceback, and
the node keeps serving normal calls afterwards.  In process (L{StubTreq}
and a real HTTP channel) and against a real node process.
"""

from __future__ import annotations

import base64
import http.client
import json
import random
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from tests.helpers.rpc import RPCTestBase, basic
from tests.nodeprocess import NodeProcess
from timecoin.config import Config
from timecoin.rpc.dispatch import MAX_JSON_DEPTH
from timecoin.rpc.errors import (
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RPC_TYPE_ERROR,
    UNAUTHORIZED,
)

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def nested(depth: int) -> bytes:
    """
    An array nested C{depth} levels deep.
    """
    return b"[" * depth + b"]" * depth


class AbuseTests(RPCTestBase):
    """
    Each kind of bad request against an in-process devnet node.
    """

    def make_config(self, **overrides: Any) -> Config:
        """
        The devnet config with the failed-login throttle off: these tests
        send dozens of wrong credentials and want each answered at once
        (tests/test_rpc_limits.py pins the throttle).
        """
        overrides.setdefault("rpc_login_delay", 0.0)
        return super().make_config(**overrides)

    def refused(self, body: bytes | str, status: int, code: int,
                **kwargs: Any) -> dict[str, Any]:
        """
        Send C{body}; assert the HTTP status, a JSON content type and the
        JSON-RPC error code; then assert the node still serves a normal
        call.  Returns the decoded reply.
        """
        got, headers, raw = self.http(body, **kwargs)
        self.assertEqual(got, status, raw[:200])
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["application/json"])
        reply = json.loads(raw)
        self.assertEqual(reply["error"]["code"], code, raw[:200])
        self.assertNotIn(b"Traceback", raw)
        self.assert_serving()
        return reply

    def assert_serving(self) -> None:
        """
        A normal call still succeeds.
        """
        self.assertEqual(self.rpc("getblockcount"), self.node.chain.height)

    def test_garbage_bodies(self) -> None:
        """
        Bodies that are not JSON, or hold numbers Python will not convert
        (an exponent past Decimal's range, an integer over 4,300 digits),
        are parse errors (-32700, HTTP 500);
        JSON that is not a request object is an invalid request (-32600,
        HTTP 400).
        """
        noise = bytes(random.Random(7).getrandbits(8) for _ in range(4096))
        for body in (b"not json", b"\xff\xfe\x00{", b"", b"{", b"}{",
                     b'{"method": "getblockcount", "id": NaN}',
                     b'{"method": "getblockcount", "id": Infinity}',
                     b"\x00" * 1000, noise, b"[1, 2,]",
                     b'{"method": "getblockcount"} trailing',
                     b'{"method": "getblockcount", "id": 1e5',
                     b'{"method": "getblockcount", "id": '
                     b'1e99999999999999999999}',
                     b'{"method": "getblockhash", "params": ['
                     + b"9" * 5_000 + b'], "id": 1}'):
            self.refused(body, 500, PARSE_ERROR)
        for body in (b"null", b"42", b'"getblockcount"', b"true", b"[]"):
            self.refused(body, 400, INVALID_REQUEST)
        status, _, raw = self.http(b'[1, "x", null, {"id": 3}]')
        self.assertEqual(status, 200)
        self.assertEqual([r["error"]["code"] for r in json.loads(raw)],
                         [INVALID_REQUEST] * 4)
        self.assert_serving()

    def test_huge_bodies(self) -> None:
        """
        A body over C{rpc_max_body_bytes} (4 MB by default) is refused with
        413 and -32600 and not run, whether valid JSON or not.
        """
        limit = self.config.rpc.max_body_bytes
        self.assertEqual(limit, 4_000_000)
        addresses = len(self.node.wallet.addresses())
        padding = "x" * limit
        self.refused(json.dumps({"method": "getnewaddress", "id": padding}),
                     413, INVALID_REQUEST)
        self.refused(b"[" * (limit + 1), 413, INVALID_REQUEST)
        self.refused(b"\x00" * (limit + 1), 413, INVALID_REQUEST)
        self.assertEqual(len(self.node.wallet.addresses()), addresses)

    def test_huge_bodies_over_http(self) -> None:
        """
        Over a real HTTP channel, a body over the limit is refused with
        413 and JSON whether its length is declared or it comes chunked;
        the next request on a fresh connection is served.
        """
        site = self.site
        auth = self.auth.encode()
        limit = self.config.rpc.max_body_bytes
        big = b"[" * (limit + 1)
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece)
                           for piece in (big[:limit // 2], big[limit // 2:]))
        small = b'{"method": "getblockcount", "id": 1}'
        requests = [
            (b"Content-Length: %d\r\n\r\n" % len(big) + big, b"413"),
            (b"Transfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n",
             b"413"),
            (b"Content-Length: %d\r\n\r\n" % len(small) + small, b"200"),
        ]
        for tail, expect in requests:
            client = IPv4Address("TCP", "127.0.0.1", 1)
            channel = site.buildProtocol(client)
            transport = StringTransport(peerAddress=client)
            channel.makeConnection(transport)
            channel.dataReceived(b"POST / HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Authorization: " + auth + b"\r\n" + tail)
            response = transport.value()
            self.assertTrue(response.startswith(b"HTTP/1.1 " + expect),
                            response[:80])
            self.assertIn(b"Content-Type: application/json", response)
            channel.connectionLost(None)
        self.assert_serving()

    def test_wrong_auth(self) -> None:
        """
        Missing, wrong or malformed credentials get 401 with a Basic
        challenge and -32001, before the body is even parsed.
        """
        cookie = (Path(self.config.datadir) / ".cookie").read_text()
        _, _, secret = cookie.partition(":")
        token = base64.b64encode(b"no-colon").decode()
        for auth in (None, basic("__cookie__", "0" * 64),
                     basic("__cookie__", secret[:-1]),
                     basic("someone", secret), basic("", ""),
                     "Bearer " + secret, "Basic !!!notbase64",
                     "Basic " + token, "Basic " + "A" * 10_000,
                     basic("__cookie__", secret + "\x00")):
            for body in (b'{"method": "getblockcount", "id": 1}',
                         b"garbage", DEEP_ARRAY):
                reply = self.refused(body, 401, UNAUTHORIZED, auth=auth)
                self.assertIsNone(reply["result"])
        _, headers, _ = self.http(b"{}", auth=None)
        self.assertEqual(headers.getRawHeaders("WWW-Authenticate"),
                         ['Basic realm="jsonrpc"'])
        status, _, _ = self.http(b"", auth=None, method="GET")
        self.assertEqual(status, 401)

    def test_deep_nesting(self) -> None:
        """
        Nesting deep enough to exhaust Python's recursion (an array and an
        object nested 100,000 levels) or merely deeper than
        L{MAX_JSON_DEPTH}, anywhere in a request, is a parse error, not an
        internal error; nesting up to the limit is served.
        """
        for body in (DEEP_ARRAY, DEEP_OBJECT, nested(MAX_JSON_DEPTH + 1),
                     nested(1_000),
                     b'{"method": "getblockcount", "id": '
                     + nested(MAX_JSON_DEPTH) + b"}",
                     b'[{"method": "getblockcount", "id": 1, "params": '
                     + nested(MAX_JSON_DEPTH) + b"}]",
                     b'{"jsonrpc": "2.0", "method": "getblockcount", '
                     b'"id": 1, "params": {"a": ' + DEEP_OBJECT + b"}}"):
            reply = self.refused(body, 500, PARSE_ERROR)
            self.assertIsNone(reply["id"])
        deep_id = json.loads(nested(MAX_JSON_DEPTH - 1))
        status, reply = self.post({"method": "getblockcount", "id": deep_id})
        self.assertEqual(status, 200)
        self.assertEqual(reply["id"], deep_id)
        status, reply = self.post([{"jsonrpc": "2.0", "method": "nosuch",
                                    "id": json.loads(nested(
                                        MAX_JSON_DEPTH - 2))}])
        self.assertEqual((status, reply[0]["error"]["code"]),
                         (200, METHOD_NOT_FOUND))

    def test_unknown_methods(self) -> None:
        """
        Unknown methods, including names of Python attributes of the
        method registry and names meant to break or forge log lines, are
        -32601 (HTTP 404 in 1.0, 200 in 2.0 and in a batch); a method that
        is not a string is -32600.
        """
        names = ["nosuch", "", "rpc_getblockcount", "__init__", "registry",
                 "_p2p", "GETBLOCKCOUNT", "getblockcount ", "\ud800",
                 "x\nERROR forged log line", "\x00", "m" * 100_000]
        for name in names:
            body = json.dumps({"method": name, "id": 1})
            self.refused(body, 404, METHOD_NOT_FOUND)
            body = json.dumps({"jsonrpc": "2.0", "method": name, "id": 1})
            self.refused(body, 200, METHOD_NOT_FOUND)
        status, reply = self.post([{"jsonrpc": "2.0", "method": name,
                                    "id": n} for n, name in enumerate(names)])
        self.assertEqual(status, 200)
        self.assertEqual([r["error"]["code"] for r in reply],
                         [METHOD_NOT_FOUND] * len(names))
        for method in (5, None, ["getblockcount"], {"a": 1}, True):
            self.refused(json.dumps({"method": method, "id": 1}), 400,
                         INVALID_REQUEST)

    def test_absurd_amounts(self) -> None:
        """
        Amounts that overflow, carry more than 8 decimals past Decimal's
        precision, or are not plain ASCII decimals are -3, never an
        internal error nor a rounded payment.
        """
        address = self.external_address()
        balance = self.node.balance()
        for amount in ("1e999999999", "1.000000000000000000000000000001",
                       '"1e999999999"', '"1_0"', '"  1 "', '"\\u0661"',
                       '"0x10"', "1e-999999999", "-1"):
            body = ('{"method": "sendtoaddress", "id": 1, "params": '
                    f'["{address}", {amount}]}}')
            self.refused(body, 500, RPC_TYPE_ERROR)
        self.assertEqual(len(self.node.mempool), 0)
        self.assertEqual(self.node.balance(), balance)


class AbuseProcessTests(unittest.TestCase):
    """
    The same abuse against a real node process over real sockets: each
    answered with JSON and the right status, the node still serving and
    its log free of tracebacks.
    """

    def test_real_node_survives(self) -> None:
        """
        Garbage, a 5 MB body, wrong auth, 100,000-deep nesting and an
        unknown method each get their status and code, and a header line
        over Twisted's limit is dropped by the HTTP layer (a bare 400 or a
        closed connection); after each a
        normal call succeeds, and the log shows no traceback.
        """
        node = NodeProcess(Path(self.mktemp()).resolve())
        self.addCleanup(node.kill)
        node.start()
        cookie = (node.datadir / ".cookie").read_text().strip()
        good = "Basic " + base64.b64encode(cookie.encode()).decode()
        bad = "Basic " + base64.b64encode(b"__cookie__:wrong").decode()
        cases = [
            (b"\xff garbage \x00", good, 500, PARSE_ERROR),
            (b"x" * 5_000_000, good, 413, INVALID_REQUEST),
            (b'{"method": "getblockcount", "id": 1}', bad, 401,
             UNAUTHORIZED),
            (DEEP_ARRAY, good, 500, PARSE_ERROR),
            (DEEP_OBJECT, good, 500, PARSE_ERROR),
            (b'{"method": "nosuch", "id": 1}', good, 404, METHOD_NOT_FOUND),
        ]
        for body, auth, status, code in cases:
            conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port,
                                              timeout=30)
            try:
                conn.request("POST", "/", body=body, headers={
                    "Authorization": auth,
                    "Content-Type": "application/json"})
                response = conn.getresponse()
                raw = response.read()
            finally:
                conn.close()
            self.assertEqual(response.status, status, raw[:200])
            self.assertEqual(response.getheader("Content-Type"),
                             "application/json")
            self.assertEqual(json.loads(raw)["error"]["code"], code)
            self.assertGreaterEqual(node.call("getblockcount"), 0)
        conn = http.client.HTTPConnection("127.0.0.1", node.rpc_port,
                                          timeout=30)
        try:
            conn.request("POST", "/", body=b"{}", headers={
                "Authorization": "Basic " + "A" * 100_000})
            status = conn.getresponse().status
        except ConnectionError:
            status = None
        finally:
            conn.close()
        self.assertIn(status, (400, None))
        self.assertGreaterEqual(node.call("getblockcount"), 0)
        log = node.log_tail()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)
