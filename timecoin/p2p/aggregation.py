"""
Votes through one aggregator in a dense mesh (issue 19).

With every masternode's vote travelling as its own line to every node, a
node receives at least one line per masternode per vote phase, so the
lines it handles per block grow with the network.  In a dense mesh (more
than C{relay_fanout} ready peers, every one speaking protocol 3 or later)
a masternode instead sends its own block votes and vote batches to one
*aggregator*, which sends every vote it gathered in one C{vote_bundle}
line to all its peers every C{aggregate_delay} seconds:

  - a prevote or precommit of (height, round) goes to the proposer of
    that round, who gathers them anyway;
  - a batch of transaction votes signed at tip height h goes to the
    proposer of round 0 of h + 1.

Only the routing changes, not what is signed or counted: every vote in a
bundle is the signer's own signed message, checked and counted by every
node exactly as if it had come alone (a bundle is dispatched vote by vote
to the same handlers); an aggregator can withhold votes, not forge them.
A signer watches for its vote coming back in the aggregator's bundle; if
it has not within C{aggregate_timeout} (the aggregator is slow, Byzantine
or gone), it sends the vote to every peer as before, and the usual relay
takes over.  A vote that came in a bundle is not relayed again: the
aggregator sent it to every peer, and marks the bundle C{forward} when it
lacks a link to a masternode, so that its receivers relay the bundle on.
A signer without a link to the aggregator sends its vote to a few peers,
and a node that accepts a vote outside a bundle passes it to its
aggregator only.  In a small network, a sparse overlay, or with a peer on
protocol 2, nothing changes (L{Aggregation.active}).

Imports only L{timecoin.consensus} and L{timecoin.finality} (the signed
objects), L{timecoin.encoding}, L{timecoin.p2p.caches},
L{timecoin.p2p.dependencies}, L{timecoin.p2p.messages} and
L{timecoin.p2p.settings}.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from timecoin.consensus import BlockVote
from timecoin.encoding import EncodingError, canonical, need_list, sha256
from timecoin.finality import TxVoteBatch
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import Message, _field, register
from timecoin.p2p.reach import reaches_every_masternode
from timecoin.p2p.settings import P2PSettings

if TYPE_CHECKING:
    from timecoin.node import Node

AGGREGATION_VERSION = 3
"""The protocol version that has C{vote_bundle}."""

MAX_BUNDLE_ITEMS = 512
"""Block votes and vote batches in one bundle at most."""

MAX_BUNDLE_BYTES = 4 * 1024 * 1024
"""The longest C{vote_bundle} line; an aggregator sends a bundle before
half of it is reached."""

PROPOSERS_CACHED = 64
"""(height, previous hash, round) → proposer answers kept."""

Item = BlockVote | TxVoteBatch
"""What a bundle carries: a signed block vote or a signed vote batch."""


@register
@dataclass(frozen=True)
class VoteBundleMsg(Message):
    """
    An aggregator's bundle: block votes and transaction vote batches of
    masternodes, each as its signer signed it (the objects of C{block_vote}
    and C{tx_votes} messages, without their envelope).  C{forward}: the
    aggregator is not connected to every masternode, so receivers relay
    the bundle on (as a relayed vote, to a few peers).
    """

    name: ClassVar[str] = "vote_bundle"
    max_bytes: ClassVar[int] = MAX_BUNDLE_BYTES

    votes: tuple[BlockVote, ...]
    batches: tuple[TxVoteBatch, ...]
    forward: bool = False
    encodings: tuple[tuple[bytes, ...], tuple[bytes, ...]] | None = field(
        default=None, compare=False, repr=False)
    """The votes' and the batches' canonical encodings, when the sender
    has them (an aggregator encoded each item as it gathered it)."""

    @property
    def cost(self) -> int:
        return max(1, len(self.votes) + len(self.batches))

    def fields(self) -> dict[str, Any]:
        return {"batches": [b.to_obj() for b in self.batches],
                "forward": self.forward,
                "votes": [v.to_obj() for v in self.votes]}

    def encode(self) -> bytes:
        if self.encodings is None:
            return canonical(self.to_obj())
        # Same bytes as canonical(self.to_obj()), spliced.
        votes, batches = self.encodings
        return (b'{"batches":[' + b",".join(batches) + b'],"forward":'
                + (b"true" if self.forward else b"false")
                + b',"type":"vote_bundle","votes":[' + b",".join(votes)
                + b"]}")

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> VoteBundleMsg:
        votes = need_list(_field(obj, "votes"), "votes", MAX_BUNDLE_ITEMS)
        batches = need_list(_field(obj, "batches"), "batches",
                            MAX_BUNDLE_ITEMS - len(votes))
        forward = _field(obj, "forward")
        if not isinstance(forward, bool):
            raise EncodingError("forward must be a boolean")
        return cls(tuple(BlockVote.from_obj(v) for v in votes),
                   tuple(TxVoteBatch.from_obj(b) for b in batches), forward)


def encoded(item: Item) -> bytes:
    """
    The canonical encoding of a bundled item.
    """
    return canonical(item.to_obj())


class Aggregation:
    """
    One node's side of vote aggregation: what it sends to aggregators,
    what it gathers as one, and the bundles it receives.

    @ivar pending: the items gathered for the next bundle (and, in
        C{_encodings}, their canonical encodings).
    @ivar awaiting: our own votes sent to an aggregator, by the digest of
        their encoding, with the call that sends them to every peer if
        they do not come back in a bundle in time.
    @ivar routes: per kind of bundled item (C{"votes"}, C{"batches"}), the
        handler the relay that owns that kind gave (L{route}).
    @ivar counters: what happened (the tests and the simulator read them).
    """

    def __init__(self, node: Node, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings) -> None:
        self.node = node
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.pending: list[Item] = []
        self._encodings: list[bytes] = []
        self._pending_bytes = 0
        self._flush_call: IDelayedCall | None = None
        self.awaiting: dict[bytes, tuple[Message, IDelayedCall]] = {}
        self.routes: dict[str, Callable[[Connection, Any], None]] = {}
        self.seen = SeenCache(settings.seen_lines)
        self.fresh = SeenCache(settings.seen_lines)
        """The ids of the block votes accepted from a peer (in a bundle or
        alone, ours echoed included) or sent in our bundle, until the next
        re-broadcast of each (L{skip_rebroadcast})."""
        self.counters: Counter[str] = Counter()
        self._in_bundle = False
        self._active: tuple[tuple[int, int], bool] = ((-1, -1), False)
        """The ready set's (handshakes so far, size) and whether every
        peer of it speaks L{AGGREGATION_VERSION} (L{active})."""
        self._proposers: OrderedDict[tuple[int, bytes, int],
                                     bytes | None] = OrderedDict()

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages aggregation handles, by type.
        """
        return {"vote_bundle": self.received}

    def route(self, kind: str,
              handler: Callable[[Connection, Any], None]) -> None:
        """
        Bundled items of C{kind} (C{"votes"}: block votes, C{"batches"}:
        vote batches) go to C{handler}, which takes them as if they had
        come alone.
        """
        self.routes[kind] = handler

    def stop(self) -> None:
        """
        Cancel the timers (the node stops).
        """
        for _, call in self.awaiting.values():
            if call.active():
                call.cancel()
        self.awaiting.clear()
        self.take()

    # Who aggregates -------------------------------------------------------

    def active(self) -> bool:
        """
        Whether votes go through aggregators: on, in a dense mesh (more
        than C{relay_fanout} ready peers) whose every peer speaks
        L{AGGREGATION_VERSION} or later.
        """
        peerset = self.peerset
        if not self.settings.aggregate_votes or not peerset.dense():
            return False
        state = (peerset.ready_serial, len(peerset.ready))
        if self._active[0] != state:
            self._active = (state, all(
                conn.hello is not None
                and conn.hello.version >= AGGREGATION_VERSION
                for conn in peerset.ready.values()))
        return self._active[1]

    def aggregator(self, height: int, round: int) -> bytes | None:
        """
        The masternode that gathers the votes of (C{height}, C{round}):
        its proposer, known while C{height} is the next block's or the
        tip's (its late precommits).
        """
        tip = self.node.chain.tip
        if height == tip.height + 1:
            prev = tip.hash
        elif height == tip.height and height > 0:
            prev = tip.header.prev_hash
        else:
            return None
        key = (height, prev, round)
        if key not in self._proposers:
            self._proposers[key] = self.node.chain.expected_producer(*key)
            if len(self._proposers) > PROPOSERS_CACHED:
                self._proposers.popitem(last=False)
        return self._proposers[key]

    # Sending --------------------------------------------------------------

    def send_own(self, msg: Message, item: Item, height: int,
                 round: int) -> None:
        """
        Our own vote or vote batch C{item}, signed now (C{msg} is its
        message alone): to the aggregator of (C{height}, C{round}) when
        votes are aggregated (or, without a link to it, to
        C{relay_fanout_direct} peers, which pass it on to it), else to
        every peer.
        """
        target = self.aggregator(height, round) if self.active() else None
        if target is None:
            self.peerset.relay(msg)
            return
        line = encoded(item)
        if target == self.node.key.public:
            self.counters["own-gathered"] += 1
            self._gather(item, line)
            return
        conn = self.peerset.by_pubkey(target)
        if conn is not None:
            self.counters["sent-to-aggregator"] += 1
            self._send(msg, [conn])
        else:
            # Our peers that are the aggregator's pass it on to it.
            self.counters["aggregator-not-connected"] += 1
            ready = list(self.peerset.ready.values())
            self._send(msg, self.peerset.rng.sample(
                ready, min(self.settings.relay_fanout_direct, len(ready))))
        key = sha256(line)
        old = self.awaiting.pop(key, None)
        if old is not None and old[1].active():
            old[1].cancel()
        self.awaiting[key] = (msg, self.clock.callLater(
            self.settings.aggregate_timeout, self._unconfirmed, key))

    def _unconfirmed(self, key: bytes) -> None:
        """
        Our vote did not come back in its aggregator's bundle in time:
        send it to every peer.
        """
        entry = self.awaiting.pop(key, None)
        if entry is None:
            return
        self.counters["fallback"] += 1
        self.peerset.relay(entry[0])

    def accepted(self, msg: Message, item: Item, source: Connection,
                 signer: bytes, height: int, round: int,
                 relay: bool = True) -> None:
        """
        A peer's vote or vote batch C{item} (in C{msg}) that this node
        accepted: gathered if we aggregate it; not relayed if it came in a
        bundle (its aggregator sent it to every peer); passed on to its
        aggregator only if that is our peer (a signer without a link to
        it sent it to a few of its peers); else relayed as usual.  Not
        C{relay}: only gathered if we aggregate it (a vote batch whose
        signature holds but whose transactions we have not seen yet: its
        signer sent it to us alone, and would send it to every peer after
        C{aggregate_timeout} if we left it out of our bundle).
        """
        if isinstance(item, BlockVote):
            self.fresh.add(item.id)
        if self._in_bundle:
            return
        target = self.aggregator(height, round) if self.active() else None
        if target is not None and target == self.node.key.public:
            self.counters["gathered"] += 1
            self._gather(item, encoded(item))
            return
        if not relay:
            return
        conn = self.peerset.by_pubkey(target) if target is not None \
            else None
        if conn is not None and conn is not source:
            self.counters["passed-to-aggregator"] += 1
            self._send(msg, [conn])
            return
        self.peerset.relay(msg, source=source, signer=signer)

    def _send(self, msg: Message, conns: list[Connection]) -> None:
        """
        Send C{msg} to those of C{conns} not known to hold it.
        """
        line = msg.encode()
        digest = sha256(line)
        now = self.clock.seconds()
        for conn in conns:
            if digest not in conn.known and conn.send_line(msg.name, line):
                conn.known.add(digest, now)

    def _gather(self, item: Item, line: bytes) -> None:
        """
        Add C{item} (encoded as C{line}) to the next bundle.
        """
        size = len(line) + 1
        if self.pending and \
                self._pending_bytes + size > MAX_BUNDLE_BYTES // 2:
            self.flush()
        self.pending.append(item)
        self._encodings.append(line)
        self._pending_bytes += size
        if len(self.pending) >= MAX_BUNDLE_ITEMS:
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self.clock.callLater(
                self.settings.aggregate_delay, self.flush)

    def take(self) -> list[Item]:
        """
        What was gathered for the next bundle, no longer pending.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        pending, self.pending = self.pending, []
        self._encodings = []
        self._pending_bytes = 0
        return pending

    def flush(self) -> None:
        """
        Send what was gathered as one bundle to every peer.
        """
        lines = self._encodings
        pending = self.take()
        if not pending:
            return
        votes: list[BlockVote] = []
        batches: list[TxVoteBatch] = []
        vote_lines: list[bytes] = []
        batch_lines: list[bytes] = []
        for item, line in zip(pending, lines):
            if isinstance(item, BlockVote):
                votes.append(item)
                vote_lines.append(line)
                self.fresh.add(item.id)
            else:
                batches.append(item)
                batch_lines.append(line)
        bundle = VoteBundleMsg(tuple(votes), tuple(batches),
                               not reaches_every_masternode(
                                   self.peerset, self.node.key.public),
                               (tuple(vote_lines), tuple(batch_lines)))
        self.counters["bundles-sent"] += 1
        self.peerset.relay(bundle)

    # Receiving ------------------------------------------------------------

    def received(self, conn: Connection, msg: VoteBundleMsg) -> None:
        """
        A peer sent a bundle: hand each item to its handler as if it had
        come alone (it is not relayed on), and take our own votes in it as
        delivered to every peer.
        """
        digest = conn.line_digest
        if digest is not None:
            if not self.seen.add(digest):
                self.counters["bundle-duplicate"] += 1
                return
            self.peerset.lines.taken(conn, msg.name, self, digest)
        self.counters["bundles-received"] += 1
        me = self.node.key.public
        conn.line_digest = None
        self._in_bundle = True
        try:
            for kind, items in (("votes", msg.votes),
                                ("batches", msg.batches)):
                handler = self.routes.get(kind)
                for item in items:
                    if isinstance(item, BlockVote):
                        self.fresh.add(item.id)
                    if self.awaiting and item.voter == me:
                        self._confirmed(item)
                    if handler is not None:
                        handler(conn, item)
        finally:
            self._in_bundle = False
            conn.line_digest = digest
        if msg.forward:
            self.counters["bundles-forwarded"] += 1
            self.peerset.relay(msg, source=conn,
                               signer=conn.hello.pubkey
                               if conn.hello is not None else None)

    def skip_rebroadcast(self, vote: BlockVote) -> bool:
        """
        Whether the periodic re-broadcast skips C{vote} this time, where
        votes are aggregated: our own vote still awaiting its aggregator's
        echo (if it does not come, L{_unconfirmed} sends it to every peer),
        or a vote that reached us, or went in our bundle, since its last
        re-broadcast.  Such a vote went to every peer in its aggregator's
        bundle (or from its signer, when that bundle did not echo it in
        time), so sending it to every peer not known to hold it -- all but
        the one we had it from -- would repeat it N times; the next
        re-broadcast sends it, in case an aggregator echoed it to us
        alone.
        """
        if not self.active():
            return False
        if vote.id in self.fresh:
            self.fresh.discard(vote.id)
            self.counters["rebroadcast-skipped:fresh"] += 1
            return True
        if self.awaiting and vote.voter == self.node.key.public and \
                sha256(encoded(vote)) in self.awaiting:
            self.counters["rebroadcast-skipped:awaiting"] += 1
            return True
        return False

    def _confirmed(self, item: Item) -> None:
        """
        Our vote came back in its aggregator's bundle: no need to send it
        to every peer.  (Its periodic re-broadcast still goes to the peers
        not known to hold it: an aggregator may have echoed our vote to us
        alone.)
        """
        entry = self.awaiting.pop(sha256(encoded(item)), None)
        if entry is None:
            return
        if entry[1].active():
            entry[1].cancel()
        self.counters["confirmed"] += 1

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether the bundle line C{item} is still in the seen-cache.
        """
        return item in self.seen

    def line_repeated(self, name: str) -> None:
        """
        A repeated bundle line was dropped before parsing.
        """
        self.counters["bundle-duplicate"] += 1
