"""
The Tendermint rules of one height (L{RoundRules}): when a precommit
quorum commits a block, when a late prevote quorum makes a block the
valid one, when more than a third of the weight in a later round skips
ahead, and, in the current round, when this node prevotes, locks,
precommits and arms the prevote and precommit timeouts.  It keeps the
state these rules write: the lock, the valid block, and which one-shot
triggers fired in each round.

The state machine it drives (heights, rounds, steps, what this node
signs) is L{timecoin.consensus.engine.BlockConsensus}, seen through
L{RoundMachine}.
"""

from __future__ import annotations

from typing import Protocol

from timecoin.block import Block
from timecoin.consensus.commit import Committer
from timecoin.consensus.committee import Committee
from timecoin.consensus.messages import NIL, PRECOMMIT, PREVOTE, BlockVote
from timecoin.consensus.proposals import ProposalBook
from timecoin.consensus.signing import Restored
from timecoin.consensus.votes import VoteBook

__all__ = ["PROPOSE", "STEP_PRECOMMIT", "STEP_PREVOTE", "WAITING",
           "RoundMachine", "RoundRules"]

PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT, WAITING = (
    "propose", "prevote", "precommit", "waiting")


class RoundMachine(Protocol):
    """
    What the rules read and drive of the round state machine.
    """

    height: int
    round: int
    step: str
    committee: Committee
    proposal_book: ProposalBook
    vote_book: VoteBook

    def vote(self, phase: str, block_hash: bytes) -> None:
        """Sign and take C{phase} for C{block_hash} in the current round
        (if this node votes and may)."""

    def start_round(self, height: int, round: int) -> None:
        """Enter C{round} of C{height}."""

    def arm_timeout(self, phase: str, round: int) -> None:
        """Start the C{phase} (prevote or precommit) timeout of
        C{round}."""


class RoundRules:
    """
    The rules of the current height, and the lock and valid block they
    keep (L{reset} at each height).  The books and the committee are read
    from the machine as they are now: a block committed while the rules
    run (a re-entrant vote) moves the machine to the next height, and
    what follows reads that height's.

    @ivar locked: the (round, block hash) this node is locked on.
    @ivar valid: the (round, block) of the newest prevote quorum seen for
        a proposed block (the block this node re-proposes).
    @ivar valid_restored: the valid block is the lock restored after a
        restart: its prevote quorum is not known here any more.
    """

    def __init__(self, machine: RoundMachine, committer: Committer) -> None:
        self.machine = machine
        self.committer = committer
        self.reset()

    def reset(self) -> None:
        """
        A new height: no lock, no valid block, no trigger fired.
        """
        self.locked: tuple[int, bytes] | None = None
        self.valid: tuple[int, Block] | None = None
        self.valid_restored = False
        self._fired: set[tuple[str, int]] = set()

    @property
    def committee(self) -> Committee:
        """The committee of the machine's height."""
        return self.machine.committee

    @property
    def proposal_book(self) -> ProposalBook:
        """The proposals of the machine's height."""
        return self.machine.proposal_book

    @property
    def vote_book(self) -> VoteBook:
        """The votes of the machine's height."""
        return self.machine.vote_book

    def restore(self, restored: Restored) -> None:
        """
        Take back the lock (and valid block) this node had before a
        restart.
        """
        self.locked = restored.lock
        if restored.valid is not None:
            self.valid = restored.valid
            self.valid_restored = True

    def proposal_value(self) -> tuple[int, Block] | None:
        """
        What this node proposes when it is the proposer: its valid block
        and the round of its prevote quorum (-1 if restored, whose quorum
        is not known here), or C{None} for a new block.
        """
        if self.valid is None:
            return None
        valid_round, block = self.valid
        if self.valid_restored:
            valid_round = -1
        return valid_round, block

    def proofs(self, round: int) -> list[BlockVote]:
        """
        The votes that justify this node's state in C{round}: the
        prevote quorum of its valid block, then every prevote and
        precommit it holds of C{round}.
        """
        proofs: list[BlockVote] = []
        if self.valid is not None:
            valid_round, block = self.valid
            proofs = self.vote_book.votes_for(PREVOTE, valid_round,
                                              block.hash)
        proofs += [v for phase in (PREVOTE, PRECOMMIT)
                   for v in self.vote_book.votes_in(phase, round)
                   if v not in proofs]
        return proofs

    def _tally(self, phase: str, round: int) -> dict[bytes, int]:
        weights, _ = self.committee.weights()
        return self.vote_book.tally(phase, round, weights)

    def _quorum(self, weight: int) -> bool:
        return self.committee.quorum(weight)

    def _block_valid(self, block: Block) -> bool:
        return self.proposal_book.block_valid(block)

    def evaluate(self) -> None:
        """
        Apply the rules to the messages of the height: commit, learn the
        valid block, skip rounds, then the rules of the current round.
        """
        machine = self.machine
        # Commit: a precommit quorum for a proposed block, in any round.
        for (phase, round), _ in list(self.vote_book.votes.items()):
            if phase != PRECOMMIT:
                continue
            for block_hash, weight in self._tally(PRECOMMIT, round).items():
                if block_hash == NIL or not self._quorum(weight):
                    continue
                block = self.proposal_book.block(block_hash)
                if block is not None and self._block_valid(block):
                    self.committer.commit(block, round,
                                          self.vote_book.votes_for(
                                              PRECOMMIT, round, block_hash))
                    return
        self._learn_valid()
        # Round skip: more than a third of the weight is in a later round.
        later = self.vote_book.voters_after(machine.round)
        weights, _ = self.committee.weights()
        for round in sorted(later, reverse=True):
            voters = set().union(*(later[r] for r in later if r >= round))
            if self.committee.more_than_third(
                    sum(weights[v] for v in voters)):
                machine.start_round(machine.height, round)
                return
        self._evaluate_round(machine.round)

    def _learn_valid(self) -> None:
        """
        Take as valid block the newest one of an earlier round that has a
        prevote quorum here (its votes arrived late, or re-sent as a proof
        of lock), so that this node, as proposer, re-proposes it.  Without
        it, a node locked on that block waits for its own turn to propose,
        as nothing else can gather its prevote -- rounds of growing
        timeouts with seven masternodes, two of them Byzantine (the
        simulator found it).  Safe: receivers check the quorum of the
        proposal's valid round against their own locks.
        """
        floor = -1 if self.valid is None else self.valid[0]
        for round in sorted({r for r in self.vote_book.rounds(PREVOTE)
                             if floor < r < self.machine.round},
                            reverse=True):
            proposal = self.proposal_book.proposals.get(round)
            if proposal is not None and self._quorum(self._tally(
                    PREVOTE, round).get(proposal.block.hash, 0)) and \
                    self._block_valid(proposal.block):
                self.valid = (round, proposal.block)
                self.valid_restored = False
                return

    def _evaluate_round(self, r: int) -> None:
        machine = self.machine
        proposal = self.proposal_book.proposals.get(r)
        prevotes = self._tally(PREVOTE, r)
        if machine.step == PROPOSE and proposal is not None:
            block = proposal.block
            vr = proposal.valid_round
            if vr == -1:
                ok = self._block_valid(block) and (
                    self.locked is None or self.locked[1] == block.hash)
                machine.step = STEP_PREVOTE
                machine.vote(PREVOTE, block.hash if ok else NIL)
                return self._evaluate_round(r)
            if self._quorum(self._tally(PREVOTE, vr).get(block.hash, 0)):
                ok = self._block_valid(block) and (
                    self.locked is None or self.locked[0] <= vr
                    or self.locked[1] == block.hash)
                machine.step = STEP_PREVOTE
                machine.vote(PREVOTE, block.hash if ok else NIL)
                return self._evaluate_round(r)
        if machine.step == STEP_PREVOTE and ("prevote-any", r) not in \
                self._fired and self._quorum(sum(prevotes.values())):
            self._fired.add(("prevote-any", r))
            machine.arm_timeout(PREVOTE, r)
        if proposal is not None and machine.step in (STEP_PREVOTE,
                                                     STEP_PRECOMMIT) \
                and ("polka", r) not in self._fired \
                and self._quorum(prevotes.get(proposal.block.hash, 0)) \
                and self._block_valid(proposal.block):
            self._fired.add(("polka", r))
            self.valid = (r, proposal.block)
            self.valid_restored = False
            if machine.step == STEP_PREVOTE:
                self.locked = (r, proposal.block.hash)
                machine.step = STEP_PRECOMMIT
                machine.vote(PRECOMMIT, proposal.block.hash)
                return self._evaluate_round(r)
        if machine.step == STEP_PREVOTE and \
                self._quorum(prevotes.get(NIL, 0)):
            machine.step = STEP_PRECOMMIT
            machine.vote(PRECOMMIT, NIL)
            return self._evaluate_round(r)
        precommits = self._tally(PRECOMMIT, r)
        if ("precommit-any", r) not in self._fired and \
                self._quorum(sum(precommits.values())):
            self._fired.add(("precommit-any", r))
            machine.arm_timeout(PRECOMMIT, r)
        return None
