"""
The output bound of one connection: while more than C{output_soft_bytes}
we wrote wait unread in the transport, the peer's requests are held (at
most C{held_requests}, then its socket is not read) and served once it
drains; past C{output_hard_bytes} it is dropped.  Imports only
L{timecoin.p2p.dependencies} and L{timecoin.p2p.messages}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from timecoin.p2p.dependencies import ConnectionHost, State
from timecoin.p2p.messages import Message


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


class Bounded(Protocol):
    """
    The connection as its output bound sees it
    (L{timecoin.p2p.protocol.PeerProtocol} is the implementation).
    """

    state: State
    close_reason: str | None

    @property
    def transport(self) -> Any:
        """
        Where the connection writes (a Twisted transport).
        """

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        Count and score an offence of the peer; reply or close.
        """

    def serve(self, msg: Message) -> None:
        """
        Handle a held request now.
        """


@implementer(IPushProducer)
class OutputBound:
    """
    Bounds what one connection's peer leaves unread; the connection's
    transport's streaming producer (L{resumeProducing} says the peer
    drained what we wrote).

    @ivar held: requests waiting for the peer to read what we sent before.
    @ivar reading_paused: whether we stopped reading the peer's socket
        (too many held).
    """

    def __init__(self, conn: Bounded, host: ConnectionHost[Any, Any]) -> None:
        self.conn = conn
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self.held: deque[Message] = deque()
        self.reading_paused = False
        self._overflow_call: IDelayedCall | None = None

    def buffered(self) -> int:
        """
        Bytes we wrote to this peer that still wait in our transport.
        """
        return output_buffered(self.conn.transport)

    @property
    def stalled(self) -> bool:
        """
        Whether more than C{output_soft_bytes} wait unread.
        """
        return self.buffered() > self.settings.output_soft_bytes

    @property
    def overflowed(self) -> bool:
        """
        Whether the hard bound was passed (the peer is dropped next turn:
        nothing more is sent to it).
        """
        return self._overflow_call is not None

    def should_hold(self) -> bool:
        """
        Whether a request of the peer must wait (after serving what was
        held, as far as the peer drained).
        """
        if self.held:
            self.serve_held()  # the transport may not have said
        return bool(self.held) or self.stalled

    def hold(self, msg: Message) -> None:
        """
        The peer asked for more while it has not read what we sent: keep
        the request until it drains; past C{held_requests}, stop reading
        its socket (the request is dropped, counted).
        """
        if len(self.held) >= self.settings.held_requests:
            # Counted and logged (rate-limited) like an offence of no
            # points: the peer is not charged, being slow.
            self.host.offence(self.conn, "request-dropped:output-full",
                              f"{msg.name}, {len(self.held)} held", 0)
            if not self.reading_paused:
                self.reading_paused = True
                self.host.offence(self.conn, "reading-paused",
                                  f"{self.buffered()} bytes unread", 0)
                self.conn.transport.pauseProducing()
            return
        self.host.count("request-held")
        self.held.append(msg)

    def serve_held(self) -> None:
        """
        Serve held requests while the peer's output buffer is under the
        soft bound; resume reading once none are held.  Runs when the
        transport says it drained (only once its buffer passed its own
        C{bufferSize}, L{timecoin.p2p.protocol.READ_SIZE}), on the peer's
        next request, and on each ping tick.
        """
        soft = self.settings.output_soft_bytes
        conn = self.conn
        while self.held and conn.state == State.READY and \
                conn.close_reason is None and self.buffered() <= soft:
            conn.serve(self.held.popleft())
        if not self.held and self.reading_paused and conn.state == State.READY:
            self.reading_paused = False
            conn.transport.resumeProducing()

    def tick(self) -> None:
        """
        The connection's periodic tick: serve what was held.
        """
        if self.held or self.reading_paused:
            self.serve_held()

    def written(self) -> None:
        """
        A line was written: past C{output_hard_bytes} unread, drop the
        peer next turn, not here (a sender may be iterating the peer set
        this drop changes).
        """
        if self.conn.close_reason is None and \
                self.buffered() > self.settings.output_hard_bytes:
            self._overflow_call = self.clock.callLater(0, self._overflowed)

    def _overflowed(self) -> None:
        """
        The hard bound was passed (L{written}): drop the peer, unless it
        is gone already.
        """
        self._overflow_call = None
        conn = self.conn
        if conn.close_reason is not None or conn.state == State.CLOSED:
            return
        conn.misbehaved("output-overflow",
                        f"{self.buffered()} bytes unread > "
                        f"{self.settings.output_hard_bytes}", close=True)

    def cancel(self) -> None:
        """
        The socket closed: no drop is pending any more.
        """
        if self._overflow_call is not None and self._overflow_call.active():
            self._overflow_call.cancel()
        self._overflow_call = None

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full (L{IPushProducer}); nothing
        to do: L{written} measures the buffer itself.
        """

    def resumeProducing(self) -> None:
        """
        The transport wrote out its buffer (L{IPushProducer}): serve what
        was held.
        """
        self.tick()

    def stopProducing(self) -> None:
        """
        The transport is going away (L{IPushProducer}).
        """
        self.held.clear()
