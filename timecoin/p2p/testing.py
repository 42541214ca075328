"""
An in-memory TCP network for tests of whole nodes on one fake clock.

L{FakeNetwork} hands each simulated host a L{FakeReactor} (its own IP, the
shared L{Clock}) providing C{listenTCP}/C{connectTCP}; connections between
them are L{twisted.test.iosim} pumps with real-looking addresses (the
client side gets a fresh ephemeral port each time).  Tests move time with
L{FakeNetwork.advance}, which delivers every byte in flight after each
step, and inject faults: L{FakeNetwork.partition} silently drops traffic
between two hosts (half-open connections, pings go unanswered),
L{FakeNetwork.crash} resets every connection of a host and stops its
listeners.

Nothing here touches the global reactor.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.interfaces import (
    IConnector,
    IDelayedCall,
    IListeningPort,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory, Factory
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer


def _address(host: str, port: int) -> IPv4Address | IPv6Address:
    if ":" in host:
        return IPv6Address("TCP", host, port)
    return IPv4Address("TCP", host, port)


class _ClientTransport(iosim.FakeTransport):
    """
    The connecting side's transport: a lost connection is also reported to
    the client factory, as a real connector does.
    """

    on_lost: Callable[[Failure], None] | None = None

    def reportDisconnect(self) -> None:
        super().reportDisconnect()
        if self.on_lost is not None:
            self.on_lost(Failure(self.disconnectReason))


@dataclass
class Link:
    """
    One simulated TCP connection.
    """

    client_ip: str
    server_ip: str
    pump: iosim.IOPump
    client: _ClientTransport
    server: iosim.FakeTransport

    @property
    def closed(self) -> bool:
        """
        Whether both ends have seen the connection end.
        """
        return bool(self.client.disconnected and self.server.disconnected)


@implementer(IListeningPort)
@dataclass
class FakePort:
    """
    A listening port on the fake network.
    """

    network: FakeNetwork
    host: str
    port: int
    factory: Factory[Any]

    def startListening(self) -> None:
        self.network.listeners[(self.host, self.port)] = self.factory

    def stopListening(self) -> None:
        if self.network.listeners.get((self.host, self.port)) is \
                self.factory:
            del self.network.listeners[(self.host, self.port)]

    def getHost(self) -> IPv4Address | IPv6Address:
        return _address(self.host, self.port)


@implementer(IConnector)
@dataclass
class FakeConnector:
    """
    A connector on the fake network; C{connect} tries again (as
    L{ReconnectingClientFactory} does).
    """

    network: FakeNetwork
    client_ip: str
    host: str
    port: int
    factory: ClientFactory
    stopped: bool = False
    attempts: int = 0

    def connect(self) -> None:
        self.stopped = False
        self.network.clock.callLater(0, self.network._attempt, self)

    def stopConnecting(self) -> None:
        self.stopped = True

    def disconnect(self) -> None:
        self.stopped = True

    def getDestination(self) -> IPv4Address | IPv6Address:
        return _address(self.host, self.port)


@implementer(IReactorTCP, IReactorTime)
@dataclass
class FakeReactor:
    """
    What one host of the fake network sees as its reactor: TCP on the
    network, time from the shared clock.
    """

    network: FakeNetwork
    ip: str
    connectors: list[FakeConnector] = field(default_factory=list)
    offset: float = 0.0
    """This host's clock skew: added to the shared clock's time."""

    def callLater(self, delay: float, callable: Callable[..., Any],
                  *args: object, **kwargs: object) -> IDelayedCall:
        return self.network.clock.callLater(delay, callable, *args, **kwargs)

    def seconds(self) -> float:
        return self.network.clock.seconds() + self.offset

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        return self.network.clock.getDelayedCalls()

    def listenTCP(self, port: int, factory: Factory[Any], backlog: int = 50,
                  interface: str = "") -> FakePort:
        listening = FakePort(self.network, self.ip, port, factory)
        listening.startListening()
        return listening

    def connectTCP(self, host: str, port: int, factory: Any,
                   timeout: float = 30, bindAddress: Any = None
                   ) -> FakeConnector:
        connector = FakeConnector(self.network, self.ip, host, port, factory)
        self.connectors.append(connector)
        connector.connect()
        return connector

    def dials_to(self, host: str, port: int) -> int:
        """
        How many connection attempts this host made to C{host:port}.
        """
        return sum(c.attempts for c in self.connectors
                   if (c.host, c.port) == (host, port))


class FakeNetwork:
    """
    Hosts, listeners and connections on one L{Clock}.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock if clock is not None else Clock()
        self.listeners: dict[tuple[str, int], Factory[Any]] = {}
        self.links: list[Link] = []
        self.blocked: set[frozenset[str]] = set()
        self._ports = itertools.count(40_000)

    def reactor(self, ip: str, offset: float = 0.0) -> FakeReactor:
        """
        The reactor of the host with address C{ip}, whose clock runs
        C{offset} seconds ahead of the shared one (behind if negative).
        """
        return FakeReactor(self, ip, offset=offset)

    def _attempt(self, connector: FakeConnector) -> None:
        if connector.stopped:
            return
        connector.attempts += 1
        factory = connector.factory
        factory.startedConnecting(connector)
        listener = self.listeners.get((connector.host, connector.port))
        if listener is None or frozenset(
                (connector.client_ip, connector.host)) in self.blocked:
            factory.clientConnectionFailed(
                connector, Failure(ConnectionRefusedError()))
            return
        client_port = next(self._ports)
        client_addr = _address(connector.client_ip, client_port)
        server_addr = _address(connector.host, connector.port)
        client = factory.buildProtocol(server_addr)
        server = listener.buildProtocol(client_addr)
        if client is None or server is None:
            factory.clientConnectionFailed(
                connector, Failure(ConnectionRefusedError()))
            return
        ct = _ClientTransport(client, False, client_addr, server_addr)
        ct.on_lost = lambda reason: factory.clientConnectionLost(
            connector, reason)
        st = iosim.FakeTransport(server, True, server_addr, client_addr)
        pump = iosim.connect(server, st, client, ct, greet=False,
                             clock=self.clock)
        self.links.append(Link(connector.client_ip, connector.host, pump,
                               ct, st))

    def _blocked(self, link: Link) -> bool:
        return frozenset((link.client_ip, link.server_ip)) in self.blocked

    def _close_locally(self, link: Link) -> bool:
        """
        On a silent link, a side that closes sees its own connection end
        (the kernel takes the FIN); the other side hears nothing.
        """
        closed = False
        for transport in (link.client, link.server):
            if transport.disconnecting and not transport.disconnected:
                transport.disconnected = True
                transport.reportDisconnect()
                closed = True
        return closed

    def flush(self) -> None:
        """
        Deliver every byte in flight (and every disconnect) until quiet.
        """
        for _ in range(10_000):
            self.clock.advance(0)
            moved = False
            for link in list(self.links):
                if link.closed:
                    self.links.remove(link)
                elif self._blocked(link):
                    moved = self._close_locally(link) or moved
                elif self._pump(link):
                    moved = True
            if not moved and not self._due():
                return
        raise AssertionError("the network never went quiet")

    def _due(self) -> bool:
        """
        Whether a delayed call of the clock is due now.
        """
        now = self.clock.seconds()
        return any(c.getTime() <= now for c in self.clock.getDelayedCalls())

    def _pump(self, link: Link) -> bool:
        """
        Move what is in flight on C{link}; returns whether anything moved.
        Subclasses shape traffic here (the simulator's per-link faults).
        """
        return bool(link.pump.pump())

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Let C{seconds} of time pass in steps of C{step}, flushing the
        network after each.
        """
        end = self.clock.seconds() + seconds
        self.flush()
        while self.clock.seconds() < end:
            self.clock.advance(min(step, end - self.clock.seconds()))
            self.flush()

    def partition(self, a: str, b: str) -> None:
        """
        Drop all traffic between hosts C{a} and C{b} (connections stay
        open but silent; new ones are refused).
        """
        self.blocked.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        """
        Undo L{partition}.
        """
        self.blocked.discard(frozenset((a, b)))

    def crash(self, ip: str) -> None:
        """
        Host C{ip} dies: its listeners vanish and every connection it has
        is reset (both ends see the loss at once).
        """
        for key in [k for k in self.listeners if k[0] == ip]:
            del self.listeners[key]
        for link in list(self.links):
            if ip in (link.client_ip, link.server_ip):
                self.links.remove(link)
                for transport in (link.server, link.client):
                    if not transport.disconnected:
                        transport.disconnecting = True
                        transport.disconnected = True
                        reset: Any = ConnectionLost("reset")
                        transport.disconnectReason = reset
                        transport.reportDisconnect()

    def connections(self, ip: str | None = None) -> list[Link]:
        """
        Open links (of host C{ip} if given).
        """
        return [link for link in self.links if not link.closed and (
            ip is None or ip in (link.client_ip, link.server_ip))]
