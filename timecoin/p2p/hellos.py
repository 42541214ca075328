"""
The handshake steps of one connection: our C{hello} sent, the peer's
C{hello} and C{hello_proof} (L{timecoin.p2p.handshake}) checked by the
manager, all within C{handshake_timeout}.  Imports only
L{timecoin.p2p.dependencies}, L{timecoin.p2p.handshake},
L{timecoin.p2p.messages} and L{timecoin.p2p.tls}.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall

from timecoin.p2p.dependencies import ConnectionHost, State
from timecoin.p2p.handshake import HelloProof
from timecoin.p2p.messages import Hello, Message
from timecoin.p2p.tls import pin_refusal


class Greeted(Protocol):
    """
    The connection as its handshake sees it
    (L{timecoin.p2p.protocol.PeerProtocol} is the implementation).
    """

    state: State
    hello: Hello | None

    @property
    def transport(self) -> Any:
        """
        The connection's Twisted transport (its TLS certificate, if any).
        """

    def send(self, msg: Message) -> bool:
        """
        Send C{msg}.
        """

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        Count and score an offence of the peer; reply or close.
        """

    def handshake_done(self) -> None:
        """
        The peer proved its C{hello}: the connection is ready.
        """


class Handshake:
    """
    The handshake of one connection and its timer.
    """

    def __init__(self, conn: Greeted, host: ConnectionHost[Any, Any]) -> None:
        self.conn = conn
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self._call: IDelayedCall | None = None

    def start(self) -> None:
        """
        Send our C{hello}; the peer has C{handshake_timeout} to prove its
        own.
        """
        self.conn.send(self.host.local_hello())
        self._call = self.clock.callLater(self.settings.handshake_timeout,
                                          self._timed_out)

    def stop(self) -> None:
        """
        Cancel the timer.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _timed_out(self) -> None:
        self._call = None
        if self.conn.state == State.HELLO:
            self.conn.misbehaved(
                "handshake-timeout",
                f"no hello within {self.settings.handshake_timeout} s",
                close=True)

    def hello_received(self, msg: Hello) -> None:
        """
        The peer's C{hello}: the manager (and the TLS pin) may refuse it.
        """
        conn = self.conn
        if conn.hello is not None:
            conn.misbehaved("expected-hello", "a second hello", close=True)
            return
        conn.hello = msg
        refusal = pin_refusal(conn.transport, msg.pubkey, self.settings.tls) \
            or self.host.hello_received(conn, msg)
        if refusal is not None:
            conn.misbehaved(*refusal, close=True)

    def proof_received(self, msg: HelloProof) -> None:
        """
        The peer proves its hello's key (L{timecoin.p2p.handshake}): once
        the manager accepts it, the connection is ready.
        """
        conn = self.conn
        if conn.hello is None:
            conn.misbehaved("expected-hello", "hello_proof before hello",
                            close=True)
            return
        refusal = self.host.proof_received(conn, msg)
        if refusal is not None:
            conn.misbehaved(*refusal, close=True)
            return
        self.stop()
        conn.handshake_done()
