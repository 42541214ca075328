"""
Limits of the RPC server against hostile clients.

The RPC port answers any process that can reach it before it knows who is
calling, so everything such a caller can hold is bounded by a named
C{[rpc]} setting (L{RPCSettings}; documented in C{etc/timecoin.toml} and
C{docs/rpc.md}).

Connections (L{ConnectionLimiter}, L{RPCChannel})
    At most C{max_connections} at once.  One that arrives when every slot
    is taken evicts the connection worth least: an idle one that never
    authenticated first (oldest first), then one still sending an
    unauthenticated request, then one waiting for a failed login's answer,
    then an idle authenticated keep-alive.  A connection busy with an
    authenticated request is never evicted; only when every slot holds
    one is the newcomer closed at once.  Idle sockets therefore never lock
    the operator out.
Timeouts
    A connection idle (no request under way) for C{unauth_timeout} seconds
    before it has authenticated is closed; an authenticated one after
    C{idle_timeout}.  A request, headers and body, must arrive within
    C{request_timeout} of its first byte: a deadline, not an idle timer,
    so a sender trickling a byte at a time cannot extend it (HTTP 408).
Failed logins (L{LoginThrottle})
    Per source address (IPv6 by /64, loopback as one), the first
    C{login_free_failures}
    wrong passwords are answered at once; each one after that is answered
    after a delay that doubles from C{login_delay} up to
    C{login_max_delay}, from the reactor's clock (nothing blocks).  Until
    that answer is due, the source's credentials are not checked at all:
    its requests get HTTP 429 at once, so parallel connections cannot
    guess faster.  A source's failures are forgotten C{login_forget}
    seconds after its last one.
Long-polls
    At most C{max_waiting} calls of the methods that wait (L{LONG_POLLS})
    at once; past it a JSON-RPC error (L{TOO_MANY_WAITING}).
C{/metrics}
    Needs the RPC credentials unless C{metrics_open}.

Every refusal is counted by reason (L{Refusals}, the metric
C{timecoin_rpc_refusals_total}) and logged, at most once per
L{LOG_INTERVAL} seconds per reason with the number suppressed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http

from timecoin.logs import RateLimitedLog
from timecoin.rpc.settings import RPCSettings

log = Logger()

LOGIN_THROTTLED = -32003
"""JSON-RPC code of HTTP 429: too many failed logins from the source."""
TOO_MANY_WAITING = -32004
"""JSON-RPC code of a long-poll refused because C{max_waiting} are
running."""
REQUEST_TIMEOUT = -32005
"""JSON-RPC code of HTTP 408: the request did not arrive in time."""
LONG_POLLS = frozenset({"waitfortransaction", "waitfornewblock",
                        "waitforblock", "waitforblockheight"})
"""Methods that wait for an event: each counts against C{max_waiting}."""
LOG_INTERVAL = 10.0
"""Seconds between two log lines of one refusal reason."""
MAX_SOURCES = 10_000
"""Sources whose failed logins are remembered at most (least recently
failed forgotten first)."""


def source_of(host: str | None) -> str:
    """
    The key failed logins are counted under for a client at C{host}: an
    IPv4 address as is, an IPv6 address by its /64 (one machine usually
    holds a whole /64), every loopback address as one C{"loopback"} (a
    local process may bind any of 127.0.0.0/8), anything that is no IP
    address (a UNIX socket, an in-memory transport) as C{"local"}.
    """
    if host is None:
        return "local"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "local"
    if isinstance(address, ipaddress.IPv6Address) and \
            address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def host_of(address: Any) -> str:
    """
    The host of a transport address, as logged.
    """
    host = getattr(address, "host", None)
    return str(host) if host is not None else str(address)


class Refusals:
    """
    Counts every refusal of the RPC server by reason and logs it, at most
    once per C{interval} seconds per reason (the line logged after a
    quiet spell says how many were suppressed).

    @ivar counts: refusals since start, by reason.
    """

    def __init__(self, clock: IReactorTime,
                 interval: float = LOG_INTERVAL) -> None:
        self.counts: dict[str, int] = {}
        self._log = RateLimitedLog(log, clock, interval)

    def refused(self, reason: str, client: str, what: str = "request",
                **fields: Any) -> None:
        """
        Count and log one refusal of C{what} (a request, a connection)
        from C{client} for C{reason}.
        """
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._log.info(reason, "RPC {what} from {client} refused: {reason}",
                       what=what, client=client, reason=reason, **fields)


# Failed logins ---------------------------------------------------------


@dataclass
class _Failures:
    count: int
    last: float
    locked_until: float


class LoginThrottle:
    """
    Failed logins per source: how long to hold each one's answer, and
    whether a source's credentials may be checked now.
    """

    def __init__(self, clock: IReactorTime, limits: RPCSettings,
                 max_sources: int = MAX_SOURCES) -> None:
        self.clock = clock
        self.free = limits.login_free_failures
        self.delay = limits.login_delay
        self.max_delay = max(limits.login_max_delay, limits.login_delay)
        self.forget = limits.login_forget
        self.max_sources = max_sources
        self._sources: dict[str, _Failures] = {}

    def active(self) -> bool:
        """
        Whether any source's failures are remembered (else L{wait} is 0
        for every source, and the caller need not work out its source).
        """
        return bool(self._sources)

    def wait(self, source: str) -> float:
        """
        Seconds before C{source}'s credentials are checked again (0: now).
        """
        state = self._sources.get(source)
        if state is None:
            return 0.0
        return max(0.0, state.locked_until - self.clock.seconds())

    def failed(self, source: str) -> float:
        """
        Record a wrong password from C{source}; return the seconds to hold
        its answer (0 for the free ones), during which L{wait} is positive.
        """
        now = self.clock.seconds()
        state = self._sources.pop(source, None)
        if state is None or now - state.last >= self.forget:
            state = _Failures(0, now, now)
        state.count += 1
        state.last = now
        excess = state.count - self.free
        delay = 0.0
        if excess > 0 and self.delay > 0:
            delay = min(self.max_delay,
                        self.delay * 2.0 ** min(excess - 1, 64))
        state.locked_until = now + delay
        self._sources[source] = state
        if len(self._sources) > self.max_sources:
            del self._sources[next(iter(self._sources))]
        return delay

    def failures(self, source: str) -> int:
        """
        Failed logins of C{source} remembered now.
        """
        state = self._sources.get(source)
        if state is None or self.clock.seconds() - state.last >= self.forget:
            return 0
        return state.count


# Connections -----------------------------------------------------------


IDLE = 0
"""Rank of an unauthenticated connection with no request under way."""
RECEIVING = 1
"""Rank of an unauthenticated connection sending a request."""
WAITING = 2
"""Rank of an unauthenticated connection whose request is being answered
(a failed login's delayed answer, say)."""
IDLE_AUTH = 3
"""Rank of an authenticated connection with no request under way."""
BUSY = 4
"""Rank of an authenticated connection with a request under way: never
evicted."""


class ConnectionLimiter:
    """
    The open RPC connections, by rank (then age in that rank), and the
    admission of new ones (L{admit}).
    """

    def __init__(self, max_connections: int, refusals: Refusals) -> None:
        self.max_connections = max_connections
        self.refusals = refusals
        self._ranked: list[dict[RPCChannel, None]] = [
            {} for _ in range(BUSY + 1)]
        self._rank: dict[RPCChannel, int] = {}

    def __len__(self) -> int:
        return len(self._rank)

    def admit(self, client: str) -> bool:
        """
        Whether a new connection from C{client} may open; evicts the
        connection worth least to make room when every slot is taken.
        """
        if not self.max_connections or len(self) < self.max_connections:
            return True
        victim = self._victim()
        if victim is None:
            self.refusals.refused("too-many-connections", client,
                                  what="connection")
            return False
        self.remove(victim)
        victim.evict()
        return True

    def _victim(self) -> RPCChannel | None:
        for rank in range(BUSY):
            ranked = self._ranked[rank]
            if ranked:
                return next(iter(ranked))
        return None

    def add(self, channel: RPCChannel, rank: int) -> None:
        """
        Count C{channel}, open now, at C{rank}.
        """
        self._rank[channel] = rank
        self._ranked[rank][channel] = None

    def update(self, channel: RPCChannel, rank: int) -> None:
        """
        C{channel} moved to C{rank} (the newest of it); nothing if it is
        no longer counted.
        """
        old = self._rank.get(channel)
        if old is None:
            return
        del self._ranked[old][channel]
        self.add(channel, rank)

    def remove(self, channel: RPCChannel) -> None:
        """
        Stop counting C{channel} (closed, or closing).
        """
        rank = self._rank.pop(channel, None)
        if rank is not None:
            del self._ranked[rank][channel]


class RPCChannel(http.HTTPChannel):
    """
    An HTTP channel of the RPC site under its limits: counted by the
    site's L{ConnectionLimiter}, closed when idle too long, and given one
    deadline per request.  Without limits on its site it is a plain
    C{HTTPChannel}.

    @ivar authenticated: a request on it carried valid credentials.
    """

    authenticated = False
    _phase = IDLE
    _timer: IDelayedCall | None = None
    _limiter: ConnectionLimiter | None = None
    _limits: RPCSettings
    _refusals: Refusals
    _clock: IReactorTime
    site: Any

    def connectionMade(self) -> None:
        super().connectionMade()
        limiter = getattr(self.site, "limiter", None)
        if limiter is None:
            return
        self._limiter = limiter
        self._limits = self.site.limits
        self._refusals = self.site.refusals
        self._clock = self.site.reactor
        limiter.add(self, IDLE)
        self._arm_idle()

    def client(self) -> str:
        """
        The peer's host, as logged.
        """
        return host_of(self.transport.getPeer()) if self.transport else "?"

    def rank(self) -> int:
        """
        What the connection is worth keeping (see L{ConnectionLimiter}).
        """
        if self.authenticated:
            return IDLE_AUTH if self._phase == IDLE else BUSY
        return self._phase

    def _moved(self, state: int) -> None:
        self._phase = state
        if self._limiter is not None:
            self._limiter.update(self, self.rank())

    def mark_authenticated(self) -> None:
        """
        A request on this connection carried valid credentials.
        """
        if not self.authenticated:
            self.authenticated = True
            self._moved(self._phase)

    def _arm(self, seconds: float, expired: Callable[[], None]) -> None:
        self._disarm()
        if seconds > 0:
            self._timer = self._clock.callLater(seconds, expired)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _arm_idle(self) -> None:
        limits = self._limits
        self._arm(limits.idle_timeout if self.authenticated
                  else limits.unauth_timeout, self._idle_expired)

    def dataReceived(self, data: bytes) -> None:
        if self._limiter is not None and data and self._phase == IDLE:
            self._moved(RECEIVING)
            self._arm(self._limits.request_timeout, self._request_expired)
        super().dataReceived(data)

    def allContentReceived(self) -> None:
        if self._limiter is not None:
            self._disarm()
            self._moved(WAITING)
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        if self._limiter is not None:
            self._moved(IDLE)
            self._arm_idle()
        super().requestDone(request)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._limiter is not None:
            self._disarm()
            self._limiter.remove(self)
        super().connectionLost(reason)

    def evict(self) -> None:
        """
        Close at once to make room for a newer connection (the limiter no
        longer counts this one).
        """
        self._disarm()
        self._refusals.refused("evicted", self.client(), what="connection",
                               rank=self.rank())
        self._abort()

    def _abort(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    def _idle_expired(self) -> None:
        self._timer = None
        if self._limiter is not None:
            self._limiter.remove(self)
        if self.authenticated:
            log.debug("RPC connection from {client} closed: idle",
                      client=self.client())
        else:
            self._refusals.refused("idle-timeout", self.client(),
                                   what="connection")
        self._abort()

    def _request_expired(self) -> None:
        self._timer = None
        if self._limiter is not None:
            self._limiter.remove(self)
        seconds = self._limits.request_timeout
        self._refusals.refused("request-timeout", self.client())
        body = (b'{"result": null, "error": {"code": %d, "message": '
                b'"Request timeout: headers and body must arrive within '
                b'%g s"}, "id": null}\n' % (REQUEST_TIMEOUT, seconds))
        transport: Any = self.transport
        transport.write(
            b"HTTP/1.1 408 Request Timeout\r\n"
            b"Content-Type: application/json\r\n"
            b"Connection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.loseConnection()
