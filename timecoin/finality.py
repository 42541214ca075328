"""
Instant finality: masternodes vote on transactions; 2/3 of the snapshot's
weight approving finalizes one, more than 1/3 rejecting (or the vote
timeout) rejects it.  The decision rules are written down in
``docs/finality.md``; in short:

  - A masternode votes once per transaction: C{approve} if it locked the
    inputs for this spender (the first valid spender it saw), C{reject} if
    another pending spender holds one of them (the newcomer is kept as a
    I{contender}, see L{timecoin.mempool}) or if it approved another
    spender of one of them whose votes may still count (L{_Released}).
  - Votes are tallied through the network's L{IQuorumRule} over the
    snapshot's I{total} weight.  Approval finalizes; a node whose own
    locked spender loses unlocks it and adopts the winner.  Finalized wins
    over a local rejection (a timeout, or a reject quorum an equivocating
    masternode helped form): a rejected transaction keeps collecting votes
    for C{late_ttl} seconds and finalizes if they reach the quorum.

Votes are signed in batches: one signature covers a Merkle root over
many (txid, decision) leaves at one height (L{TxVoteBatch}), so a node
verifies one signature per batch, not per transaction.  A single
L{TxVote} is one leaf with its Merkle branch; it verifies on its own and is
the unit of a finality certificate.

Before a transaction is reported finalized, its finality record (the
transaction and the votes that finalized it) is written to the store, so a
node killed right after acknowledging finality still has it on restart and
puts it in a block.  Pending transactions are written too (before this
node votes approve), so a restarted node recovers its locks and never
approves a conflicting spender.  The block that archives a transaction
deletes its record, unless the transaction was finalized here: that
record stays as its certificate, kept for C{certificate_blocks} blocks
(at most C{max_certificates}) and served by RPC C{gettransaction}.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from timecoin.chain import Chain, TxInvalid
from timecoin.encoding import (
    canonical,
    decode,
    need_dict,
    need_int,
    need_list,
    need_str,
    sha256,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.logs import RateLimitedLog
from timecoin.masternodes import Snapshot
from timecoin.mempool import FINALIZED, PENDING, REJECTED, Entry, Mempool
from timecoin.tx import OutPoint, Transaction
from timecoin.txcache import CACHE as TX_CACHE

log = Logger()

TX_VOTE_DOMAIN = b"TIMECOIN/tx-vote"
APPROVE = "approve"
REJECT = "reject"
DECISIONS = {APPROVE: b"\x01", REJECT: b"\x00"}
VOTE_HEIGHT_WINDOW = 10
"""Votes stamped more than this many blocks away from our tip are
dropped (replay protection)."""
MAX_BATCH_VOTES = 1024
"""Decisions one signed batch may carry."""
MAX_BRANCH = 16
"""Longest Merkle branch a single vote may carry."""
ARCHIVED = "archived"
RELEASED = "released"
UNKNOWN_TX = "vote-unknown-or-decided-tx"
LATE_REASONS = frozenset({"rejected-by-vote", "vote-timeout"})
"""Rejections a late approval certificate may still override."""
LOG_INTERVAL = 10.0
"""Seconds between two log lines of one kind of refusal or rejection (each
is counted; the line says how many were not logged)."""


# Merkle trees of votes ------------------------------------------------------


def vote_leaf(txid: bytes, decision: str) -> bytes:
    """
    The Merkle leaf of one decision: SHA-256 over a zero byte, the txid and
    one decision byte (34 bytes hashed, so a leaf never equals an inner
    node, which hashes 64).
    """
    return sha256(b"\x00" + txid + DECISIONS[decision])


def _parent(left: bytes, right: bytes) -> bytes:
    return sha256(left + right)


def merkle_levels(leaves: list[bytes]) -> list[list[bytes]]:
    """
    Every level of the tree over C{leaves}, leaves first, root last; an
    odd level pairs its last node with itself.
    """
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        levels.append([_parent(level[i], level[min(i + 1, len(level) - 1)])
                       for i in range(0, len(level), 2)])
    return levels


def merkle_branch(levels: list[list[bytes]], index: int) -> tuple[bytes, ...]:
    """
    The sibling hashes from leaf C{index} up to the root.
    """
    branch = []
    for level in levels[:-1]:
        sibling = index ^ 1
        branch.append(level[sibling] if sibling < len(level) else level[index])
        index >>= 1
    return tuple(branch)


def root_from_branch(leaf: bytes, index: int,
                     branch: tuple[bytes, ...]) -> bytes | None:
    """
    The root that C{branch} proves C{leaf} (at C{index}) under, or C{None}
    if the index does not fit the branch.
    """
    node = leaf
    for sibling in branch:
        node = _parent(sibling, node) if index & 1 else _parent(node, sibling)
        index >>= 1
    return node if index == 0 else None


def tx_votes_message(network: str, height: int, root: bytes) -> bytes:
    """
    What a masternode signs to vote the decisions under C{root} at
    C{height}.
    """
    return canonical({"network": network, "height": height,
                      "root": root.hex()})


def _sig_key(voter: bytes, height: int, root: bytes, signature: bytes) -> bytes:
    return sha256(voter + height.to_bytes(8, "big") + root + signature)


# Votes ----------------------------------------------------------------------


@dataclass(frozen=True)
class TxVote:
    """
    A masternode's signed decision on one transaction: one leaf of a
    signed batch with its Merkle branch (empty when the batch holds only
    this decision, whose leaf is then the signed root).
    """

    txid: bytes
    decision: str
    height: int
    voter: bytes
    signature: bytes
    index: int = 0
    branch: tuple[bytes, ...] = ()

    def root(self) -> bytes | None:
        """
        The batch root this vote proves its leaf under, or C{None}.
        """
        return root_from_branch(vote_leaf(self.txid, self.decision),
                                self.index, self.branch)

    def encode(self) -> bytes:
        """
        C{canonical(self.to_obj())}, written by hand (a certificate's
        votes are encoded into every finality record) and kept.
        """
        cached = self.__dict__.get("_raw")
        if cached is None:
            if type(self.height) is int and type(self.index) is int and \
                    self.decision in DECISIONS:
                head = '{"branch":["' + '","'.join(
                    h.hex() for h in self.branch) + '"],' \
                    if self.branch else "{"
                index = f',"index":{self.index}' if self.branch else ""
                cached = (
                    f'{head}"decision":"{self.decision}","height":'
                    f'{self.height}{index},"signature":"'
                    f'{self.signature.hex()}","txid":"{self.txid.hex()}",'
                    f'"voter":"{self.voter.hex()}"}}').encode("ascii")
            else:
                cached = canonical(self.to_obj())
            object.__setattr__(self, "_raw", cached)
        return cached

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "txid": self.txid.hex(), "decision": self.decision,
            "height": self.height, "voter": self.voter.hex(),
            "signature": self.signature.hex()}
        if self.branch:
            obj["index"] = self.index
            obj["branch"] = [h.hex() for h in self.branch]
        return obj

    @classmethod
    def from_obj(cls, obj: Any) -> TxVote:
        need_dict(obj, "tx vote",
                  {"txid", "decision", "height", "voter", "signature"},
                  frozenset({"index", "branch"}))
        decision = need_str(obj["decision"], "decision", 8)
        if decision not in DECISIONS:
            raise ValueError(f"unknown decision {decision!r}")
        branch = tuple(unhex(h, 32, "branch hash") for h in need_list(
            obj.get("branch", []), "branch", MAX_BRANCH))
        return cls(unhex(obj["txid"], 32, "txid"), decision,
                   need_int(obj["height"], "height"),
                   unhex(obj["voter"], 32, "voter"),
                   unhex(obj["signature"], 64, "signature"),
                   need_int(obj.get("index", 0), "index", 0,
                            2**len(branch) - 1),
                   branch)


@dataclass(frozen=True)
class TxVoteBatch:
    """
    One signed message carrying a masternode's decisions on many
    transactions at one height: the signature covers (network, height,
    Merkle root of the decisions, sorted by txid, unique).
    """

    voter: bytes
    height: int
    decisions: tuple[tuple[bytes, str], ...]
    signature: bytes

    def leaves(self) -> list[bytes]:
        """
        The Merkle leaves, in order.
        """
        return [vote_leaf(txid, d) for txid, d in self.decisions]

    def levels(self) -> list[list[bytes]]:
        """
        The Merkle tree of the decisions (computed once, then kept).
        """
        cached = self.__dict__.get("_levels")
        if cached is None:
            cached = merkle_levels(self.leaves())
            object.__setattr__(self, "_levels", cached)
        return cached

    def root(self) -> bytes:
        """
        The Merkle root the signature covers.
        """
        return self.levels()[-1][0]

    def votes(self, indices: Iterable[int] | None = None) -> list[TxVote]:
        """
        The single votes (with branches) of the decisions at C{indices}
        (default all).
        """
        levels = self.levels()
        decisions, height = self.decisions, self.height
        voter, signature = self.voter, self.signature
        chosen = range(len(decisions)) if indices is None else indices
        votes = []
        for i in chosen:
            # The generated __init__ sets each field through
            # object.__setattr__; this sets the same fields at once.
            vote = _new(TxVote)
            vote.__dict__.update(
                txid=decisions[i][0], decision=decisions[i][1],
                height=height, voter=voter, signature=signature, index=i,
                branch=merkle_branch(levels, i))
            votes.append(vote)
        return votes

    def to_obj(self) -> dict[str, Any]:
        return {"voter": self.voter.hex(), "height": self.height,
                "decisions": [[t.hex(), d] for t, d in self.decisions],
                "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> TxVoteBatch:
        need_dict(obj, "tx vote batch",
                  {"voter", "height", "decisions", "signature"})
        raw = need_list(obj["decisions"], "decisions", MAX_BATCH_VOTES)
        if not raw:
            raise ValueError("a batch needs at least one decision")
        decisions = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2:
                raise ValueError("a decision is [txid, decision]")
            decision = need_str(item[1], "decision", 8)
            if decision not in DECISIONS:
                raise ValueError(f"unknown decision {decision!r}")
            decisions.append((unhex(item[0], 32, "txid"), decision))
        if any(a[0] >= b[0] for a, b in zip(decisions, decisions[1:])):
            raise ValueError("decisions must be sorted by txid, unique")
        return cls(unhex(obj["voter"], 32, "voter"),
                   need_int(obj["height"], "height"), tuple(decisions),
                   unhex(obj["signature"], 64, "signature"))


_new = object.__new__


def sign_tx_votes(key: PrivateKey, network: str, height: int,
                  decisions: Iterable[tuple[bytes, str]]) -> TxVoteBatch:
    """
    A batch of C{decisions} (sorted here) signed by C{key}.
    """
    ordered = tuple(sorted(decisions))
    root = merkle_levels([vote_leaf(t, d) for t, d in ordered])[-1][0]
    signature = key.sign(TX_VOTE_DOMAIN,
                         tx_votes_message(network, height, root))
    return TxVoteBatch(key.public, height, ordered, signature)


def sign_tx_vote(key: PrivateKey, network: str, txid: bytes, decision: str,
                 height: int) -> TxVote:
    """
    A single vote signed by C{key} (a batch of one).
    """
    return sign_tx_votes(key, network, height, [(txid, decision)]).votes()[0]


def tx_vote_ok(vote: TxVote, network: str) -> bool:
    """
    Whether C{vote}'s branch and signature verify.
    """
    root = vote.root()
    return root is not None and verify(
        vote.voter, TX_VOTE_DOMAIN,
        tx_votes_message(network, vote.height, root), vote.signature)


def tx_votes_ok(batch: TxVoteBatch, network: str) -> bool:
    """
    Whether C{batch}'s signature verifies.
    """
    return verify(batch.voter, TX_VOTE_DOMAIN,
                  tx_votes_message(network, batch.height, batch.root()),
                  batch.signature)


# The engine -----------------------------------------------------------------


@dataclass(frozen=True)
class FinalitySettings:
    """
    Named finality settings (config section C{[finality]}).

    @ivar batch_delay: seconds a masternode gathers decisions before it
        signs them as one batch (0: sign each at once).  A decision that
        completes a quorum is signed at once.
    @ivar batch_max: decisions that trigger signing without waiting.
    @ivar late_ttl: seconds a rejected transaction keeps collecting votes,
        so that a late approval certificate still finalizes it.
    @ivar max_late: such rejected transactions kept at most.
    @ivar query_after: seconds an undecided transaction waits before the
        node re-announces it and asks its peers for its votes (and then
        between such queries).
    @ivar max_queries: queries per transaction.
    @ivar certificate_blocks: blocks after archiving during which a
        transaction's finality certificate is kept.
    @ivar max_certificates: archived certificates kept at most.
    @ivar max_released: transactions this masternode approved and then saw
        rejected, remembered (with their inputs) while their votes can
        still count.
    @ivar signature_cache: verified batch signatures remembered.
    """

    batch_delay: float = 0.05
    batch_max: int = 512
    late_ttl: float = 60.0
    max_late: int = 10_000
    query_after: float = 2.0
    max_queries: int = 3
    certificate_blocks: int = 1_000
    max_certificates: int = 100_000
    max_released: int = 100_000
    signature_cache: int = 100_000

    @classmethod
    def from_config(cls, config: Any) -> FinalitySettings:
        """
        Settings from the config's C{finality_<field>} attributes (those it
        has; defaults for the rest).
        """
        values = {f.name: getattr(config, f"finality_{f.name}")
                  for f in dataclasses.fields(cls)
                  if hasattr(config, f"finality_{f.name}")}
        return cls(**values)


@dataclass
class BatchResult:
    """
    What L{Finality.receive_batch} made of a batch.

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


@dataclass
class _Released:
    """
    A transaction this masternode approved that was then rejected: until
    its votes leave the height window, this node votes reject on any other
    spender of its inputs (its approval could still complete a
    certificate).
    """

    height: int
    inputs: tuple[OutPoint, ...]


class Finality:
    """
    The transaction-finality engine of one node.

    @ivar vote_cast: callbacks given every batch of votes this node signs
        (the P2P layer gossips them).
    @ivar finalized: callbacks given (txid, seconds from acceptance to
        finality) for every transaction this node finalizes.
    @ivar tx_accepted: callbacks given every transaction admitted to the
        mempool, contenders included (the P2P layer relays them).
    @ivar equivocations: evidence of masternodes that signed two
        decisions on one transaction: (voter ‖ txid) → both votes.
    """

    def __init__(self, chain: Chain, mempool: Mempool, key: PrivateKey | None,
                 clock: IReactorTime, vote_timeout: float = 10.0,
                 settings: FinalitySettings | None = None) -> None:
        self.chain = chain
        self.mempool = mempool
        self.key = key
        self.clock = clock
        self.vote_timeout = vote_timeout
        self.settings = settings or FinalitySettings()
        self._timeouts: dict[bytes, IDelayedCall] = {}
        self._waiters: dict[bytes, list[defer.Deferred[str]]] = {}
        self._finalizing: set[bytes] = set()
        self._late: OrderedDict[bytes, tuple[Entry, float]] = OrderedDict()
        self._queue: dict[bytes, str] = {}
        self._flush_call: IDelayedCall | None = None
        self._released: OrderedDict[bytes, _Released] = OrderedDict()
        self._released_inputs: dict[OutPoint, bytes] = {}
        self._certs: OrderedDict[bytes, int] = OrderedDict()
        self._good_sigs: OrderedDict[bytes, None] = OrderedDict()
        self._next_scan = 0.0
        self._ratelog = RateLimitedLog(log, clock, LOG_INTERVAL)
        self._members_key: tuple[object, object, int] | None = None
        self._members: dict[bytes, int] = {}
        self._total = 0
        self._by_snapshot: dict[int, tuple[Snapshot, dict[bytes, int], int,
                                           tuple[tuple[bytes, int], ...]]] = {}
        self._ahead: set[bytes] = set()
        """Subjects holding votes stamped at a height above this node's:
        counted once the chain reaches it (L{block_connected})."""
        self.equivocations: OrderedDict[bytes, tuple[TxVote, TxVote]] = \
            OrderedDict()
        self.vote_cast: list[Callable[[TxVoteBatch], None]] = []
        self.counters: Counter[str] = Counter(
            finalized=0, rejected=0, votes_invalid=0, votes_received=0)
        self.finalized: list[Callable[[bytes, float], None]] = []
        self.tx_accepted: list[Callable[[Transaction], None]] = []
        self.synced: Callable[[], bool] = lambda: True
        """Whether the node has caught up with the network; block sync
        replaces it, and a node that is behind does not vote."""
        chain.finalized_conflict = mempool.finalized_conflict
        chain.keeps_record = self._keeps_record

    @property
    def network(self) -> str:
        return self.chain.network.name

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
        previous = self._late.pop(txid, None)
        try:
            fee = self.mempool.check(tx, allow_conflict=True)
        except TxInvalid as e:
            if previous is not None:
                self._late[txid] = previous
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
            self._next_scan = 0.0
        for accepted in list(self.tx_accepted):
            accepted(tx)
        self._timeouts[txid] = self.clock.callLater(
            self.vote_timeout, self._timed_out, txid)
        if conflicted:
            self._decide(txid)
        elif entry.state != PENDING or txid in self._finalizing:
            # The announcement above replayed orphan votes that finalized
            # it already: its finality record is written, and a pending
            # record now would overwrite it, so that a restart brings it
            # back pending and this node votes against its own finality
            # (the simulator found it).
            pass
        else:
            # Durable before this node signs approve: a restarted node
            # recovers the lock and never approves a conflicting spender.
            self._forget_released(txid, delete=False)
            d = self.chain.store.put_tx_record(txid, self._pending_record(
                entry))
            d.addCallbacks(lambda _: self._decide(txid), self._store_failed,
                           errbackArgs=("pending record", txid))
        self._tally(txid)
        return defer.succeed(txid)

    @staticmethod
    def _pending_record(entry: Entry) -> bytes:
        """
        C{canonical({"state": "pending", "seq": .., "tx": ..})}, with the
        transaction's own encoding spliced in.
        """
        return b'{"seq":%d,"state":"pending","tx":%b}' % (
            entry.seq, entry.tx.encode())

    def _store_failed(self, failure: Any, what: str, txid: bytes) -> None:
        self.counters["store_errors"] += 1
        log.failure("could not store the {what} of {txid}", failure,
                    what=what, txid=txid.hex())

    def _voters(self) -> tuple[dict[bytes, int], int]:
        """
        The weight of each member of the next height's snapshot, and their
        total, rebuilt only when the tip or the registry changes (a block
        connected or reverted, the chain loaded).
        """
        chain = self.chain
        key = (chain.tip, chain.registry, len(chain.registry))
        cached = self._members_key
        if cached is None or cached[0] is not key[0] or \
                cached[1] is not key[1] or cached[2] != key[2]:
            snapshot = chain.snapshot_for(chain.height + 1)
            self._members = {m.pubkey: chain.quorum.weight(m)
                             for m in snapshot}
            self._total = chain.total_weight(snapshot)
            self._members_key = key
        return self._members, self._total

    def _is_masternode(self) -> bool:
        if self.key is None or not self.synced():
            return False
        return self.key.public in self._voters()[0]

    def _subject(self, txid: bytes) -> Entry | None:
        """
        The vote subject C{txid}: a mempool entry, a contender, or a
        recently rejected transaction.
        """
        entry = self.mempool.entries.get(txid)
        if entry is None:
            entry = self.mempool.contenders.get(txid)
        if entry is None:
            late = self._late.get(txid)
            entry = late[0] if late is not None else None
        return entry

    def _decide(self, txid: bytes) -> None:
        """
        Queue this masternode's one vote on C{txid}, if it has none yet.
        """
        entry = self._subject(txid)
        if entry is None or entry.state != PENDING or \
                not self._is_masternode():
            return
        assert self.key is not None
        if self.key.public in entry.votes or txid in self._queue:
            return
        other = any(self._released_inputs.get(i.prevout, txid) != txid
                    for i in entry.tx.inputs)
        # Inputs kept for this very transaction: this node approved it
        # before it was rejected.  Met again (after a restart, which
        # forgets the rejection), it gets approve again even if a
        # conflicting spender came first; a reject would contradict the
        # approval others hold (the simulator found it: seed 188 of the
        # lifecycle runs).
        approved = any(self._released_inputs.get(i.prevout) == txid
                       for i in entry.tx.inputs)
        decision = REJECT if other or (entry.conflict and not approved) \
            else APPROVE
        self._queue_vote(txid, decision)

    # Signing batches -------------------------------------------------------

    def _queue_vote(self, txid: bytes, decision: str) -> None:
        self._queue[txid] = decision
        if self.settings.batch_delay <= 0 or \
                len(self._queue) >= self.settings.batch_max or \
                self._completes_quorum(txid, decision):
            self.flush_votes()
        elif self._flush_call is None:
            self._flush_call = self.clock.callLater(
                self.settings.batch_delay, self.flush_votes)

    def _completes_quorum(self, txid: bytes, decision: str) -> bool:
        entry = self._subject(txid)
        if entry is None or self.key is None:
            return False
        approve, reject, total, members = self._current_tally(
            self._tallies(entry.votes, None))
        mine = members.get(self.key.public)
        if mine is None:
            return False
        if decision == APPROVE:
            return self.chain.quorum.approved(approve + mine, total)
        return self.chain.quorum.rejected(reject + mine, total)

    def flush_votes(self) -> None:
        """
        Sign the queued decisions as batches, announce them and count them
        here.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        items = sorted((t, d) for t, d in self._queue.items()
                       if self._subject(t) is not None)
        self._queue.clear()
        if not items or self.key is None:
            return
        for start in range(0, len(items), MAX_BATCH_VOTES):
            batch = sign_tx_votes(self.key, self.network, self.chain.height,
                                  items[start:start + MAX_BATCH_VOTES])
            self.counters["batches_signed"] += 1
            self._remember_sig(_sig_key(batch.voter, batch.height,
                                        batch.root(), batch.signature))
            for callback in list(self.vote_cast):
                callback(batch)
            for vote in batch.votes():
                self._accept(vote)

    # Receiving votes -------------------------------------------------------

    def receive_vote(self, vote: TxVote) -> str | None:
        """
        Check and tally one vote.  Returns a reason code when the vote is
        dropped, else C{None}.
        """
        self.counters["votes_received"] += 1
        reason = self._vote_problem(vote)
        if reason is not None:
            self.counters["votes_invalid"] += 1
            self.counters[f"votes_dropped.{reason}"] += 1
            return reason
        self._accept(vote)
        return None

    def _voter_problem(self, voter: bytes, height: int) -> str | None:
        if abs(height - self.chain.height) > VOTE_HEIGHT_WINDOW:
            return "vote-height-out-of-window"
        if height >= self.chain.height:
            # The snapshot of the next height, as snapshot_for gives it.
            if voter not in self._voters()[0]:
                return "vote-not-masternode"
            return None
        # The snapshot of the vote's own height, exactly: a restarted node
        # knows only the recent ones, and the current set would count the
        # vote of a masternode set aside then and active again now, which
        # the others refuse -- a quorum on this node only (the simulator
        # found it: lifecycle seed 443).
        snapshot = self.chain.known_snapshot(height + 1)
        if snapshot is None:
            return "vote-snapshot-unknown"
        if not any(m.pubkey == voter for m in snapshot):
            return "vote-not-masternode"
        return None

    def _vote_problem(self, vote: TxVote) -> str | None:
        reason = self._voter_problem(vote.voter, vote.height)
        if reason is not None:
            return reason
        entry = self._subject(vote.txid)
        if entry is None or entry.state == FINALIZED:
            # A vote on a transaction not seen here may be kept as an
            # orphan: its signature is checked first, so forged votes
            # never take the orphan pool's slots.
            if entry is None and self.mempool.state_of(vote.txid) is None \
                    and not self._signature_ok(vote):
                return "vote-bad-signature"
            return UNKNOWN_TX
        first = entry.votes.get(vote.voter)
        if first is not None and isinstance(first, TxVote) and \
                first.decision == vote.decision:
            return "vote-duplicate"
        if not self._signature_ok(vote):
            return "vote-bad-signature"
        if isinstance(first, TxVote):
            self._equivocated(first, vote)
            if not _overrides(first, vote):
                return "vote-equivocation"
        return None

    def receive_batch(self, batch: TxVoteBatch) -> BatchResult:
        """
        Check a batch (one signature verification at most, none if none
        of its decisions is of use here) and tally its decisions.
        """
        n = len(batch.decisions)
        self.counters["votes_received"] += n
        reason = self._voter_problem(batch.voter, batch.height)
        if reason is not None:
            self.counters["votes_invalid"] += n
            self.counters[f"batches_dropped.{reason}"] += 1
            return BatchResult(reason)
        result = BatchResult()
        useful: list[int] = []
        orphans: list[int] = []
        for i, (txid, decision) in enumerate(batch.decisions):
            entry = self._subject(txid)
            if entry is None:
                if self.mempool.state_of(txid) is None:
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
        if useful or orphans:
            key = _sig_key(batch.voter, batch.height, batch.root(),
                           batch.signature)
            if key not in self._good_sigs:
                self.counters["vote_signature_checks"] += 1
                if not tx_votes_ok(batch, self.network):
                    self.counters["votes_invalid"] += n
                    self.counters["batches_dropped.vote-bad-signature"] += 1
                    return BatchResult("vote-bad-signature")
                self._remember_sig(key)
        votes = batch.votes(useful + orphans)
        for vote in votes[:len(useful)]:
            entry = self._subject(vote.txid)
            first = None if entry is None else entry.votes.get(vote.voter)
            if isinstance(first, TxVote) and first.decision != vote.decision:
                self._equivocated(first, vote)
                if _overrides(first, vote) and self._accept(vote):
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

    def _signature_ok(self, vote: TxVote) -> bool:
        root = vote.root()
        if root is None:
            return False
        key = _sig_key(vote.voter, vote.height, root, vote.signature)
        if key in self._good_sigs:
            return True
        self.counters["vote_signature_checks"] += 1
        if not verify(vote.voter, TX_VOTE_DOMAIN,
                      tx_votes_message(self.network, vote.height, root),
                      vote.signature):
            return False
        self._remember_sig(key)
        return True

    def _remember_sig(self, key: bytes) -> None:
        self._good_sigs[key] = None
        while len(self._good_sigs) > self.settings.signature_cache:
            self._good_sigs.popitem(last=False)

    def _equivocated(self, first: TxVote, second: TxVote) -> None:
        self.counters["equivocations"] += 1
        self.equivocations[first.voter + first.txid] = (first, second)
        while len(self.equivocations) > 1_000:
            self.equivocations.popitem(last=False)
        log.warn("masternode {voter} voted both {a} and {b} on tx {txid}; "
                 "its first vote counts", voter=first.voter.hex(),
                 a=first.decision, b=second.decision, txid=first.txid.hex())

    def _accept(self, vote: TxVote) -> bool:
        """
        Add a checked vote to its subject and tally; whether it counted.
        """
        entry = self._subject(vote.txid)
        if entry is None or entry.state == FINALIZED:
            return False
        held = entry.votes.get(vote.voter)
        if held is not None and not (isinstance(held, TxVote)
                                     and _overrides(held, vote)):
            return False
        entry.votes[vote.voter] = vote
        self._tally(vote.txid)
        return True

    # Tally and decisions ---------------------------------------------------

    def _snapshot_weights(self, snapshot: Snapshot
                          ) -> tuple[dict[bytes, int], int,
                                     tuple[tuple[bytes, int], ...]]:
        """
        The members' weights of C{snapshot}, its total weight, and a key
        equal for snapshots of equal weights (a snapshot rebuilt after a
        restart is another object of the same content).
        """
        cached = self._by_snapshot.get(id(snapshot))
        if cached is None or cached[0] is not snapshot:
            members = {m.pubkey: self.chain.quorum.weight(m)
                       for m in snapshot}
            if len(self._by_snapshot) >= 64:
                self._by_snapshot.clear()
            cached = (snapshot, members, self.chain.total_weight(snapshot),
                      tuple(sorted(members.items())))
            self._by_snapshot[id(snapshot)] = cached
        return cached[1], cached[2], cached[3]

    def _vote_snapshot(self, height: int, exact: bool = True
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

    def _tallies(self, votes: dict[bytes, object], txid: bytes | None,
                 exact: bool = True) -> dict[Any, list[Any]]:
        """
        C{votes} counted per snapshot: for the key of each snapshot (see
        L{_snapshot_weights}), C{[approve, reject, total, members]}.  Each
        vote counts in the snapshot of the height it is stamped with,
        never in this node's current one, so every node counts the same
        votes alike whatever its own height (counting a vote of height 17
        in the set of height 19, one masternode smaller, let a node that
        had moved on finalize a payment alone: simulator, lifecycle seed
        796).  Votes of a height this node has not reached are not counted
        yet; C{txid} remembers their subject so that L{block_connected}
        tallies it again.
        """
        groups: dict[Any, list[Any]] = {}
        for voter, vote in votes.items():
            if not isinstance(vote, TxVote):
                continue
            snapshot = self._vote_snapshot(vote.height, exact)
            if snapshot is None:
                if txid is not None and vote.height > self.chain.height:
                    self._ahead.add(txid)
                continue
            members, total, key = self._snapshot_weights(snapshot)
            weight = members.get(voter)
            if weight is None:
                continue
            group = groups.get(key)
            if group is None:
                group = groups[key] = [0, 0, total, members]
            group[0 if vote.decision == APPROVE else 1] += weight
        return groups

    def _current_tally(self, groups: dict[Any, list[Any]]
                       ) -> tuple[int, int, int, dict[bytes, int]]:
        """
        The tally of L{_tallies} in the next height's snapshot, the one
        this node's own votes count in.
        """
        members, total, key = self._snapshot_weights(
            self.chain.snapshot_for(self.chain.height + 1))
        group = groups.get(key)
        if group is None:
            return 0, 0, total, members
        return group[0], group[1], total, members

    def _weights(self, votes: dict[bytes, object], txid: bytes | None = None,
                 exact: bool = True
                 ) -> tuple[int, int, int, dict[bytes, int]]:
        """
        Approving and rejecting weight of C{votes}, the total weight and
        the members' weights, over one snapshot (L{_tallies}): the one
        whose votes reach the approval quorum, else the rejection quorum,
        else the next height's.
        """
        groups = self._tallies(votes, txid, exact)
        quorum = self.chain.quorum
        for approve, reject, total, members in groups.values():
            if quorum.approved(approve, total):
                return approve, reject, total, members
        for approve, reject, total, members in groups.values():
            if quorum.rejected(reject, total):
                return approve, reject, total, members
        return self._current_tally(groups)

    def _tally(self, txid: bytes) -> None:
        if txid in self._finalizing:
            return
        entry = self._subject(txid)
        if entry is None or entry.state == FINALIZED:
            return
        approve, reject, total, _ = self._weights(entry.votes, txid)
        if self.chain.quorum.approved(approve, total):
            self._finalize(txid)
        elif entry.state == PENDING and \
                self.chain.quorum.rejected(reject, total):
            self._reject(txid, "rejected-by-vote")

    def _finalize(self, txid: bytes) -> None:
        entry = self._subject(txid)
        assert entry is not None
        tx = entry.tx
        holders = self.mempool.holders(tx)
        for holder in sorted(holders):
            if self.mempool.entries[holder].state != PENDING or \
                    holder in self._finalizing:
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
        self._finalizing.add(txid)
        for holder in sorted(holders):
            # Our locked spender lost the vote: unlock it, adopt the winner.
            self._reject(holder, "conflict-finalized")
        if entry.conflict or entry.state == REJECTED:
            if entry.state == REJECTED:
                self.counters["late_finalized"] += 1
                log.warn("tx {txid} finalized by votes after it was "
                         "rejected here", txid=txid.hex())
            self._late.pop(txid, None)
            self._forget_released(txid, delete=False)
            self.mempool.lock(entry)
        self._finalizing.add(txid)
        # canonical({"state", "seq", "tx", "votes"}), spliced from the
        # encodings of the transaction and of each vote.
        record = b'{"seq":%d,"state":"finalized","tx":%b,"votes":[%b]}' % (
            entry.seq, tx.encode(), b",".join(
                v.encode() for v in entry.votes.values()
                if isinstance(v, TxVote)))
        d = self.chain.store.put_tx_record(txid, record)

        def stored(_: object) -> None:
            self._finalizing.discard(txid)
            if self.mempool.entries.get(txid) is not entry:
                return
            self.mempool.finalize(txid)
            for loser in self.mempool.conflicting_with(tx):
                self._reject(loser, "conflict-finalized")
            self._cancel_timeout(txid)
            self.counters["finalized"] += 1
            latency = self.clock.seconds() - entry.received
            for callback in list(self.finalized):
                callback(txid, latency)
            self._fire(txid, FINALIZED)

        def failed(failure: Any) -> None:
            self._finalizing.discard(txid)
            self._store_failed(failure, "finality record", txid)

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

    def _reject(self, txid: bytes, reason: str) -> None:
        if self._queue.get(txid) == APPROVE:
            # Our approval waits in the batch queue: sign it now, so that
            # the release below sees it and protects the inputs.  Else the
            # queued approval is signed after the rejection unlocked them
            # and this node approves a conflicting spender too (two
            # certificates for one output; the simulator found it).
            self.flush_votes()
        entry = self.mempool.entries.get(txid) or \
            self.mempool.contenders.get(txid)
        if entry is None or entry.state != PENDING or \
                txid in self._finalizing:
            return
        self._cancel_timeout(txid)
        self.mempool.reject(txid, reason)
        self._rejected_log(txid, reason)
        if not entry.conflict:
            mine = None if self.key is None else entry.votes.get(
                self.key.public)
            if isinstance(mine, TxVote) and mine.decision == APPROVE and \
                    reason in LATE_REASONS:
                self._release(txid, mine.height, entry.tx)
            else:
                self._delete_record(txid)
        if reason in LATE_REASONS:
            entry.state = REJECTED
            self._late[txid] = (entry, self.clock.seconds()
                                + self.settings.late_ttl)
            while len(self._late) > self.settings.max_late:
                self._late.popitem(last=False)
        self.counters["rejected"] += 1
        self._fire(txid, REJECTED)

    def _rejected_log(self, txid: bytes, reason: str) -> None:
        """
        One line per reason and C{LOG_INTERVAL} (the mempool counts every
        rejection by reason).
        """
        self._ratelog.emit(("rejected", reason), LogLevel.info,
                           "tx {txid} rejected: {reason}", txid=txid.hex(),
                           reason=reason)

    def _release(self, txid: bytes, height: int, tx: Transaction) -> None:
        inputs = tuple(i.prevout for i in tx.inputs)
        self._released[txid] = _Released(height, inputs)
        for outpoint in inputs:
            self._released_inputs[outpoint] = txid
        d = self.chain.store.put_tx_record(txid, canonical({
            "state": RELEASED, "height": height,
            "inputs": [op.key().hex() for op in inputs]}))
        d.addErrback(self._store_failed, "released record", txid)
        while len(self._released) > self.settings.max_released:
            self._forget_released(next(iter(self._released)))

    def _forget_released(self, txid: bytes, delete: bool = True) -> None:
        """
        Forget that this node approved C{txid} (if it did), deleting its
        released record unless another record replaced it.
        """
        released = self._released.pop(txid, None)
        if released is None:
            return
        for outpoint in released.inputs:
            if self._released_inputs.get(outpoint) == txid:
                del self._released_inputs[outpoint]
        if delete:
            self._delete_record(txid)

    def _delete_record(self, txid: bytes) -> None:
        d = self.chain.store.delete_tx_record(txid)
        d.addErrback(self._store_failed, "record deletion", txid)

    def _timed_out(self, txid: bytes) -> None:
        self._timeouts.pop(txid, None)
        entry = self.mempool.entries.get(txid) or \
            self.mempool.contenders.get(txid)
        if entry is not None and entry.state == PENDING and \
                txid not in self._finalizing:
            self._reject(txid, "vote-timeout")

    def _cancel_timeout(self, txid: bytes) -> None:
        call = self._timeouts.pop(txid, None)
        if call is not None and call.active():
            call.cancel()

    def _fire(self, txid: bytes, state: str) -> None:
        for waiter in self._waiters.pop(txid, []):
            waiter.callback(state)

    def wait(self, txid: bytes, timeout: float) -> defer.Deferred[str]:
        """
        Fire with the transaction's state once it is decided (finalized or
        rejected), or with its current state after C{timeout} seconds.
        """
        state = self.mempool.state_of(txid)
        if state in (FINALIZED, REJECTED):
            return defer.succeed(state)

        def cancelled(d: defer.Deferred[str]) -> None:
            waiters = self._waiters.get(txid, [])
            if d in waiters:
                waiters.remove(d)

        d: defer.Deferred[str] = defer.Deferred(cancelled)
        self._waiters.setdefault(txid, []).append(d)

        def expire() -> None:
            waiters = self._waiters.get(txid, [])
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

    # Blocks, certificates, housekeeping ------------------------------------

    def block_connected(self, block: Any) -> None:
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
            self._rejected_log(txid, "conflict-in-block")
            self._cancel_timeout(txid)
            self._delete_record(txid)
            self.counters["rejected"] += 1
            self._fire(txid, REJECTED)
        spent = {txin.prevout for tx in block.txs for txin in tx.inputs}
        for txid, (entry, _) in list(self._late.items()):
            if any(i.prevout in spent for i in entry.tx.inputs):
                del self._late[txid]
        for tx in block.txs:
            self._cancel_timeout(tx.txid)
            self._late.pop(tx.txid, None)
            self._fire(tx.txid, "confirmed")
        for txid, entry in certified:
            self._archive(txid, entry, block.height)
        self._prune_certificates()
        ahead, self._ahead = self._ahead, set()
        for txid in sorted(ahead):
            self._tally(txid)
        for txid in [t for t, r in self._released.items()
                     if r.height + VOTE_HEIGHT_WINDOW < self.chain.height]:
            self._forget_released(txid)
        self._expire_late()

    def _keeps_record(self, txid: bytes) -> bool:
        """
        Whether a block mining C{txid} keeps its record: a finalized
        transaction's record is durable (its entry turns finalized only
        once it is) and holds the votes, so it stays as the certificate
        instead of being deleted and written again as an C{archived} one.
        """
        entry = self.mempool.entries.get(txid)
        return entry is not None and entry.state == FINALIZED

    def _archive(self, txid: bytes, entry: Entry, height: int) -> None:
        self._certs[txid] = height
        self._certs.move_to_end(txid)
        if txid not in self.chain.retired:
            # Its finalized record stayed: it is the certificate.
            return
        # Finalized after the block was validated, so the block's write
        # deleted the record: write the certificate back.
        votes = sorted((v for v in entry.votes.values()
                        if isinstance(v, TxVote)), key=lambda v: v.voter)
        d = self.chain.store.put_tx_record(txid, _archived_record(
            height, votes))
        d.addErrback(self._store_failed, "certificate", txid)

    def _prune_certificates(self) -> None:
        oldest = self.chain.height - self.settings.certificate_blocks
        while self._certs:
            txid, height = next(iter(self._certs.items()))
            if len(self._certs) <= self.settings.max_certificates and \
                    height >= oldest:
                break
            del self._certs[txid]
            self._delete_record(txid)

    def _expire_late(self) -> None:
        now = self.clock.seconds()
        while self._late:
            txid, (_, expires) = next(iter(self._late.items()))
            if expires > now:
                break
            del self._late[txid]

    def open_txids(self, limit: int) -> list[bytes]:
        """
        The transactions whose votes a newly connected peer may complete:
        the undecided ones (pending, contenders) and those rejected here a
        short while ago that a late approval may still finalize
        (C{late_ttl}); the newest C{limit}.
        """
        found = [txid for source in (self.mempool.entries,
                                     self.mempool.contenders)
                 for txid, entry in source.items() if entry.state == PENDING]
        found.extend(self._late)
        return found[-limit:]

    def stalled(self, limit: int = 256) -> list[Transaction]:
        """
        Undecided transactions whose votes peers should be asked for (and
        which should be announced again): undecided C{query_after} seconds
        after admission (or the last query), at most C{max_queries} times
        each, at most C{limit} per call (at most one call a second does
        anything, so re-announcements stay within peers' rate limits).
        Also forgets expired rejected transactions.
        """
        now = self.clock.seconds()
        if now < self._next_scan:
            return []
        self._next_scan = now + min(1.0, self.settings.query_after / 2)
        self._expire_late()
        due: list[Transaction] = []
        for source in (self.mempool.entries, self.mempool.contenders):
            for txid, entry in source.items():
                if len(due) >= limit:
                    return due
                if entry.state == PENDING and entry.query_at <= now and \
                        entry.queries < self.settings.max_queries and \
                        txid not in self._finalizing:
                    entry.queries += 1
                    entry.query_at = now + self.settings.query_after
                    due.append(entry.tx)
        return due

    @defer.inlineCallbacks
    def votes_for(self, txid: bytes) -> Any:
        """
        The votes this node holds on C{txid} (in its mempool, among its
        contenders or recently rejected, or its archived certificate), as
        L{TxVote}s; empty if none.
        """
        entry = self._subject(txid)
        if entry is not None:
            return [v for v in entry.votes.values() if isinstance(v, TxVote)]
        if txid not in self._certs:
            return []
        raw = yield self.chain.store.get_tx_record(txid)
        if raw is None:
            return []
        return [TxVote.from_obj(v) for v in decode(raw).get("votes", [])]

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
        if not votes:
            return None
        approve, reject, total, _ = self._weights(
            {v.voter: v for v in votes}, exact=False)
        approving = [v for v in votes if v.decision == APPROVE]
        return {"votes": votes, "approve_weight": approve,
                "reject_weight": reject, "total_weight": total,
                "certificate": approving
                if self.chain.quorum.approved(approve, total) else None}

    def info(self, txid: bytes) -> dict[str, Any] | None:
        """
        What the node knows of a contender or a recently rejected
        transaction (shaped like L{timecoin.node.Node.transaction}), or
        C{None}.
        """
        entry = self.mempool.contenders.get(txid)
        late = self._late.get(txid)
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

    @property
    def undecided(self) -> int:
        """
        Transactions admitted here and not yet finalized or rejected
        (each holds a vote timeout until it is decided): the backlog RPC
        admission control bounds.
        """
        return len(self._timeouts)

    def vote_state(self) -> dict[str, int]:
        """
        The sizes of all per-transaction vote and lock state (what must
        return to zero once every transaction is decided and mined).
        """
        return {"entries": len(self.mempool.entries),
                "locks": len(self.mempool.locks),
                "contenders": len(self.mempool.contenders),
                "contended": len(self.mempool.contended),
                "late": len(self._late), "queue": len(self._queue),
                "timeouts": len(self._timeouts),
                "finalizing": len(self._finalizing),
                "waiters": sum(len(w) for w in self._waiters.values()),
                "released": len(self._released)}

    # Restart -----------------------------------------------------------------

    @defer.inlineCallbacks
    def recover(self) -> Any:
        """
        Restore the state kept in finality records after a restart:
        finalized transactions (in finalization order), then pending ones
        with their locks (asking the network for their votes at once, and
        voting again if this node's vote was not cast), the inputs this
        masternode approved for rejected spenders, and the index of
        archived certificates.  Records no longer of use are deleted.
        """
        records = yield self.chain.store.load_tx_records()
        by_state: dict[str, list[tuple[int, bytes, dict[str, Any]]]] = {}
        for txid, raw in records:
            obj = decode(raw)
            order = obj.get("seq", obj.get("height", 0))
            by_state.setdefault(obj["state"], []).append((order, txid, obj))
        seqs = [o for state in (FINALIZED, PENDING)
                for o, _, _ in by_state.get(state, [])]
        self.mempool._seq = max(seqs, default=0)
        for height, txid, obj in sorted(by_state.get(RELEASED, [])):
            if height + VOTE_HEIGHT_WINDOW < self.chain.height:
                yield self.chain.store.delete_tx_record(txid)
                continue
            inputs = tuple(OutPoint.from_key(bytes.fromhex(k))
                           for k in obj["inputs"])
            self._released[txid] = _Released(height, inputs)
            for outpoint in inputs:
                self._released_inputs[outpoint] = txid
        restored = {FINALIZED: 0, PENDING: 0}
        certs = [(height, txid) for height, txid, _ in
                 by_state.get(ARCHIVED, [])]
        for state in (FINALIZED, PENDING):
            for _, txid, obj in sorted(by_state.get(state, [])):
                done = yield self._recover_tx(txid, obj, certs)
                restored[state] += done
        for height, txid in sorted(certs):
            self._certs[txid] = height
        self._prune_certificates()
        if restored[FINALIZED] or restored[PENDING]:
            log.info("restored {finalized} finalized and {pending} pending "
                     "transactions", finalized=restored[FINALIZED],
                     pending=restored[PENDING])

    @defer.inlineCallbacks
    def _recover_tx(self, txid: bytes, obj: dict[str, Any],
                    certs: list[tuple[int, bytes]]) -> Any:
        location = yield self.chain.store.get_tx_location(txid)
        if location is not None:
            if obj["state"] == FINALIZED:
                # Mined: its finalized record is its certificate.
                certs.append((location[0], txid))
            else:
                yield self.chain.store.delete_tx_record(txid)
            return 0
        tx = Transaction.from_obj(obj["tx"])
        votes = [TxVote.from_obj(v) for v in obj.get("votes", [])]
        try:
            fee = self.mempool.check(tx)
        except TxInvalid as e:
            log.error("{state} tx {txid} no longer valid after restart: "
                      "{reason}", state=obj["state"], txid=txid.hex(),
                      reason=e.reason)
            yield self.chain.store.delete_tx_record(txid)
            return 0
        entry = self.mempool.add(tx, fee)
        entry.seq = obj["seq"]
        for vote in votes:
            entry.votes[vote.voter] = vote
        if obj["state"] == FINALIZED:
            self.mempool.finalize(txid)
            return 1
        entry.query_at = self.clock.seconds()
        self._timeouts[txid] = self.clock.callLater(
            self.vote_timeout, self._timed_out, txid)
        self._decide(txid)
        return 1


def _overrides(first: TxVote, second: TxVote) -> bool:
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


def _archived_record(height: int, votes: list[TxVote]) -> bytes:
    """
    C{canonical({"state": "archived", "height": .., "votes": ..})}, spliced
    from each vote's kept encoding.
    """
    return b'{"height":%d,"state":"archived","votes":[%b]}' % (
        height, b",".join(v.encode() for v in votes))
