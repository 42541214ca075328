"""
L{RPCServer}: the HTTP side of the RPC on Klein: authentication (with the
failed-login throttle), the body limit, the status page, C{/metrics} and
C{/health}, and C{POST /}, whose body a L{Dispatcher} runs.

Imports the RPC's auth, codec, dispatch, errors and limits, and the
status page's renderer (L{timecoin.rpc.status}); imported by
L{timecoin.rpc.site}.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException

from timecoin.rpc.auth import BasicAuth, client_host
from timecoin.rpc.codec import dumps, error_body
from timecoin.rpc.dispatch import MAX_BATCH, Dispatcher, loggable
from timecoin.rpc.errors import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    UNAUTHORIZED,
)
from timecoin.rpc.limits import (
    LOGIN_THROTTLED,
    LoginThrottle,
    Refusals,
    RPCChannel,
    source_of,
)
from timecoin.rpc.settings import RPCSettings
from timecoin.rpc.status import CONTENT_SECURITY_POLICY, render_page

Reply = bytes | defer.Deferred[bytes]
"""What a route answers: a body, or one later (the failed-login delay)."""

log = Logger()

Route = Callable[["RPCServer", server.Request], Reply]
"""A Klein route of L{RPCServer}: the server and the request in, a reply
out."""


def _guarded(served: Callable[[RPCServer], object | None], missing: str, *,
             open_when: Callable[[RPCSettings], bool] | None = None,
             headers: tuple[tuple[bytes, bytes], ...] = ()
             ) -> Callable[[Route], Route]:
    """
    The preamble of an authenticated C{GET} route, written once: refuse a
    request without valid credentials (L{RPCServer._refuse_auth}; not
    checked while C{open_when(limits)} is true), set C{headers}, then
    answer 404 with the JSON error C{missing} while C{served(server)} (the
    route's source: metrics, status) is C{None}; else run the route.
    """
    def decorate(route: Route) -> Route:
        @functools.wraps(route)
        def guarded(self: RPCServer, request: server.Request) -> Reply:
            if open_when is None or not open_when(self.limits):
                refused = self._refuse_auth(request)
                if refused is not None:
                    return refused
            for name, value in headers:
                request.setHeader(name, value)
            if served(self) is None:
                request.setResponseCode(404)
                request.setHeader(b"Content-Type", b"application/json")
                return error_body(METHOD_NOT_FOUND, missing)
            return route(self, request)
        return guarded
    return decorate


class RPCServer:
    """
    JSON-RPC over HTTP: authentication (with the failed-login throttle),
    body limit, framing and dispatch to a method registry by a
    L{Dispatcher}, with at most C{limits.max_waiting} long-polls at once
    (see L{timecoin.rpc.limits}).

    @ivar counters: requests, calls, errors and auth failures since start.
    @ivar dispatcher: the L{Dispatcher} that runs request bodies.
    """

    app = Klein()

    def __init__(self, methods: dict[str, Callable[..., Any]],
                 auth: BasicAuth, max_body_bytes: int,
                 ready: Callable[[], bool] = lambda: True,
                 max_batch: int = MAX_BATCH,
                 metrics: Callable[[], bytes] | None = None,
                 health: Callable[[], tuple[bool, dict[str, Any]]]
                 | None = None,
                 status: Callable[[], dict[str, Any]] | None = None,
                 observe: Callable[[str, float], None] | None = None,
                 limits: RPCSettings | None = None,
                 clock: IReactorTime | None = None,
                 refusals: Refusals | None = None) -> None:
        self.limits = limits if limits is not None else RPCSettings()
        self.clock = clock
        # Without a clock (in-process callers of handle_body) no failed
        # login is delayed, and refusals are logged (not rate-limited nor
        # counted by reason) unless a Refusals is given.
        self.throttle = (LoginThrottle(clock, self.limits)
                         if clock is not None else None)
        self.refusals = refusals if refusals is not None else (
            Refusals(clock) if clock is not None else None)
        self.metrics = metrics
        self.health = health
        self.status = status
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.ready = ready
        self.counters = {"requests": 0, "calls": 0, "errors": 0,
                         "auth_failures": 0, "too_large": 0}
        self.dispatcher = Dispatcher(methods, self.counters, ready,
                                     max_batch, observe, self.limits,
                                     self.refusals)

    @property
    def waiting(self) -> int:
        """
        Long-polls running now.
        """
        return self.dispatcher.waiting

    def handle_body(self, body: bytes) -> defer.Deferred[Any]:
        """
        Run a request body; fire with C{(HTTP status, response body or
        None)}.
        """
        return self.dispatcher.handle_body(body)

    def call(self, obj: Any) -> defer.Deferred[Any]:
        """
        Run one request object; fire with its response object, or C{None}
        for a notification.
        """
        return self.dispatcher.call(obj)

    @app.route("/metrics", methods=["GET"])
    @_guarded(lambda rpc: rpc.metrics, "no metrics",
              open_when=lambda limits: limits.metrics_open)
    def get_metrics(self, request: server.Request) -> Reply:
        """
        Prometheus text exposition of the node's metrics; needs the RPC
        credentials unless C{[rpc] metrics_open}.
        """
        assert self.metrics is not None
        request.setHeader(b"Content-Type",
                          b"text/plain; version=0.0.4; charset=utf-8")
        return self.metrics()

    @app.route("/health", methods=["GET"])
    def get_health(self, request: server.Request) -> bytes:
        """
        200 with {"status": "ready", ...} when the node is started and
        connected (or is its network's only masternode); 503 otherwise.
        """
        request.setHeader(b"Content-Type", b"application/json")
        ok, detail = (self.health() if self.health is not None
                      else (self.ready(), {}))
        if not ok:
            request.setResponseCode(503)
        return dumps({"status": "ready" if ok else "not-ready", **detail})

    def _refused(self, reason: str, request: server.Request) -> None:
        """
        Count and log (rate-limited) one refused request.
        """
        if self.refusals is not None:
            self.refusals.refused(reason, client_of(request),
                                  path=loggable(request.path))
        else:
            log.info("RPC request from {client} refused: {reason}",
                     client=client_of(request), reason=reason)

    def _refuse_auth(self, request: server.Request) -> Reply | None:
        """
        C{None} if C{request} carries valid credentials (its connection
        then counts as authenticated); else the reply to send: 401 (after
        the failed-login delay of its source, as a Deferred, once past its
        free failures), or 429 at once, unchecked, while an earlier
        failure of its source waits for its answer.
        """
        given = BasicAuth.credentials(request.getHeader(b"authorization"))
        throttle = self.throttle
        if given is not None and throttle is not None and throttle.active():
            source = source_of(client_host(request))
            wait = throttle.wait(source)
            if wait > 0:
                self._refused("login-throttled", request)
                request.setResponseCode(429)
                request.setHeader(b"Retry-After", b"%d" % (int(wait) + 1))
                request.setHeader(b"Content-Type", b"application/json")
                return error_body(LOGIN_THROTTLED, f"Too many failed logins "
                                  f"from {source}: retry in {wait:.2f} s")
        if given is not None and self.auth.accepts(given):
            channel = getattr(request, "channel", None)
            if isinstance(channel, RPCChannel):
                channel.mark_authenticated()
            return None
        self.counters["auth_failures"] += 1
        self._refused("bad-auth", request)
        request.setResponseCode(401)
        request.setHeader(b"WWW-Authenticate", b'Basic realm="jsonrpc"')
        request.setHeader(b"Content-Type", b"application/json")
        body = error_body(UNAUTHORIZED, "Unauthorized: HTTP Basic "
                          "credentials required (cookie or rpcuser)")
        if given is None or throttle is None:
            return body
        delay = throttle.failed(source_of(client_host(request)))
        if delay <= 0 or self.clock is None:
            return body
        return _later(self.clock, delay, body)

    @app.route("/", methods=["GET"])
    @_guarded(lambda rpc: rpc.status, "no status page")
    def get_status_page(self, request: server.Request) -> Reply:
        """
        The status page (HTML, see L{timecoin.rpc.status}); needs the RPC
        credentials, so a browser gets a Basic challenge.
        """
        assert self.status is not None
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-store")
        return render_page(self.status())

    @app.route("/status.json", methods=["GET"])
    @_guarded(lambda rpc: rpc.status, "no status page",
              headers=((b"Content-Type", b"application/json"),
                       (b"Cache-Control", b"no-store")))
    def get_status_json(self, request: server.Request) -> Reply:
        """
        The data of the status page as JSON; needs the RPC credentials.
        """
        assert self.status is not None
        return dumps(self.status())

    @app.route("/", methods=["POST"])
    def rpc(self, request: server.Request) -> Any:
        """
        Serve one HTTP request: check auth and size, then run its body.
        """
        self.counters["requests"] += 1
        request.setHeader(b"Content-Type", b"application/json")
        refused = self._refuse_auth(request)
        if refused is not None:
            return refused
        body = self._read_body(request)
        if body is None:
            self.counters["too_large"] += 1
            self._refused("body-too-large", request)
            request.setResponseCode(413)
            return error_body(INVALID_REQUEST, f"Request body larger than "
                              f"{self.max_body_bytes} bytes")
        def respond(outcome: tuple[int, bytes | None]) -> bytes:
            status, payload = outcome
            request.setResponseCode(status)
            if payload is None:
                request.responseHeaders.removeHeader(b"Content-Type")
                return b""
            return payload

        outcome = self.dispatcher.run(body,
                                      _reads_error_member(request))
        if isinstance(outcome, defer.Deferred):
            return outcome.addCallback(respond)
        return respond(outcome)

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Failure) -> bytes:
        """
        Turn every failure of routing or serving into a JSON response:
        the HTTP error of an unknown path or method, else an internal
        error (logged, never shown).
        """
        request.setHeader(b"Content-Type", b"application/json")
        if failure.check(HTTPException):
            error = failure.value
            assert isinstance(error, HTTPException)
            status = error.code or 500
            if status == 405:
                request.setHeader(b"Allow", b"GET, POST")
            request.setResponseCode(status)
            return error_body(INVALID_REQUEST, f"{status} {error.name}: "
                              f"JSON-RPC is served by POST /")
        log.failure("RPC request failed", failure)
        request.setResponseCode(500)
        return error_body(INTERNAL_ERROR, "Internal error")

    def _read_body(self, request: server.Request) -> bytes | None:
        if getattr(request, "body_too_large", False):
            return None
        length = request.getHeader(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body_bytes:
                    return None
            except ValueError:
                pass
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        body = content.read(self.max_body_bytes + 1)
        return None if len(body) > self.max_body_bytes else body


LEGACY_REPLY_AGENTS = (b"AuthServiceProxy/",)
"""User-Agent prefixes of clients that read C{"error"} in every reply of a
batch, even a JSON-RPC 2.0 one: python-bitcoinrpc's C{batch_} sends 2.0
requests and indexes C{response["error"]}, written when Bitcoin Core
answered every request in 1.0 shape (upstream bug
jgarzik/python-bitcoinrpc#112; Bitcoin Core 28 breaks it too).  Their 2.0
batch replies get C{"error": null} on success; every other client gets
replies exactly as JSON-RPC 2.0 specifies."""


def _reads_error_member(request: server.Request) -> bool:
    """
    Whether C{request} comes from a client of L{LEGACY_REPLY_AGENTS}.
    """
    agent = request.getHeader(b"user-agent") or b""
    return agent.startswith(LEGACY_REPLY_AGENTS)


def _later(clock: IReactorTime, delay: float, value: bytes
           ) -> defer.Deferred[bytes]:
    """
    A Deferred firing with C{value} after C{delay} seconds of C{clock};
    cancelling it (the client hung up) cancels the timer.
    """
    call = None

    def cancel(_: defer.Deferred[bytes]) -> None:
        if call is not None and call.active():
            call.cancel()

    d: defer.Deferred[bytes] = defer.Deferred(cancel)
    call = clock.callLater(delay, d.callback, value)
    return d


def client_of(request: server.Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host is not None else str(address)
