"""
L{BlockConsensus}: the round state machine of one node (heights, rounds,
steps, step timeouts, what it signs, the restart at the round it last
signed in), and the coordinator of
the objects that keep the rest: who takes part (L{Committee}), the checks
and buffer of received messages (L{Intake}), the proposals
(L{ProposalBook}) and votes (L{VoteBook}) of the height, the
equivocations seen (L{EvidenceLog}), the durable record of what it signed
(L{SigningRecord}), its own messages and their re-broadcast
(L{Outgoing}), its timers (L{RoundTimers}), the commit of a decided
block (L{Committer}), the rules of the height with its lock and valid
block (L{RoundRules}) and the re-broadcast and catching up
(L{CatchUp}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain
from timecoin.consensus.catchup import CatchUp
from timecoin.consensus.commit import Committer
from timecoin.consensus.committee import Committee
from timecoin.consensus.evidence import EvidenceLog
from timecoin.consensus.intake import Intake
from timecoin.consensus.messages import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    BlockVote,
    Proposal,
    Signed,
    sign_proposal,
    sign_vote,
)
from timecoin.consensus.outgoing import Outgoing
from timecoin.consensus.proposals import ProposalBook
from timecoin.consensus.rules import (
    PROPOSE,
    STEP_PRECOMMIT,
    STEP_PREVOTE,
    WAITING,
    RoundRules,
)
from timecoin.consensus.signing import SIGN_STEPS, SigningRecord, SigningState
from timecoin.consensus.timers import RoundTimers
from timecoin.consensus.votes import Box, VoteBook
from timecoin.keys import PrivateKey
from timecoin.masternodes import Snapshot

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""


class BlockConsensus:
    """
    The block-consensus state machine of one node for the current height.

    @ivar outbox: emitted with every proposal and vote this node signs
        (the P2P layer gossips them).
    @ivar committed: emitted with every block this node commits.
    @ivar synced: whether this node is caught up (block sync replaces it).
    """

    def __init__(self, chain: Chain, key: PrivateKey | None,
                 clock: IReactorTime, block_time: float,
                 round_timeout: float,
                 build_block: Callable[[int], Block],
                 synced: Callable[[], bool] = lambda: True) -> None:
        self.chain = chain
        self.key = key
        self.clock = clock
        self.block_time = block_time
        self.round_timeout = round_timeout
        self.build_block = build_block
        self.synced = synced
        self.outgoing = Outgoing()
        self.outbox = self.outgoing.outbox
        self.committer = Committer(chain, self._count)
        self.committed = self.committer.committed
        self.counters: dict[str, int] = {}
        self.running = False
        self.record = SigningRecord(chain.store, self._count)
        self.evidence_log = EvidenceLog(clock, self._count)
        self.timers = RoundTimers(clock, round_timeout, self._count)
        self.intake = Intake(chain, self._count)
        self.rules = RoundRules(self, self.committer)
        self.catchup = CatchUp(self, self.outgoing, self.timers,
                               self.committer, self.rules, self._count)
        self._reset(chain.height + 1)
        chain.block_connected.connect(self._block_connected)

    # State ---------------------------------------------------------------

    def _reset(self, height: int) -> None:
        self.height = height
        self.round = 0
        self.step = WAITING
        self.rules.reset()
        self.committee = Committee(self.chain, height)
        self.proposal_book = ProposalBook(self.chain, height,
                                          self.evidence_log,
                                          self.committee.proposer)
        self.vote_book = VoteBook(self.chain.network.name, height,
                                  self.evidence_log)
        self.outgoing.reset()
        self.timers.reset()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    @property
    def locked(self) -> tuple[int, bytes] | None:
        """The (round, block hash) this node is locked on."""
        return self.rules.locked

    @property
    def valid(self) -> tuple[int, Block] | None:
        """The (round, block) of the newest prevote quorum seen."""
        return self.rules.valid

    @property
    def proposals(self) -> dict[int, Proposal]:
        """The first proposal of each round at this height."""
        return self.proposal_book.proposals

    @property
    def votes(self) -> dict[tuple[str, int], Box]:
        """The first vote of each voter per (phase, round) at this height."""
        return self.vote_book.votes

    @property
    def conflicting(self) -> dict[tuple[str, int], dict[bytes, Box]]:
        """The further votes of equivocators at this height."""
        return self.vote_book.conflicting

    @property
    def evidence(self) -> list[dict[str, Any]]:
        """Equivocations seen (bounded), newest last."""
        return self.evidence_log.evidence

    @property
    def offences(self) -> dict[bytes, int]:
        """Equivocations counted per masternode key (its score)."""
        return self.evidence_log.offences

    @property
    def _mine(self) -> list[Signed]:
        """What this node signed at this height."""
        return self.outgoing.mine

    @property
    def signed(self) -> SigningState | None:
        """What this node signed last (see L{SigningState})."""
        return self.record.signed

    @property
    def snapshot(self) -> Snapshot:
        """
        Who proposes and votes at the current height: its committee (the
        whole snapshot unless the network sets a committee size).
        """
        return self.committee.members

    @property
    def is_voter(self) -> bool:
        """
        Whether this node votes at the current height.
        """
        return self.key is not None and \
            self.committee.includes(self.key.public)

    def timeout(self, round: int) -> float:
        """
        The propose/prevote/precommit timeout of C{round}: it grows
        linearly with the round, capped at ten times the first.
        """
        return self.round_timeout * min(1 + round, 10)

    # Lifecycle -----------------------------------------------------------

    def load_signing_state(self) -> Any:
        """
        Read what this node signed last from the store (before L{start}).
        """
        return self.record.load()

    def start(self) -> None:
        """
        Take part from the next height on (the nodes outside the snapshot
        follow the rounds and sign nothing).
        """
        self.running = True
        self._reset(self.chain.height + 1)
        self._restore_lock()
        self._schedule_height()
        self.timers.heartbeat(self.catchup.rebroadcast)

    def stop(self) -> None:
        """
        Stop taking part; cancel every timer.
        """
        self.running = False
        self._reset(self.height)
        self.timers.stop_heartbeat()

    def _schedule_height(self) -> None:
        due = self.chain.tip.header.timestamp / 1000.0 + self.block_time
        # At most one block time from now: a node whose clock runs behind
        # the tip's producer would otherwise start its rounds late and, as
        # proposer, always miss the others' propose timeout (the
        # simulator's clock skew found it).
        delay = min(max(0.0, due - self.clock.seconds()), self.block_time)
        self.timers.later(delay, self.start_round, self.height, self.round)

    def _restore_lock(self) -> None:
        """
        After a restart at the height it last signed at, rejoin at the
        round it signed in, with the lock it had.
        """
        restored = self.record.restored(self.height)
        if restored is None:
            return
        self.round = restored.round
        self.rules.restore(restored)
        for vote in restored.votes:
            self.outgoing.mine.append(vote)
            self.receive(vote)

    def _block_connected(self, block: Block) -> None:
        if block.height + 1 <= self.height:
            return
        self._reset(block.height + 1)
        if self.running:
            self._schedule_height()
        for message in self.intake.drain():
            self.receive(message)

    # Rounds --------------------------------------------------------------

    def start_round(self, height: int, round: int) -> None:
        """
        Enter C{round} of C{height} (if still current): propose if this
        node is its proposer, arm the propose timeout, replay what came
        for it.
        """
        if height != self.height or not self.running:
            return
        self.round = round
        self.step = PROPOSE
        self.timers.round_started()
        if round:
            self._count("round-changes")
            log.info("height {height} moves to round {round}",
                     height=height, round=round)
        proposer = self.committee.proposer(round)
        if self.key is not None and self.is_voter and self.synced() and \
                proposer == self.key.public and self._may_sign(
                    round, SIGN_STEPS["proposal"], None):
            self._propose(round)
        self.timers.later(self.timeout(round), self._timeout_propose, height,
                          round)
        self._replay(round)

    def _propose(self, round: int) -> None:
        assert self.key is not None
        value = self.rules.proposal_value()
        if value is not None:
            valid_round, block = value
        else:
            valid_round, block = -1, self.build_block(round)
        proposal = sign_proposal(self.key, self.chain.network.name, block,
                                 round, valid_round)
        self._count("proposed")
        self._send(proposal)
        self.receive(proposal)

    def _may_sign(self, round: int, step: int,
                  block_hash: bytes | None) -> bool:
        """
        Whether this node may sign at (current height, C{round}, C{step})
        without contradicting what it signed before (a proposal, whose
        block is built anew, only at a later step).
        """
        return self.record.may_sign(self.height, round, step, block_hash)

    def _send(self, message: Signed) -> None:
        """
        Record C{message} as signed, durably, then let it leave the node.
        """
        def recorded() -> None:
            if message.height == self.height:
                self.outgoing.deliver(message)

        self.record.record(message, self.locked, self.proposal_book.block,
                           recorded)

    def resume(self) -> None:
        """
        Block sync reports that this node caught up (L{CatchUp.resume}).
        """
        self.catchup.resume()

    def vote(self, phase: str, block_hash: bytes) -> None:
        """
        Sign C{phase} for C{block_hash} in the current round and take it,
        if this node votes, is synced (else the vote is missed, see
        L{CatchUp.sign_missed}) and may sign it.
        """
        if not self.is_voter:
            return
        if not self.synced():
            self.outgoing.unsigned.add((phase, self.round))
            return
        if not self._may_sign(self.round, SIGN_STEPS[phase], block_hash):
            return
        assert self.key is not None
        vote = sign_vote(self.key, self.chain.network.name, phase,
                         self.height, self.round, block_hash)
        self._send(vote)
        self.receive(vote)

    def _timeout_propose(self, height: int, round: int) -> None:
        if (height, round, self.step) == (self.height, self.round, PROPOSE):
            self._count("timeouts-propose")
            self.step = STEP_PREVOTE
            self.vote(PREVOTE, NIL)

    def _timeout_prevote(self, height: int, round: int) -> None:
        if (height, round, self.step) == (self.height, self.round,
                                          STEP_PREVOTE):
            self._count("timeouts-prevote")
            self.step = STEP_PRECOMMIT
            self.vote(PRECOMMIT, NIL)

    def _timeout_precommit(self, height: int, round: int) -> None:
        if (height, round) == (self.height, self.round):
            self._count("timeouts-precommit")
            self.start_round(height, round + 1)

    # Messages ------------------------------------------------------------

    def receive(self, message: object) -> str | None:
        """
        Take a proposal or vote from the network (or ourselves).  Returns
        a reason code when it is dropped, else C{None}; the caller relays
        only accepted messages.
        """
        if isinstance(message, Proposal):
            reason = self.intake.proposal(message, self.height, self.round,
                                          self.proposal_book)
        elif isinstance(message, BlockVote):
            reason = self.intake.vote(message, self.height, self.round,
                                      self.vote_book, self.committee.weights)
        else:
            reason = "unknown-message"
        self._count(reason or "accepted")
        if reason is None or reason == "equivocating-vote":
            self._evaluate()
        return reason

    def online(self) -> set[bytes]:
        """
        The masternodes heard from at the current height in the current
        or the previous round (their votes), and this node if it votes.
        """
        found = self.vote_book.voters_since(self.round - 1)
        if self.key is not None and self.is_voter and self.running:
            found.add(self.key.public)
        return found

    def _replay(self, round: int) -> None:
        if round in self.proposals or self.vote_book.has_round(round):
            self._evaluate()

    # The rules -----------------------------------------------------------

    def _evaluate(self) -> None:
        if not self.running or self.committer.busy:
            return
        self.rules.evaluate()

    def arm_timeout(self, phase: str, round: int) -> None:
        """
        Start the C{phase} (prevote or precommit) timeout of C{round} at
        the current height.
        """
        expired = self._timeout_prevote if phase == PREVOTE else \
            self._timeout_precommit
        self.timers.later(self.timeout(round), expired, self.height, round)

    # Queries -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """
        The consensus state, for RPC C{getconsensusinfo}.
        """
        _, total = self.committee.weights()
        commit = self.chain.tip_commit
        return {
            "height": self.height, "round": self.round, "step": self.step,
            "proposer": (self.committee.proposer(self.round) or b"").hex(),
            "locked_round": None if self.locked is None else self.locked[0],
            "snapshot_size": len(self.snapshot), "total_weight": total,
            "voter": self.is_voter,
            "last_commit": None if commit is None else {
                "height": commit.height, "round": commit.round,
                "block_hash": commit.block_hash.hex(),
                "votes": len(commit.votes)},
            "evidence": len(self.evidence),
            "offences": {k.hex(): n for k, n in self.offences.items()},
            "counters": dict(self.counters),
        }
