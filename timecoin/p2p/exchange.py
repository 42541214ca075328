"""
Peer exchange: each new peer is asked for the addresses it knows
(C{get_peers}), and a peer that asks gets ours.  Learned addresses go to
the peer table (L{timecoin.p2p.peers.PeerTable}), bucketed by the network
group of the peer that told us.  Imports L{timecoin.p2p.dependencies},
L{timecoin.p2p.dialing}, L{timecoin.p2p.messages}, L{timecoin.p2p.peers},
L{timecoin.p2p.protocol} and L{timecoin.p2p.registry}.
"""

from __future__ import annotations

from twisted.python.failure import Failure

from timecoin.p2p.dependencies import Connection, RequestFailed
from timecoin.p2p.dialing import DialRule
from timecoin.p2p.messages import MAX_PEERS_PER_REPLY, GetPeers, Peers
from timecoin.p2p.peers import (
    Source,
    is_loopback,
    parse_address,
    peer_key,
    subnet,
)
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry


class PeerExchange:
    """
    Asks peers for addresses and answers their asking.
    """

    def __init__(self, peers: PeerRegistry[PeerProtocol], dialing: DialRule) -> None:
        self.peers = peers
        self.dialing = dialing

    def ask(self, conn: Connection) -> None:
        """
        Ask C{conn} (just ready) for the addresses it knows.
        """
        d = conn.request(GetPeers())
        d.addCallbacks(self._got_peers, self._request_failed,
                       callbackArgs=(conn,), errbackArgs=(conn, "get_peers"))

    def serve(self, conn: Connection, msg: GetPeers) -> None:
        """
        C{conn} asked for addresses: send it those the table offers
        (loopback ones only to a loopback peer, never its own or ours).
        """
        loopback = is_loopback(conn.ip)
        exclude = frozenset(self.dialing.self_keys | {conn.peer_key})
        conn.send(Peers(msg.id, tuple(self.peers.table.addresses(
            MAX_PEERS_PER_REPLY, loopback, exclude))))

    def _got_peers(self, msg: Peers, conn: Connection) -> None:
        peers = self.peers
        loopback = is_loopback(conn.ip)
        # The source's network group picks the buckets its addresses may
        # fill (PeerTable); on loopback each local node is its own source.
        origin = conn.peer_key if loopback else subnet(conn.ip)
        learned = bad = 0
        for address in msg.peers:
            try:
                host, port = parse_address(address)
            except ValueError:
                bad += 1
                continue
            key = peer_key(host, port)
            if (is_loopback(host) and not loopback) or \
                    key in self.dialing.self_keys or peers.scores.banned(key):
                continue
            if key not in peers.table.entries and peers.table.add(
                    host, port, Source.EXCHANGE, origin=origin) is not None:
                learned += 1
        if bad:
            peers.count("bad-peer-address", bad)
        peers.count("peers-learned", learned)
        if learned:
            self.dialing.schedule_maintain()

    def _request_failed(self, failure: Failure, conn: Connection,
                        what: str) -> None:
        failure.trap(RequestFailed)
        self.peers.count(f"{what}-failed")
