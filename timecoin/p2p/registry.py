"""
The connected peers of one node, and sending to them.

L{PeerRegistry} holds every open connection, the ready ones by peer key,
the dialers by peer key, and the counters of every reason code; it sends
to the ready peers (L{PeerRegistry.broadcast} for queries,
L{PeerRegistry.relay} for gossip) and scores their offences.  It is the
L{timecoin.p2p.dependencies.PeerSet} the relays are built with; the
manager (L{timecoin.p2p.manager.PeerManager}) fills it as handshakes
complete and connections end.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Generic, TypeVar

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.encoding import sha256
from timecoin.logs import RateLimitedLog
from timecoin.p2p.caches import LineCache
from timecoin.p2p.dependencies import Connection, Dialer
from timecoin.p2p.messages import Message
from timecoin.p2p.peers import PeerTable
from timecoin.p2p.reach import not_masternodes
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings

log = Logger()

LOG_REPEAT_SECONDS = 60.0
"""The same (peer, reason) is logged at most once per this many seconds."""

C = TypeVar("C", bound=Connection)


class PeerRegistry(Generic[C]):
    """
    The connections of one node and what they did.

    @ivar ready: connections that completed the handshake, by peer key.
    @ivar connections: every open connection, in any state.
    @ivar dialers: one dialer per peer key we dial.
    @ivar counters: every reason code counted (drops, closes, offences).
    @ivar running: whether connections are accepted and dialers run.
    @ivar ready_serial: handshakes completed so far (each connection keeps
        its own number: gossip queued before it was ready is not sent to
        it).
    @ivar lines: digests of gossip lines already handled (repeats are
        dropped before parsing; L{timecoin.p2p.protocol.PeerProtocol}).
    @ivar masternodes: the keys of the masternodes of the next height's
        snapshot (L{timecoin.p2p.reach.SnapshotKeys}; none when not
        given).
    """

    def __init__(self, clock: IReactorTime, settings: P2PSettings,
                 rng: random.Random, table: PeerTable, scores: Scores,
                 masternodes: Callable[[], AbstractSet[bytes]] = frozenset,
                 ) -> None:
        self.masternodes = masternodes
        self.clock = clock
        self.settings = settings
        self.rng = rng
        self.table = table
        self.scores = scores
        self.ready: dict[str, C] = {}
        self.connections: set[C] = set()
        self.dialers: dict[str, Dialer] = {}
        self.counters: Counter[str] = Counter()
        self.running = False
        self.ready_serial = 0
        self.lines = LineCache(settings.seen_lines)
        self._limited = RateLimitedLog(log, clock, LOG_REPEAT_SECONDS)
        self._delivered: dict[Connection, dict[str, float]] = {}
        """Per ready connection: when it last sent us something new, by
        kind (L{delivered}); eviction protects the most recent."""
        self._pubkeys: tuple[tuple[int, int], dict[bytes, C]] = ((-1, -1),
                                                                 {})
        """The ready connections by masternode key, and the ready set's
        (handshakes so far, size) it was built for (L{by_pubkey})."""

    def dense(self) -> bool:
        """
        Whether we are in a dense mesh: more than C{relay_fanout} ready
        peers (0: never).  There the signer of a message sends it to all
        its peers, so relays, vote queries and aggregation need reach only
        a few; with fewer peers (a small network or a sparse overlay)
        every message goes to every peer.
        """
        return 0 < self.settings.relay_fanout < len(self.ready)

    def by_pubkey(self, pubkey: bytes) -> C | None:
        """
        The ready connection of the node whose key is C{pubkey}, if any.
        """
        state = (self.ready_serial, len(self.ready))
        built, conns = self._pubkeys
        conn = conns.get(pubkey)
        if built == state and (conn is None or
                               self.ready.get(conn.peer_key) is conn):
            return conn
        conns = {c.hello.pubkey: c for c in self.ready.values()
                 if c.hello is not None}
        self._pubkeys = (state, conns)
        return conns.get(pubkey)

    def count(self, reason: str, n: int = 1) -> None:
        """
        Count one occurrence of C{reason}.
        """
        self.counters[reason] += n

    def delivered(self, conn: Connection, kind: str) -> None:
        """
        C{conn} sent us something new of C{kind} (C{blocks}, C{votes},
        C{txs}) now: it protects the connection from eviction.
        """
        self._delivered.setdefault(conn, {})[kind] = self.clock.seconds()

    def last_delivered(self, conn: Connection) -> dict[str, float]:
        """
        When C{conn} last sent us something new, by kind.
        """
        return self._delivered.get(conn, {})

    def forget(self, conn: Connection) -> None:
        """
        Drop what was recorded of C{conn}'s deliveries.
        """
        self._delivered.pop(conn, None)

    def stop_dialer(self, key: str, reason: str) -> None:
        """
        Stop dialing C{key} (a live connection it made stays up).
        """
        factory = self.dialers.pop(key, None)
        if factory is not None:
            factory.stopTrying()
            self.count(f"dialer-stopped:{reason}")

    def offence(self, conn: Connection, reason: str, detail: str,
                points: int) -> bool:
        """
        Count, log and score an offence of C{conn}; returns whether its
        identity is now banned.
        """
        self.count(reason)
        self.log(conn, "{peer}: {reason} {detail}", reason, detail)
        if points <= 0:
            return False
        key = conn.peer_key or conn.ip
        banned = self.scores.add(key, points)
        if banned:
            self.count("bans")
            log.warn("banned {key} for {seconds} s after {reason}", key=key,
                     seconds=self.scores.ban_seconds, reason=reason)
            self.stop_dialer(key, "banned")
        return banned

    def log(self, conn: Connection, fmt: str, reason: str,
            detail: str) -> None:
        """
        Log C{fmt} about C{conn} (fields C{peer}, C{reason}, C{detail}),
        at most once per (peer, reason) per L{LOG_REPEAT_SECONDS}; the
        next one logged says how many were suppressed.
        """
        if not self._limited.info((conn.peer, reason), fmt, peer=conn.peer,
                                  reason=reason, detail=detail):
            self.count("log-suppressed")

    def broadcast(self, msg: Message,
                  exclude: Connection | None = None) -> int:
        """
        Send C{msg} to every ready peer but C{exclude}, whatever the
        direction of the connection, whether or not it has it (a query:
        L{relay} is for gossip); returns how many got it.
        """
        line = msg.encode()
        sent = 0
        for conn in list(self.ready.values()):
            if conn is not exclude and conn.send_line(msg.name, line):
                sent += 1
        return sent

    def relay(self, msg: Message, source: Connection | None = None,
              signer: bytes | None = None,
              resend_after: float | None = None) -> int:
        """
        Send the gossip message C{msg} to the ready peers not known to
        hold it (C{known} of each connection: never back to C{source},
        the peer it came from, nor to any other that sent it; never twice
        over one connection).  Returns how many got it.

        Our own messages (no C{source}) and messages without C{signer} go to
        every such peer, and so does every message while we have at most
        C{relay_fanout} peers (a small network, or a sparse overlay).
        With more (a dense mesh), a message relayed for C{signer} goes to
        at most C{relay_fanout} of them, chosen at random, or
        C{relay_fanout_direct} when C{signer} is one of our peers: a
        signer sends its messages to all its peers, so in a dense mesh the
        others have it from the signer (or soon will) and a relay only
        repairs a loss, while in a sparse overlay a node that is not the
        signer's neighbour carries it on to most of its peers.  When that
        peer said it reaches every masternode (L{timecoin.p2p.reach}),
        none of them needs the repair: the relay goes only to peers that
        are not masternodes, C{relay_fanout_direct} of them at most.

        With C{resend_after} (our periodic re-broadcast), a peer known to
        hold it gets it again once that many seconds passed since it was
        last sent or received over the connection.
        """
        line = msg.encode()
        digest = sha256(line)
        now = self.clock.seconds()
        targets = []
        known = 0
        for conn in self.ready.values():
            if conn is source:
                continue
            at = conn.known.since(digest)
            if at is None or (resend_after is not None
                              and now - at >= resend_after):
                targets.append(conn)
            else:
                known += 1
        if known:
            self.count("relay-skipped:known", known)
        fanout = 0
        settings = self.settings
        if source is not None and signer is not None and self.dense():
            direct = self.by_pubkey(signer)
            fanout = settings.relay_fanout_direct if direct is not None \
                else settings.relay_fanout
            if direct is not None and direct.reaches:
                outside = not_masternodes(targets, self.masternodes())
                self.count("relay-skipped:reached",
                           len(targets) - len(outside))
                targets = outside
        if fanout and len(targets) > fanout:
            self.count("relay-skipped:fanout", len(targets) - fanout)
            targets = self.rng.sample(targets, fanout)
        sent = 0
        for conn in targets:
            if conn.send_line(msg.name, line):
                conn.known.add(digest, now)
                sent += 1
        return sent
