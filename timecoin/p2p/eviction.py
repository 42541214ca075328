"""
Whom to evict when the ready set is full (C{max_peers}) and a new peer
completed its handshake.

L{eviction_candidate} reads the ready connections and what each delivered
of a L{timecoin.p2p.registry.PeerRegistry}; the manager closes the one it
names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from timecoin.p2p.dependencies import Direction
from timecoin.p2p.peers import subnet
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry


def eviction_candidate(peers: PeerRegistry[PeerProtocol],
                       masternodes: set[bytes]) -> PeerProtocol | None:
    """
    The inbound peer to evict when C{max_peers} is full, as Bitcoin Core
    does it in spirit: C{masternodes} (the keys of the snapshot) are
    never evicted; of the other inbound peers, those with the lowest ping
    time, those that most recently sent us a new block, vote or
    transaction, and the longest connected are protected (each by its
    C{evict_protect_*} count, in that order); of the rest, the youngest
    connection of the network group (/24, /48) holding the most is
    evicted.  C{None} when every inbound peer is protected.
    """
    settings = peers.settings
    left = [c for c in peers.ready.values()
            if c.direction == Direction.INBOUND and c.close_reason is None
            and c.hello is not None
            and c.hello.pubkey not in masternodes]

    def protect(n: int, rank: Callable[[PeerProtocol], Any],
                eligible: Callable[[PeerProtocol], bool]) -> None:
        ranked = sorted((c for c in left if eligible(c)),
                        key=lambda c: (rank(c), c.peer_key))
        for c in ranked[:n]:
            left.remove(c)

    def last(kind: str) -> Callable[[PeerProtocol], float]:
        return lambda c: -peers.last_delivered(c).get(kind, 0.0)

    def has(kind: str) -> Callable[[PeerProtocol], bool]:
        return lambda c: kind in peers.last_delivered(c)

    protect(settings.evict_protect_rtt, lambda c: c.rtt,
            lambda c: c.rtt is not None)
    for kind, n in (("blocks", settings.evict_protect_blocks),
                    ("votes", settings.evict_protect_votes),
                    ("txs", settings.evict_protect_txs)):
        protect(n, last(kind), has(kind))
    protect(settings.evict_protect_oldest,
            lambda c: c.ready_at or 0.0, lambda c: True)
    if not left:
        return None
    groups: dict[str, list[PeerProtocol]] = {}
    for c in left:
        groups.setdefault(subnet(c.ip), []).append(c)
    biggest = max(groups.values(), key=lambda g: (
        len(g), max(c.ready_at or 0.0 for c in g)))
    return max(biggest, key=lambda c: (c.ready_at or 0.0, c.peer_key))
