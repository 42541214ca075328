"""
Which freshly opened connections are let in, before any handshake.

An inbound connection is refused from a banned IP, past
C{max_inbound_per_ip} or C{max_pending_per_subnet} connections of its IP
or network group in handshake, or when C{max_pending_handshakes} are in
progress and none of them is inbound (else the oldest inbound one is
closed to make room).  On a devnet, loopback connections are exempt from
the per-IP and per-subnet caps (its nodes all run there).  Outbound
connections are always let in.  Imports only L{timecoin.p2p.dependencies},
L{timecoin.p2p.peers}, L{timecoin.p2p.protocol} and
L{timecoin.p2p.registry}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timecoin.p2p.dependencies import Direction, State
from timecoin.p2p.peers import is_loopback, subnet
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry

if TYPE_CHECKING:
    from timecoin.node import Node


class ConnectionGate:
    """
    The caps on connections in handshake, applied as each one opens.
    """

    def __init__(self, node: Node, peers: PeerRegistry[PeerProtocol]) -> None:
        """
        @param node: whose network it is (read at each connection).
        @param peers: the open connections and the bans.
        """
        self.node = node
        self.peers = peers

    def refusal(self, conn: PeerProtocol) -> str | None:
        """
        Why C{conn}, just opened and already among the open connections,
        is refused at once, or C{None} to let it start its handshake.
        """
        if conn.direction != Direction.INBOUND:
            return None
        peers = self.peers
        settings = peers.settings
        loopback = is_loopback(conn.ip)
        if not loopback and peers.scores.banned(conn.ip):
            return "banned"
        handshaking = [c for c in peers.connections
                       if c.state in (State.CONNECTING, State.HELLO)
                       and c is not conn and c.close_reason is None]
        if len(handshaking) >= settings.max_pending_handshakes:
            # Full of handshakes: the oldest inbound one goes (a silent
            # socket holds its slot for the whole handshake timeout; an
            # honest peer's handshake takes a round trip).
            oldest = min((c for c in handshaking
                          if c.direction == Direction.INBOUND),
                         key=lambda c: (c.connected_at, c.peer),
                         default=None)
            if oldest is None:
                return "too-many-peers"
            peers.count("handshake-evicted")
            oldest.close("handshake-evicted",
                         "too many handshakes in progress")
            handshaking.remove(oldest)
        # A local devnet runs its nodes on loopback: only there is
        # loopback exempt from the per-IP and per-subnet limits.
        if loopback and self.node.network.name == "devnet":
            return None
        inbound = [c for c in handshaking if c.direction == Direction.INBOUND]
        if sum(1 for c in inbound if c.ip == conn.ip) >= \
                settings.max_inbound_per_ip:
            return "too-many-from-ip"
        group = subnet(conn.ip)
        if sum(1 for c in inbound if subnet(c.ip) == group) >= \
                settings.max_pending_per_subnet:
            return "too-many-from-subnet"
        return None
