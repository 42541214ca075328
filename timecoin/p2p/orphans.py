"""
Orphan votes: votes for transactions not seen yet, kept bounded
(C{orphan_votes}) and for a short time (C{orphan_ttl}) until their
transaction arrives.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from timecoin.finality import TxVote
from timecoin.p2p.settings import P2PSettings


class OrphanVotes:
    """
    The bounded pool of votes waiting for their transaction.

    @ivar votes: txid → the votes kept for it, each with its id in the
        seen-cache (C{None}: it came in a batch) and when it came, oldest
        txid first.
    @ivar counters: the gossip's counters (C{orphan-kept},
        C{orphan-dropped}, C{orphan-expired}).
    @ivar lost: called with the seen-cache id of each vote dropped
        without counting (the pool full, its time to live past, or not
        counted when its transaction came): the gossip then forgets it was
        seen, so that a later copy (a peer's answer to a query) is
        handled.  (A vote that came in a batch has no id of its own there:
        nothing to forget.)  Kept seen, every copy was
        dropped as a duplicate, before parsing: a payment that equivocating
        masternodes' approvals, first come as orphans, finalized elsewhere
        stayed rejected here for good (the simulator found it: seed 53,
        fifty masternodes, twelve Byzantine).
    """

    def __init__(self, clock: IReactorTime, settings: P2PSettings,
                 counters: Counter[str],
                 lost: Callable[[bytes], object]) -> None:
        self.clock = clock
        self.settings = settings
        self.counters = counters
        self.lost = lost
        self.votes: OrderedDict[
            bytes, list[tuple[TxVote, bytes | None, float]]] = OrderedDict()
        self._count = 0

    def keep(self, vote: TxVote, item: bytes | None) -> None:
        """
        Keep C{vote}, whose id in the seen-cache is C{item} (C{None} if
        only its batch's is), until its transaction arrives (dropped,
        counted, if the pool is full of young votes).
        """
        if self._count >= self.settings.orphan_votes:
            self.expire()
        if self._count >= self.settings.orphan_votes:
            self.counters["orphan-dropped"] += 1
            self._lose(item)
            return
        self.votes.setdefault(vote.txid, []).append(
            (vote, item, self.clock.seconds()))
        self._count += 1
        self.counters["orphan-kept"] += 1

    def _lose(self, item: bytes | None) -> None:
        if item is not None:
            self.lost(item)

    def replay(self, txid: bytes,
               receive: Callable[[TxVote], str | None]) -> list[TxVote]:
        """
        C{txid} arrived (a contender too): hand each vote kept for it to
        C{receive} (which returns C{None} if it counted).  Returns those
        that counted; the others are L{lost}.
        """
        votes = self.votes.pop(txid, [])
        self._count -= len(votes)
        counted = []
        for vote, item, _ in votes:
            if receive(vote) is None:
                self.counters["orphan-tallied"] += 1
                counted.append(vote)
            else:
                self._lose(item)
        return counted

    def expire(self) -> None:
        """
        Drop orphan votes past their time to live, oldest first, stopping
        at the first txid whose oldest vote is still young: the cost is the
        expired votes, not the whole pool (it runs every
        C{relay_interval} and for every orphan once the pool is full, so a
        spammer filling it made each of its votes cost a full scan).  A
        txid still holding young votes goes to the back, with them.
        """
        limit = self.clock.seconds() - self.settings.orphan_ttl
        orphans = self.votes
        while orphans:
            txid, votes = next(iter(orphans.items()))
            if votes[0][2] > limit:
                break
            kept = []
            for held in votes:
                if held[2] > limit:
                    kept.append(held)
                else:
                    self._lose(held[1])
            self._count -= len(votes) - len(kept)
            self.counters["orphan-expired"] += len(votes) - len(kept)
            del orphans[txid]
            if kept:
                orphans[txid] = kept
