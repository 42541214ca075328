"""
What the P2P objects need from each other, as narrow typed interfaces.

The relays (L{timecoin.p2p.gossip.Gossip}, L{timecoin.p2p.sync.BlockSync},
L{timecoin.p2p.consensus_relay.ConsensusRelay}) see a connection as a
L{Connection} and the set of connected peers as a L{PeerSet}; the
connection class (L{timecoin.p2p.protocol.PeerProtocol}) sees its manager
as a L{ConnectionHost}.  Each message type of the ready state has one
handler, a bound method a relay (or the manager) returns from its
C{handlers()}; they are merged once into a L{HandlerTable}.

This module imports no other P2P module but C{caches}, C{messages},
C{handshake}, C{peers}, C{scoring} and C{settings} (none of which import
a relay, the manager or the protocol), so the relays, the manager and the
protocol depend on it and never on each other in a loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from enum import StrEnum
from types import MethodType
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from timecoin.p2p.caches import KnownSet, LineCache
from timecoin.p2p.handshake import HelloProof
from timecoin.p2p.messages import Error, Hello, Message, Request
from timecoin.p2p.peers import PeerTable
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings


class Direction(StrEnum):
    """
    Who opened a connection; its value is what RPC and logs show.
    """

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class State(StrEnum):
    """
    The states of a connection, in order; its value is what RPC and logs
    show.
    """

    CONNECTING = "connecting"
    HELLO = "hello"
    READY = "ready"
    CLOSED = "closed"


class RequestFailed(Exception):
    """
    A request got no valid response; C{reason} is C{timeout},
    C{connection-lost}, C{bad-response}, C{not-ready} or
    C{too-many-requests}.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Connection(Protocol):
    """
    One connection to a peer, as the relays and the peer set use it
    (L{timecoin.p2p.protocol.PeerProtocol} is the implementation).
    """

    peer_key: str
    ip: str
    hello: Hello | None
    direction: Direction
    close_reason: str | None
    ready_serial: int
    line_digest: bytes | None
    known: KnownSet
    reaches: bool

    @property
    def peer(self) -> str:
        """
        How logs name the peer.
        """

    def send(self, msg: Message) -> bool:
        """
        Send C{msg}; returns whether it was written.
        """

    def send_line(self, name: str, line: bytes) -> bool:
        """
        Send an encoded message C{line} of type C{name}.
        """

    def request(self, request: Request) -> Deferred[Any]:
        """
        Send C{request}; fires with its response or fails with
        L{RequestFailed}.
        """

    def misbehaved(self, reason: str, detail: str = "",
                   close: bool = False) -> None:
        """
        Count and score an offence of the peer, reply or close.
        """

    def close(self, reason: str, detail: str = "", tell: bool = True,
              logged: bool = True) -> None:
        """
        End the connection for C{reason}.
        """


class PeerSet(Protocol):
    """
    The connected peers, as the relays use them: who is ready, sending to
    them, and accounting for what they did
    (L{timecoin.p2p.registry.PeerRegistry} is the implementation).
    """

    @property
    def settings(self) -> P2PSettings:
        """
        The P2P settings.
        """

    @property
    def table(self) -> PeerTable:
        """
        The known addresses.
        """

    @property
    def lines(self) -> LineCache:
        """
        Digests of gossip lines already handled.
        """

    @property
    def ready(self) -> Mapping[str, Connection]:
        """
        The connections past their handshake, by peer key.
        """

    @property
    def ready_serial(self) -> int:
        """
        Handshakes completed so far.
        """

    @property
    def running(self) -> bool:
        """
        Whether the P2P layer runs (connections accepted, dialers on).
        """

    @property
    def rng(self) -> random.Random:
        """
        Seeded randomness (which peers a relay picks).
        """

    def dense(self) -> bool:
        """
        Whether there are more than C{relay_fanout} ready peers.
        """

    def masternodes(self) -> AbstractSet[bytes]:
        """
        The keys of the masternodes of the next height's snapshot.
        """

    def by_pubkey(self, pubkey: bytes) -> Connection | None:
        """
        The ready connection of the node whose key is C{pubkey}.
        """

    def broadcast(self, msg: Message,
                  exclude: Connection | None = None) -> int:
        """
        Send C{msg} to every ready peer but C{exclude}.
        """

    def relay(self, msg: Message, source: Connection | None = None,
              signer: bytes | None = None,
              resend_after: float | None = None) -> int:
        """
        Send the gossip message C{msg} to the ready peers not known to
        hold it.
        """

    def offence(self, conn: Connection, reason: str, detail: str,
                points: int) -> bool:
        """
        Count, log and score an offence; returns whether C{conn}'s
        identity is now banned.
        """

    def delivered(self, conn: Connection, kind: str) -> None:
        """
        C{conn} sent us something new of C{kind} now.
        """


class Dialer(Protocol):
    """
    What the peer set does with a dialer: stop it, see its connection
    (L{timecoin.p2p.protocol.PeerClientFactory} is the implementation).
    """

    @property
    def connection(self) -> Connection | None:
        """
        The dialer's current connection, if any.
        """

    def stopTrying(self) -> None:
        """
        Never dial again.
        """


ConnT = TypeVar("ConnT", contravariant=True)
DialerT = TypeVar("DialerT", contravariant=True)


class ConnectionHost(Protocol[ConnT, DialerT]):
    """
    What a connection and its dialer need from the peer manager: accept
    or refuse each handshake step, dispatch the ready state's messages,
    and hear that the connection or a dial ended
    (L{timecoin.p2p.manager.PeerManager} is the implementation).
    """

    @property
    def settings(self) -> P2PSettings:
        """
        The P2P settings.
        """

    @property
    def clock(self) -> IReactorTime:
        """
        The clock every timer runs on.
        """

    @property
    def rng(self) -> random.Random:
        """
        Seeded randomness (ping nonces).
        """

    @property
    def scores(self) -> Scores:
        """
        Misbehaviour scores and bans.
        """

    @property
    def lines(self) -> LineCache:
        """
        Digests of gossip lines already handled.
        """

    @property
    def proven(self) -> set[str]:
        """
        Peers whose connection we dialled proved stable.
        """

    @property
    def handlers(self) -> HandlerTable:
        """
        The ready state's message types that the manager dispatches.
        """

    def count(self, reason: str, n: int = 1) -> None:
        """
        Count one occurrence of C{reason}.
        """

    def offence(self, conn: ConnT, reason: str, detail: str,
                points: int) -> bool:
        """
        Count, log and score an offence; returns whether it banned.
        """

    def local_hello(self) -> Hello:
        """
        Our C{hello}.
        """

    def connection_made(self, conn: ConnT) -> str | None:
        """
        A TCP connection opened; returns a reason to refuse it.
        """

    def hello_received(self, conn: ConnT,
                       hello: Hello) -> tuple[str, str] | None:
        """
        Accept (C{None}) or refuse (reason, detail) a peer's C{hello}.
        """

    def proof_received(self, conn: ConnT,
                       proof: HelloProof) -> tuple[str, str] | None:
        """
        Accept (C{None}) or refuse (reason, detail) a C{hello_proof}.
        """

    def peer_ready(self, conn: ConnT) -> None:
        """
        A handshake completed.
        """

    def error_received(self, conn: ConnT, msg: Error) -> None:
        """
        The peer sent an C{error}.
        """

    def closing(self, conn: ConnT, reason: str, detail: str) -> None:
        """
        We are closing C{conn} for C{reason}.
        """

    def connection_lost(self, conn: ConnT) -> None:
        """
        A connection ended, in any state.
        """

    def message_received(self, conn: ConnT, msg: Message) -> None:
        """
        Dispatch a ready-state message by its type (L{handlers}).
        """

    def dial_failed(self, factory: DialerT, reason: Failure) -> None:
        """
        A dial did not connect.
        """

    def dial_lost(self, factory: DialerT, handshaken: bool) -> None:
        """
        The connection a dialer made ended.
        """


Handler = Callable[[Connection, Any], object]
"""A ready-state message handler: a bound method called with (the
connection, the message of its type)."""


class HandlerTable:
    """
    The one table of ready-state message handlers: message type → bound
    method, merged once from the C{handlers()} of each relay and of the
    manager.  A type given twice is an error when the table is built.

    A handler is looked up again by name on its object at each dispatch,
    so one replaced on the instance (a test's or the simulator's fault)
    is the one called.
    """

    def __init__(self, *tables: Mapping[str, Handler],
                 reserved: Iterable[str] = ()) -> None:
        """
        @param tables: each relay's (and the manager's) handlers.
        @param reserved: message types the connection handles itself
            (ping, responses, ...): none of them may be given here.
        """
        self._routes: dict[str, tuple[object, str]] = {}
        taken = set(reserved)
        for table in tables:
            for name, handler in table.items():
                if name in taken or name in self._routes:
                    raise ValueError(f"message type {name!r} has two "
                                     "handlers")
                if not isinstance(handler, MethodType):
                    raise TypeError(f"the handler of {name!r} is not a "
                                    "bound method")
                self._routes[name] = (handler.__self__, handler.__name__)

    def __contains__(self, name: object) -> bool:
        return name in self._routes

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def dispatch(self, conn: Connection, msg: Message) -> bool:
        """
        Call the handler of C{msg}'s type; returns whether there is one.
        """
        route = self._routes.get(msg.name)
        if route is None:
            return False
        owner, method = route
        getattr(owner, method)(conn, msg)
        return True
