"""
Tests for L{timecoin.rpc.resource}: C{POST /} served without Klein's
routing, with the same answers, failures and cancellation.
"""

from __future__ import annotations

import base64
import gc
import json
from io import BytesIO
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from tests.helpers.rpc import RPCTestBase
from timecoin.rpc.auth import BasicAuth
from timecoin.rpc.resource import RPCResource
from timecoin.rpc.server import RPCServer

AUTH = b"Basic " + base64.b64encode(b"user:secret")


class Routes:
    """
    Stands in for the Klein resource: records what it was asked.
    """

    def __init__(self) -> None:
        self.rendered: list[bytes] = []

    def render(self, request: Any) -> bytes:
        self.rendered.append(request.path)
        return b"routed"


class RPCResourceTests(unittest.TestCase):
    """
    L{RPCResource} over a real L{RPCServer} with a few methods.
    """

    def setUp(self) -> None:
        self.later: list[defer.Deferred[Any]] = []
        self.cancelled: list[bool] = []

        def wait() -> defer.Deferred[Any]:
            d: defer.Deferred[Any] = defer.Deferred(
                lambda _: self.cancelled.append(True))
            self.later.append(d)
            return d

        self.rpc = RPCServer({"echo": lambda x: x, "wait": wait},
                             BasicAuth([("user", "secret")]), 10_000)
        self.resource = RPCResource(self.rpc)
        self.routes = Routes()
        self.resource.routes = self.routes  # type: ignore[assignment]

    def request(self, method: bytes, path: bytes, body: Any = None,
                auth: bytes = AUTH) -> DummyRequest:
        request = DummyRequest([b""])
        request.method = method
        request.path = path
        request.requestHeaders.setRawHeaders(b"authorization", [auth])
        request.content = BytesIO(json.dumps(body).encode()
                                  if body is not None else b"")
        return request

    def call(self, method: str, *params: Any) -> DummyRequest:
        return self.request(b"POST", b"/", {"jsonrpc": "2.0", "id": 1,
                                            "method": method,
                                            "params": list(params)})

    def test_post_served_without_routing(self) -> None:
        """
        C{POST /} is answered by the server's C{rpc} at once; the routes
        are not asked.
        """
        body = self.resource.render(self.call("echo", 42))
        self.assertEqual(json.loads(body)["result"], 42)
        self.assertEqual(self.routes.rendered, [])
        self.assertEqual(self.rpc.counters["requests"], 1)

    def test_other_requests_routed(self) -> None:
        """
        Every other method or path goes through the routes.
        """
        for method, path in ((b"GET", b"/"), (b"GET", b"/health"),
                             (b"POST", b"/other"), (b"PUT", b"/")):
            self.assertEqual(
                self.resource.render(self.request(method, path)), b"routed")
        self.assertEqual(self.routes.rendered,
                         [b"/", b"/health", b"/other", b"/"])
        self.assertEqual(self.rpc.counters["requests"], 0)

    def test_refusals_as_before(self) -> None:
        """
        Bad credentials get the 401 of L{RPCServer.rpc}.
        """
        request = self.request(b"POST", b"/", {"method": "echo"},
                               auth=b"Basic " + base64.b64encode(b"u:no"))
        body = self.resource.render(request)
        self.assertEqual(request.responseCode, 401)
        self.assertIn(b"Unauthorized", body)

    def test_later_reply_written(self) -> None:
        """
        A reply that comes later is written and the request finished.
        """
        request = self.call("wait")
        self.assertIs(self.resource.render(request), server.NOT_DONE_YET)
        self.assertEqual(request.written, [])
        self.later[0].callback("done")
        self.assertEqual(json.loads(b"".join(request.written))["result"],
                         "done")
        self.assertEqual(request.finished, 1)

    def test_client_gone_cancels(self) -> None:
        """
        A client that goes away before its reply cancels the call, and
        nothing is written.
        """
        request = self.call("wait")
        self.resource.render(request)
        request.processingFailed(Failure(ConnectionDone()))
        self.assertEqual(self.cancelled, [True])
        self.assertEqual(request.written, [])

    def test_server_failure_answered(self) -> None:
        """
        A failure of the server itself (not of a method, which the
        dispatcher answers) is answered by L{RPCServer.failed}: a logged
        internal error, never its detail.
        """
        def broken(request: Any) -> bytes:
            raise RuntimeError("a bug in the server")

        self.rpc.rpc = broken  # type: ignore[method-assign]
        request = self.call("echo", 1)
        body = self.resource.render(request)
        self.assertEqual(request.responseCode, 500)
        self.assertNotIn(b"a bug", body)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_later_server_failure_answered(self) -> None:
        """
        A later reply that fails is answered by L{RPCServer.failed} too,
        and the request finished.
        """
        self.rpc.rpc = lambda request: defer.fail(  # type: ignore[method-assign]
            RuntimeError("a later bug"))
        request = self.call("echo", 1)
        self.assertIs(self.resource.render(request), server.NOT_DONE_YET)
        self.assertEqual(request.responseCode, 500)
        self.assertIn(b"Internal error", b"".join(request.written))
        self.assertEqual(request.finished, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class SiteGarbageTests(RPCTestBase):
    """
    The RPC site as the daemon builds it, driven over its HTTP protocol.
    """

    def test_requests_leave_no_classes_behind(self) -> None:
        """
        A JSON-RPC request builds no class (twisted.web's form parsing of
        a POST's Content-Type, with the C{email} package, built two a
        request, left as cyclic garbage for the collector).
        """
        client = IPv4Address("TCP", "127.0.0.1", 40000)
        protocol = self.site.buildProtocol(client)
        transport = StringTransport(peerAddress=client)
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        body = b'{"jsonrpc":"2.0","id":1,"method":"getblockcount"}'
        request = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Authorization: " + self.auth.encode() + b"\r\n"
                   b"Content-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
        protocol.dataReceived(request)  # warm: first-use imports
        gc.collect()
        self.addCleanup(gc.garbage.clear)
        self.addCleanup(gc.set_debug, gc.get_debug())
        gc.set_debug(gc.DEBUG_SAVEALL)
        for _ in range(5):
            protocol.dataReceived(request)
        gc.collect()
        gc.set_debug(0)
        self.assertEqual(transport.value().count(b"HTTP/1.1 200"), 6,
                         transport.value()[:500])
        self.assertEqual(
            [o for o in gc.garbage if isinstance(o, type)], [])
