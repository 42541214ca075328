"""
The signed messages of block consensus: L{Proposal} and L{BlockVote}
(prevote or precommit), what each signs, signing and verification.

Pure: no state, no I/O.  A precommit signs exactly what a commit
certificate's votes sign (L{timecoin.block.block_vote_message}), so the
precommits of a quorum are the block's certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timecoin.block import BLOCK_VOTE_DOMAIN, Block, block_vote_message
from timecoin.encoding import (
    ZERO_HASH,
    EncodingError,
    canonical,
    hash_obj,
    need_dict,
    need_int,
    need_str,
    unhex,
)
from timecoin.keys import PrivateKey, verify

PREVOTE = "prevote"
PRECOMMIT = "precommit"
PREVOTE_DOMAIN = b"TIMECOIN/block-prevote"
PROPOSAL_DOMAIN = b"TIMECOIN/proposal"
NIL = ZERO_HASH
"""The block hash of a nil vote."""


@dataclass(frozen=True)
class BlockVote:
    """
    A signed prevote or precommit for a block (or nil) at (height, round).
    A precommit signs exactly what a commit certificate's votes sign.
    """

    phase: str
    height: int
    round: int
    block_hash: bytes
    voter: bytes
    signature: bytes

    def to_obj(self) -> dict[str, Any]:
        return {"phase": self.phase, "height": self.height,
                "round": self.round, "block_hash": self.block_hash.hex(),
                "voter": self.voter.hex(), "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> BlockVote:
        need_dict(obj, "block vote", {"phase", "height", "round",
                                      "block_hash", "voter", "signature"})
        phase = need_str(obj["phase"], "phase", 16)
        if phase not in (PREVOTE, PRECOMMIT):
            raise EncodingError(f"unknown vote phase {phase!r}")
        return cls(phase, need_int(obj["height"], "height"),
                   need_int(obj["round"], "round", 0, 1_000_000),
                   unhex(obj["block_hash"], 32, "block_hash"),
                   unhex(obj["voter"], 32, "voter"),
                   unhex(obj["signature"], 64, "signature"))

    @property
    def id(self) -> bytes:
        return hash_obj(self.to_obj())


def _vote_domain(phase: str) -> bytes:
    return BLOCK_VOTE_DOMAIN if phase == PRECOMMIT else PREVOTE_DOMAIN


def sign_vote(key: PrivateKey, network: str, phase: str, height: int,
              round: int, block_hash: bytes) -> BlockVote:
    """
    A prevote or precommit signed by C{key}.
    """
    msg = block_vote_message(network, height, round, block_hash)
    return BlockVote(phase, height, round, block_hash, key.public,
                     key.sign(_vote_domain(phase), msg))


def vote_signature_ok(vote: BlockVote, network: str) -> bool:
    """
    Whether C{vote}'s signature verifies.
    """
    return verify(vote.voter, _vote_domain(vote.phase), block_vote_message(
        network, vote.height, vote.round, vote.block_hash), vote.signature)


@dataclass(frozen=True)
class Proposal:
    """
    A proposer's signed proposal of C{block} for (height, round).
    C{valid_round} is the round of the prevote quorum that justifies
    re-proposing an earlier block, or -1.
    """

    block: Block
    round: int
    valid_round: int
    proposer: bytes
    signature: bytes

    @property
    def height(self) -> int:
        return self.block.height

    def to_obj(self) -> dict[str, Any]:
        return {"block": self.block.to_obj(), "round": self.round,
                "valid_round": self.valid_round,
                "proposer": self.proposer.hex(),
                "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> Proposal:
        need_dict(obj, "proposal", {"block", "round", "valid_round",
                                    "proposer", "signature"})
        return cls(Block.from_obj(obj["block"]),
                   need_int(obj["round"], "round", 0, 1_000_000),
                   need_int(obj["valid_round"], "valid_round", -1,
                            1_000_000),
                   unhex(obj["proposer"], 32, "proposer"),
                   unhex(obj["signature"], 64, "signature"))

    @property
    def id(self) -> bytes:
        """
        The gossip deduplication id (covers the signed fields).
        """
        return hash_obj({"h": self.height, "r": self.round,
                         "vr": self.valid_round, "b": self.block.hash.hex(),
                         "p": self.proposer.hex(),
                         "s": self.signature.hex()})


def proposal_message(network: str, height: int, round: int,
                     block_hash: bytes, valid_round: int) -> bytes:
    """
    What a proposer signs.
    """
    return canonical({"network": network, "height": height, "round": round,
                      "block_hash": block_hash.hex(),
                      "valid_round": valid_round})


def sign_proposal(key: PrivateKey, network: str, block: Block, round: int,
                  valid_round: int) -> Proposal:
    """
    A proposal of C{block} signed by C{key}.
    """
    msg = proposal_message(network, block.height, round, block.hash,
                           valid_round)
    return Proposal(block, round, valid_round, key.public,
                    key.sign(PROPOSAL_DOMAIN, msg))


def proposal_signature_ok(proposal: Proposal, network: str) -> bool:
    """
    Whether C{proposal}'s signature verifies.
    """
    return verify(proposal.proposer, PROPOSAL_DOMAIN, proposal_message(
        network, proposal.height, proposal.round, proposal.block.hash,
        proposal.valid_round), proposal.signature)


Signed = Proposal | BlockVote
"""A proposal or vote: what a masternode signs in block consensus."""
