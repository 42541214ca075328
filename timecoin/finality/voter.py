"""
This masternode's own transaction votes: queued, signed in batches,
announced and counted (``docs/finality.md``, "Batched votes").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.chain import Chain
from timecoin.finality.records import ReleasedApprovals
from timecoin.finality.settings import FinalitySettings
from timecoin.finality.tally import Electorate, VoteSubjects
from timecoin.finality.votes import (
    APPROVE,
    MAX_BATCH_VOTES,
    REJECT,
    SignatureCache,
    TxVote,
    TxVoteBatch,
    sign_tx_votes,
)
from timecoin.keys import PrivateKey
from timecoin.mempool import PENDING
from timecoin.signal import Signal

log = Logger(namespace="timecoin.finality")


class Voter:
    """
    The votes of this masternode (C{key}): it decides once per
    transaction (L{decide}, ``docs/finality.md`` rules 2 and 3), and each
    decision is queued for C{batch_delay} seconds, or signed at once when
    C{batch_max} are queued or when it completes a quorum (so a 1-of-1
    devnet stays instantaneous).  A signed batch (at the chain's height)
    is emitted by C{vote_cast} (the P2P layer gossips it), and
    its votes to C{accept} (counted here).
    """

    def __init__(self, key: PrivateKey | None, chain: Chain,
                 subjects: VoteSubjects, electorate: Electorate,
                 released: ReleasedApprovals, signatures: SignatureCache,
                 clock: IReactorTime, counters: Counter[str],
                 vote_cast: Signal[TxVoteBatch],
                 accept: Callable[[TxVote], bool]) -> None:
        self.key = key
        self.chain = chain
        self.subjects = subjects
        self.electorate = electorate
        self.released = released
        self.signatures = signatures
        self.clock = clock
        self.vote_cast = vote_cast
        self._accept = accept
        self.counters = counters
        self._queue: dict[bytes, str] = {}
        self._flush_call: IDelayedCall | None = None
        self._storing: set[bytes] = set()
        """Rejections waiting for the kept inputs behind them to be
        stored (L{ReleasedApprovals.extend})."""

    def __len__(self) -> int:
        return len(self._queue)

    def queued(self, txid: bytes) -> str | None:
        """
        The decision on C{txid} waiting to be signed, if any.
        """
        return self._queue.get(txid)

    def rejects(self, txid: bytes) -> bool:
        """
        Whether this masternode's decision on C{txid}, not signed yet, is
        C{reject}.
        """
        return txid in self._storing or self._queue.get(txid) == REJECT

    def decide(self, txid: bytes, settings: FinalitySettings,
               synced: Callable[[], bool]) -> None:
        """
        Queue this masternode's one vote on C{txid}, if it is a member of
        the electorate, C{synced}, and has none yet: C{approve} if it
        locked the inputs for this spender, C{reject} on a contender or a
        spender of inputs it approved for another transaction whose votes
        may still count.
        """
        entry = self.subjects.get(txid)
        if entry is None or entry.state != PENDING or self.key is None or \
                not synced() or \
                self.key.public not in self.electorate.members()[0]:
            return
        if self.key.public in entry.votes or txid in self._queue or \
                txid in self._storing:
            return
        by_input = self.released.by_input
        others = {by_input[i.prevout] for i in entry.tx.inputs
                  if by_input.get(i.prevout, txid) != txid}
        other = bool(others)
        # Inputs kept for this very transaction: this node approved it
        # before it was rejected.  Met again (after a restart, which
        # forgets the rejection), it gets approve again even if a
        # conflicting spender came first; a reject would contradict the
        # approval others hold (the simulator found it: seed 188 of the
        # lifecycle runs).
        approved = any(by_input.get(i.prevout) == txid
                       for i in entry.tx.inputs)
        decision = REJECT if other or (entry.conflict and not approved) \
            else APPROVE
        stored = self.released.extend(others, self.chain.height) \
            if decision == REJECT else None
        if stored is None:
            self.queue(txid, decision, settings)
            return
        # Durable before the rejection leaves: a restarted node keeps the
        # inputs as long as this rejection can count.
        self._storing.add(txid)

        def queue(_: object) -> None:
            self._storing.discard(txid)
            if self.subjects.get(txid) is not None:
                self.queue(txid, decision, settings)

        def failed(failure: Failure) -> None:
            self._storing.discard(txid)
            self.counters["store_errors"] += 1
            log.failure("could not store the kept inputs behind a "
                        "rejection of {txid}; not voting", failure,
                        txid=txid.hex())

        stored.addCallbacks(queue, failed)

    def queue(self, txid: bytes, decision: str,
              settings: FinalitySettings) -> None:
        """
        Queue C{decision} on C{txid}, and sign the queue now or after
        C{settings.batch_delay}.
        """
        self._queue[txid] = decision
        if settings.batch_delay <= 0 or \
                len(self._queue) >= settings.batch_max or \
                self._completes_quorum(txid, decision):
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self.clock.callLater(settings.batch_delay,
                                                    self.flush)

    def _completes_quorum(self, txid: bytes, decision: str) -> bool:
        entry = self.subjects.get(txid)
        if entry is None or self.key is None:
            return False
        approve, reject, total, members = self.electorate.current_tally(
            self.electorate.tallies(entry.votes, None))
        mine = members.get(self.key.public)
        if mine is None:
            return False
        if decision == APPROVE:
            return self.electorate.approved(approve + mine, total)
        return self.electorate.rejected(reject + mine, total)

    def flush(self) -> None:
        """
        Sign the queued decisions as batches, announce them and count them
        here.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        items = sorted((t, d) for t, d in self._queue.items()
                       if self.subjects.get(t) is not None)
        self._queue.clear()
        if not items or self.key is None:
            return
        for start in range(0, len(items), MAX_BATCH_VOTES):
            batch = sign_tx_votes(self.key, self.chain.network.name,
                                  self.chain.height,
                                  items[start:start + MAX_BATCH_VOTES])
            self.counters["batches_signed"] += 1
            self.signatures.remember_batch(batch)
            self.vote_cast.emit(batch)
            for vote in batch.votes():
                self._accept(vote)
