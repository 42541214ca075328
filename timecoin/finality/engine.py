"""
The transaction-finality engine of one node (L{Finality}): it admits
transactions, has this masternode vote (L{timecoin.finality.voter}),
counts the votes it receives (L{timecoin.finality.tally}), and has its
L{Decisions <timecoin.finality.decisions.Decisions>} finalize or reject
(they also hold the vote timeouts and the callers waiting for a
decision).  The decision rules are written down in
``docs/finality.md``; in short:

  - A masternode votes once per transaction: C{approve} if it locked the
    inputs for this spender (the first valid spender it saw), C{reject} if
    another pending spender holds one of them (the newcomer is kept as a
    I{contender}, see L{timecoin.mempool}) or if it approved another
    spender of one of them whose votes may still count
    (L{timecoin.finality.records.ReleasedApprovals}).
  - Votes are tallied through the network's L{IQuorumRule} over the
    snapshot's I{total} weight.  Approval finalizes; a node whose own
    locked spender loses unlocks it and adopts the winner.  Finalized wins
    over a local rejection (a timeout, or a reject quorum an equivocating
    masternode helped form): a rejected transaction keeps collecting votes
    for C{late_ttl} seconds and finalizes if they reach the quorum.

Before a transaction is reported finalized, its finality record (the
transaction and the votes that finalized it) is written to the store, so a
node killed right after acknowledging finality still has it on restart and
puts it in a block.  Pending transactions are written too (before this
node votes approve), so a restarted node recovers its locks and never
approves a conflicting spender.  Every transaction it finalizes goes into
the chain's L{FinalizedSet}, the rules blocks are checked against.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from timecoin.block import Block
from timecoin.chain import Chain, TxInvalid
from timecoin.finality.decisions import Decisions
from timecoin.finality.records import (
    Certificates,
    RecordWriter,
    ReleasedApprovals,
    pending_record,
)
from timecoin.finality.recovery import Recovery
from timecoin.finality.settings import FinalitySettings
from timecoin.finality.tally import (
    BatchResult,
    Electorate,
    Equivocations,
    VoteIntake,
    VoteSubjects,
    overrides,
)
from timecoin.finality.voter import Voter
from timecoin.finality.votes import (
    APPROVE,
    SignatureCache,
    TxVote,
    TxVoteBatch,
)
from timecoin.finalized import FinalizedSet
from timecoin.keys import PrivateKey
from timecoin.logs import RateLimitedLog
from timecoin.mempool import FINALIZED, PENDING, REJECTED, Mempool
from timecoin.signal import Signal
from timecoin.tx import Transaction
from timecoin.txcache import CACHE as TX_CACHE

__all__ = ["Finality"]

log = Logger(namespace="timecoin.finality")
"""The finality engine's log lines keep the namespace they always had."""

LOG_INTERVAL = 10.0
"""Seconds between two log lines of one kind of refusal or rejection (each
is counted; the line says how many were not logged)."""


class Finality:
    """
    The transaction-finality engine of one node: it admits, decides
    (finalize, reject) and retires transactions, and coordinates the
    parts it builds: the vote subjects, the electorate, the vote intake,
    this masternode's voter, the decisions, the records, released
    approvals and certificates, and recovery after a restart.

    @ivar settings: the finality settings; batching and queries read them
        as they go, the other parts keep the limits they were built with.
    @ivar finalized_set: the transactions finalized here and not yet
        mined: the chain's own set (C{chain.finalized}), which this engine
        fills and the chain checks blocks against.
    @ivar vote_cast: emitted with every batch of votes this node signs
        (the P2P layer gossips them).
    @ivar finalized: emitted with every transaction this node finalizes
        (L{Finalized <timecoin.finality.decisions.Finalized>}: its txid,
        seconds from acceptance to finality).
    @ivar tx_accepted: emitted with every transaction admitted to the
        mempool, contenders included (the P2P layer relays them).
    """

    def __init__(self, chain: Chain, mempool: Mempool, key: PrivateKey | None,
                 clock: IReactorTime, vote_timeout: float = 10.0,
                 settings: FinalitySettings | None = None,
                 synced: Callable[[], bool] = lambda: True) -> None:
        self.chain = chain
        self.mempool = mempool
        self.clock = clock
        self.settings = settings = settings or FinalitySettings()
        self.finalized_set: FinalizedSet = chain.finalized
        self.counters: Counter[str] = Counter(
            finalized=0, rejected=0, votes_invalid=0, votes_received=0)
        self.records = RecordWriter(chain.store, self.counters)
        self.released = ReleasedApprovals(self.records, settings.max_released)
        self.certificates = Certificates(
            self.records, settings.certificate_blocks,
            settings.max_certificates)
        self.electorate = Electorate(chain)
        self.subjects = VoteSubjects(mempool, clock, settings.late_ttl,
                                     settings.max_late)
        self.signatures = SignatureCache(chain.network.name,
                                         settings.signature_cache,
                                         self.counters)
        self._equivocations = Equivocations(self.counters)
        self.intake = VoteIntake(self.subjects, self.electorate,
                                 self.signatures, self._equivocations,
                                 self.counters, self._accept)
        self._ratelog = RateLimitedLog(log, clock, LOG_INTERVAL)
        self._unstored: set[bytes] = set()
        """Pending transactions whose record (their lock) is being
        written: their contenders wait for it before this node rejects
        them."""
        self._waiting: set[bytes] = set()
        """Contenders whose vote waits for one of those records."""
        self.vote_cast: Signal[TxVoteBatch] = Signal("finality.vote_cast")
        self.voter = Voter(key, chain, self.subjects, self.electorate,
                           self.released, self.signatures, clock,
                           self.counters, self.vote_cast, self._accept)
        self.decisions = Decisions(chain, mempool, clock, vote_timeout,
                                   self.subjects, self.electorate,
                                   self.records, self.released, self.voter,
                                   self.counters, self._ratelog)
        self.finalized = self.decisions.finalized
        self.tx_accepted: Signal[Transaction] = Signal(
            "finality.tx_accepted")
        self.synced = synced
        """Whether the node has caught up with the network (the node's
        L{timecoin.syncstatus.SyncStatus}); a node that is behind does not
        vote."""

    @property
    def key(self) -> PrivateKey | None:
        """
        This masternode's key (C{None}: an observer, which never votes),
        held by its L{Voter}.
        """
        return self.voter.key

    @key.setter
    def key(self, key: PrivateKey | None) -> None:
        self.voter.key = key

    @property
    def network(self) -> str:
        return self.chain.network.name

    @property
    def equivocations(self) -> OrderedDict[bytes, tuple[TxVote, TxVote]]:
        """
        Evidence of masternodes that signed two decisions on one
        transaction: (voter ‖ txid) → both votes.
        """
        return self._equivocations.evidence

    # Admission -------------------------------------------------------------

    def submit(self, tx: Transaction) -> defer.Deferred[bytes]:
        """
        Accept C{tx} into the mempool (or as a contender of a pending
        spender of its inputs) and start its vote.  Fires with the txid
        once accepted; fails with L{TxInvalid} (reason code) when it is
        refused.  A transaction rejected a short while ago is reopened
        with the votes it already had.
        """
        txid = tx.txid
        previous = self.subjects.late.pop(txid, None)
        try:
            fee = self.mempool.check(tx, allow_conflict=True)
        except TxInvalid as e:
            if previous is not None:
                self.subjects.late[txid] = previous
            if e.reason != "already-known":
                self.mempool.refuse(txid, e.reason)
            self.counters["refused"] += 1
            self._ratelog.emit(("refused", e.reason), LogLevel.info,
                               "tx {txid} refused: {reason} {detail}",
                               txid=txid.hex(), reason=e.reason,
                               detail=e.detail)
            return defer.fail(e)
        conflicted = bool(self.mempool.holders(tx))
        if conflicted:
            entry = self.mempool.add_contender(tx, fee)
        else:
            entry = self.mempool.add(tx, fee)
        # The proposal and the blocks that carry it will find it parsed.
        TX_CACHE.remember(tx)
        entry.query_at = self.clock.seconds() + self.settings.query_after
        if previous is not None:
            # Reopened: its peers saw it already, so announce it again (and
            # ask for votes) at the next scan rather than after a while.
            entry.votes.update(previous[0].votes)
            entry.query_at = self.clock.seconds()
            self.subjects.scan_soon()
        self.tx_accepted.emit(tx)
        self.decisions.timeouts.arm(txid)
        if conflicted:
            self._decide(txid)
        elif entry.state != PENDING or txid in self.decisions.finalizing:
            # The announcement above replayed orphan votes that finalized
            # it already: its finality record is written, and a pending
            # record now would overwrite it, so that a restart brings it
            # back pending and this node votes against its own finality
            # (the simulator found it).
            pass
        else:
            # Durable before this node signs approve: a restarted node
            # recovers the lock and never approves a conflicting spender.
            self.released.forget(txid, delete=False)
            self._unstored.add(txid)
            d = self.records.store.put_tx_record(txid, pending_record(entry))
            d.addCallbacks(self._locked, self._not_locked,
                           callbackArgs=(txid,), errbackArgs=(txid,))
        self.decisions.tally(txid)
        return defer.succeed(txid)

    def _locked(self, _: object, txid: bytes) -> None:
        """
        The pending record of C{txid} is stored: its lock survives a
        restart, so this node may vote on it and reject its contenders.
        """
        self._unstored.discard(txid)
        entry = self.mempool.entries.get(txid)
        self._decide(txid)
        if entry is not None and self._waiting:
            for other in self.mempool.conflicting_with(entry.tx):
                if other in self._waiting:
                    self._waiting.discard(other)
                    self._decide(other)

    def _not_locked(self, failure: Failure, txid: bytes) -> None:
        """
        The pending record of C{txid} could not be stored: no vote on it
        (logged and counted by the record writer).
        """
        self._unstored.discard(txid)
        self.records.failed(failure, "pending record", txid)

    def _decide(self, txid: bytes) -> None:
        """
        Queue our one vote on C{txid} (L{Voter.decide}); a contender's
        only once the locks it loses to are stored (``docs/finality.md``,
        rule 4: a restart that forgot the lock would approve what this
        node rejected).
        """
        entry = self.subjects.get(txid)
        if entry is not None and entry.conflict and \
                not self._unstored.isdisjoint(self.mempool.holders(entry.tx)):
            self.counters["contender_votes_waiting"] += 1
            self._waiting.add(txid)
            return
        self.voter.decide(txid, self.settings, self.synced)

    def flush_votes(self) -> None:
        """
        Sign and count the queued decisions now (L{Voter.flush}).
        """
        self.voter.flush()

    # Receiving votes and deciding ------------------------------------------

    def receive_vote(self, vote: TxVote) -> str | None:
        """
        Check and tally one vote (L{VoteIntake.vote}).
        """
        return self.intake.vote(vote)

    def receive_batch(self, batch: TxVoteBatch) -> BatchResult:
        """
        Check and tally a batch (L{VoteIntake.batch}).
        """
        return self.intake.batch(batch)

    def _accept(self, vote: TxVote) -> bool:
        """
        Add a checked vote to its subject and tally; whether it counted.
        """
        entry = self.subjects.get(vote.txid)
        if entry is None or entry.state == FINALIZED:
            return False
        held = entry.votes.get(vote.voter)
        if held is not None and not (isinstance(held, TxVote)
                                     and overrides(held, vote)):
            return False
        entry.votes[vote.voter] = vote
        if entry.state == REJECTED and vote.decision == APPROVE:
            self.subjects.ask_again(vote.txid, self.settings.query_after)
        self.decisions.tally(vote.txid)
        return True

    def wait(self, txid: bytes, timeout: float) -> defer.Deferred[str]:
        """
        Fire with the transaction's state once it is decided (finalized or
        rejected), or with its current state after C{timeout} seconds.
        """
        return self.decisions.waiters.wait(txid, timeout)

    # Blocks, queries, what RPC shows ---------------------------------------

    def block_connected(self, block: Block) -> None:
        """
        Retire what the block archived (keeping the certificates of the
        transactions finalized here), reject what it conflicts with, and
        forget expired vote state.
        """
        certified = [(tx.txid, self.mempool.entries[tx.txid])
                     for tx in block.txs[1:]
                     if tx.txid in self.mempool.entries and
                     self.mempool.entries[tx.txid].state == FINALIZED]
        for txid in self.mempool.block_connected(block):
            self.decisions.rejected_log(txid, "conflict-in-block")
            self.decisions.timeouts.cancel(txid)
            self.records.delete(txid)
            self.counters["rejected"] += 1
            self.decisions.waiters.fire(txid, REJECTED)
        self.subjects.drop_spent(block)
        for tx in block.txs:
            self.decisions.timeouts.cancel(tx.txid)
            self.subjects.late.pop(tx.txid, None)
            self.decisions.waiters.fire(tx.txid, "confirmed")
        for txid, entry in certified:
            self.certificates.archive(txid, entry, block.height,
                                      self.chain.retired)
        self.certificates.prune(self.chain.height)
        for txid in self.electorate.take_ahead():
            self.decisions.tally(txid)
        self.released.expire(self.chain.height)
        self.subjects.expire()
        # The waits of contenders gone from the mempool are forgotten.
        self._waiting = {t for t in self._waiting
                         if self.subjects.get(t) is not None}

    def open_txids(self, limit: int) -> tuple[list[bytes], list[bytes]]:
        """
        The transactions whose votes a newly connected peer may complete:
        the undecided ones (pending, contenders), and those rejected here
        a short while ago that a late approval may still finalize
        (C{late_ttl}); the newest C{limit} of both together.
        """
        return self.subjects.open_txids(limit)

    def stalled(self, limit: int = 256) -> list[Transaction]:
        """
        Undecided transactions whose votes peers should be asked for (and
        which should be announced again); see L{VoteSubjects.stalled}.
        """
        return self.subjects.stalled(limit, self.settings,
                                     self.decisions.finalizing)

    def late_due(self, limit: int = 256) -> list[tuple[bytes, int]]:
        """
        Recently rejected transactions whose votes peers should be asked
        for, each with the number of its query; see
        L{VoteSubjects.late_due}.
        """
        return self.subjects.late_due(limit, self.settings)

    def votes_for(self, txid: bytes) -> defer.Deferred[list[TxVote]]:
        """
        The votes this node holds on C{txid} (in its mempool, among its
        contenders or recently rejected, or its archived certificate), as
        L{TxVote}s; empty if none.
        """
        entry = self.subjects.get(txid)
        if entry is not None:
            return defer.succeed([v for v in entry.votes.values()
                                  if isinstance(v, TxVote)])
        return self.certificates.votes(txid)

    def final_votes_for(self, txid: bytes) -> defer.Deferred[list[TxVote]]:
        """
        The approving votes this node holds on C{txid} if it holds C{txid}
        final (finalized, or its certificate archived); empty otherwise.
        What a peer that rejected C{txid} asks for: a late approval
        quorum, not every vote of every peer.
        """
        entry = self.subjects.get(txid)
        if entry is None:
            return self.certificates.votes(txid)
        if entry.state != FINALIZED:
            return defer.succeed([])
        return defer.succeed([v for v in entry.votes.values()
                              if isinstance(v, TxVote)
                              and v.decision == APPROVE])

    @defer.inlineCallbacks
    def certificate(self, txid: bytes) -> Any:
        """
        What RPC shows of the votes on C{txid}: a dict with C{votes} (all
        held, as L{TxVote}s), C{approve_weight}, C{reject_weight} and
        C{total_weight} (over the current snapshot), and C{certificate}
        (the approving votes, once they reach the quorum); or C{None} if
        the node holds no votes for it.
        """
        votes = yield self.votes_for(txid)
        return self.electorate.summary(votes) if votes else None

    def info(self, txid: bytes) -> dict[str, Any] | None:
        """
        A contender or rejected transaction (L{VoteSubjects.info}).
        """
        return self.subjects.info(txid)

    @property
    def undecided(self) -> int:
        """
        Transactions admitted here and not yet finalized or rejected
        (each holds a vote timeout until it is decided): the backlog RPC
        admission control bounds.
        """
        return len(self.decisions.timeouts)

    def vote_state(self) -> dict[str, int]:
        """
        The sizes of all per-transaction vote and lock state (what must
        return to zero once every transaction is decided and mined).
        """
        return {"entries": len(self.mempool.entries),
                "locks": len(self.mempool.locks),
                "contenders": len(self.mempool.contenders),
                "contended": len(self.mempool.contended),
                "late": len(self.subjects.late), "queue": len(self.voter),
                "timeouts": len(self.decisions.timeouts),
                "finalizing": len(self.decisions.finalizing),
                "waiters": len(self.decisions.waiters),
                "released": len(self.released)}

    # Restart -----------------------------------------------------------------

    def recover(self) -> defer.Deferred[None]:
        """
        Restore the state kept in finality records after a restart:
        finalized transactions (in finalization order), then pending ones
        with their locks (asking the network for their votes at once, and
        voting again if this node's vote was not cast), the inputs this
        masternode approved for rejected spenders, and the index of
        archived certificates.  Records no longer of use are deleted.
        """
        return Recovery(self.chain, self.mempool, self.released,
                        self.certificates, self.finalized_set,
                        self._resume).run()

    def _resume(self, txid: bytes) -> None:
        """
        A pending transaction restored from its record: ask the network
        for its votes at once, arm its timeout, vote.
        """
        self.mempool.entries[txid].query_at = self.clock.seconds()
        self.decisions.timeouts.arm(txid)
        self._decide(txid)
