"""
Gossip of transactions, transaction votes, blocks and masternode heartbeats.

Every item is deduplicated by its id in a bounded cache *before* it is
relayed (the seeds' vote relay loops and finality broadcast storms came
from relaying first): transactions by txid, votes by the hash of the whole
signed vote, blocks by block hash, heartbeats by the hash of the whole
signed heartbeat.  An item is relayed only once this node accepted it (a
transaction admitted to the mempool, a vote tallied, a block connected, a
heartbeat recorded in the liveness view), to every ready peer but the one
it came from, whatever the direction of the connection.  Nothing final is
re-gossiped: a transaction already known, decided or archived, a vote for
a decided transaction and a block at or below our tip stop here.

A transaction id does not cover its signatures, so a transaction is marked
seen only once admitted (or found already known): a copy with broken
signatures cannot shadow the valid one.  Votes may arrive before their
transaction (the voter relays its vote as it votes); such *orphan* votes
are kept, bounded and for a short time, and tallied when the transaction
arrives.

Masternodes sign their votes in batches (C{tx_votes}); a batch is relayed
whole, once at least one of its decisions was tallied here.  A batch's
decisions on transactions not seen yet become orphan single votes (each
with its Merkle branch, so it stands on its own), relayed as C{tx_vote}
once tallied (not where votes are aggregated: every peer had the batch
from its aggregator).  A transaction still undecided C{query_after}
seconds after admission (a restart mid-vote, votes lost while a peer was
away) is announced again and its votes are asked for with
C{get_tx_votes}; a peer answers with the votes it holds, as C{tx_vote}
messages.

Transactions travel in batches (C{txs}, L{timecoin.p2p.outbox.TxOutbox}):
each admitted transaction (from RPC or a peer) is queued and sent to every
ready peer but those known to hold it already (the peer it came from, and
any that sent it while it waited) after C{tx_batch_delay} seconds, or at
once when the queue holds C{tx_batch_count} transactions or
C{tx_batch_bytes} bytes.  A received
entry whose claimed txid is already seen or held is skipped without
building the transaction; otherwise the transaction is built, its txid
must be the claimed one, and it is admitted as a single C{tx} would be,
a slice per reactor turn (L{timecoin.p2p.admission.TxAdmission}).
Orphan votes live in L{timecoin.p2p.orphans.OrphanVotes}, heartbeats are
relayed by L{timecoin.p2p.heartbeats.HeartbeatRelay}.

Votes, heartbeats and consensus messages are relayed byte for byte, so a
repeated copy is recognised by the SHA-256 of its line before it is even
parsed (L{timecoin.p2p.caches.LineCache}); only a line whose item a
seen-cache took (and still holds) is dropped that way.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.block import Block, CommitCertificate
from timecoin.encoding import EncodingError, canonical, sha256
from timecoin.finality import TxVote, TxVoteBatch
from timecoin.p2p.admission import TxAdmission
from timecoin.p2p.aggregation import Aggregation
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.fetch import TxFetch
from timecoin.p2p.heartbeats import HeartbeatRelay
from timecoin.p2p.messages import (
    MAX_TXIDS_PER_QUERY,
    BlockMsg,
    GetTxVotes,
    TxMsg,
    TxsMsg,
    TxVoteMsg,
    TxVotesMsg,
)
from timecoin.p2p.orphans import OrphanVotes
from timecoin.p2p.outbox import TxOutbox
from timecoin.p2p.reach import Reach
from timecoin.p2p.settings import P2PSettings
from timecoin.tx import Transaction

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

MALICIOUS_VOTE_REASONS = frozenset({
    "vote-bad-signature", "vote-not-masternode",
})
"""Vote drops that score the sender."""

UNKNOWN_TX = "vote-unknown-or-decided-tx"

MAX_VOTES_PER_REPLY = 500
"""Votes sent in answer to one C{get_tx_votes}."""
MAX_REANNOUNCE = 256
"""Transactions queried per second at most, undecided ones (announced
again too) and recently rejected ones together: 256 transactions (in
C{txs}) and 4 C{get_tx_votes} a second stay well within a peer's rate
limits (5000/s and 5/s)."""

MAX_QUERY_ON_CONNECT = 1024
"""Open transactions a newly connected peer is asked about: 16
C{get_tx_votes} at most, within its burst of 20."""

def vote_id(vote: TxVote | TxVoteBatch) -> bytes:
    """
    The gossip id of a vote or a batch of votes: SHA-256 of its whole
    signed encoding.
    """
    return sha256(canonical(vote.to_obj()))


class Gossip:
    """
    Relays transactions, votes and blocks between the node and its peers.

    @ivar counters: what was relayed, dropped as duplicate, refused (shared
        with the parts below).
    @ivar outbox: the admitted transactions waiting to go out in C{txs}.
    @ivar admission: the peers' transactions waiting to be admitted.
    @ivar orphans: the votes waiting for their transaction.
    @ivar heartbeats: the relay of heartbeats, whose handler is one of
        L{handlers}.
    @ivar aggregation: where vote batches go in a dense mesh (their
        aggregator), and the handler of the bundles it sends; shared with
        the consensus relay.
    """

    def __init__(self, node: Node, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings) -> None:
        self.node = node
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.counters: Counter[str] = Counter()
        self.seen_txs = SeenCache(settings.seen_size)
        self.seen_votes = SeenCache(settings.seen_size)
        self.seen_blocks = SeenCache(settings.seen_size)
        self.outbox = TxOutbox(peerset, clock, settings, self.counters)
        self.admission = TxAdmission(node, peerset, clock, settings,
                                     self.seen_txs, self.counters,
                                     self._tx_admitted)
        self.orphans = OrphanVotes(clock, settings, self.counters,
                                   self.seen_votes.discard)
        self.fetch = TxFetch(node, peerset, clock, settings, self.counters,
                             self._known_tx)
        self.heartbeats = HeartbeatRelay(node, peerset, settings.seen_size,
                                         self.counters)
        self.aggregation = Aggregation(node, peerset, clock, settings)
        self.aggregation.route("batches", self.bundled_batch)
        self.reach = Reach(node, peerset, self.counters)
        self._turn = 0

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages gossip handles, by type.
        """
        return {"tx": self.tx_received, "txs": self.txs_received,
                "tx_vote": self.vote_received,
                "tx_votes": self.batch_received,
                "get_tx_votes": self.votes_requested,
                **self.fetch.handlers(), **self.heartbeats.handlers(),
                **self.aggregation.handlers(),
                **self.reach.handlers()}

    def stop(self) -> None:
        """
        Drop the transactions waiting to be sent or admitted, and their
        timers.
        """
        self.outbox.stop()
        self.admission.stop()
        self.aggregation.stop()

    # Seen-caches behind the line cache -----------------------------------

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether C{item} (of a C{name} message) is still in its seen-cache.
        """
        return item in self.seen_votes

    def line_repeated(self, name: str) -> None:
        """
        A repeated C{name} line was dropped before parsing.
        """
        self.counters["vote-duplicate"] += 1

    # Local events (hooked to the node) -----------------------------------

    def tx_accepted(self, tx: Transaction) -> None:
        """
        This node admitted C{tx} (from RPC or the wallet, or from a peer:
        L{tx_received} is then the caller): queue it for every other peer.
        """
        if self.seen_txs.add(tx.txid):
            source = self.admission.source
            self.counters["tx-announced" if source is None
                          else "tx-relayed"] += 1
            self.outbox.enqueue(tx, source)
        self._replay_orphans(tx.txid)

    def vote_cast(self, batch: TxVoteBatch) -> None:
        """
        This node signed a batch of votes: announce it.
        """
        self.seen_votes.add(vote_id(batch))
        self.counters["vote-announced"] += 1
        self.aggregation.send_own(TxVotesMsg(batch), batch, batch.height + 1,
                                  0)

    def block_committed(self, block: Block) -> None:
        """
        This node produced and committed C{block}: announce it with its
        certificate.
        """
        chain = self.node.chain
        if chain.tip.hash != block.hash or chain.tip_commit is None:
            return
        self.seen_blocks.add(block.hash)
        self.counters["block-announced"] += 1
        self.peerset.relay(BlockMsg(block, chain.tip_commit))

    def expire_orphans(self) -> None:
        """
        Forget orphan votes (votes for transactions not seen yet) past
        their time to live, ask for the transactions only their votes are
        known of (L{timecoin.p2p.fetch}), and announce again (asking for
        their votes) the transactions that stay undecided.  Runs every
        C{relay_interval} seconds.
        """
        self.orphans.expire()
        self.fetch.ask_due()
        self.query_stalled()

    def peer_ready(self, conn: Connection) -> None:
        """
        A peer connected (or reconnected after a partition): tell it
        whether we reach every masternode (L{timecoin.p2p.reach}), and ask
        it for the votes it holds on what is open here
        (L{timecoin.finality.Finality.open_txids}): every vote on the
        undecided ones, and the approvals of those it holds final among
        the recently rejected ones.  The periodic query stops after a few
        tries, so a node cut off while the others voted would otherwise
        keep rejected a payment finalized elsewhere (seed 628 of seven
        masternodes; seed 102 of twelve, after a partition healed).  Not
        about the undecided ones if we were in a dense mesh already (more
        than C{relay_fanout} other peers): their votes come in bundles and
        by relay, and these answers were most of the vote lines of a
        forming 30-masternode mesh (issue 19).
        """
        self.reach.peer_ready(conn)
        undecided, rejected = self.node.finality.open_txids(
            MAX_QUERY_ON_CONNECT)
        ready = self.peerset.ready
        others = len(ready) - (ready.get(conn.peer_key) is conn)
        if undecided and 0 < self.settings.relay_fanout < others:
            self.counters["votes-query-on-connect-skipped:dense"] += 1
            undecided = []
        for txids, final in ((undecided, False), (rejected, True)):
            for start in range(0, len(txids), MAX_TXIDS_PER_QUERY):
                self.counters["votes-queried-on-connect"] += 1
                conn.send(GetTxVotes(tuple(
                    txids[start:start + MAX_TXIDS_PER_QUERY]), final))

    def query_stalled(self) -> None:
        """
        Announce the transactions L{timecoin.finality.Finality.stalled}
        names again (a peer that missed one admits it and votes) and ask
        the peers for the votes they hold on them, and on the recently
        rejected ones L{timecoin.finality.Finality.late_due} names (a late
        approval may still finalize them) for the approvals of those they
        hold final.  Every peer in a small network; in a dense mesh, for
        the undecided ones C{relay_fanout_direct} peers of the next third
        in turn (any peer holding the votes will do, and each answers with
        every vote it holds: asking a third of 30 masternodes brought some
        250 vote lines per query, issue 19), and for a rejected one
        another third at each of its three queries, so they cover every
        peer.
        """
        if not self.peerset.ready:
            return
        finality = self.node.finality
        txs = finality.stalled(MAX_REANNOUNCE)
        for tx in txs:
            self.counters["tx-reannounced"] += 1
            self.outbox.enqueue(tx, None)
        # Both kinds together stay within MAX_REANNOUNCE a second, so the
        # queries stay within a peer's get_tx_votes limit (5/s) even when
        # a flood of double spends leaves many rejected.  The shares of a
        # dense mesh (docstring): every vote of every peer, asked of every
        # peer, grew with the cube of the network (issue 19).
        shares = self._shares()
        self._turn += 1
        share = shares[self._turn % len(shares)]
        if len(shares) > 1:
            share = self.peerset.rng.sample(share, min(
                self.settings.relay_fanout_direct, len(share)))
        self._query([tx.txid for tx in txs], False, share)
        rejected = finality.late_due(MAX_REANNOUNCE - len(txs))
        for n, peers in enumerate(shares):
            self._query([txid for txid, query in rejected
                         if query % len(shares) == n], True, peers)

    def _shares(self) -> list[list[Connection]]:
        """
        The ready peers, split in C{max_queries} shares (by key) in a
        dense mesh (more than C{relay_fanout} peers), else one share.
        """
        ready = self.peerset.ready
        count = self.node.finality.settings.max_queries
        if count <= 1 or not self.peerset.dense():
            return [list(ready.values())]
        by_key = [ready[key] for key in sorted(ready)]
        return [by_key[n::count] for n in range(count)]

    def _query(self, txids: list[bytes], final: bool,
               peers: list[Connection]) -> None:
        """
        Ask C{peers} for their votes on C{txids}, 64 a query.
        """
        for start in range(0, len(txids), MAX_TXIDS_PER_QUERY):
            self.counters["votes-queried"] += 1
            line = GetTxVotes(
                tuple(txids[start:start + MAX_TXIDS_PER_QUERY]),
                final).encode()
            for conn in peers:
                conn.send_line(GetTxVotes.name, line)

    # From peers ----------------------------------------------------------

    def tx_received(self, conn: Connection, msg: TxMsg) -> None:
        """
        A peer sent a transaction (the single C{tx} of older peers and
        re-announcements): admit it, then relay it.
        """
        tx = msg.tx
        if self._duplicate_tx(conn, tx.txid):
            return
        self.admission.admit(conn, tx)

    def txs_received(self, conn: Connection, msg: TxsMsg) -> None:
        """
        A peer sent a batch of transactions: skip those whose claimed
        txid is seen or held without building them; build the others,
        check each claim, admit and relay them.  A malformed entry or a
        false claim is skipped and costs the sender once per message
        (C{bad-message} or C{invalid-tx}).
        """
        offence: tuple[str, str] | None = None
        for n, (txid, value) in enumerate(msg.txs):
            if conn.close_reason is not None:
                # Banned or dropped while admitting the first ones: the
                # rest are not built, let alone verified.
                self.admission.dropped_gone(conn, len(msg.txs) - n)
                return
            if self._duplicate_tx(conn, txid):
                continue
            try:
                tx = TxsMsg.transaction(value)
            except (EncodingError, ValueError, TypeError, KeyError) as e:
                self.counters["tx-refused:bad-message"] += 1
                offence = offence or ("bad-message", f"txs: {e}"[:200])
                continue
            if tx.txid != txid:
                self.counters["tx-refused:txid-mismatch"] += 1
                offence = offence or (
                    "invalid-tx", f"txid-mismatch: claimed {txid.hex()}, "
                    f"is {tx.txid.hex()}")
                continue
            self.admission.admit(conn, tx)
        if offence is not None:
            conn.misbehaved(*offence)

    def _known_tx(self, txid: bytes) -> bool:
        return txid in self.seen_txs or self.admission.holds(txid) \
            or self.node.mempool.knows(txid)

    def _duplicate_tx(self, conn: Connection, txid: bytes) -> bool:
        """
        Whether C{txid} is seen or held here (then counted, and C{conn}
        noted as holding it if it waits to be relayed).
        """
        if not self._known_tx(txid):
            return False
        self.counters["tx-duplicate"] += 1
        self.outbox.holder(txid, conn)
        return True

    def _failed(self, failure: Failure, what: str) -> None:
        self.counters["errors"] += 1
        log.failure("gossip failed {what}", failure, what=what)

    def _tx_admitted(self, tx: Transaction, conn: Connection) -> None:
        # Normally queued already by tx_accepted, which submit calls.
        if self.seen_txs.add(tx.txid):
            self.counters["tx-relayed"] += 1
            self.outbox.enqueue(tx, conn)
        self._replay_orphans(tx.txid)

    def vote_received(self, conn: Connection, msg: TxVoteMsg) -> None:
        """
        A peer sent a vote: tally it, then relay it.
        """
        vote = msg.vote
        item = vote_id(vote)
        new = self.seen_votes.add(item)
        self.peerset.lines.taken(conn, msg.name, self, item)
        if not new:
            self.counters["vote-duplicate"] += 1
            return
        reason = self.node.finality.receive_vote(vote)
        if reason is None:
            self.counters["vote-relayed"] += 1
            self.peerset.relay(msg, source=conn, signer=vote.voter)
        elif reason == UNKNOWN_TX and \
                self.node.mempool.state_of(vote.txid) is None:
            self.orphans.keep(vote, item)
            self.fetch.voted(vote.txid, conn, vote.voter)
        elif reason in MALICIOUS_VOTE_REASONS:
            self.counters[f"vote-refused:{reason}"] += 1
            conn.misbehaved("invalid-vote", reason)
        else:
            self.counters[f"vote-refused:{reason}"] += 1

    def batch_received(self, conn: Connection, msg: TxVotesMsg) -> None:
        """
        A peer sent a batch of votes: tally it (one signature check), keep
        its decisions on unseen transactions as orphans, relay it if any
        decision counted here.
        """
        batch = msg.batch
        item = vote_id(batch)
        new = self.seen_votes.add(item)
        self.peerset.lines.taken(conn, msg.name, self, item)
        if not new:
            self.counters["vote-duplicate"] += 1
            return
        result = self.node.finality.receive_batch(batch)
        if result.reason is not None:
            self.counters[f"vote-refused:{result.reason}"] += 1
            if result.reason in MALICIOUS_VOTE_REASONS:
                conn.misbehaved("invalid-vote", result.reason)
            return
        for vote in result.orphans:
            # Its own id was never seen: the batch's was.
            self.orphans.keep(vote, None)
            self.fetch.voted(vote.txid, conn, vote.voter)
        for reason, count in result.dropped.items():
            self.counters[f"vote-refused:{reason}"] += count
        if result.tallied:
            self.counters["vote-relayed"] += 1
            self.aggregation.accepted(msg, batch, conn, batch.voter,
                                      batch.height + 1, 0)
        elif result.orphans:
            self.aggregation.accepted(msg, batch, conn, batch.voter,
                                      batch.height + 1, 0, relay=False)

    def bundled_batch(self, conn: Connection, batch: TxVoteBatch) -> None:
        """
        A vote batch came in an aggregator's bundle: as if it came alone.
        """
        self.batch_received(conn, TxVotesMsg(batch))

    def votes_requested(self, conn: Connection, msg: GetTxVotes) -> None:
        """
        A peer asked for our votes on some transactions: send each vote we
        hold on them (with C{final}, the approvals of those we hold final)
        as a C{tx_vote}, at most L{MAX_VOTES_PER_REPLY} per request (a
        reply never floods the asker past its own limits).
        """
        budget = [MAX_VOTES_PER_REPLY]
        finality = self.node.finality
        held = finality.final_votes_for if msg.final else finality.votes_for
        for txid in msg.txids:
            d = held(txid)
            d.addCallback(self._send_votes, conn, budget)
            d.addErrback(self._failed, "serving votes")

    def _send_votes(self, votes: list[TxVote], conn: Connection,
                    budget: list[int]) -> None:
        for vote in votes:
            if budget[0] <= 0:
                self.counters["votes-served-capped"] += 1
                return
            budget[0] -= 1
            if conn.send(TxVoteMsg(vote)):
                self.counters["votes-served"] += 1

    def relay_block(self, block: Block, commit: CommitCertificate,
                    exclude: Connection | None) -> None:
        """
        A block from a peer was connected: relay it to the others (in a
        dense mesh, to a few: its producer sent it to all its peers).
        """
        if self.seen_blocks.add(block.hash):
            self.counters["block-relayed"] += 1
            self.peerset.relay(BlockMsg(block, commit), source=exclude,
                               signer=block.header.producer)

    # Orphan votes --------------------------------------------------------

    def _replay_orphans(self, txid: bytes) -> None:
        self.fetch.arrived(txid)
        for vote in self.orphans.replay(txid, self.node.finality.receive_vote):
            if not self.aggregation.active():
                self.peerset.relay(TxVoteMsg(vote))
