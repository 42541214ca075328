"""
Ping/pong keepalive of one connection: a C{ping} every C{ping_interval}
with a fresh nonce, the matching C{pong} measures the round-trip time,
C{max_missed_pongs} pongs missed in a row (each after C{pong_timeout})
drop the peer.  Imports only L{timecoin.p2p.dependencies} and
L{timecoin.p2p.messages}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import task

from timecoin.p2p.dependencies import Connection, ConnectionHost
from timecoin.p2p.messages import MAX_NONCE, Ping, Pong


class Keepalive:
    """
    The pings of one connection.

    @ivar pings: nonce → when it was sent, for pings not answered yet.
    @ivar missed_pongs: pongs missed since the last one that came.
    @ivar rtt: the last ping round-trip time in seconds.
    """

    def __init__(self, conn: Connection, host: ConnectionHost[Any, Any],
                 tick: Callable[[], None]) -> None:
        """
        @param tick: what the connection does first on every ping tick.
        """
        self.conn = conn
        self.host = host
        self.settings = host.settings
        self.clock = host.clock
        self.tick = tick
        self.pings: dict[int, float] = {}
        self.missed_pongs = 0
        self.rtt: float | None = None
        self._pinger: task.LoopingCall | None = None

    def start(self) -> None:
        """
        Ping now, then every C{ping_interval}.
        """
        self._pinger = task.LoopingCall(self._ping_tick)
        self._pinger.clock = self.clock
        self._pinger.start(self.settings.ping_interval, now=True)

    def stop(self) -> None:
        """
        No more pings.
        """
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()
        self._pinger = None

    def _ping_tick(self) -> None:
        self.tick()
        now = self.clock.seconds()
        for nonce, sent_at in list(self.pings.items()):
            if now - sent_at >= self.settings.pong_timeout:
                del self.pings[nonce]
                self.missed_pongs += 1
                self.host.count("pong-missed")
        if self.missed_pongs >= self.settings.max_missed_pongs:
            self.conn.misbehaved("ping-timeout",
                                 f"{self.missed_pongs} pongs missed",
                                 close=True)
            return
        nonce = self.host.rng.randint(0, MAX_NONCE)
        self.pings[nonce] = now
        self.conn.send(Ping(nonce))

    def pinged(self, msg: Ping) -> None:
        """
        The peer pinged: answer.
        """
        self.conn.send(Pong(msg.nonce))

    def ponged(self, msg: Pong) -> None:
        """
        The peer answered a ping: measure the round trip.
        """
        sent_at = self.pings.pop(msg.nonce, None)
        if sent_at is None:
            self.host.count("pong-unknown-nonce")
            return
        self.rtt = self.clock.seconds() - sent_at
        self.missed_pongs = 0
