"""
Counting transaction votes: who may vote and with what weight
(L{Electorate}), which transactions votes are counted for
(L{VoteSubjects}), the checks a received vote or batch passes before it
counts (L{VoteIntake}), and the evidence of masternodes that voted both
ways (L{Equivocations}).

Weights and thresholds are the network's L{timecoin.interfaces.IQuorumRule}
over the I{total} weight of the masternode snapshot, never over the votes
received (``docs/finality.md``, "Decision rules").
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain
from timecoin.finality.settings import FinalitySettings
from timecoin.finality.votes import (
    APPROVE,
    REJECT,
    VOTE_HEIGHT_WINDOW,
    SignatureCache,
    TxVote,
    TxVoteBatch,
)
from timecoin.masternodes import Snapshot
from timecoin.mempool import FINALIZED, PENDING, REJECTED, Entry, Mempool
from timecoin.tx import Transaction

log = Logger(namespace="timecoin.finality")
"""The finality engine's log lines keep the namespace they always had."""

UNKNOWN_TX = "vote-unknown-or-decided-tx"
MAX_SNAPSHOT_WEIGHTS = 64
"""Snapshots whose members' weights are kept (all are dropped when full)."""
SnapshotKey = tuple[tuple[bytes, int], ...]
"""The members' weights of a snapshot, sorted: equal for equal snapshots."""
MAX_EQUIVOCATIONS = 1_000
"""Pairs of conflicting votes kept as evidence, newest first."""


def overrides(first: TxVote, second: TxVote) -> bool:
    """
    Whether an equivocating masternode's C{second} vote replaces its
    C{first} in the tally: an approval replaces a rejection, so that every
    node that holds both counts the pair the same way, whatever order they
    came in.  Counting whichever came first let an equivocator's approval
    complete a quorum on one node while the others held its rejection and
    rejected the transaction for good (the simulator found it: seed 71,
    seven masternodes, two Byzantine).  It is safe: a Byzantine masternode
    may approve both sides of a double spend anyway (two txids, no
    equivocation), and with less than a third of the weight Byzantine two
    conflicting transactions still cannot both reach the quorum.
    """
    return first.decision == REJECT and second.decision == APPROVE


class Weights(NamedTuple):
    """
    The weights of a set of votes over one snapshot.

    @ivar members: every member's weight.
    """

    approve: int
    reject: int
    total: int
    members: dict[bytes, int]


class Electorate:
    """
    Who votes on transactions and with what weight: a vote counts in the
    masternode snapshot of the height it is stamped with (the next
    height's, cached until the tip or the registry changes, for this
    node's own votes and the newest ones).
    """

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._key: tuple[object, object, int] | None = None
        self._members: dict[bytes, int] = {}
        self._total = 0
        self._by_snapshot: dict[int, tuple[Snapshot, dict[bytes, int], int,
                                           SnapshotKey]] = {}
        self._ahead: set[bytes] = set()
        """Subjects holding votes stamped at a height above this node's."""

    def members(self) -> tuple[dict[bytes, int], int]:
        """
        The weight of each member of the next height's snapshot, and their
        total, rebuilt only when the tip or the registry changes (a block
        connected or reverted, the chain loaded).
        """
        chain = self.chain
        key = (chain.tip, chain.registry, len(chain.registry))
        cached = self._key
        if cached is None or cached[0] is not key[0] or \
                cached[1] is not key[1] or cached[2] != key[2]:
            snapshot = chain.snapshot_for(chain.height + 1)
            self._members = {m.pubkey: chain.quorum.weight(m)
                             for m in snapshot}
            self._total = chain.total_weight(snapshot)
            self._key = key
        return self._members, self._total

    def snapshot_weights(self, snapshot: Snapshot
                         ) -> tuple[dict[bytes, int], int, SnapshotKey]:
        """
        The members' weights of C{snapshot}, its total weight, and a key
        equal for snapshots of equal weights (a snapshot rebuilt after a
        restart is another object of the same content).
        """
        cached = self._by_snapshot.get(id(snapshot))
        if cached is None or cached[0] is not snapshot:
            members = {m.pubkey: self.chain.quorum.weight(m)
                       for m in snapshot}
            if len(self._by_snapshot) >= MAX_SNAPSHOT_WEIGHTS:
                self._by_snapshot.clear()
            cached = (snapshot, members, self.chain.total_weight(snapshot),
                      tuple(sorted(members.items())))
            self._by_snapshot[id(snapshot)] = cached
        return cached[1], cached[2], cached[3]

    def vote_snapshot(self, height: int, exact: bool = True
                      ) -> Snapshot | None:
        """
        The snapshot a vote stamped at C{height} counts in: the one that
        votes at C{height + 1}, as every node knows it from the chain; or
        C{None} while this node cannot know it exactly (a height above its
        own, or one too old to be kept after a restart).  Not C{exact}
        (what RPC shows of old certificates): the chain's best answer.
        """
        chain = self.chain
        if not exact:
            return chain.snapshot_for(height + 1)
        if height > chain.height:
            return None
        if height == chain.height:
            return chain.snapshot_for(height + 1)
        return chain.known_snapshot(height + 1)

    def tallies(self, votes: dict[bytes, object], txid: bytes | None,
                exact: bool = True) -> dict[Any, list[Any]]:
        """
        C{votes} counted per snapshot: for the key of each snapshot (see
        L{snapshot_weights}), C{[approve, reject, total, members]}.  Each
        vote counts in the snapshot of the height it is stamped with,
        never in this node's current one, so every node counts the same
        votes alike whatever its own height (counting a vote of height 17
        in the set of height 19, one masternode smaller, let a node that
        had moved on finalize a payment alone: simulator, lifecycle seed
        796).  Votes of a height this node has not reached are not counted
        yet; C{txid} is then remembered (L{take_ahead}) so that it is
        tallied again once the chain reaches it.
        """
        groups: dict[Any, list[Any]] = {}
        # The snapshot of each height once per call, not once per vote:
        # a subject's votes carry a few heights, and a tally runs at
        # every vote counted (fifty masternodes: a tenth of the
        # simulator's time went to looking the same snapshot up).
        by_height: dict[int, tuple[dict[bytes, int], int, SnapshotKey]
                        | None] = {}
        for voter, vote in votes.items():
            if not isinstance(vote, TxVote):
                continue
            height = vote.height
            if height in by_height:
                found = by_height[height]
            else:
                snapshot = self.vote_snapshot(height, exact)
                found = by_height[height] = None if snapshot is None \
                    else self.snapshot_weights(snapshot)
            if found is None:
                if txid is not None and height > self.chain.height:
                    self._ahead.add(txid)
                continue
            members, total, key = found
            weight = members.get(voter)
            if weight is None:
                continue
            group = groups.get(key)
            if group is None:
                group = groups[key] = [0, 0, total, members]
            group[0 if vote.decision == APPROVE else 1] += weight
        return groups

    def current_tally(self, groups: dict[Any, list[Any]]) -> Weights:
        """
        The tally of L{tallies} in the next height's snapshot, the one
        this node's own votes count in.
        """
        members, total, key = self.snapshot_weights(
            self.chain.snapshot_for(self.chain.height + 1))
        group = groups.get(key)
        if group is None:
            return Weights(0, 0, total, members)
        return Weights(group[0], group[1], total, members)

    def weights(self, votes: dict[bytes, object], txid: bytes | None = None,
                exact: bool = True) -> Weights:
        """
        Approving and rejecting weight of C{votes}, the total weight and
        the members' weights, over one snapshot (L{tallies}): the one
        whose votes reach the approval quorum, else the rejection quorum,
        else the next height's.
        """
        groups = self.tallies(votes, txid, exact)
        quorum = self.chain.quorum
        for approve, reject, total, members in groups.values():
            if quorum.approved(approve, total):
                return Weights(approve, reject, total, members)
        for approve, reject, total, members in groups.values():
            if quorum.rejected(reject, total):
                return Weights(approve, reject, total, members)
        return self.current_tally(groups)

    def take_ahead(self) -> list[bytes]:
        """
        The subjects holding votes of a height this node had not reached
        when they were tallied (sorted), forgotten here: to tally again
        once a block is connected.
        """
        ahead, self._ahead = self._ahead, set()
        return sorted(ahead)

    def approved(self, weight: int, total: int) -> bool:
        """
        Whether C{weight} of C{total} approves (the quorum rule).
        """
        return self.chain.quorum.approved(weight, total)

    def rejected(self, weight: int, total: int) -> bool:
        """
        Whether C{weight} of C{total} rejects (the quorum rule).
        """
        return self.chain.quorum.rejected(weight, total)

    def summary(self, votes: list[TxVote]) -> dict[str, Any]:
        """
        What RPC shows of C{votes} on one transaction: C{votes},
        C{approve_weight}, C{reject_weight} and C{total_weight} (over the
        current snapshot), and C{certificate} (the approving votes, once
        they reach the quorum, else C{None}).
        """
        approve, reject, total, _ = self.weights(
            {v.voter: v for v in votes}, exact=False)
        approving = [v for v in votes if v.decision == APPROVE]
        return {"votes": votes, "approve_weight": approve,
                "reject_weight": reject, "total_weight": total,
                "certificate": approving
                if self.approved(approve, total) else None}

    def voter_problem(self, voter: bytes, height: int) -> str | None:
        """
        Why a vote by C{voter} stamped at C{height} cannot count (a reason
        code), or C{None}.
        """
        chain = self.chain
        if abs(height - chain.height) > VOTE_HEIGHT_WINDOW:
            return "vote-height-out-of-window"
        if height >= chain.height:
            # The snapshot of the next height, as snapshot_for gives it.
            if voter not in self.members()[0]:
                return "vote-not-masternode"
            return None
        # The snapshot of the vote's own height, exactly: a restarted node
        # knows only the recent ones, and the current set would count the
        # vote of a masternode set aside then and active again now, which
        # the others refuse -- a quorum on this node only (the simulator
        # found it: lifecycle seed 443).
        snapshot = chain.known_snapshot(height + 1)
        if snapshot is None:
            return "vote-snapshot-unknown"
        if not any(m.pubkey == voter for m in snapshot):
            return "vote-not-masternode"
        return None


class VoteSubjects:
    """
    The transactions votes are counted for: the mempool's entries and
    contenders, and the transactions rejected here by vote or timeout a
    short while ago, which keep collecting votes for C{late_ttl} seconds
    (at most C{max_late}, oldest first out) so that a late approval
    quorum still finalizes them.

    @ivar late: those rejected transactions: txid → (entry, expiry time).
    """

    def __init__(self, mempool: Mempool, clock: IReactorTime,
                 late_ttl: float, max_late: int) -> None:
        self.mempool = mempool
        self.clock = clock
        self.late_ttl = late_ttl
        self.max_late = max_late
        self.late: OrderedDict[bytes, tuple[Entry, float]] = OrderedDict()
        self._next_scan = 0.0
        self._next_late_scan = 0.0

    def get(self, txid: bytes) -> Entry | None:
        """
        The vote subject C{txid}: a mempool entry, a contender, or a
        recently rejected transaction.
        """
        entry = self.mempool.held(txid)
        if entry is None:
            late = self.late.get(txid)
            entry = late[0] if late is not None else None
        return entry

    def held(self, txid: bytes) -> Entry | None:
        """
        The mempool entry or contender C{txid} (not a rejected one).
        """
        return self.mempool.held(txid)

    def keep_late(self, txid: bytes, entry: Entry) -> None:
        """
        Keep the rejected C{entry} collecting votes for C{late_ttl}; its
        votes are asked of the peers again (L{late_due}), as for an
        undecided one.
        """
        entry.queries = 0
        entry.query_at = self.clock.seconds()
        self.late[txid] = (entry, self.clock.seconds() + self.late_ttl)
        while len(self.late) > self.max_late:
            self.late.popitem(last=False)

    def ask_again(self, txid: bytes, delay: float) -> None:
        """
        A new approval of the rejected C{txid} came: ask the peers for
        its votes again, from C{delay} seconds on (L{late_due}), however
        many times they were asked.  The approval may have completed the
        quorum on nodes that held every other one, while one withheld
        from this node keeps it short here; those nodes hold it final
        only now, after this node's queries ran out (the simulator found
        it: seed 3 of fifty masternodes, a lagging Byzantine node's
        approval 14 s after the timeout finalized a payment on 36 nodes
        and left it rejected on 7).  Once per approval counted, so at
        most once or twice per voter.
        """
        late = self.late.get(txid)
        if late is not None:
            entry = late[0]
            entry.queries = 0
            entry.query_at = self.clock.seconds() + delay

    def drop_spent(self, block: Block) -> None:
        """
        Forget the rejected transactions spending an input C{block} spent:
        they can never finalize.
        """
        spent = {txin.prevout for tx in block.txs for txin in tx.inputs}
        for txid, (entry, _) in list(self.late.items()):
            if any(i.prevout in spent for i in entry.tx.inputs):
                del self.late[txid]

    def expire(self) -> None:
        """
        Forget the rejected transactions whose C{late_ttl} is over.
        """
        now = self.clock.seconds()
        while self.late:
            txid, (_, expires) = next(iter(self.late.items()))
            if expires > now:
                break
            del self.late[txid]

    def scan_soon(self) -> None:
        """
        Let the next L{stalled} call scan, however recent the last one.
        """
        self._next_scan = 0.0

    def stalled(self, limit: int, settings: FinalitySettings,
                finalizing: set[bytes]) -> list[Transaction]:
        """
        Undecided transactions whose votes peers should be asked for (and
        which should be announced again): undecided C{query_after} seconds
        after admission (or the last query), at most C{max_queries} times
        each, at most C{limit} per call (at most one call a second does
        anything, so re-announcements stay within peers' rate limits);
        none being C{finalizing}, nor one holding a vote of every
        masternode of the next height's snapshot (every masternode has seen
        it, and a peer can only have the votes we have: a split double
        spend waiting for its vote timeout, whose queries were most of the
        vote lines at 30 masternodes, issue 19).  Also forgets expired
        rejected transactions.
        """
        now = self.clock.seconds()
        if now < self._next_scan:
            return []
        self._next_scan = now + min(1.0, settings.query_after / 2)
        self.expire()
        chain = self.mempool.chain
        members = [m.pubkey for m in chain.snapshot_for(chain.height + 1)]
        due: list[Transaction] = []
        for source in (self.mempool.entries, self.mempool.contenders):
            for txid, entry in source.items():
                if len(due) >= limit:
                    return due
                if entry.state == PENDING and entry.query_at <= now and \
                        entry.queries < settings.max_queries and \
                        txid not in finalizing:
                    entry.queries += 1
                    entry.query_at = now + settings.query_after
                    votes = entry.votes
                    if len(votes) < len(members) or \
                            not all(m in votes for m in members):
                        due.append(entry.tx)
        return due

    def late_due(self, limit: int,
                 settings: FinalitySettings) -> list[tuple[bytes, int]]:
        """
        Transactions rejected here a short while ago whose votes peers
        should be asked for: each C{query_after} seconds after its
        rejection (or the last query), at most C{max_queries} times, at
        most C{limit} per call and one call a second.  A node that
        rejected a payment on a reject quorum that two equivocating
        masternodes helped form never heard their approvals, which
        another node had received and finalized with (approvals win over
        rejections, see L{overrides}); asking only when a peer connects
        left it rejected while that node held it final (the simulator:
        seed 183 of seven masternodes, two Byzantine).  Each with the
        number of its query (0 for the first).  Not one that conflicts
        with a payment final here: two conflicting payments cannot both
        be final while less than a third of the weight is Byzantine, so
        no peer can hold it final (at 30 masternodes these queries were
        most of the query lines, issue 19).
        """
        now = self.clock.seconds()
        if now < self._next_late_scan:
            return []
        self._next_late_scan = now + min(1.0, settings.query_after / 2)
        due: list[tuple[bytes, int]] = []
        for txid, (entry, _) in self.late.items():
            if len(due) >= limit:
                break
            if entry.query_at <= now and entry.queries < settings.max_queries:
                if self._lost_to_final(txid, entry):
                    entry.queries = settings.max_queries
                    continue
                due.append((txid, entry.queries))
                entry.queries += 1
                entry.query_at = now + settings.query_after
        return due

    def _lost_to_final(self, txid: bytes, entry: Entry) -> bool:
        """
        Whether a payment final here spends an input of the rejected
        C{entry}.
        """
        mempool = self.mempool
        for txin in entry.tx.inputs:
            holder = mempool.locks.get(txin.prevout)
            if holder is not None and holder != txid:
                other = mempool.entries.get(holder)
                if other is not None and other.state == FINALIZED:
                    return True
        return False

    def open_txids(self, limit: int) -> tuple[list[bytes], list[bytes]]:
        """
        The undecided transactions (pending, contenders), and those
        rejected here a short while ago but for the losers of a payment
        final here (L{late_due}); the newest C{limit} of both together.
        """
        undecided = [txid for source in (self.mempool.entries,
                                         self.mempool.contenders)
                     for txid, entry in source.items()
                     if entry.state == PENDING]
        rejected = [txid for txid, (entry, _) in self.late.items()
                    if not self._lost_to_final(txid, entry)]
        excess = max(0, len(undecided) + len(rejected) - limit)
        cut = min(excess, len(undecided))
        return undecided[cut:], rejected[excess - cut:]

    def info(self, txid: bytes) -> dict[str, Any] | None:
        """
        What the node knows of a contender or a recently rejected
        transaction (shaped like L{timecoin.node.Node.transaction}), or
        C{None}.
        """
        entry = self.mempool.contenders.get(txid)
        late = self.late.get(txid)
        if entry is None and late is not None:
            entry = late[0]
        if entry is None:
            return None
        info: dict[str, Any] = {
            "tx": entry.tx, "state": self.mempool.state_of(txid) or
            entry.state, "height": None, "block_hash": None,
            "fee": entry.fee, "votes": list(entry.votes.values())}
        if entry.conflict and txid in self.mempool.contenders:
            info["conflict"] = True
        reason = self.mempool.rejected.get(txid)
        if reason is not None and entry.state == REJECTED:
            info["reason"] = reason
        return info


class Equivocations:
    """
    Evidence of masternodes that signed two decisions on one transaction.

    @ivar evidence: (voter ‖ txid) → both votes, the newest
        C{MAX_EQUIVOCATIONS}.
    """

    def __init__(self, counters: Counter[str]) -> None:
        self._counters = counters
        self.evidence: OrderedDict[bytes, tuple[TxVote, TxVote]] = \
            OrderedDict()

    def record(self, first: TxVote, second: TxVote) -> None:
        """
        Keep C{first} and C{second} (one voter, one txid, two decisions)
        as evidence, count and log it.
        """
        self._counters["equivocations"] += 1
        self.evidence[first.voter + first.txid] = (first, second)
        while len(self.evidence) > MAX_EQUIVOCATIONS:
            self.evidence.popitem(last=False)
        log.warn("masternode {voter} voted both {a} and {b} on tx {txid}; "
                 "its first vote counts", voter=first.voter.hex(),
                 a=first.decision, b=second.decision, txid=first.txid.hex())


@dataclass
class BatchResult:
    """
    What L{VoteIntake.batch} made of a batch.

    @ivar reason: why the whole batch was dropped, or C{None}.
    @ivar tallied: decisions counted.
    @ivar orphans: single votes for transactions not seen yet (signature
        verified), for the gossip layer to keep.
    @ivar dropped: other decisions by reason code.
    """

    reason: str | None = None
    tallied: int = 0
    orphans: list[TxVote] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


class VoteIntake:
    """
    The checks a received vote or batch passes before it is counted (the
    voter and its height, the subject, duplicates, the signature, once per
    batch, and equivocation), handing each vote that passes to C{accept}
    (which tallies it and says whether it counted).
    """

    def __init__(self, subjects: VoteSubjects, electorate: Electorate,
                 signatures: SignatureCache, equivocations: Equivocations,
                 counters: Counter[str],
                 accept: Callable[[TxVote], bool]) -> None:
        self.subjects = subjects
        self.electorate = electorate
        self.signatures = signatures
        self.equivocations = equivocations
        self.counters = counters
        self._accept = accept

    def vote(self, vote: TxVote) -> str | None:
        """
        Check and tally one vote.  Returns a reason code when the vote is
        dropped, else C{None}.
        """
        self.counters["votes_received"] += 1
        reason = self._problem(vote)
        if reason is not None:
            self.counters["votes_invalid"] += 1
            self.counters[f"votes_dropped.{reason}"] += 1
            return reason
        self._accept(vote)
        return None

    def _problem(self, vote: TxVote) -> str | None:
        reason = self.electorate.voter_problem(vote.voter, vote.height)
        if reason is not None:
            return reason
        entry = self.subjects.get(vote.txid)
        if entry is None or entry.state == FINALIZED:
            # A vote on a transaction not seen here may be kept as an
            # orphan: its signature is checked first, so forged votes
            # never take the orphan pool's slots.
            if entry is None and \
                    self.subjects.mempool.state_of(vote.txid) is None \
                    and not self.signatures.vote_ok(vote):
                return "vote-bad-signature"
            return UNKNOWN_TX
        first = entry.votes.get(vote.voter)
        if first is not None and isinstance(first, TxVote) and \
                first.decision == vote.decision:
            return "vote-duplicate"
        if not self.signatures.vote_ok(vote):
            return "vote-bad-signature"
        if isinstance(first, TxVote):
            self.equivocations.record(first, vote)
            if not overrides(first, vote):
                return "vote-equivocation"
        return None

    def batch(self, batch: TxVoteBatch) -> BatchResult:
        """
        Check a batch (one signature verification at most, none if none
        of its decisions is of use here) and tally its decisions.
        """
        n = len(batch.decisions)
        self.counters["votes_received"] += n
        reason = self.electorate.voter_problem(batch.voter, batch.height)
        if reason is not None:
            self.counters["votes_invalid"] += n
            self.counters[f"batches_dropped.{reason}"] += 1
            return BatchResult(reason)
        result = BatchResult()
        useful, orphans = self._sort(batch, result)
        if (useful or orphans) and not self.signatures.batch_ok(batch):
            self.counters["votes_invalid"] += n
            self.counters["batches_dropped.vote-bad-signature"] += 1
            return BatchResult("vote-bad-signature")
        votes = batch.votes(useful + orphans)
        for vote in votes[:len(useful)]:
            entry = self.subjects.get(vote.txid)
            first = None if entry is None else entry.votes.get(vote.voter)
            if isinstance(first, TxVote) and first.decision != vote.decision:
                self.equivocations.record(first, vote)
                if overrides(first, vote) and self._accept(vote):
                    result.tallied += 1
                else:
                    result.dropped["vote-equivocation"] += 1
            elif self._accept(vote):
                result.tallied += 1
            else:
                result.dropped[UNKNOWN_TX] += 1
        result.orphans = votes[len(useful):]
        self.counters["votes_invalid"] += n - result.tallied - \
            len(result.orphans)
        return result

    def _sort(self, batch: TxVoteBatch,
              result: BatchResult) -> tuple[list[int], list[int]]:
        """
        The indices of C{batch}'s decisions of use here and of those on
        transactions not seen yet; the others are counted in C{result}.
        """
        useful: list[int] = []
        orphans: list[int] = []
        for i, (txid, decision) in enumerate(batch.decisions):
            entry = self.subjects.get(txid)
            if entry is None:
                if self.subjects.mempool.state_of(txid) is None:
                    orphans.append(i)
                else:
                    result.dropped[UNKNOWN_TX] += 1
            elif entry.state == FINALIZED:
                result.dropped[UNKNOWN_TX] += 1
            else:
                first = entry.votes.get(batch.voter)
                if isinstance(first, TxVote) and first.decision == decision:
                    result.dropped["vote-duplicate"] += 1
                else:
                    useful.append(i)
        return useful, orphans

