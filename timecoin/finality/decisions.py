"""
The decisions of the finality engine (L{Decisions}): a transaction whose
approvals reach the quorum is finalized (its finality record written
first), one whose rejections do, or whose vote timeout expires
(L{Timeouts}), is rejected; the callers waiting for a decision
(L{Waiters}) are told.  The rules are written down in
``docs/finality.md``.

Imports: C{records}, C{tally}, C{voter} and C{votes} of this package; from
outside, C{chain}, C{mempool}, C{logs}.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from timecoin.chain import Chain
from timecoin.finality.records import (
    RecordWriter,
    ReleasedApprovals,
    finalized_record,
)
from timecoin.finality.tally import Electorate, VoteSubjects
from timecoin.finality.voter import Voter
from timecoin.finality.votes import APPROVE, TxVote
from timecoin.logs import RateLimitedLog
from timecoin.mempool import FINALIZED, PENDING, REJECTED, Entry, Mempool
from timecoin.signal import Signal

__all__ = ["LATE_REASONS", "Decisions", "Finalized", "Timeouts", "Waiters"]

log = Logger(namespace="timecoin.finality")
"""The finality engine's log lines keep the namespace they always had."""

LATE_REASONS = frozenset({"rejected-by-vote", "vote-timeout"})
"""Rejections a late approval certificate may still override."""


class Finalized(NamedTuple):
    """
    A transaction finalized here (what C{Finality.finalized} emits).

    @ivar txid: its id.
    @ivar seconds: from its acceptance here to its finality.
    """

    txid: bytes
    seconds: float


class Waiters:
    """
    Callers waiting for transactions to be decided.
    """

    def __init__(self, clock: IReactorTime, mempool: Mempool) -> None:
        self.clock = clock
        self.mempool = mempool
        self._waiting: dict[bytes, list[defer.Deferred[str]]] = {}

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())

    def fire(self, txid: bytes, state: str) -> None:
        """
        Give every caller waiting for C{txid} its C{state}.
        """
        for waiter in self._waiting.pop(txid, []):
            waiter.callback(state)

    def wait(self, txid: bytes, timeout: float) -> defer.Deferred[str]:
        """
        Wait for the decision on C{txid} (L{Waiters.wait}).
        """
        state = self.mempool.state_of(txid)
        if state in (FINALIZED, REJECTED):
            return defer.succeed(state)

        def cancelled(d: defer.Deferred[str]) -> None:
            waiters = self._waiting.get(txid, [])
            if d in waiters:
                waiters.remove(d)

        d: defer.Deferred[str] = defer.Deferred(cancelled)
        self._waiting.setdefault(txid, []).append(d)

        def expire() -> None:
            waiters = self._waiting.get(txid, [])
            if d in waiters:
                waiters.remove(d)
                d.callback(self.mempool.state_of(txid) or "unknown")

        call = self.clock.callLater(timeout, expire)

        def settled(result: object) -> object:
            if call.active():
                call.cancel()
            return result

        d.addBoth(settled)
        return d


class Timeouts:
    """
    The vote timeout of each undecided transaction admitted here: after
    C{seconds}, C{expired} is called with its txid.
    """

    def __init__(self, clock: IReactorTime, seconds: float,
                 expired: Callable[[bytes], None]) -> None:
        self.clock = clock
        self.seconds = seconds
        self._expired = expired
        self._calls: dict[bytes, IDelayedCall] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def arm(self, txid: bytes) -> None:
        """
        Start the vote timeout of C{txid}.
        """
        self._calls[txid] = self.clock.callLater(self.seconds, self._fire,
                                                 txid)

    def _fire(self, txid: bytes) -> None:
        self._calls.pop(txid, None)
        self._expired(txid)

    def cancel(self, txid: bytes) -> None:
        """
        Stop the vote timeout of C{txid} (decided), if it runs.
        """
        call = self._calls.pop(txid, None)
        if call is not None and call.active():
            call.cancel()


class Decisions:
    """
    Finalizes and rejects the transactions the finality engine admitted.

    @ivar finalizing: the transactions whose finality record is being
        written (finalized from then on, though not yet reported).
    @ivar timeouts: the vote timeout of each undecided transaction.
    @ivar waiters: the callers waiting for decisions.
    @ivar finalized: emitted with every transaction finalized here
        (L{Finalized}: its txid, seconds from acceptance to finality).
    """

    def __init__(self, chain: Chain, mempool: Mempool, clock: IReactorTime,
                 vote_timeout: float, subjects: VoteSubjects,
                 electorate: Electorate, records: RecordWriter,
                 released: ReleasedApprovals, voter: Voter,
                 counters: Counter[str], ratelog: RateLimitedLog) -> None:
        """
        @param counters: the engine's counters (finalized, rejected, ...).
        @param ratelog: the engine's rate-limited log.
        """
        self.chain = chain
        self.mempool = mempool
        self.clock = clock
        self.subjects = subjects
        self.electorate = electorate
        self.records = records
        self.released = released
        self.voter = voter
        self.counters = counters
        self.ratelog = ratelog
        self.finalizing: set[bytes] = set()
        self.timeouts = Timeouts(clock, vote_timeout, self.timed_out)
        self.waiters = Waiters(clock, mempool)
        self.finalized: Signal[Finalized] = Signal("finality.finalized")

    def tally(self, txid: bytes) -> None:
        """
        Finalize C{txid} if its approvals reach the quorum, else reject it
        (if pending) if its rejections do.
        """
        if txid in self.finalizing:
            return
        entry = self.subjects.get(txid)
        if entry is None or entry.state == FINALIZED:
            return
        approve, reject, total, _ = self.electorate.weights(entry.votes,
                                                            txid)
        if self.electorate.approved(approve, total):
            self._finalize(txid)
        elif entry.state == PENDING and \
                self.electorate.rejected(reject, total):
            self.reject(txid, "rejected-by-vote")

    def _finalize(self, txid: bytes) -> None:
        entry = self.subjects.get(txid)
        assert entry is not None
        tx = entry.tx
        holders = self.mempool.holders(tx)
        for holder in sorted(holders):
            if self.mempool.entries[holder].state != PENDING or \
                    holder in self.finalizing:
                self._impossible(txid, f"conflicts with finalized "
                                 f"{holder.hex()}")
                return
        if any(self.mempool.unlocked_lookup(i.prevout) is None
               for i in tx.inputs):
            self._impossible(txid, "an input is spent on chain")
            return
        # Finalizing from here on: rejecting the holders below may sign
        # queued votes, and one on this transaction would tally it again
        # and finalize it a second time (reported twice; the load
        # benchmark found it).
        self.finalizing.add(txid)
        for holder in sorted(holders):
            # Our locked spender lost the vote: unlock it, adopt the winner.
            self.reject(holder, "conflict-finalized")
        if entry.conflict or entry.state == REJECTED:
            if entry.state == REJECTED:
                self.counters["late_finalized"] += 1
                log.warn("tx {txid} finalized by votes after it was "
                         "rejected here", txid=txid.hex())
            self.subjects.late.pop(txid, None)
            self.released.forget(txid, delete=False)
            self.mempool.lock(entry)
        self.finalizing.add(txid)
        d = self.records.store.put_tx_record(txid, finalized_record(entry))

        def stored(_: object) -> None:
            self.finalizing.discard(txid)
            if self.mempool.entries.get(txid) is not entry:
                return
            self.mempool.finalize(txid)
            self.chain.finalized.add(tx)
            for loser in self.mempool.conflicting_with(tx):
                self.reject(loser, "conflict-finalized")
            self.timeouts.cancel(txid)
            self.counters["finalized"] += 1
            latency = self.clock.seconds() - entry.received
            self.finalized.emit(Finalized(txid, latency))
            self.waiters.fire(txid, FINALIZED)

        def failed(failure: Failure) -> None:
            self.finalizing.discard(txid)
            self.records.failed(failure, "finality record", txid)

        d.addCallbacks(stored, failed)

    def _impossible(self, txid: bytes, why: str) -> None:
        """
        A quorum approved C{txid} though it conflicts with what is final
        here: more than a third of the weight is Byzantine.  Nothing is
        changed; the operator must look.
        """
        self.counters["conflicting_certificates"] += 1
        log.critical("approval quorum for tx {txid}, which {why}: more than "
                     "1/3 of the masternode weight misbehaves",
                     txid=txid.hex(), why=why)

    def reject(self, txid: bytes, reason: str) -> None:
        """
        Reject C{txid} (if pending and not being finalized) for
        C{reason}: unlock its inputs, keep a released approval or a late
        chance to finalize as the reason allows, tell its waiters.
        """
        if self.voter.queued(txid) == APPROVE:
            # Our approval waits in the batch queue: sign it now, so that
            # the release below sees it and protects the inputs.  Else the
            # queued approval is signed after the rejection unlocked them
            # and this node approves a conflicting spender too (two
            # certificates for one output; the simulator found it).
            self.voter.flush()
        entry = self.subjects.held(txid)
        if entry is None or entry.state != PENDING or \
                txid in self.finalizing:
            return
        self.timeouts.cancel(txid)
        self.mempool.reject(txid, reason)
        self.rejected_log(txid, reason)
        if not entry.conflict:
            height = self._kept_from(txid, entry) \
                if reason in LATE_REASONS else None
            if height is None or \
                    not self.released.release(txid, height, entry.tx):
                self.records.delete(txid)
        if reason in LATE_REASONS:
            entry.state = REJECTED
            self.subjects.keep_late(txid, entry)
        self.counters["rejected"] += 1
        self.waiters.fire(txid, REJECTED)

    def _kept_from(self, txid: bytes, entry: Entry) -> int | None:
        """
        The height from which this masternode keeps the inputs of
        C{txid}, which it held locked and which was just rejected
        (``docs/finality.md``, rule 3), or C{None} if it keeps none: it
        is no masternode, or it rejected C{txid} itself.

        Kept from now, not from its approval: while C{txid} was pending,
        this node rejected its contenders at heights up to now, and
        approving one of them must wait until no node can hold that
        rejection too.  Kept also when this node never voted on it (it
        was behind, or the lock was still being stored): the contenders
        it rejected meanwhile must not get approve from it later (the
        simulator found it: seed 53 of fifty masternodes, a node that
        came back from a partition, restarted, approved a spender it had
        rejected).
        """
        if self.voter.key is None or self.voter.rejects(txid):
            return None
        mine = entry.votes.get(self.voter.key.public)
        if isinstance(mine, TxVote):
            if mine.decision != APPROVE:
                return None
            return max(mine.height, self.chain.height)
        return self.chain.height

    def rejected_log(self, txid: bytes, reason: str) -> None:
        """
        One line per reason and C{LOG_INTERVAL} (the mempool counts every
        rejection by reason).
        """
        self.ratelog.emit(("rejected", reason), LogLevel.info,
                           "tx {txid} rejected: {reason}", txid=txid.hex(),
                           reason=reason)

    def timed_out(self, txid: bytes) -> None:
        """
        The vote timeout of C{txid} expired: reject it if still pending.
        """
        entry = self.subjects.held(txid)
        if entry is not None and entry.state == PENDING and \
                txid not in self.finalizing:
            self.reject(txid, "vote-timeout")
