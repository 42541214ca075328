"""
What one connection does with the bytes it reads: lines framed (at most
the line limit of its state), the messages each state accepts
(L{STATES}), limits before work (a repeated gossip line, an unsolicited
response or an exhausted rate limit is refused before it is decoded), and
each message handed to its handler.  Imports only
L{timecoin.p2p.caches}, L{timecoin.p2p.dependencies},
L{timecoin.p2p.framing}, L{timecoin.p2p.messages},
L{timecoin.p2p.output}, L{timecoin.p2p.ratelimit},
L{timecoin.p2p.requests} and L{timecoin.p2p.tls}.
"""

from __future__ import annotations

import weakref
from collections import Counter
from operator import attrgetter
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from timecoin.encoding import sha256
from timecoin.logs import RateLimitedLog
from timecoin.p2p.caches import KnownSet
from timecoin.p2p.dependencies import ConnectionHost, State
from timecoin.p2p.framing import LineBuffer
from timecoin.p2p.messages import Message, MessageError, parse_line, sniff_type
from timecoin.p2p.output import OutputBound
from timecoin.p2p.ratelimit import RateLimiter
from timecoin.p2p.requests import Requests
from timecoin.p2p.tls import looks_like_tls

log = Logger(namespace="timecoin.p2p.protocol")
"""The connection's log lines keep the namespace they always had."""

LOG_REPEAT_SECONDS = 60.0
"""A handler's traceback is logged at most once a minute per message type,
and a banned IP's further connections once a minute per IP (a peer's
crafted input must not turn into megabytes of log)."""

STATES: dict[State, dict[str, str]] = {
    State.HELLO: {
        "hello": "handshake.hello_received",
        "hello_proof": "handshake.proof_received",
        "error": "error_received",
    },
    State.READY: {
        "ping": "keepalive.pinged",
        "pong": "keepalive.ponged",
        "error": "error_received",
        "peers": "requests.answered",
        "blocks": "requests.answered",
        "tip": "requests.answered",
    },
}
"""Per connection state: the message types the connection handles itself
and their handler (an attribute path from the connection).  In the ready
state every type of the manager's handler table is accepted too
(L{Intake.handler_for})."""

TO_MANAGER = "manager"
"""The handler of a ready-state type the manager dispatches (its
C{message_received})."""

SERVED = frozenset({"get_peers", "get_blocks", "get_tip", "get_tx_votes",
                    "get_txs"})
"""Requests we answer: held, not served, while the peer's output buffer is
above L{timecoin.p2p.settings.P2PSettings.output_soft_bytes}."""

RESPONSES = frozenset(name for name, handler in STATES[State.READY].items()
                      if handler == "requests.answered")
"""Responses to our requests: a line of one that no pending request
expects is refused before it is decoded."""

_LIMITED: weakref.WeakKeyDictionary[Any, RateLimitedLog] = \
    weakref.WeakKeyDictionary()


def limited_log(clock: IReactorTime) -> RateLimitedLog:
    """
    The log limiter shared by every connection on C{clock} (handler
    tracebacks by message type, banned senders by IP).
    """
    limited = _LIMITED.get(clock)
    if limited is None:
        limited = _LIMITED[clock] = RateLimitedLog(log, clock,
                                                      LOG_REPEAT_SECONDS)
    return limited


class Reading(Protocol):
    """
    The connection as its intake sees it
    (L{timecoin.p2p.protocol.PeerProtocol} is the implementation).
    """

    MAX_LENGTH: int
    MAX_HELLO_LENGTH: int
    state: State
    line_digest: bytes | None
    known: KnownSet
    limiter: RateLimiter
    received: Counter[str]
    output: OutputBound
    requests: Requests

    @property
    def transport(self) -> Any:
        """
        The connection's Twisted transport (is it disconnecting?).
        """

    @property
    def peer(self) -> str:
        """
        How logs name the peer.
        """

    def lineReceived(self, line: bytes) -> None:
        """
        Handle one complete line (L{Intake.line_received}).
        """

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line longer than the limit arrived (L{Intake.too_long}).
        """

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        Count and score an offence of the peer; reply or close.
        """


class Intake:
    """
    The reading side of one connection: its partial lines and the bytes
    it read.

    @ivar bytes_in: bytes read from the peer so far.
    """

    def __init__(self, conn: Reading, host: ConnectionHost[Any, Any],
                 delimiter: bytes) -> None:
        self.conn = conn
        self.host = host
        self.clock = host.clock
        self.framer = LineBuffer(delimiter)
        self.bytes_in = 0

    def data_received(self, data: bytes) -> None:
        """
        Split C{data} into lines.  Same contract as
        L{twisted.protocols.basic.LineOnlyReceiver.dataReceived}
        (C{MAX_LENGTH}, nothing handled once the transport is
        disconnecting), but buffers partial lines as chunks, so a line of
        megabytes arriving in small reads costs linear, not quadratic,
        time.
        """
        conn = self.conn
        self.bytes_in += len(data)
        if conn.transport.disconnecting or conn.state == State.CLOSED:
            return
        if self.bytes_in == len(data) and looks_like_tls(data):
            conn.misbehaved("tls-unexpected",
                            "the peer speaks TLS; p2p_tls is off here",
                            close=True)
            return
        for line in self.framer.feed(data):
            if conn.transport.disconnecting:
                return
            if len(line) > self.line_limit:
                conn.lineLengthExceeded(line)
                return
            conn.lineReceived(line)
        if self.framer.buffered > self.line_limit:
            conn.lineLengthExceeded(self.framer.clear())

    @property
    def line_limit(self) -> int:
        """
        The longest line accepted now: C{MAX_HELLO_LENGTH} until the
        handshake is done, then C{MAX_LENGTH}.
        """
        conn = self.conn
        return conn.MAX_LENGTH if conn.state == State.READY \
            else conn.MAX_HELLO_LENGTH

    def too_long(self) -> None:
        """
        A line longer than the limit: framing cannot be trusted any more;
        error, score, close.
        """
        self.conn.misbehaved("line-too-long",
                             f"more than {self.line_limit} bytes", close=True)

    def line_received(self, line: bytes) -> None:
        """
        Parse one line and dispatch it through the current state's table.

        In the ready state a line identical to one whose gossip item was
        taken already (the manager's L{timecoin.p2p.caches.LineCache}, by
        SHA-256) is dropped before parsing: it still counts against its
        type's rate limit and as received, and the item's handler counts
        it as a duplicate.
        """
        conn = self.conn
        state = conn.state
        if state == State.CLOSED or conn.transport.disconnecting:
            return
        if not line.strip():
            return
        digest = None
        if state == State.READY:
            digest = sha256(line)
            conn.known.add(digest, self.clock.seconds())
            repeated = self.host.lines.lookup(digest)
            if repeated is not None:
                self._repeated(*repeated)
                return
        in_hello = state == State.HELLO
        sniffed = sniff_type(line) if state == State.READY else None
        if sniffed is not None and not self._worth_decoding(sniffed, line):
            return
        try:
            msg = parse_line(line)
        except MessageError as e:
            conn.misbehaved(e.reason, e.detail, close=in_hello)
            return
        name = msg.name
        handler = self.handler_for(name)
        if handler is None:
            if in_hello:
                conn.misbehaved("expected-hello", f"got {name} first",
                                close=True)
            else:
                conn.misbehaved("not-allowed-in-state",
                                f"{name} in state {state}")
            return
        if not conn.limiter.allow(name, msg.cost):
            conn.misbehaved("rate-limited", name)
            return
        conn.received[name] += 1
        if name in SERVED and conn.output.should_hold():
            conn.output.hold(msg)
            return
        conn.line_digest = digest
        try:
            self.dispatch(handler, msg)
        finally:
            conn.line_digest = None

    def handler_for(self, name: str) -> str | None:
        """
        The handler of a C{name} message in the current state: one of
        L{STATES}, L{TO_MANAGER} for a type of the manager's handler
        table (ready state only), or C{None} if it is not accepted now.
        """
        state = self.conn.state
        handler = STATES.get(state, {}).get(name)
        if handler is None and state == State.READY and \
                name in self.host.handlers:
            return TO_MANAGER
        return handler

    def _worth_decoding(self, kind: str, line: bytes) -> bool:
        """
        Limits before work, for a ready-state C{line} declaring type
        C{kind} (L{sniff_type}): a response longer than any response our
        pending requests await, or a type whose rate limit has no token
        left, is refused before the line is decoded.
        """
        conn = self.conn
        if self.handler_for(kind) is None:
            return True  # unknown or misplaced: parse_line says which
        if kind in RESPONSES:
            if len(line) > conn.requests.awaited_bytes():
                conn.misbehaved("unsolicited-response",
                                f"{kind} of {len(line)} bytes, not decoded")
                return False
        if conn.limiter.exhausted(kind):
            conn.misbehaved("rate-limited", kind)
            return False
        return True

    def dispatch(self, handler: str, msg: Message) -> None:
        """
        Hand C{msg} to C{handler}; an exception is counted and its
        traceback logged at most once per L{LOG_REPEAT_SECONDS} per type.
        """
        try:
            if handler == TO_MANAGER:
                self.host.message_received(self.conn, msg)
            else:
                attrgetter(handler)(self.conn)(msg)
        except Exception:
            self.host.count("handler-error")
            if limited_log(self.clock).emit(
                    ("traceback", msg.name), LogLevel.error,
                    "handling {msg_type} from {peer} failed",
                    msg_type=msg.name, peer=self.conn.peer,
                    log_failure=Failure()) is False:
                self.host.count("log-suppressed")

    def _repeated(self, name: str, owner: Any) -> None:
        """
        A repeat of a handled C{name} line: rate-limited like any, then
        dropped and counted (L{line_received}).
        """
        conn = self.conn
        if not conn.limiter.allow(name):
            conn.misbehaved("rate-limited", name)
            return
        conn.received[name] += 1
        self.host.count("line-duplicate")
        owner.line_repeated(name)
