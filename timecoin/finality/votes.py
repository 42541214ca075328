"""
Transaction votes: the decisions a masternode signs, the Merkle batches
that carry many of them under one signature, and their verification.

Votes are signed in batches: one signature covers a Merkle root over many
(txid, decision) leaves at one height (L{TxVoteBatch}), so a node verifies
one signature per batch, not per transaction.  A single L{TxVote} is one
leaf with its Merkle branch; it verifies on its own and is the unit of a
finality certificate.  L{SignatureCache} remembers the batch signatures
verified here.  Encodings: ``docs/encoding.md``.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from timecoin.encoding import (
    canonical,
    need_dict,
    need_int,
    need_list,
    need_str,
    sha256,
    unhex,
)
from timecoin.keys import PrivateKey, verify

TX_VOTE_DOMAIN = b"TIMECOIN/tx-vote"
APPROVE = "approve"
REJECT = "reject"
DECISIONS = {APPROVE: b"\x01", REJECT: b"\x00"}
VOTE_HEIGHT_WINDOW = 10
"""Votes stamped more than this many blocks away from our tip are
dropped (replay protection)."""
RELEASED_BLOCKS = 2 * VOTE_HEIGHT_WINDOW
"""How long a masternode remembers the inputs of a transaction it approved
that was then rejected (and rejects their other spenders): twice the vote
window.  A node whose tip is within the window of two votes counts both,
so an approval and a later rejection by one honest masternode may meet in
one tally while they are at most two windows apart -- with one window, a
replayed payment met 11 blocks after its approval got a rejection, which
other nodes held as equivocation evidence (simulator, lifecycle seed
10)."""
MAX_BATCH_VOTES = 1024
"""Decisions one signed batch may carry."""
MAX_BRANCH = 16
"""Longest Merkle branch a single vote may carry."""


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


def signature_key(voter: bytes, height: int, root: bytes,
                  signature: bytes) -> bytes:
    """
    What L{SignatureCache} remembers of one verified batch signature.
    """
    return sha256(voter + height.to_bytes(8, "big") + root + signature)


# Votes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxVote:
    """
    A masternode's signed decision on one transaction: one leaf of a
    signed batch with its Merkle branch (empty when the batch holds only
    this decision, whose leaf is then the signed root).  Slotted: every
    mempool entry holds one per masternode.
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
        votes are encoded into its finality record).  Not kept: a vote is
        encoded once, into the finalized record, and its encoding (about
        900 bytes with the branch in hex) would otherwise stay as long as
        the vote, four times per payment on a four-masternode network.
        """
        if type(self.height) is int and type(self.index) is int and \
                self.decision in DECISIONS:
            head = '{"branch":["' + '","'.join(
                h.hex() for h in self.branch) + '"],' \
                if self.branch else "{"
            index = f',"index":{self.index}' if self.branch else ""
            return (
                f'{head}"decision":"{self.decision}","height":'
                f'{self.height}{index},"signature":"'
                f'{self.signature.hex()}","txid":"{self.txid.hex()}",'
                f'"voter":"{self.voter.hex()}"}}').encode("ascii")
        return canonical(self.to_obj())

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
            # The generated __init__ (its defaults and checks) skipped:
            # every field is set here.
            vote = _new(TxVote)
            txid, decision = decisions[i]
            _set(vote, "txid", txid)
            _set(vote, "decision", decision)
            _set(vote, "height", height)
            _set(vote, "voter", voter)
            _set(vote, "signature", signature)
            _set(vote, "index", i)
            _set(vote, "branch", merkle_branch(levels, i))
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
_set = object.__setattr__


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


class SignatureCache:
    """
    The batch signatures verified here, the newest C{size} of them: a
    batch's signature is verified once, and a single vote cut from it
    later costs no verification.  Each real verification is counted
    (C{vote_signature_checks} in C{counters}).
    """

    def __init__(self, network: str, size: int,
                 counters: Counter[str]) -> None:
        self.network = network
        self.size = size
        self._counters = counters
        # A set and the order of first sight: 115 bytes a key where an
        # ordered dict took 170 (benchmarks/memory_sizes.py).
        self._good: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def remember(self, key: bytes) -> None:
        """
        Remember a verified (or self-made) signature's L{signature_key}.
        """
        if key in self._good:
            return
        self._good.add(key)
        self._order.append(key)
        while len(self._order) > self.size:
            self._good.discard(self._order.popleft())

    def remember_batch(self, batch: TxVoteBatch) -> None:
        """
        Remember the signature of a batch signed here.
        """
        self.remember(signature_key(batch.voter, batch.height, batch.root(),
                                    batch.signature))

    def vote_ok(self, vote: TxVote) -> bool:
        """
        Whether C{vote}'s branch and signature verify (verifying only a
        signature not seen yet).
        """
        root = vote.root()
        if root is None:
            return False
        key = signature_key(vote.voter, vote.height, root, vote.signature)
        if key in self._good:
            return True
        self._counters["vote_signature_checks"] += 1
        if not verify(vote.voter, TX_VOTE_DOMAIN,
                      tx_votes_message(self.network, vote.height, root),
                      vote.signature):
            return False
        self.remember(key)
        return True

    def batch_ok(self, batch: TxVoteBatch) -> bool:
        """
        Whether C{batch}'s signature verifies (verifying only a signature
        not seen yet).
        """
        key = signature_key(batch.voter, batch.height, batch.root(),
                            batch.signature)
        if key in self._good:
            return True
        self._counters["vote_signature_checks"] += 1
        if not tx_votes_ok(batch, self.network):
            return False
        self.remember(key)
        return True
