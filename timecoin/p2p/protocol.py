"""
One connection to one peer, the same class for both directions.

L{PeerProtocol} does framing (one JSON object per ``\\n``-terminated line,
at most L{MAX_LINE_BYTES}), the connection states with their own tables of
accepted messages, the handshake timer, ping/pong (nonce matched, RTT
measured, N misses disconnect), request ids with timeouts, and rate limits.
Everything else -- whether a handshake is acceptable, what a message means
-- it hands to its manager (a L{timecoin.p2p.dependencies.ConnectionHost},
the L{timecoin.p2p.manager.PeerManager}).  The ready state accepts the
connection-level messages of L{STATES} plus every type of the manager's
handler table (L{timecoin.p2p.dependencies.HandlerTable}).  The seeds'
outbound side never processed pongs because it ran another loop than the
inbound side; here there is one loop.

L{PeerServerFactory} builds inbound connections; L{PeerClientFactory}
dials one peer with exponential backoff and jitter.
"""

from __future__ import annotations

import random
import weakref
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, task
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import ReconnectingClientFactory, ServerFactory
from twisted.logger import Logger, LogLevel
from twisted.protocols.basic import LineOnlyReceiver
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from timecoin.encoding import sha256
from timecoin.logs import RateLimitedLog
from timecoin.p2p.caches import KnownSet
from timecoin.p2p.dependencies import ConnectionHost, Direction, RequestFailed
from timecoin.p2p.handshake import HelloProof
from timecoin.p2p.messages import (
    MAX_ID,
    MAX_LINE_BYTES,
    MAX_NONCE,
    Error,
    Hello,
    Message,
    MessageError,
    Ping,
    Pong,
    Request,
    Response,
    line_cap,
    parse_line,
    sniff_type,
    with_id,
)
from timecoin.p2p.peers import normalize_ip, peer_key
from timecoin.p2p.ratelimit import RateLimiter
from timecoin.p2p.scoring import OFFENCES, Offence
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.tls import looks_like_tls, pin_refusal, tls_failure

log = Logger()

LOG_REPEAT_SECONDS = 60.0
"""A handler's traceback is logged at most once a minute per message type,
and a banned IP's further connections once a minute per IP (a peer's
crafted input must not turn into megabytes of log)."""

INBOUND = Direction.INBOUND
OUTBOUND = Direction.OUTBOUND

CONNECTING = "connecting"
HELLO = "hello"
READY = "ready"
CLOSED = "closed"

STATES: dict[str, dict[str, str]] = {
    HELLO: {
        "hello": "_got_hello",
        "hello_proof": "_got_hello_proof",
        "error": "_got_error",
    },
    READY: {
        "ping": "_got_ping",
        "pong": "_got_pong",
        "error": "_got_error",
        "peers": "_got_response",
        "blocks": "_got_response",
        "tip": "_got_response",
    },
}
"""Per connection state: the message types the connection handles itself
and their handler.  In the ready state every type of the manager's
handler table is accepted too (L{PeerProtocol.handler_for})."""

TO_MANAGER = "_to_manager"
"""The handler of a ready-state type the manager dispatches."""

SERVED = frozenset({"get_peers", "get_blocks", "get_tip", "get_tx_votes"})
"""Requests we answer: held, not served, while the peer's output buffer is
above L{P2PSettings.output_soft_bytes}."""

RESPONSES = frozenset(name for name, handler in STATES[READY].items()
                      if handler == "_got_response")
"""Responses to our requests: a line of one that no pending request
expects is refused before it is decoded."""

_LIMITED: weakref.WeakKeyDictionary[Any, RateLimitedLog] = \
    weakref.WeakKeyDictionary()


def _limited_log(clock: IReactorTime) -> RateLimitedLog:
    """
    The log limiter shared by every connection on C{clock} (handler
    tracebacks by message type, banned senders by IP).
    """
    limited = _LIMITED.get(clock)
    if limited is None:
        limited = _LIMITED[clock] = RateLimitedLog(log, clock,
                                                      LOG_REPEAT_SECONDS)
    return limited


ABORT_AT_ONCE = frozenset({"output-overflow"})
"""Close reasons that say the peer does not read: its connection is
aborted at once instead of flushing an C{error} it will never see."""


def output_buffered(transport: Any) -> int:
    """
    Bytes written to C{transport} that it has not handed to the kernel yet:
    Twisted's TCP buffers (C{FileDescriptor}), under TLS its unencrypted
    backlog too; a fake transport may say with C{output_buffered()}; 0 for
    anything else (an unknown transport is not bounded).
    """
    total = 0
    for _ in range(3):
        if isinstance(transport, TLSMemoryBIOProtocol):
            total += sum(len(data) for data in
                         getattr(transport, "_appSendBuffer", ()))
            transport = transport.transport
        elif isinstance(transport, FileDescriptor):
            return (total + len(transport.dataBuffer) - transport.offset
                    + transport._tempDataLen)
        else:
            measure = getattr(transport, "output_buffered", None)
            return total + (int(measure()) if callable(measure) else 0)
    return total


@dataclass
class _Pending:
    """
    An outstanding request: its Deferred, timeout and expected response.
    """

    deferred: defer.Deferred[Any]
    call: IDelayedCall
    response: str
    sent_at: float


Host = ConnectionHost["PeerProtocol", "PeerClientFactory"]
"""What a connection and its dialer need from the manager."""

READ_SIZE = 256 * 1024
"""Bytes read from a peer's socket per reactor turn at most."""


@implementer(IPushProducer)
class PeerProtocol(LineOnlyReceiver):
    """
    A connection to a peer, inbound or outbound.

    Output is bounded per connection: the protocol is its transport's
    streaming producer (L{resumeProducing} says the peer drained what we
    wrote); while more than C{output_soft_bytes} wait, the peer's requests
    are held (at most C{held_requests}, then its socket is not read) and
    served once it drains; past C{output_hard_bytes} it is dropped.  A
    dropped peer leaves the manager's peer set at once (L{close}), and its
    socket is aborted, at once or after C{close_grace}.

    @ivar direction: L{INBOUND} or L{OUTBOUND}.
    @ivar state: L{CONNECTING}, L{HELLO}, L{READY} or L{CLOSED}.
    @ivar ip: the peer's IP.
    @ivar peer_key: the peer's identity (see L{timecoin.p2p.peers.peer_key});
        known at once for outbound connections, after C{hello} for inbound.
    @ivar hello: the peer's C{hello}, once received.
    @ivar rtt: the last ping round-trip time in seconds.
    """

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE_BYTES
    MAX_HELLO_LENGTH = 4096
    """Before the handshake completes only C{hello} and C{error} (at most
    1,024 bytes) are legal, so a peer cannot make us buffer megabytes
    before it identified itself."""

    def __init__(self, manager: Host, direction: Direction,
                 dialer: PeerClientFactory | None = None) -> None:
        self.manager = manager
        self.settings: P2PSettings = manager.settings
        self.clock: IReactorTime = manager.clock
        self.direction = direction
        self.dialer = dialer
        self.state = CONNECTING
        self.ip = ""
        self.remote_port = 0
        self.dial_port = dialer.port if dialer is not None else 0
        self.peer_key = dialer.key if dialer is not None else ""
        self.hello: Hello | None = None
        self.rtt: float | None = None
        self.connected_at = 0.0
        self.ready_at: float | None = None
        self.ready_serial = 0
        """Which completed handshake of the manager this was (1, 2, …)."""
        self.close_reason: str | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.pings: dict[int, float] = {}
        self.missed_pongs = 0
        self.requests: dict[int, _Pending] = {}
        self._next_id = 0
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._handshake_call: IDelayedCall | None = None
        self._pinger: task.LoopingCall | None = None
        self._abort_call: IDelayedCall | None = None
        self._overflow_call: IDelayedCall | None = None
        self.held: deque[Message] = deque()
        """Requests waiting for the peer to read what we sent before."""
        self.reading_paused = False
        """Whether we stopped reading the peer's socket (too many held)."""
        self.limiter = RateLimiter(self.clock, self.settings.rate_limits)
        self.line_digest: bytes | None = None
        """The SHA-256 of the ready-state line being handled (handlers
        record it in the manager's L{timecoin.p2p.caches.LineCache} once
        its item is seen)."""
        self.known = KnownSet(self.settings.known_size)
        """Digests of the gossip lines this peer is known to hold (it sent
        them to us, or we to it, over this connection): the manager's
        relay never sends it one of them
        (L{timecoin.p2p.registry.PeerRegistry.relay})."""

    def __repr__(self) -> str:
        return f"<PeerProtocol {self.peer} {self.direction} {self.state}>"

    @property
    def _transport(self) -> Any:
        return self.transport

    @property
    def peer(self) -> str:
        """
        How logs name the peer: its identity, or its address before that.
        """
        return self.peer_key or f"{self.ip}:{self.remote_port}"

    # Twisted events ------------------------------------------------------

    def connectionMade(self) -> None:
        if isinstance(getattr(self._transport, "bufferSize", None), int):
            # Read and write up to READ_SIZE per reactor turn instead of
            # Twisted's 64 KiB / 128 KiB: a 2 MB proposal otherwise takes
            # some twenty turns each way, each shared with every other
            # connection's work, and under load its round timed out
            # (measured: blocks stalled at 1,000 tx/s offered).  1 MiB was
            # too much: one turn then read more transactions than the
            # admission slice takes, and the backlog grew.
            self._transport.bufferSize = READ_SIZE
            self._transport.SEND_LIMIT = READ_SIZE
        register = getattr(self._transport, "registerProducer", None)
        if register is not None:
            try:
                register(self, True)
            except RuntimeError:  # pragma: no cover - a producer already
                pass
        address = self._transport.getPeer()
        self.ip = normalize_ip(str(getattr(address, "host", "")))
        self.remote_port = int(getattr(address, "port", 0) or 0)
        self.connected_at = self.clock.seconds()
        if self.direction == OUTBOUND and self.ip:
            self.peer_key = peer_key(self.ip, self.dial_port)
        reason = self.manager.connection_made(self)
        if reason is not None:
            self.state = HELLO
            self.misbehaved(reason, close=True)
            return
        self.state = HELLO
        self.send(self.manager.local_hello())
        self._handshake_call = self.clock.callLater(
            self.settings.handshake_timeout, self._handshake_timed_out)

    def dataReceived(self, data: bytes) -> None:
        """
        Split C{data} into lines.  Same contract as
        L{LineOnlyReceiver.dataReceived} (C{MAX_LENGTH}, nothing handled
        once the transport is disconnecting), but buffers partial lines as
        chunks, so a line of megabytes arriving in small reads costs
        linear, not quadratic, time.
        """
        self.bytes_in += len(data)
        if self._transport.disconnecting or self.state == CLOSED:
            return
        if self.bytes_in == len(data) and looks_like_tls(data):
            self.misbehaved("tls-unexpected",
                            "the peer speaks TLS; p2p_tls is off here",
                            close=True)
            return
        if self.delimiter not in data:
            self._chunks.append(data)
            self._buffered += len(data)
            if self._buffered > self.line_limit:
                self._overflow()
            return
        self._chunks.append(data)
        lines = b"".join(self._chunks).split(self.delimiter)
        rest = lines.pop()
        self._chunks = [rest] if rest else []
        self._buffered = len(rest)
        for line in lines:
            if self._transport.disconnecting:
                return
            if len(line) > self.line_limit:
                self.lineLengthExceeded(line)
                return
            self.lineReceived(line)
        if self._buffered > self.line_limit:
            self._overflow()

    @property
    def line_limit(self) -> int:
        """
        The longest line accepted now: C{MAX_HELLO_LENGTH} until the
        handshake is done, then C{MAX_LENGTH}.
        """
        return self.MAX_LENGTH if self.state == READY \
            else self.MAX_HELLO_LENGTH

    def _overflow(self) -> None:
        buffered = b"".join(self._chunks)
        self._chunks = []
        self._buffered = 0
        self.lineLengthExceeded(buffered)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line longer than C{MAX_LENGTH}: framing cannot be trusted any
        more; error, score, close.
        """
        self.misbehaved("line-too-long",
                        f"more than {self.line_limit} bytes", close=True)

    def lineReceived(self, line: bytes) -> None:
        """
        Parse one line and dispatch it through the current state's table.

        In the ready state a line identical to one whose gossip item was
        taken already (the manager's L{timecoin.p2p.caches.LineCache}, by
        SHA-256) is dropped before parsing: it still counts against its
        type's rate limit and as received, and the item's handler counts
        it as a duplicate.
        """
        state = self.state
        if state == CLOSED or self._transport.disconnecting:
            return
        if not line.strip():
            return
        digest = None
        if state == READY:
            digest = sha256(line)
            self.known.add(digest, self.clock.seconds())
            repeated = self.manager.lines.lookup(digest)
            if repeated is not None:
                self._repeated(*repeated)
                return
        in_hello = state == HELLO
        sniffed = sniff_type(line) if state == READY else None
        if sniffed is not None and not self._worth_decoding(sniffed, line):
            return
        try:
            msg = parse_line(line)
        except MessageError as e:
            self.misbehaved(e.reason, e.detail, close=in_hello)
            return
        name = msg.name
        handler = self.handler_for(name)
        if handler is None:
            if in_hello:
                self.misbehaved("expected-hello", f"got {name} first",
                                close=True)
            else:
                self.misbehaved("not-allowed-in-state",
                                f"{name} in state {state}")
            return
        if not self.limiter.allow(name, msg.cost):
            self.misbehaved("rate-limited", name)
            return
        self.received[name] += 1
        if name in SERVED:
            if self.held:
                self._serve_held()  # the transport may not have said
            if self.held or self.output_buffered() > \
                    self.settings.output_soft_bytes:
                self._hold(msg)
                return
        self.line_digest = digest
        try:
            self._dispatch(handler, msg)
        finally:
            self.line_digest = None

    def handler_for(self, name: str) -> str | None:
        """
        The handler of a C{name} message in the current state: one of
        L{STATES}, L{TO_MANAGER} for a type of the manager's handler
        table (ready state only), or C{None} if it is not accepted now.
        """
        handler = STATES.get(self.state, {}).get(name)
        if handler is None and self.state == READY and \
                name in self.manager.handlers:
            return TO_MANAGER
        return handler

    def _worth_decoding(self, kind: str, line: bytes) -> bool:
        """
        Limits before work, for a ready-state C{line} declaring type
        C{kind} (L{sniff_type}): a response longer than any response our
        pending requests await, or a type whose rate limit has no token
        left, is refused before the line is decoded.
        """
        if self.handler_for(kind) is None:
            return True  # unknown or misplaced: parse_line says which
        if kind in RESPONSES:
            awaited = max((line_cap(entry.response)
                           for entry in self.requests.values()), default=0)
            if len(line) > awaited:
                self.misbehaved("unsolicited-response",
                                f"{kind} of {len(line)} bytes, not decoded")
                return False
        if self.limiter.exhausted(kind):
            self.misbehaved("rate-limited", kind)
            return False
        return True

    def _dispatch(self, handler: str, msg: Message) -> None:
        """
        Hand C{msg} to C{handler}; an exception is counted and its
        traceback logged at most once per L{LOG_REPEAT_SECONDS} per type.
        """
        try:
            if handler == TO_MANAGER:
                self.manager.message_received(self, msg)
            else:
                getattr(self, handler)(msg)
        except Exception:
            self.manager.count("handler-error")
            if _limited_log(self.clock).emit(
                    ("traceback", msg.name), LogLevel.error,
                    "handling {msg_type} from {peer} failed",
                    msg_type=msg.name, peer=self.peer,
                    log_failure=Failure()) is False:
                self.manager.count("log-suppressed")

    # Bounded output ------------------------------------------------------

    def output_buffered(self) -> int:
        """
        Bytes we wrote to this peer that still wait in our transport.
        """
        return output_buffered(self.transport)

    def _hold(self, msg: Message) -> None:
        """
        The peer asked for more while it has not read what we sent: keep
        the request until it drains; past C{held_requests}, stop reading
        its socket (the request is dropped, counted).
        """
        if len(self.held) >= self.settings.held_requests:
            # Counted and logged (rate-limited) like an offence of no
            # points: the peer is not charged, being slow.
            self.manager.offence(self, "request-dropped:output-full",
                                 f"{msg.name}, {len(self.held)} held", 0)
            if not self.reading_paused:
                self.reading_paused = True
                self.manager.offence(
                    self, "reading-paused",
                    f"{self.output_buffered()} bytes unread", 0)
                self._transport.pauseProducing()
            return
        self.manager.count("request-held")
        self.held.append(msg)

    def _serve_held(self) -> None:
        """
        Serve held requests while the peer's output buffer is under the
        soft bound; resume reading once none are held.  Runs when the
        transport says it drained (only once its buffer passed its own
        C{bufferSize}, L{READ_SIZE}), on the peer's next request, and on
        each ping tick.
        """
        soft = self.settings.output_soft_bytes
        while self.held and self.state == READY and \
                self.close_reason is None and self.output_buffered() <= soft:
            self._dispatch(TO_MANAGER, self.held.popleft())
        if not self.held and self.reading_paused and self.state == READY:
            self.reading_paused = False
            self._transport.resumeProducing()

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full (L{IPushProducer}); nothing
        to do: L{send_line} measures the buffer itself.
        """

    def resumeProducing(self) -> None:
        """
        The transport wrote out its buffer (L{IPushProducer}): serve what
        was held.
        """
        if self.held or self.reading_paused:
            self._serve_held()

    def stopProducing(self) -> None:
        """
        The transport is going away (L{IPushProducer}).
        """
        self.held.clear()

    def _overflowed(self) -> None:
        """
        The hard bound was passed (L{send_line}): drop the peer, unless it
        is gone already.
        """
        self._overflow_call = None
        if self.close_reason is not None or self.state == CLOSED:
            return
        self.misbehaved("output-overflow",
                        f"{self.output_buffered()} bytes unread > "
                        f"{self.settings.output_hard_bytes}", close=True)

    def _repeated(self, name: str, owner: Any) -> None:
        """
        A repeat of a handled C{name} line: rate-limited like any, then
        dropped and counted (L{lineReceived}).
        """
        if not self.limiter.allow(name):
            self.misbehaved("rate-limited", name)
            return
        self.received[name] += 1
        self.manager.count("line-duplicate")
        owner.line_repeated(name)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if self._overflow_call is not None and self._overflow_call.active():
            self._overflow_call.cancel()
        self._overflow_call = None
        if self.state == CLOSED:
            return  # close() let the manager know already
        failed = tls_failure(reason)
        if failed is not None and self.close_reason is None:
            self.close_reason = "tls-failed"
            self.manager.closing(self, "tls-failed", failed)
        self._gone()

    def _gone(self) -> None:
        """
        The connection is over for us: no more timers or held requests,
        out of the manager's peer set, pending requests failed.
        """
        self.state = CLOSED
        self._stop_timers()
        self.held.clear()
        self.manager.connection_lost(self)
        pending, self.requests = self.requests, {}
        for entry in pending.values():
            if entry.call.active():
                entry.call.cancel()
            entry.deferred.errback(RequestFailed("connection-lost"))

    # Sending -------------------------------------------------------------

    def send(self, msg: Message) -> bool:
        """
        Send C{msg}; returns whether it was written (not after close).
        """
        return self.send_line(msg.name, msg.encode())

    def send_line(self, name: str, line: bytes) -> bool:
        """
        Send an already encoded message C{line} of type C{name}.
        """
        if self.state == CLOSED or self.transport is None or \
                self._transport.disconnecting:
            return False
        if self._overflow_call is not None:
            self.manager.count("send-dropped:output-overflow")
            return False
        self.bytes_out += len(line) + 1
        self.sent[name] += 1
        self.sendLine(line)
        if self.close_reason is None and \
                self.output_buffered() > self.settings.output_hard_bytes:
            # Dropped next turn, not here: a sender may be iterating the
            # peer set this drop changes.
            self._overflow_call = self.clock.callLater(0, self._overflowed)
        return True

    def close(self, reason: str, detail: str = "", tell: bool = True,
              logged: bool = True) -> None:
        """
        End the connection for C{reason}, telling the peer with an
        C{error} message first unless C{tell} is false; the manager logs
        and counts it unless C{logged} is false (then it is only counted:
        the caller logged it).

        The peer leaves the manager's peer set now, not when the socket
        closes (a stalled socket never completes C{loseConnection}).  A
        peer that does not read (its output above the soft bound, or a
        reason in L{ABORT_AT_ONCE}) or that is not told is aborted at
        once; else the socket flushes the C{error} for up to
        C{close_grace} seconds and is then aborted.
        """
        if self.close_reason is not None or self.state == CLOSED:
            return
        if logged:
            self.manager.closing(self, reason, detail)
        else:
            self.manager.count(f"closed:{reason}")
        stalled = reason in ABORT_AT_ONCE or \
            self.output_buffered() > self.settings.output_soft_bytes
        if tell and not stalled:
            self.send(Error(reason, detail))
        self.close_reason = reason
        transport = self._transport
        try:
            transport.unregisterProducer()
        except (AttributeError, RuntimeError):
            pass  # a transport without producers, or none registered
        if stalled or not tell:
            transport.abortConnection()
        else:
            transport.loseConnection()
            self._abort_call = self.clock.callLater(
                self.settings.close_grace, self._abort)
        if self.state != CLOSED:
            self._gone()

    def _abort(self) -> None:
        """
        The grace after L{close} is over: abort a socket still open.
        """
        self._abort_call = None
        self.manager.count("aborted-after-grace")
        self._transport.abortConnection()

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        The peer did something wrong (or unacceptable): count and score it
        (L{OFFENCES}), then reply with an C{error}, or close, or both.

        A scored offence of an identity banned already (a banned sender's
        next connection, on loopback where bans do not refuse the
        connection) is only counted, and its connection closed: one log
        line a minute per IP for all of them, not three per connection.
        """
        offence = OFFENCES.get(reason, Offence(0))
        if offence.points > 0 and \
                self.manager.scores.banned(self.peer_key or self.ip):
            self.manager.count(reason)
            if _limited_log(self.clock).emit(
                    ("banned", self.ip), LogLevel.info,
                    "closing connection of banned {ip}: {reason}",
                    ip=self.ip, peer=self.peer, reason=reason) is False:
                self.manager.count("log-suppressed")
            self.close("banned", reason, logged=False)
            return
        banned = self.manager.offence(self, reason, detail, offence.points)
        if banned:
            self.close("banned", reason)
        elif close or offence.close:
            self.close(reason, detail, tell=offence.reply or close)
        elif offence.reply:
            self.send(Error(reason, detail))

    # Handshake -----------------------------------------------------------

    def _handshake_timed_out(self) -> None:
        self._handshake_call = None
        if self.state == HELLO:
            self.misbehaved("handshake-timeout",
                            f"no hello within {self.settings.handshake_timeout}"
                            " s", close=True)

    def _got_hello(self, msg: Hello) -> None:
        if self.hello is not None:
            self.misbehaved("expected-hello", "a second hello", close=True)
            return
        self.hello = msg
        refusal = pin_refusal(self.transport, msg.pubkey, self.settings.tls) \
            or self.manager.hello_received(self, msg)
        if refusal is not None:
            self.misbehaved(*refusal, close=True)

    def _got_hello_proof(self, msg: HelloProof) -> None:
        # The peer proves its hello's key (timecoin.p2p.handshake).
        if self.hello is None:
            self.misbehaved("expected-hello", "hello_proof before hello",
                            close=True)
            return
        refusal = self.manager.proof_received(self, msg)
        if refusal is not None:
            self.misbehaved(*refusal, close=True)
            return
        self.state = READY
        self.ready_at = self.clock.seconds()
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None
        self._pinger = task.LoopingCall(self._ping_tick)
        self._pinger.clock = self.clock
        self._pinger.start(self.settings.ping_interval, now=True)
        if self.dialer is not None:
            self.dialer.handshake_done(self)
        self.manager.peer_ready(self)

    def _got_error(self, msg: Error) -> None:
        self.manager.error_received(self, msg)
        if self.state == HELLO:
            self.close("refused-by-peer", msg.reason, tell=False)

    # Ping ----------------------------------------------------------------

    def _ping_tick(self) -> None:
        if self.held or self.reading_paused:
            self._serve_held()
        now = self.clock.seconds()
        for nonce, sent_at in list(self.pings.items()):
            if now - sent_at >= self.settings.pong_timeout:
                del self.pings[nonce]
                self.missed_pongs += 1
                self.manager.count("pong-missed")
        if self.missed_pongs >= self.settings.max_missed_pongs:
            self.misbehaved("ping-timeout",
                            f"{self.missed_pongs} pongs missed", close=True)
            return
        nonce = self.manager.rng.randint(0, MAX_NONCE)
        self.pings[nonce] = now
        self.send(Ping(nonce))

    def _got_ping(self, msg: Ping) -> None:
        self.send(Pong(msg.nonce))

    def _got_pong(self, msg: Pong) -> None:
        sent_at = self.pings.pop(msg.nonce, None)
        if sent_at is None:
            self.manager.count("pong-unknown-nonce")
            return
        self.rtt = self.clock.seconds() - sent_at
        self.missed_pongs = 0

    # Requests ------------------------------------------------------------

    def request(self, request: Request) -> defer.Deferred[Any]:
        """
        Send C{request} with a fresh id; fires with the response that
        echoes the id, or fails with L{RequestFailed} (timeout after
        C{request_timeout}, connection lost, wrong response type).
        """
        if self.state != READY or self.close_reason is not None:
            return defer.fail(RequestFailed("not-ready"))
        if len(self.requests) >= self.settings.max_pending_requests:
            return defer.fail(RequestFailed("too-many-requests"))
        request_id = self._next_id
        while request_id in self.requests:
            request_id = (request_id + 1) & MAX_ID
        self._next_id = (request_id + 1) & MAX_ID
        d: defer.Deferred[Any] = defer.Deferred()
        call = self.clock.callLater(self.settings.request_timeout,
                                    self._request_timed_out, request_id)
        self.requests[request_id] = _Pending(d, call, request.response,
                                             self.clock.seconds())
        self.send(with_id(request, request_id))
        return d

    def _request_timed_out(self, request_id: int) -> None:
        entry = self.requests.pop(request_id, None)
        if entry is not None:
            self.manager.count("request-timeout")
            log.info("request {id} to {peer} timed out", id=request_id,
                     peer=self.peer)
            entry.deferred.errback(RequestFailed("timeout"))

    def _got_response(self, msg: Response) -> None:
        entry = self.requests.pop(msg.id, None)
        if entry is None:
            self.misbehaved("unsolicited-response", f"{msg.name} id {msg.id}")
            return
        if entry.call.active():
            entry.call.cancel()
        if entry.response != msg.name:
            detail = f"{msg.name} answers a request for {entry.response}"
            self.misbehaved("bad-response", detail)
            entry.deferred.errback(RequestFailed("bad-response", detail))
            return
        entry.deferred.callback(msg)

    def _to_manager(self, msg: Message) -> None:
        self.manager.message_received(self, msg)

    # Helpers -------------------------------------------------------------

    def _stop_timers(self) -> None:
        if self._handshake_call is not None and self._handshake_call.active():
            self._handshake_call.cancel()
        self._handshake_call = None
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None

    def info(self) -> dict[str, Any]:
        """
        What RPC C{getpeerinfo} shows of this connection.
        """
        hello = self.hello
        return {
            "id": self.peer_key, "addr": f"{self.ip}:{self.remote_port}",
            "direction": self.direction, "state": self.state,
            "pubkey": hello.pubkey.hex() if hello else None,
            "height": hello.height if hello else None,
            "version": hello.version if hello else None,
            "user_agent": hello.user_agent if hello else None,
            "listen_port": hello.listen_port if hello else None,
            "rtt": self.rtt, "missed_pongs": self.missed_pongs,
            "bytes_sent": self.bytes_out, "bytes_recv": self.bytes_in,
            "msgs_sent": dict(self.sent), "msgs_recv": dict(self.received),
            "connected_since": self.connected_at,
            "ready_since": self.ready_at,
            "ban_score": self.manager.scores.score(self.peer_key or self.ip),
        }


class PeerServerFactory(ServerFactory):
    """
    Builds a L{PeerProtocol} for each inbound connection.
    """

    noisy = False

    def __init__(self, manager: Host) -> None:
        self.manager = manager

    def buildProtocol(self, addr: Any) -> PeerProtocol:
        return PeerProtocol(self.manager, INBOUND)


class PeerClientFactory(ReconnectingClientFactory):
    """
    Dials one peer and redials it with exponential backoff and jitter
    (C{initial_delay} doubling to C{max_delay}); the delay is reset only
    once a handshake completes, and the manager calls C{stopTrying} when
    the peer should no longer be dialled.

    @ivar key: the peer's identity; @ivar host, port: where it listens.
    @ivar delays: every reconnection delay scheduled so far (the last 100).
    @ivar connection: the current connection, if any.
    """

    noisy = False

    def __init__(self, manager: Host, key: str, host: str, port: int,
                 rng: random.Random) -> None:
        settings = manager.settings
        self.manager = manager
        self.key = key
        self.host = host
        self.port = port
        self.rng = rng
        self.clock = manager.clock  # type: ignore[assignment]
        self._clock: IReactorTime = manager.clock
        self.initialDelay = settings.initial_delay
        self.delay = settings.initial_delay  # type: ignore[assignment]
        self.maxDelay = settings.max_delay  # type: ignore[assignment]
        self.factor = settings.backoff_factor
        self.jitter = settings.backoff_jitter
        self.attempts = 0
        self.delays: list[float] = []
        self.connection: PeerProtocol | None = None
        self.handshaken = False
        self._stable: IDelayedCall | None = None

    def __repr__(self) -> str:
        return f"<PeerClientFactory {self.key} {self.host}:{self.port}>"

    @property
    def in_backoff(self) -> bool:
        """
        Whether a reconnection is scheduled.
        """
        return self._callID is not None and self._callID.active()

    def startedConnecting(self, connector: IConnector) -> None:
        self.attempts += 1
        self.connector = connector  # type: ignore[assignment]

    def buildProtocol(self, addr: Any) -> PeerProtocol:
        self.handshaken = False
        self.connection = PeerProtocol(self.manager, OUTBOUND, self)
        return self.connection

    def handshake_done(self, conn: PeerProtocol) -> None:
        """
        A handshake on our connection completed.  The backoff is reset
        once the connection has lasted C{stable_after} seconds: a peer
        that refuses us right after the hellos (C{duplicate-ip},
        C{too-many-peers}, ...) must keep our delay growing, or we would
        redial it every few seconds for ever (the seeds' connection
        cycling, seen on real hosts).
        """
        self.handshaken = True
        if self._stable is not None and self._stable.active():
            self._stable.cancel()
        self._stable = self._clock.callLater(
            self.manager.settings.stable_after, self._stayed, conn)

    def _stayed(self, conn: PeerProtocol) -> None:
        self._stable = None
        if self.connection is conn:
            self.manager.proven.add(self.key)
            if self.continueTrying:
                self.resetDelay()

    def clientConnectionFailed(self, connector: IConnector,
                               reason: Failure) -> None:
        self.connection = None
        self.manager.dial_failed(self, reason)
        super().clientConnectionFailed(connector, reason)

    def clientConnectionLost(self, connector: IConnector,
                             reason: Failure) -> None:
        self.connection = None
        if self._stable is not None and self._stable.active():
            # Refused or dropped before it proved stable: not a success.
            self._stable.cancel()
            self.handshaken = False
        self._stable = None
        self.manager.dial_lost(self, self.handshaken)
        super().clientConnectionLost(connector, reason)

    def retry(self, connector: IConnector | None = None) -> None:
        """
        Schedule the next attempt after the current delay with seeded
        jitter (L{ReconnectingClientFactory.retry} uses the global
        C{random}), then grow the delay.
        """
        if not self.continueTrying:
            return
        if connector is None:
            connector = self.connector
        if connector is None:
            raise ValueError("no connector to retry")
        self.retries += 1
        # A peer we held a stable connection with is retried at least
        # every proven_max_delay: after a network cut heals, the node is
        # back within seconds, not a long backoff later.
        self.maxDelay = self.manager.settings.proven_max_delay \
            if self.key in self.manager.proven \
            else self.manager.settings.max_delay  # type: ignore[assignment]
        self.delay = min(self.delay, self.maxDelay)  # type: ignore[assignment]
        delay = self.delay
        if self.jitter:
            delay *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        delay = min(delay, self.maxDelay)
        self.delays.append(delay)
        del self.delays[:-100]

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        self._callID = self._clock.callLater(  # type: ignore[assignment]
            delay, reconnect)
        self.delay = min(self.delay * self.factor, self.maxDelay)
