"""
One connection to one peer, the same class for both directions.

L{PeerProtocol} holds the connection's state (a
L{timecoin.p2p.dependencies.State}) and counters, and coordinates the
objects that do the work for one connection: its intake
(L{timecoin.p2p.intake.Intake}: framing, one JSON object per
``\\n``-terminated line of at most L{MAX_LINE_BYTES}, the table of
accepted messages of each state, rate limits, dispatch), its handshake
(L{timecoin.p2p.hellos.Handshake}: the steps and their timer), its output
bound (L{timecoin.p2p.output.OutputBound}: held requests, paused reading,
overflow), its requests (L{timecoin.p2p.requests.Requests}: ids,
timeouts), its keepalive (L{timecoin.p2p.keepalive.Keepalive}: ping/pong,
nonce matched, RTT measured, N misses disconnect) and its closing
(L{timecoin.p2p.closing.Closing}).  Everything else -- whether a
handshake is acceptable, what a message means -- it hands to its manager
(a L{timecoin.p2p.dependencies.ConnectionHost}, the
L{timecoin.p2p.manager.PeerManager}).  The ready state accepts the
connection-level messages of L{timecoin.p2p.intake.STATES} plus every
type of the manager's handler table
(L{timecoin.p2p.dependencies.HandlerTable}).  The seeds' outbound side
never processed pongs because it ran another loop than the inbound side;
here there is one loop.

L{PeerServerFactory} builds inbound connections; L{PeerClientFactory}
dials one peer with exponential backoff and jitter.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IReactorTime,
)
from twisted.internet.protocol import ReconnectingClientFactory, ServerFactory
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from timecoin.p2p.caches import KnownSet
from timecoin.p2p.closing import Closing
from timecoin.p2p.dependencies import (
    ConnectionHost,
    Direction,
    RequestFailed,
    State,
)
from timecoin.p2p.hellos import Handshake
from timecoin.p2p.intake import TO_MANAGER, Intake, limited_log
from timecoin.p2p.keepalive import Keepalive
from timecoin.p2p.messages import (
    MAX_LINE_BYTES,
    Error,
    Hello,
    Message,
    Request,
)
from timecoin.p2p.output import OutputBound
from timecoin.p2p.peers import normalize_ip, peer_key
from timecoin.p2p.ratelimit import RateLimiter
from timecoin.p2p.requests import Requests
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.tls import tls_failure

Host = ConnectionHost["PeerProtocol", "PeerClientFactory"]
"""What a connection and its dialer need from the manager."""

READ_SIZE = 256 * 1024
"""Bytes read from a peer's socket per reactor turn at most."""


class PeerProtocol(LineOnlyReceiver):
    """
    A connection to a peer, inbound or outbound.

    Output is bounded per connection (L{output}, its transport's streaming
    producer): while more than C{output_soft_bytes} wait, the peer's
    requests are held (at most C{held_requests}, then its socket is not
    read) and served once it drains; past C{output_hard_bytes} it is
    dropped.  A dropped peer leaves the manager's peer set at once
    (L{close}), and its socket is aborted, at once or after C{close_grace}.

    @ivar direction: a L{Direction}.
    @ivar state: a L{State}, in order C{CONNECTING}, C{HELLO}, C{READY},
        C{CLOSED}.
    @ivar ip: the peer's IP.
    @ivar peer_key: the peer's identity (see L{timecoin.p2p.peers.peer_key});
        known at once for outbound connections, after C{hello} for inbound.
    @ivar hello: the peer's C{hello}, once received.
    @ivar intake: what is read: framing, states, dispatch (L{Intake}).
    @ivar output: the output bound (L{OutputBound}).
    @ivar requests: our outstanding requests (L{Requests}).
    @ivar keepalive: the pings (L{Keepalive}).
    @ivar handshake: the handshake steps and timer (L{Handshake}).
    @ivar closing: how the connection ends (L{Closing}).
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
        self.state = State.CONNECTING
        self.ip = ""
        self.remote_port = 0
        self.dial_port = dialer.port if dialer is not None else 0
        self.peer_key = dialer.key if dialer is not None else ""
        self.hello: Hello | None = None
        self.connected_at = 0.0
        self.ready_at: float | None = None
        self.ready_serial = 0
        """Which completed handshake of the manager this was (1, 2, …)."""
        self.close_reason: str | None = None
        self.bytes_out = 0
        self.received: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.intake = Intake(self, manager, self.delimiter)
        self.output = OutputBound(self, manager)
        self.requests = Requests(self, manager)
        self.keepalive = Keepalive(self, manager, self.output.tick)
        self.handshake = Handshake(self, manager)
        self.closing = Closing(self, manager,
                               lambda: limited_log(self.clock))
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
        self.reaches = False
        """Whether the peer said it has a connection to every masternode
        (L{timecoin.p2p.reach}): a relay then skips the masternodes."""

    def __repr__(self) -> str:
        return f"<PeerProtocol {self.peer} {self.direction} {self.state}>"

    @property
    def _transport(self) -> Any:
        return self.transport

    @property
    def rtt(self) -> float | None:
        """
        The last ping round-trip time in seconds (L{Keepalive.rtt}).
        """
        return self.keepalive.rtt

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
                register(self.output, True)
            except RuntimeError:  # pragma: no cover - a producer already
                pass
        address = self._transport.getPeer()
        self.ip = normalize_ip(str(getattr(address, "host", "")))
        self.remote_port = int(getattr(address, "port", 0) or 0)
        self.connected_at = self.clock.seconds()
        if self.direction == Direction.OUTBOUND and self.ip:
            self.peer_key = peer_key(self.ip, self.dial_port)
        reason = self.manager.connection_made(self)
        if reason is not None:
            self.state = State.HELLO
            self.misbehaved(reason, close=True)
            return
        self.state = State.HELLO
        self.handshake.start()

    def dataReceived(self, data: bytes) -> None:
        """
        Split C{data} into lines (L{Intake.data_received}).
        """
        self.intake.data_received(data)

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        A line longer than the limit (L{Intake.too_long}).
        """
        self.intake.too_long()

    def lineReceived(self, line: bytes) -> None:
        """
        Parse one line and dispatch it (L{Intake.line_received}).
        """
        self.intake.line_received(line)

    def handler_for(self, name: str) -> str | None:
        """
        The handler of a C{name} message in the current state, or C{None}
        if it is not accepted now (L{Intake.handler_for}).
        """
        return self.intake.handler_for(name)

    def serve(self, msg: Message) -> None:
        """
        Handle a held request now (L{OutputBound.serve_held}).
        """
        self.intake.dispatch(TO_MANAGER, msg)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closing.cancel()
        self.output.cancel()
        if self.state == State.CLOSED:
            return  # close() let the manager know already
        failed = tls_failure(reason)
        if failed is not None and self.close_reason is None:
            self.close_reason = "tls-failed"
            self.manager.closing(self, "tls-failed", failed)
        self.ended()

    def ended(self) -> None:
        """
        The connection is over for us: no more timers or held requests,
        out of the manager's peer set, pending requests failed.
        """
        self.state = State.CLOSED
        self._stop_timers()
        self.output.held.clear()
        self.manager.connection_lost(self)
        self.requests.fail_all()

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
        if self.state == State.CLOSED or self.transport is None or \
                self._transport.disconnecting:
            return False
        if self.output.overflowed:
            self.manager.count("send-dropped:output-overflow")
            return False
        self.bytes_out += len(line) + 1
        self.sent[name] += 1
        self.sendLine(line)
        self.output.written()
        return True

    def close(self, reason: str, detail: str = "", tell: bool = True,
              logged: bool = True) -> None:
        """
        End the connection for C{reason} (L{Closing.close}).
        """
        self.closing.close(reason, detail, tell, logged)

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        The peer did something wrong (L{Closing.misbehaved}).
        """
        self.closing.misbehaved(reason, detail, close)

    # Handshake, errors, requests ----------------------------------------

    def handshake_done(self) -> None:
        """
        The peer proved its C{hello} (L{Handshake}): the connection is
        ready; its keepalive starts.
        """
        self.state = State.READY
        self.ready_at = self.clock.seconds()
        self.keepalive.start()
        if self.dialer is not None:
            self.dialer.handshake_done(self)
        self.manager.peer_ready(self)

    def error_received(self, msg: Error) -> None:
        """
        The peer sent an C{error}; during the handshake it refused us.
        """
        self.manager.error_received(self, msg)
        if self.state == State.HELLO:
            self.close("refused-by-peer", msg.reason, tell=False)

    def request(self, request: Request) -> defer.Deferred[Any]:
        """
        Send C{request} with a fresh id (L{Requests.send}); fires with the
        response that echoes the id, or fails with L{RequestFailed}
        (timeout after C{request_timeout}, connection lost, wrong response
        type, C{not-ready}, C{too-many-requests}).
        """
        if self.state != State.READY or self.close_reason is not None:
            return defer.fail(RequestFailed("not-ready"))
        return self.requests.send(request)

    # Helpers -------------------------------------------------------------

    def _stop_timers(self) -> None:
        self.handshake.stop()
        self.keepalive.stop()

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
            "rtt": self.rtt, "missed_pongs": self.keepalive.missed_pongs,
            "bytes_sent": self.bytes_out, "bytes_recv": self.intake.bytes_in,
            "msgs_sent": dict(self.sent), "msgs_recv": dict(self.received),
            "connected_since": self.connected_at,
            "ready_since": self.ready_at,
            "ban_score": self.manager.scores.score(self.peer_key or self.ip),
            "reaches_every_masternode": self.reaches,
        }


class PeerServerFactory(ServerFactory):
    """
    Builds a L{PeerProtocol} for each inbound connection.
    """

    noisy = False

    def __init__(self, manager: Host) -> None:
        self.manager = manager

    def buildProtocol(self, addr: Any) -> PeerProtocol:
        return PeerProtocol(self.manager, Direction.INBOUND)


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
        self.delay = settings.initial_delay
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
        self.connector = connector

    def buildProtocol(self, addr: Any) -> PeerProtocol:
        self.handshaken = False
        self.connection = PeerProtocol(self.manager, Direction.OUTBOUND, self)
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
        self.delay = min(self.delay, self.maxDelay)
        delay = self.delay
        if self.jitter:
            delay *= 1 + self.rng.uniform(-self.jitter, self.jitter)
        delay = min(delay, self.maxDelay)
        self.delays.append(delay)
        del self.delays[:-100]

        def reconnect() -> None:
            self._callID = None
            connector.connect()

        self._callID = self._clock.callLater(
            delay, reconnect)
        self.delay = min(self.delay * self.factor, self.maxDelay)
