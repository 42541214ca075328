"""
The proposals of one height (L{ProposalBook}): the checks a received
proposal passes, the first proposal of each round, and whether a proposed
block is valid (validated once per height against the chain).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import BlockInvalid, Chain
from timecoin.consensus.evidence import EvidenceLog
from timecoin.consensus.messages import Proposal, proposal_signature_ok

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""


class ProposalBook:
    """
    The proposals of one height.

    @ivar proposals: the first proposal of each round.
    @ivar valid_blocks: whether each block proposed at this height is
        valid, by hash (each is validated once).
    """

    def __init__(self, chain: Chain, height: int, evidence: EvidenceLog,
                 proposer: Callable[[int], bytes | None]) -> None:
        """
        @param proposer: the proposer of a round at this height.
        """
        self.chain = chain
        self.height = height
        self.evidence = evidence
        self.proposer = proposer
        self.proposals: dict[int, Proposal] = {}
        self.valid_blocks: dict[bytes, bool] = {}

    def add(self, p: Proposal) -> str | None:
        """
        Take C{p} (of this height, a round not too far ahead).  Returns a
        reason code when it is dropped: C{not-the-proposer},
        C{bad-valid-round}, C{bad-proposal-signature}, C{duplicate},
        C{equivocating-proposal} (a second block of the round's proposer:
        evidence).
        """
        if p.proposer != self.proposer(p.round):
            return "not-the-proposer"
        if p.valid_round >= p.round:
            return "bad-valid-round"
        if not proposal_signature_ok(p, self.chain.network.name):
            return "bad-proposal-signature"
        known = self.proposals.get(p.round)
        if known is not None:
            if known.block.hash == p.block.hash:
                return "duplicate"
            self.evidence.equivocation("proposal", p.proposer, self.height,
                                       p.round, known.block.hash,
                                       p.block.hash)
            return "equivocating-proposal"
        self.proposals[p.round] = p
        return None

    def block(self, block_hash: bytes) -> Block | None:
        """
        The block of that hash proposed in some round, if any.
        """
        for proposal in self.proposals.values():
            if proposal.block.hash == block_hash:
                return proposal.block
        return None

    def block_valid(self, block: Block) -> bool:
        """
        Whether C{block} passes the chain's block validation (asked once
        per block; an invalid one is logged).
        """
        known = self.valid_blocks.get(block.hash)
        if known is None:
            try:
                self.chain.validate_block(block)
                known = True
            except BlockInvalid as e:
                log.info("invalid proposed block {hash}: {reason}",
                         hash=block.hash.hex(), reason=str(e))
                known = False
            self.valid_blocks[block.hash] = known
        return known
