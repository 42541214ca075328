"""
L{RPCResource}: the RPC site's resource.  C{POST /}, the JSON-RPC calls
every wallet and exchange makes, goes straight to L{RPCServer.rpc};
every other request goes through the Klein routes of L{RPCServer.app}
as before.

Why: Klein binds a URL map, matches the route, adapts the request and
builds a handful of closures and Deferreds for each request; on the
benchmark's nodes (40 requests a second each) that was a few per cent of
a node's CPU for a route that needs no matching.  What the route answers
is unchanged: the same method runs, its failures are answered by the
same L{RPCServer.failed}, and a reply that comes later (a long-poll, a
delayed failed login) is cancelled when its client goes away, as Klein
does.

Imports L{timecoin.rpc.server}; imported by L{timecoin.rpc.site}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.web import resource, server

from timecoin.rpc.server import RPCServer


class RPCResource(resource.Resource):
    """
    Serves C{POST /} with C{rpc.rpc} and everything else with the Klein
    resource of C{rpc.app}.
    """

    isLeaf = True

    def __init__(self, rpc: RPCServer) -> None:
        super().__init__()
        self.rpc = rpc
        self.routes = rpc.app.resource()

    def render(self, request: Any) -> Any:
        """
        Answer C{POST /} here, anything else through the routes.
        """
        if request.method != b"POST" or request.path != b"/":
            return self.routes.render(request)
        try:
            reply = self.rpc.rpc(request)
        except Exception:
            return self.rpc.failed(request, Failure())
        if not isinstance(reply, defer.Deferred):
            return reply
        _answer_later(self.rpc, request, reply)
        return server.NOT_DONE_YET


def _answer_later(rpc: RPCServer, request: Any,
                  reply: defer.Deferred[bytes]) -> None:
    """
    Write C{reply}'s body (or L{RPCServer.failed}'s answer to its failure)
    and finish C{request} when it fires; cancel it if the client goes
    away first, and then write nothing.
    """
    gone = [False]

    def lost(failure: Failure) -> None:
        gone[0] = True
        reply.cancel()

    def write(body: bytes) -> None:
        if not gone[0]:
            request.write(body)
            request.finish()

    def failed(failure: Failure) -> None:
        if not gone[0]:
            write(rpc.failed(request, failure))

    request.notifyFinish().addErrback(lost)
    reply.addCallbacks(write, failed)
