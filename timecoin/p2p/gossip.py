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
once tallied.  A transaction still undecided C{query_after} seconds after
admission (a restart mid-vote, votes lost while a peer was away) is
announced again and its votes are asked for with C{get_tx_votes}; a peer
answers with the votes it holds, as C{tx_vote} messages.

Transactions travel in batches (C{txs}): each admitted transaction (from
RPC or a peer) is queued and sent to every ready peer but those known to
hold it already (the peer it came from, and any that sent it while it
waited) after C{tx_batch_delay} seconds, or at once when the queue holds
C{tx_batch_count} transactions or C{tx_batch_bytes} bytes.  A received
entry whose claimed txid is already seen or held is skipped without
building the transaction; otherwise the transaction is built, its txid
must be the claimed one, and it is admitted as a single C{tx} would be.

Votes, heartbeats and consensus messages are relayed byte for byte, so a
repeated copy is recognised by the SHA-256 of its line before it is even
parsed (L{timecoin.p2p.caches.LineCache}); only a line whose item a
seen-cache took (and still holds) is dropped that way.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.block import Block, CommitCertificate
from timecoin.chain import TxInvalid
from timecoin.encoding import EncodingError, canonical, sha256
from timecoin.finality import TxVote, TxVoteBatch
from timecoin.liveness import Heartbeat
from timecoin.mempool import PENDING
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import (
    MAX_TXIDS_PER_QUERY,
    MAX_TXS_PER_MSG,
    TXS_ENVELOPE_BYTES,
    BlockMsg,
    GetTxVotes,
    HeartbeatMsg,
    TxMsg,
    TxsMsg,
    TxVoteMsg,
    TxVotesMsg,
    txs_entry,
    txs_line,
)
from timecoin.p2p.settings import P2PSettings
from timecoin.tx import Transaction

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

MALICIOUS_TX_REASONS = frozenset({
    "bad-signature", "pubkey-address-mismatch", "tx-too-large",
    "unexpected-coinbase", "coinbase-has-inputs", "no-inputs",
    "unexpected-data", "duplicate-input", "no-outputs", "bad-address",
    "zero-output", "dust-output", "value-out-of-range",
    "outputs-exceed-inputs", "fee-too-low",
})
"""Refusals no honest relay causes (consensus rules every node shares);
others (double spends, inputs we have not seen yet, a full mempool) are
races or local state and cost the sender nothing."""

MALICIOUS_VOTE_REASONS = frozenset({
    "vote-bad-signature", "vote-not-masternode",
})
"""Vote drops that score the sender."""

UNKNOWN_TX = "vote-unknown-or-decided-tx"

MAX_VOTES_PER_REPLY = 500
"""Votes sent in answer to one C{get_tx_votes}."""
MAX_REANNOUNCE = 256
"""Undecided transactions announced again (and queried) per second at
most: 256 transactions (in C{txs}) and 4 C{get_tx_votes} a second stay
well within a peer's rate limits (5000/s and 5/s)."""

MAX_QUERY_ON_CONNECT = 1024
"""Open transactions a newly connected peer is asked about: 16
C{get_tx_votes} at most, within its burst of 20."""

MALICIOUS_HEARTBEAT_REASONS = frozenset({"heartbeat-bad-signature"})
"""Heartbeat drops that score the sender: a forged signature.  Stale,
far-future and non-masternode heartbeats cost nothing (replays, clock
skew and a sender at another height are not hostile)."""


def vote_id(vote: TxVote | TxVoteBatch) -> bytes:
    """
    The gossip id of a vote or a batch of votes: SHA-256 of its whole
    signed encoding.
    """
    return sha256(canonical(vote.to_obj()))


class _Queued:
    """
    A transaction waiting in the C{txs} queue: its line entry, the
    peer set's C{ready_serial} when it was queued (peers that became ready
    later do not get it), and the peers known to hold it already.
    """

    __slots__ = ("entry", "at", "have")

    def __init__(self, entry: bytes, at: int,
                 have: set[Connection]) -> None:
        self.entry = entry
        self.at = at
        self.have = have


class Gossip:
    """
    Relays transactions, votes and blocks between the node and its peers.

    @ivar counters: what was relayed, dropped as duplicate, refused.
    """

    def __init__(self, node: Node, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings) -> None:
        self.node = node
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.seen_txs = SeenCache(settings.seen_size)
        self.seen_votes = SeenCache(settings.seen_size)
        self.seen_blocks = SeenCache(settings.seen_size)
        self.seen_heartbeats = SeenCache(settings.seen_size)
        self.orphans: OrderedDict[bytes, list[tuple[TxVote, float]]] = \
            OrderedDict()
        self._orphan_count = 0
        self.counters: Counter[str] = Counter()
        self._queue: dict[bytes, _Queued] = {}
        self._queued_bytes = 0
        self._flush_call: IDelayedCall | None = None
        self._source: Connection | None = None
        self._admit: deque[tuple[Connection, Transaction]] = deque()
        self._admitting: set[bytes] = set()
        """The txids in L{_admit}."""
        self._admit_call: IDelayedCall | None = None
        self._direct = 0
        """Transactions from peers admitted this reactor turn."""

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages gossip handles, by type.
        """
        return {"tx": self.tx_received, "txs": self.txs_received,
                "tx_vote": self.vote_received,
                "tx_votes": self.batch_received,
                "get_tx_votes": self.votes_requested,
                "heartbeat": self.heartbeat_received}

    def stop(self) -> None:
        """
        Drop the transactions waiting to be sent and their timer.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._queue = {}
        self._queued_bytes = 0
        if self._admit_call is not None and self._admit_call.active():
            self._admit_call.cancel()
        self._admit_call = None
        self._admit.clear()
        self._admitting.clear()

    # Seen-caches behind the line cache -----------------------------------

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether C{item} (of a C{name} message) is still in its seen-cache.
        """
        cache = self.seen_heartbeats if name == "heartbeat" \
            else self.seen_votes
        return item in cache

    def line_repeated(self, name: str) -> None:
        """
        A repeated C{name} line was dropped before parsing.
        """
        self.counters["heartbeat-duplicate" if name == "heartbeat"
                      else "vote-duplicate"] += 1

    # Local events (hooked to the node) -----------------------------------

    def tx_accepted(self, tx: Transaction) -> None:
        """
        This node admitted C{tx} (from RPC or the wallet, or from a peer:
        L{tx_received} is then the caller): queue it for every other peer.
        """
        if self.seen_txs.add(tx.txid):
            source = self._source
            self.counters["tx-announced" if source is None
                          else "tx-relayed"] += 1
            self._enqueue(tx, source)
        self._replay_orphans(tx.txid)

    def _enqueue(self, tx: Transaction,
                 source: Connection | None) -> None:
        """
        Queue C{tx} for the next C{txs} batch (not to C{source}).
        """
        if tx.txid in self._queue:
            return
        entry = txs_entry(tx)
        self._queue[tx.txid] = _Queued(
            entry, self.peerset.ready_serial,
            set() if source is None else {source})
        self._queued_bytes += len(entry) + 1
        settings = self.settings
        if len(self._queue) >= settings.tx_batch_count or \
                self._queued_bytes >= settings.tx_batch_bytes:
            self.flush_txs()
        elif self._flush_call is None:
            # A delay of 0 still batches: everything admitted in this
            # reactor turn (lines read together, an RPC batch) goes out
            # together in the next.
            self._flush_call = self.clock.callLater(
                settings.tx_batch_delay, self.flush_txs)

    def flush_txs(self) -> None:
        """
        Send the queued transactions to every ready peer, in C{txs} lines
        of at most C{tx_batch_count} transactions and C{tx_batch_bytes}
        bytes (one transaction alone may be longer: the line cap fits
        the largest), each peer without those it is known to hold and
        those queued before it was ready (as an immediate broadcast would
        have: a peer that connects later learns of a stalled transaction
        from L{query_stalled}).
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        queue, self._queue = self._queue, {}
        self._queued_bytes = 0
        if not queue:
            return
        budget = min(self.settings.tx_batch_bytes, TxsMsg.max_bytes)
        count = min(self.settings.tx_batch_count, MAX_TXS_PER_MSG)
        for conn in list(self.peerset.ready.values()):
            batch: list[bytes] = []
            size = TXS_ENVELOPE_BYTES
            serial = conn.ready_serial
            for queued in queue.values():
                if conn in queued.have or serial > queued.at:
                    continue
                entry = queued.entry
                if batch and (len(batch) >= count
                              or size + len(entry) + 1 > budget):
                    self._send_txs(conn, batch)
                    batch = []
                    size = TXS_ENVELOPE_BYTES
                batch.append(entry)
                size += len(entry) + 1
            if batch:
                self._send_txs(conn, batch)

    def _send_txs(self, conn: Connection, batch: list[bytes]) -> None:
        if conn.send_line(TxsMsg.name, txs_line(batch)):
            self.counters["txs-sent"] += 1
            self.counters["txs-sent-txs"] += len(batch)

    def vote_cast(self, batch: TxVoteBatch) -> None:
        """
        This node signed a batch of votes: announce it.
        """
        self.seen_votes.add(vote_id(batch))
        self.counters["vote-announced"] += 1
        self.peerset.relay(TxVotesMsg(batch))

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
        their time to live, and announce again (asking for their votes)
        the transactions that stay undecided.  Runs every
        C{relay_interval} seconds.
        """
        self._expire_orphans()
        self.query_stalled()

    def peer_ready(self, conn: Connection) -> None:
        """
        A peer connected (or reconnected after a partition): ask it for
        the votes it holds on what is open here, undecided or recently
        rejected (L{timecoin.finality.Finality.open_txids}).  The periodic
        query (L{query_stalled}) stops after a few tries, so a node cut
        off while the others voted would otherwise never see the votes
        that finalized a transaction elsewhere and keep it rejected (the
        simulator found it: seed 628 of seven masternodes).
        """
        txids = self.node.finality.open_txids(MAX_QUERY_ON_CONNECT)
        for start in range(0, len(txids), MAX_TXIDS_PER_QUERY):
            self.counters["votes-queried-on-connect"] += 1
            conn.send(GetTxVotes(tuple(
                txids[start:start + MAX_TXIDS_PER_QUERY])))

    def query_stalled(self) -> None:
        """
        Announce the transactions L{timecoin.finality.Finality.stalled}
        names again (a peer that missed one admits it and votes) and ask
        every peer for the votes it holds on them.
        """
        if not self.peerset.ready:
            return
        txs = self.node.finality.stalled(MAX_REANNOUNCE)
        for tx in txs:
            self.counters["tx-reannounced"] += 1
            self._enqueue(tx, None)
        txids = [tx.txid for tx in txs]
        for start in range(0, len(txids), MAX_TXIDS_PER_QUERY):
            self.counters["votes-queried"] += 1
            self.peerset.broadcast(GetTxVotes(
                tuple(txids[start:start + MAX_TXIDS_PER_QUERY])))

    # From peers ----------------------------------------------------------

    def tx_received(self, conn: Connection, msg: TxMsg) -> None:
        """
        A peer sent a transaction (the single C{tx} of older peers and
        re-announcements): admit it, then relay it.
        """
        tx = msg.tx
        if self._duplicate_tx(conn, tx.txid):
            return
        self._admit_later(conn, tx)

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
                self._dropped_gone(conn, len(msg.txs) - n)
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
            self._admit_later(conn, tx)
        if offence is not None:
            conn.misbehaved(*offence)

    def _admit_later(self, conn: Connection, tx: Transaction) -> None:
        """
        Admit C{tx} from C{conn} now if none wait and this reactor turn
        has admitted fewer than L{P2PSettings.admit_slice}; else queue it
        behind the others (in order: parents before children), to be
        admitted a slice per reactor turn.  Nothing from a connection
        closed meanwhile (banned, dropped) is admitted: it is counted as
        C{tx-dropped:peer-gone} instead.
        """
        if conn.close_reason is not None:
            self._dropped_gone(conn, 1)
            return
        if not self._admit and self._direct < self.settings.admit_slice:
            self._direct += 1
            if self._admit_call is None:
                # Next turn starts a new slice.
                self._admit_call = self.clock.callLater(0, self._admit_some)
            self._submit(conn, tx)
            return
        if len(self._admit) >= self.settings.admit_queue:
            self.counters["tx-dropped:admission-queue-full"] += 1
            return
        self._admit.append((conn, tx))
        self._admitting.add(tx.txid)
        if self._admit_call is None:
            self._admit_call = self.clock.callLater(0, self._admit_some)

    def _dropped_gone(self, conn: Connection, n: int) -> None:
        """
        C{n} transactions from C{conn}, closed since they came, are
        dropped unverified: counted per transaction here, and once in the
        peer set's counters and its (rate-limited) log.
        """
        self.counters["tx-dropped:peer-gone"] += n
        self.peerset.offence(conn, "tx-dropped:peer-gone",
                             f"{n} transactions of a closed connection", 0)

    @property
    def waiting(self) -> int:
        """
        Transactions from peers queued for admission.
        """
        return len(self._admit)

    def _admit_some(self) -> None:
        """
        A new reactor turn: admit the next slice of queued transactions,
        and come back next turn for the rest.
        """
        self._admit_call = None
        self._direct = 0
        gone: Counter[Connection] = Counter()
        while self._admit and self._direct < self.settings.admit_slice:
            conn, tx = self._admit.popleft()
            self._admitting.discard(tx.txid)
            if conn.close_reason is not None:
                # Its sender was banned or dropped since: not verified.
                gone[conn] += 1
                continue
            self._direct += 1
            self._submit(conn, tx)
        for conn, n in gone.items():
            self._dropped_gone(conn, n)
        if self._admit:
            self.counters["tx-admission-deferred"] += 1
        if self._admit or self._direct:
            self._admit_call = self.clock.callLater(0, self._admit_some)

    def _duplicate_tx(self, conn: Connection, txid: bytes) -> bool:
        """
        Whether C{txid} is seen or held here (then counted, and C{conn}
        noted as holding it if it waits to be relayed).
        """
        if txid not in self.seen_txs and txid not in self._admitting and \
                not self.node.mempool.knows(txid):
            return False
        self.counters["tx-duplicate"] += 1
        queued = self._queue.get(txid)
        if queued is not None:
            queued.have.add(conn)
        return True

    def _submit(self, conn: Connection, tx: Transaction) -> None:
        self._source = conn
        try:
            d = self.node.finality.submit(tx)
        finally:
            self._source = None
        d.addCallbacks(self._tx_admitted, self._tx_refused,
                       callbackArgs=(tx, conn), errbackArgs=(tx, conn))
        d.addErrback(self._failed, "handling a transaction")

    def _failed(self, failure: Failure, what: str) -> None:
        self.counters["errors"] += 1
        log.failure("gossip failed {what}", failure, what=what)

    def _tx_admitted(self, _: Any, tx: Transaction,
                     conn: Connection) -> None:
        # Normally queued already by tx_accepted, which submit calls.
        if self.seen_txs.add(tx.txid):
            self.counters["tx-relayed"] += 1
            self._enqueue(tx, conn)
        self._replay_orphans(tx.txid)

    def _tx_refused(self, failure: Failure, tx: Transaction,
                    conn: Connection) -> None:
        failure.trap(TxInvalid)
        reason = failure.value.reason
        self.counters[f"tx-refused:{reason}"] += 1
        if reason == "already-known":
            self.seen_txs.add(tx.txid)
        elif reason in MALICIOUS_TX_REASONS:
            conn.misbehaved("invalid-tx", f"{tx.txid.hex()}: {reason}")

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
            self._keep_orphan(vote)
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
            self._keep_orphan(vote)
        for reason, count in result.dropped.items():
            self.counters[f"vote-refused:{reason}"] += count
        if result.tallied:
            self.counters["vote-relayed"] += 1
            self.peerset.relay(msg, source=conn, signer=batch.voter)

    def votes_requested(self, conn: Connection, msg: GetTxVotes) -> None:
        """
        A peer asked for our votes on some transactions: send each vote we
        hold on them as a C{tx_vote}, at most L{MAX_VOTES_PER_REPLY} per
        request (a reply never floods the asker past its own limits).
        """
        budget = [MAX_VOTES_PER_REPLY]
        for txid in msg.txids:
            d = self.node.finality.votes_for(txid)
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
        A block from a peer was connected: relay it to the others.
        """
        if self.seen_blocks.add(block.hash):
            self.counters["block-relayed"] += 1
            self.peerset.relay(BlockMsg(block, commit), source=exclude)

    # Heartbeats ----------------------------------------------------------

    def heartbeat_cast(self, heartbeat: Heartbeat) -> None:
        """
        This node signed C{heartbeat}: announce it.
        """
        self.seen_heartbeats.add(heartbeat.id)
        self.counters["heartbeat-announced"] += 1
        self.peerset.relay(HeartbeatMsg(heartbeat))

    def heartbeat_received(self, conn: Connection,
                           msg: HeartbeatMsg) -> None:
        """
        A peer sent a heartbeat: record it in the liveness view, then relay
        it if the view accepted it.  Marked seen first (its id covers the
        signature, so a forged copy cannot shadow the valid one).
        """
        heartbeat = msg.heartbeat
        new = self.seen_heartbeats.add(heartbeat.id)
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

    # Orphan votes --------------------------------------------------------

    def _keep_orphan(self, vote: TxVote) -> None:
        if self._orphan_count >= self.settings.orphan_votes:
            self._expire_orphans()
        if self._orphan_count >= self.settings.orphan_votes:
            self.counters["orphan-dropped"] += 1
            return
        self.orphans.setdefault(vote.txid, []).append(
            (vote, self.clock.seconds()))
        self._orphan_count += 1
        self.counters["orphan-kept"] += 1

    def _replay_orphans(self, txid: bytes) -> None:
        votes = self.orphans.pop(txid, [])
        self._orphan_count -= len(votes)
        for vote, _ in votes:
            entry = self.node.mempool.entries.get(txid)
            if entry is None or entry.state != PENDING:
                break
            if self.node.finality.receive_vote(vote) is None:
                self.counters["orphan-tallied"] += 1
                self.peerset.relay(TxVoteMsg(vote))

    def _expire_orphans(self) -> None:
        """
        Drop orphan votes past their time to live, oldest first, stopping
        at the first txid whose oldest vote is still young: the cost is the
        expired votes, not the whole pool (it runs every
        C{relay_interval} and for every orphan once the pool is full, so a
        spammer filling it made each of its votes cost a full scan).  A
        txid still holding young votes goes to the back, with them.
        """
        limit = self.clock.seconds() - self.settings.orphan_ttl
        orphans = self.orphans
        while orphans:
            txid, votes = next(iter(orphans.items()))
            if votes[0][1] > limit:
                break
            kept = [(v, at) for v, at in votes if at > limit]
            self._orphan_count -= len(votes) - len(kept)
            del orphans[txid]
            if kept:
                orphans[txid] = kept
