"""
How one connection ends: an offence is scored (L{timecoin.p2p.scoring}),
the peer is told with an C{error} if it still reads, and its socket is
aborted at once or after C{close_grace}.  Imports only
L{timecoin.p2p.dependencies}, L{timecoin.p2p.messages},
L{timecoin.p2p.output} and L{timecoin.p2p.scoring}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import LogLevel

from timecoin.logs import RateLimitedLog
from timecoin.p2p.dependencies import ConnectionHost, State
from timecoin.p2p.messages import Error, Message
from timecoin.p2p.output import OutputBound
from timecoin.p2p.scoring import OFFENCES, Offence

ABORT_AT_ONCE = frozenset({"output-overflow"})
"""Close reasons that say the peer does not read: its connection is
aborted at once instead of flushing an C{error} it will never see."""


class Closable(Protocol):
    """
    The connection as its closing sees it
    (L{timecoin.p2p.protocol.PeerProtocol} is the implementation).
    """

    state: State
    close_reason: str | None
    ip: str
    peer_key: str
    output: OutputBound

    @property
    def peer(self) -> str:
        """
        How logs name the peer.
        """

    @property
    def transport(self) -> Any:
        """
        The connection's Twisted transport.
        """

    def send(self, msg: Message) -> bool:
        """
        Send C{msg}.
        """

    def ended(self) -> None:
        """
        The connection is over for us (timers, peer set, requests).
        """


class Closing:
    """
    Ends one connection: for an offence (L{misbehaved}) or a reason
    (L{close}).
    """

    def __init__(self, conn: Closable, host: ConnectionHost[Any, Any],
                 limited: Callable[[], RateLimitedLog]) -> None:
        """
        @param limited: gives the rate-limited log of the banned senders
            (asked only when one is logged).
        """
        self.conn = conn
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self.limited = limited
        self._abort_call: IDelayedCall | None = None

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
        conn = self.conn
        if conn.close_reason is not None or conn.state == State.CLOSED:
            return
        if logged:
            self.host.closing(conn, reason, detail)
        else:
            self.host.count(f"closed:{reason}")
        stalled = reason in ABORT_AT_ONCE or conn.output.stalled
        if tell and not stalled:
            conn.send(Error(reason, detail))
        conn.close_reason = reason
        transport = conn.transport
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
        # Aborting may have ended the connection already (connectionLost),
        # which mypy's narrowing above cannot see.
        if conn.state != State.CLOSED:  # type: ignore[comparison-overlap]
            conn.ended()

    def _abort(self) -> None:
        """
        The grace after L{close} is over: abort a socket still open.
        """
        self._abort_call = None
        self.host.count("aborted-after-grace")
        self.conn.transport.abortConnection()

    def cancel(self) -> None:
        """
        The socket closed: nothing to abort any more.
        """
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None

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
        conn, host = self.conn, self.host
        offence = OFFENCES.get(reason, Offence(0))
        if offence.points > 0 and \
                host.scores.banned(conn.peer_key or conn.ip):
            host.count(reason)
            if self.limited().emit(
                    ("banned", conn.ip), LogLevel.info,
                    "closing connection of banned {ip}: {reason}",
                    ip=conn.ip, peer=conn.peer, reason=reason) is False:
                host.count("log-suppressed")
            self.close("banned", reason, logged=False)
            return
        banned = host.offence(conn, reason, detail, offence.points)
        if banned:
            self.close("banned", reason)
        elif close or offence.close:
            self.close(reason, detail, tell=offence.reply or close)
        elif offence.reply:
            conn.send(Error(reason, detail))
