"""
Gossip of masternode heartbeats, deduplicated by the hash of the whole
signed heartbeat and relayed once the liveness view recorded it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from timecoin.liveness import Heartbeat
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import HeartbeatMsg

if TYPE_CHECKING:
    from timecoin.node import Node

MALICIOUS_HEARTBEAT_REASONS = frozenset({"heartbeat-bad-signature"})
"""Heartbeat drops that score the sender: a forged signature.  Stale,
far-future and non-masternode heartbeats cost nothing (replays, clock
skew and a sender at another height are not hostile)."""


class HeartbeatRelay:
    """
    Relays heartbeats between the node's liveness view and its peers.

    @ivar seen: the ids of the heartbeats seen.
    @ivar counters: the gossip's counters.
    """

    def __init__(self, node: Node, peerset: PeerSet, seen_size: int,
                 counters: Counter[str]) -> None:
        self.node = node
        self.peerset = peerset
        self.seen = SeenCache(seen_size)
        self.counters = counters

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state message heartbeats are, by type.
        """
        return {"heartbeat": self.received}

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether heartbeat C{item} is still in the seen-cache.
        """
        return item in self.seen

    def line_repeated(self, name: str) -> None:
        """
        A repeated heartbeat line was dropped before parsing.
        """
        self.counters["heartbeat-duplicate"] += 1

    def cast(self, heartbeat: Heartbeat) -> None:
        """
        This node signed C{heartbeat}: announce it.
        """
        self.seen.add(heartbeat.id)
        self.counters["heartbeat-announced"] += 1
        self.peerset.relay(HeartbeatMsg(heartbeat))

    def received(self, conn: Connection, msg: HeartbeatMsg) -> None:
        """
        A peer sent a heartbeat: record it in the liveness view, then relay
        it if the view accepted it.  Marked seen first (its id covers the
        signature, so a forged copy cannot shadow the valid one).
        """
        heartbeat = msg.heartbeat
        new = self.seen.add(heartbeat.id)
        self.peerset.lines.taken(conn, msg.name, self, heartbeat.id)
        if not new:
            self.counters["heartbeat-duplicate"] += 1
            return
        reason = self.node.liveness.receive(heartbeat)
        if reason is None:
            self.counters["heartbeat-relayed"] += 1
            self.peerset.relay(msg, source=conn, signer=heartbeat.pubkey)
            return
        self.counters[f"heartbeat-refused:{reason}"] += 1
        if reason in MALICIOUS_HEARTBEAT_REASONS:
            conn.misbehaved("invalid-heartbeat", reason)
