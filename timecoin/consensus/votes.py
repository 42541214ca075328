"""
Vote bookkeeping of block consensus: L{VoteBook}, the prevotes and
precommits of one height per (phase, round), with the conflicting votes of
equivocators, and their tallies over the committee's weights; and
L{late_precommit}, which adds a precommit that came after the commit to
the tip's certificate.
"""

from __future__ import annotations

from collections.abc import Callable

from timecoin.block import CommitCertificate, Vote
from timecoin.chain import Chain
from timecoin.consensus.evidence import EvidenceLog
from timecoin.consensus.messages import BlockVote, vote_signature_ok

MAX_CONFLICTING = 4
"""Conflicting votes kept per equivocating voter, phase and round.  They
count in the tally of the block they name (as they would at a node that
saw only them): a prevote quorum for a block may include an
equivocator's vote that this node saw second, and without it the quorum
could never be verified here -- a stall the simulator found."""

Box = dict[bytes, BlockVote]
"""The votes of one (phase, round), by voter."""


class VoteBook:
    """
    The signed votes of one height.

    @ivar votes: the first vote of each voter, per (phase, round).
    @ivar conflicting: the further votes of equivocators (at most
        L{MAX_CONFLICTING} each), per (phase, round), by voter and block
        hash.
    """

    def __init__(self, network: str, height: int,
                 evidence: EvidenceLog) -> None:
        self.network = network
        self.height = height
        self.evidence = evidence
        self.votes: dict[tuple[str, int], Box] = {}
        self.conflicting: dict[tuple[str, int], dict[bytes, Box]] = {}

    def add(self, v: BlockVote, weights: dict[bytes, int]) -> str | None:
        """
        Take C{v} (of this height, a round not too far ahead) from a voter
        weighted in C{weights}.  Returns a reason code when it is not
        counted: C{vote-not-masternode}, C{duplicate},
        C{equivocating-vote} (a second vote of a voter: evidence, and kept
        as conflicting if its signature verifies), C{bad-vote-signature}.
        """
        if v.voter not in weights:
            return "vote-not-masternode"
        box = self.votes.setdefault((v.phase, v.round), {})
        known = box.get(v.voter)
        if known is not None:
            if known.block_hash == v.block_hash:
                return "duplicate"
            extra = self.conflicting.setdefault(
                (v.phase, v.round), {}).setdefault(v.voter, {})
            if v.block_hash in extra:
                return "duplicate"
            if vote_signature_ok(v, self.network):
                self.evidence.equivocation(v.phase, v.voter, self.height,
                                           v.round, known.block_hash,
                                           v.block_hash)
                if len(extra) < MAX_CONFLICTING:
                    extra[v.block_hash] = v
            return "equivocating-vote"
        if not vote_signature_ok(v, self.network):
            return "bad-vote-signature"
        box[v.voter] = v
        return None

    def tally(self, phase: str, round: int,
              weights: dict[bytes, int]) -> dict[bytes, int]:
        """
        The weight behind each block hash in (C{phase}, C{round}),
        conflicting votes of equivocators included.
        """
        out: dict[bytes, int] = {}
        for voter, vote in self.votes.get((phase, round), {}).items():
            out[vote.block_hash] = out.get(vote.block_hash, 0) + \
                weights.get(voter, 0)
        for voter, extra in self.conflicting.get((phase, round), {}).items():
            for block_hash in extra:
                out[block_hash] = out.get(block_hash, 0) + \
                    weights.get(voter, 0)
        return out

    def votes_for(self, phase: str, round: int,
                  block_hash: bytes) -> list[BlockVote]:
        """
        Every signed vote of (phase, round) for C{block_hash}, conflicting
        ones of equivocators included.
        """
        found = [v for v in self.votes.get((phase, round), {}).values()
                 if v.block_hash == block_hash]
        for extra in self.conflicting.get((phase, round), {}).values():
            if block_hash in extra:
                found.append(extra[block_hash])
        return found

    def votes_in(self, phase: str, round: int) -> list[BlockVote]:
        """
        The first vote of each voter in (C{phase}, C{round}).
        """
        return list(self.votes.get((phase, round), {}).values())

    def vote_of(self, voter: bytes, phase: str,
                round: int) -> BlockVote | None:
        """
        The first vote of C{voter} in (C{phase}, C{round}), if any.
        """
        return self.votes.get((phase, round), {}).get(voter)

    def rounds(self, phase: str) -> set[int]:
        """
        The rounds with a box of C{phase} votes.
        """
        return {r for p, r in self.votes if p == phase}

    def has_round(self, round: int) -> bool:
        """
        Whether a box of votes of C{round} exists.
        """
        return any(k[1] == round for k in self.votes)

    def voters_since(self, round: int) -> set[bytes]:
        """
        The voters heard from in C{round} or later.
        """
        return {voter for (_, r), box in self.votes.items()
                if r >= round for voter in box}

    def voters_after(self, round: int) -> dict[int, set[bytes]]:
        """
        The voters of each round later than C{round}.
        """
        later: dict[int, set[bytes]] = {}
        for (_, r), box in self.votes.items():
            if r > round:
                for voter in box:
                    later.setdefault(r, set()).add(voter)
        return later


def late_precommit(chain: Chain, v: BlockVote,
                   count: Callable[[str], None]) -> str | None:
    """
    A precommit for the tip that came after this node committed it:
    added to the tip's commit certificate, which the next block carries,
    so the certificate holds every precommit this node has, not only the
    first quorum (proof of service reads who signed).  Returns a reason
    code when it is not added; counts C{late-precommits} when it is.
    """
    cert = chain.tip_commit
    if cert is None or (v.round, v.block_hash) != (cert.round,
                                                   cert.block_hash):
        return "wrong-height"
    if any(known.voter == v.voter for known in cert.votes):
        return "duplicate"
    if v.voter not in {m.pubkey for m in chain.committee_for(v.height)}:
        return "vote-not-masternode"
    if not vote_signature_ok(v, chain.network.name):
        return "bad-vote-signature"
    chain.tip_commit = CommitCertificate(
        cert.height, cert.round, cert.block_hash, tuple(sorted(
            (*cert.votes, Vote(v.voter, v.signature)),
            key=lambda vote: vote.voter)))
    count("late-precommits")
    return None
