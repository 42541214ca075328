"""
Whether a node's own messages reach every masternode (issue 19).

A node sends what it signs or admits first -- its proposals, heartbeats
and blocks, the transactions clients gave it -- to every ready peer.  In
a dense mesh (more than C{relay_fanout} peers) each receiver used to relay
a copy to C{relay_fanout_direct} more peers, in case the sender lacked a
link to one: about three copies of each such message reached every node
of a 30-masternode mesh, although nearly every sender was connected to
every masternode.

So a node of a dense mesh that has a ready connection to every other
masternode of the next height's snapshot says so to its peers (C{reach},
protocol 4; a small network sends none), and
says so again whenever that changes (a connection lost or made, a
masternode joining or leaving).  A receiver then relays a message whose
signer is such a peer (for a transaction: the peer that sent it) only to
its peers that are not masternodes of the snapshot, a few of them, as
before; a masternode peer already had it from the signer.  A sender that
lacks a link says C{false}, and its messages are relayed as before, as an
aggregator marks its bundles C{forward}
(L{timecoin.p2p.aggregation}).

What it leaves: a connection that breaks after the sender said C{true}
and before it says C{false} again loses the lines sent over it in that
instant, which the relay would have repaired.  Those are what is repaired
anyway when a link breaks: consensus re-broadcasts its round, block sync
asks for missing blocks, and undecided transactions are announced again
and their votes asked for (L{timecoin.p2p.gossip.Gossip.query_stalled}).

A peer that lies (says C{true} and sends its own messages to only some
of its peers) withholds its own messages from the others, which it could
do anyway; the claim changes nothing about the messages other nodes
sign.  The one thing it reaches further: a transaction a liar passes on
first is relayed by the nodes it reached first to no masternode, so a
node the liar left out holds only the transaction's votes, and asks the
peers that sent them for it (L{timecoin.p2p.fetch}): a delay, as from a
peer that relays nothing.  (Before that, such a node waited for the
transaction's re-announcement
(L{timecoin.p2p.gossip.Gossip.query_stalled}), which a transaction
already final elsewhere never has.)  The simulator's C{reach-liar}
Byzantine masternode lies this way (L{timecoin.testing.simulation}).

Imports only L{timecoin.encoding}, L{timecoin.p2p.dependencies} and
L{timecoin.p2p.messages}.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from timecoin.encoding import EncodingError
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import Message, _field, register

if TYPE_CHECKING:
    from timecoin.node import Node

REACH_VERSION = 4
"""The protocol version that has C{reach}."""


@register
@dataclass(frozen=True)
class ReachMsg(Message):
    """
    Whether the sender has a ready connection to every other masternode
    of its next height's snapshot (C{every}), so that what it sends to all
    its peers needs no relay between masternodes.
    """

    name: ClassVar[str] = "reach"
    max_bytes: ClassVar[int] = 64

    every: bool

    def fields(self) -> dict[str, Any]:
        return {"every": self.every}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> ReachMsg:
        every = _field(obj, "every")
        if not isinstance(every, bool):
            raise EncodingError("every must be a boolean")
        return cls(every)


class SnapshotKeys:
    """
    The keys of the masternodes of a node's next height's snapshot, read
    again only when its tip changes (the relays ask on every message).
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._cached: tuple[bytes, frozenset[bytes]] = (b"", frozenset())

    def __call__(self) -> frozenset[bytes]:
        chain = self.node.chain
        tip = chain.tip.hash
        if self._cached[0] != tip:
            self._cached = (tip, frozenset(
                m.pubkey for m in chain.snapshot_for(chain.height + 1)))
        return self._cached[1]


def reaches_every_masternode(peerset: PeerSet, me: bytes) -> bool:
    """
    Whether every masternode of the next height's snapshot but C{me} is
    one of C{peerset}'s ready peers (not when the snapshot is not known).
    """
    masternodes = peerset.masternodes()
    if not masternodes:
        return False
    connected = {conn.hello.pubkey for conn in peerset.ready.values()
                 if conn.hello is not None}
    connected.add(me)
    return masternodes <= connected


C = TypeVar("C", bound=Connection)


def not_masternodes(conns: list[C], masternodes: AbstractSet[bytes]) -> list[C]:
    """
    Those of C{conns} whose peer is not one of C{masternodes}.
    """
    return [conn for conn in conns
            if conn.hello is None or conn.hello.pubkey not in masternodes]


def speaks_reach(conn: Connection) -> bool:
    """
    Whether C{conn}'s peer understands C{reach}.
    """
    return conn.hello is not None and conn.hello.version >= REACH_VERSION


class Reach:
    """
    Tells the peers whether this node reaches every masternode, and
    records what they tell (C{Connection.reaches}).

    @ivar every: what we last told our peers.
    """

    def __init__(self, node: Node, peerset: PeerSet,
                 counters: Counter[str]) -> None:
        self.node = node
        self.peerset = peerset
        self.counters = counters
        self.every = False

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state message this handles.
        """
        return {ReachMsg.name: self.received}

    def received(self, conn: Connection, msg: ReachMsg) -> None:
        """
        A peer told whether it reaches every masternode.
        """
        conn.reaches = msg.every
        self.counters[f"reach-received:{str(msg.every).lower()}"] += 1

    def reaches(self) -> bool:
        """
        Whether we are in a dense mesh and reach every masternode: with at
        most C{relay_fanout} peers every message is flooded anyway, and a
        small network sends no C{reach} line at all.
        """
        return self.peerset.dense() and reaches_every_masternode(
            self.peerset, self.node.key.public)

    def update(self) -> None:
        """
        Tell every peer that speaks C{reach} if L{reaches} changed (called
        when a connection is made or lost, and periodically for the
        snapshot's changes).
        """
        every = self.reaches()
        if every != self.every:
            self.every = every
            self.counters[f"reach-sent:{str(every).lower()}"] += 1
            self._tell(list(self.peerset.ready.values()))

    def peer_ready(self, conn: Connection) -> None:
        """
        A peer connected: it learns where we stand (a new connection
        assumes C{false}).
        """
        before = self.every
        self.update()
        if before and self.every:
            self._tell([conn])

    def _tell(self, conns: list[Connection]) -> None:
        msg = ReachMsg(self.every)
        for conn in conns:
            if speaks_reach(conn):
                conn.send(msg)
