"""
Our requests on one connection: each gets a fresh id (at most
C{max_pending_requests} outstanding), a timeout of C{request_timeout} and
the type of response it expects; the response echoing its id fires its
Deferred, anything else fails it with
L{timecoin.p2p.dependencies.RequestFailed}.  Imports only
L{timecoin.p2p.dependencies} and L{timecoin.p2p.messages}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from timecoin.p2p.dependencies import Connection, ConnectionHost, RequestFailed
from timecoin.p2p.messages import MAX_ID, Request, Response, line_cap, with_id

log = Logger()


@dataclass
class _Pending:
    """
    An outstanding request: its Deferred, timeout and expected response.
    """

    deferred: defer.Deferred[Any]
    call: IDelayedCall
    response: str
    sent_at: float


class Requests:
    """
    The outstanding requests of one connection, by id.
    """

    def __init__(self, conn: Connection,
                 host: ConnectionHost[Any, Any]) -> None:
        self.conn = conn
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self.pending: dict[int, _Pending] = {}
        self._next_id = 0

    def __len__(self) -> int:
        return len(self.pending)

    def send(self, request: Request) -> defer.Deferred[Any]:
        """
        Send C{request} with a fresh id; fires with the response that
        echoes the id, or fails with L{RequestFailed} (timeout after
        C{request_timeout}, wrong response type, C{too-many-requests}).
        """
        if len(self.pending) >= self.settings.max_pending_requests:
            return defer.fail(RequestFailed("too-many-requests"))
        request_id = self._next_id
        while request_id in self.pending:
            request_id = (request_id + 1) & MAX_ID
        self._next_id = (request_id + 1) & MAX_ID
        d: defer.Deferred[Any] = defer.Deferred()
        call = self.clock.callLater(self.settings.request_timeout,
                                    self._timed_out, request_id)
        self.pending[request_id] = _Pending(d, call, request.response,
                                            self.clock.seconds())
        self.conn.send(with_id(request, request_id))
        return d

    def awaited_bytes(self) -> int:
        """
        The longest response line any outstanding request may get
        (0 if none is outstanding).
        """
        return max((line_cap(entry.response)
                    for entry in self.pending.values()), default=0)

    def _timed_out(self, request_id: int) -> None:
        entry = self.pending.pop(request_id, None)
        if entry is not None:
            self.host.count("request-timeout")
            log.info("request {id} to {peer} timed out", id=request_id,
                     peer=self.conn.peer)
            entry.deferred.errback(RequestFailed("timeout"))

    def answered(self, msg: Response) -> None:
        """
        A response came: fire its request, or charge the peer for an
        unsolicited or mistyped one.
        """
        entry = self.pending.pop(msg.id, None)
        if entry is None:
            self.conn.misbehaved("unsolicited-response",
                                 f"{msg.name} id {msg.id}")
            return
        if entry.call.active():
            entry.call.cancel()
        if entry.response != msg.name:
            detail = f"{msg.name} answers a request for {entry.response}"
            self.conn.misbehaved("bad-response", detail)
            entry.deferred.errback(RequestFailed("bad-response", detail))
            return
        entry.deferred.callback(msg)

    def fail_all(self) -> None:
        """
        The connection is gone: every outstanding request fails with
        C{connection-lost}.
        """
        pending, self.pending = self.pending, {}
        for entry in pending.values():
            if entry.call.active():
                entry.call.cancel()
            entry.deferred.errback(RequestFailed("connection-lost"))
