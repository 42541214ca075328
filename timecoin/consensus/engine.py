"""
L{BlockConsensus}: the round state machine of one node (heights, rounds,
steps, locks, the valid block, timeouts, round skips, catching up after
sync, the restart at the round it last signed in), and the coordinator of
the objects that keep the rest: who takes part (L{Committee}), the checks
and buffer of received messages (L{Intake}), the proposals
(L{ProposalBook}) and votes (L{VoteBook}) of the height, the
equivocations seen (L{EvidenceLog}), the durable record of what it signed
(L{SigningRecord}), its own messages and their re-broadcast
(L{Outgoing}), its timers (L{RoundTimers}) and the commit of a decided
block (L{Committer}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain
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
from timecoin.consensus.signing import SIGN_STEPS, SigningRecord, SigningState
from timecoin.consensus.timers import RoundTimers
from timecoin.consensus.votes import Box, VoteBook
from timecoin.keys import PrivateKey
from timecoin.masternodes import Snapshot

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""

PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT, WAITING = (
    "propose", "prevote", "precommit", "waiting")


class BlockConsensus:
    """
    The block-consensus state machine of one node for the current height.

    @ivar outbox: callbacks given every proposal and vote this node signs
        (the P2P layer gossips them).
    @ivar committed: callbacks given every block this node commits.
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
        self.outbox = self.outgoing.callbacks
        self.committer = Committer(chain, self._count)
        self.committed = self.committer.callbacks
        self.counters: dict[str, int] = {}
        self.running = False
        self.record = SigningRecord(chain.store, self._count)
        self.evidence_log = EvidenceLog(clock, self._count)
        self.timers = RoundTimers(clock, round_timeout, self._count)
        self.intake = Intake(chain, self._count)
        self._reset(chain.height + 1)
        chain.block_connected.append(self._block_connected)

    # State ---------------------------------------------------------------

    def _reset(self, height: int) -> None:
        self.height = height
        self.round = 0
        self.step = WAITING
        self.locked: tuple[int, bytes] | None = None
        """The (round, block hash) this node is locked on."""
        self.valid: tuple[int, Block] | None = None
        self._valid_restored = False
        """The valid block is the lock restored after a restart: its
        prevote quorum is not known here any more."""
        self.committee = Committee(self.chain, height)
        self.proposal_book = ProposalBook(self.chain, height,
                                          self.evidence_log,
                                          self.committee.proposer)
        self.vote_book = VoteBook(self.chain.network.name, height,
                                  self.evidence_log)
        self.outgoing.reset()
        self._fired: set[tuple[str, int]] = set()
        self.timers.reset()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

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
        self.timers.heartbeat(self._rebroadcast)

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
        self.timers.later(delay, self._start_round, self.height, self.round)

    def _restore_lock(self) -> None:
        """
        After a restart at the height it last signed at, rejoin at the
        round it signed in, with the lock it had.
        """
        restored = self.record.restored(self.height)
        if restored is None:
            return
        self.round = restored.round
        self.locked = restored.lock
        if restored.valid is not None:
            self.valid = restored.valid
            self._valid_restored = True
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

    def _start_round(self, height: int, round: int) -> None:
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
        if self.valid is not None:
            valid_round, block = self.valid
            if self._valid_restored:
                valid_round = -1
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
        Block sync reports that this node caught up.  If it sat the current
        round out while behind (it signed nothing in it, and no timer runs:
        its timeouts fired while it could not vote), enter the round again
        so it proposes or votes now instead of waiting for messages that
        will not come.  It stays in the same round: jumping ahead alone
        could leave the others short of a quorum in theirs.
        """
        self.timers.prune()
        if not self.running or self.committer.busy:
            return
        if self._sign_missed():
            return
        if self.timers.pending:
            return
        if self.outgoing.signed_in(self.height, self.round):
            return
        self._count("resumed")
        self._start_round(self.height, self.round)

    def _watch_round(self) -> None:
        """
        Count a round that has lasted three times its timeout without
        moving on (C{timeouts-round}), once per such span: a halted chain
        shows in the round-timeout metric even where no timer runs (a
        round waits for votes that do not come, as Tendermint does).
        """
        if self.step == WAITING:
            return
        self.timers.watch(self.height, self.round, self.step,
                          3 * self.timeout(self.round))

    def _sign_missed(self) -> bool:
        """
        Sign now, as nil, the votes of the current round this node stepped
        past without signing because it was not synced then.  Without them
        the round may never gather a quorum of any votes, so no timeout
        ever fires and the chain halts for good after a peer kept the
        nodes "catching up" (found by the penetration test).  Nil is
        always safe: it locks nothing.  Returns whether it signed.
        """
        if not self.is_voter or not self.synced():
            return False
        missed = self.outgoing.missed(self.round)
        done = False
        for phase in (PREVOTE, PRECOMMIT):
            if phase in missed and self._signed_in(phase, self.round) is None:
                self.outgoing.unsigned.discard((phase, self.round))
                self._count("resigned-missed")
                self._vote(phase, NIL)
                done = True
        return done

    def _signed_in(self, phase: str, round: int) -> BlockVote | None:
        assert self.key is not None
        return self.vote_book.vote_of(self.key.public, phase, round)

    def _rebroadcast(self) -> None:
        """
        Every C{round_timeout}: sign the votes missed while not synced,
        watch the round, send again what this node signed lately, with the
        prevote quorum of its valid block and every vote it holds of the
        current round (L{Outgoing.resend}; the relay sends each only to
        peers not known to hold it, and again to those after
        C{resend_known_after}).  Others' votes too: a vote of a node that
        crashed (before it kept all its votes of a height, its prevote
        was lost with the restart) reached only the peers connected then;
        a peer that connected later
        (back from a partition) lacked it for good, no node reached two
        thirds of the prevotes or precommits of any kind, no timeout was
        armed, and the round waited for the Byzantine node (simulator:
        seed 102 of four/one, 30 s).
        """
        if not self.running:
            return
        self._sign_missed()
        self._watch_round()
        proofs: list[BlockVote] = []
        if self.valid is not None:
            valid_round, block = self.valid
            proofs = self.vote_book.votes_for(PREVOTE, valid_round,
                                              block.hash)
        proofs += [v for phase in (PREVOTE, PRECOMMIT)
                   for v in self.vote_book.votes_in(phase, self.round)
                   if v not in proofs]
        self.outgoing.resend(self.round, proofs)
        self.timers.heartbeat(self._rebroadcast)

    def _vote(self, phase: str, block_hash: bytes) -> None:
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
            self._vote(PREVOTE, NIL)

    def _timeout_prevote(self, height: int, round: int) -> None:
        if (height, round, self.step) == (self.height, self.round,
                                          STEP_PREVOTE):
            self._count("timeouts-prevote")
            self.step = STEP_PRECOMMIT
            self._vote(PRECOMMIT, NIL)

    def _timeout_precommit(self, height: int, round: int) -> None:
        if (height, round) == (self.height, self.round):
            self._count("timeouts-precommit")
            self._start_round(height, round + 1)

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

    def _tally(self, phase: str, round: int) -> dict[bytes, int]:
        weights, _ = self.committee.weights()
        return self.vote_book.tally(phase, round, weights)

    def _quorum(self, weight: int) -> bool:
        return self.committee.quorum(weight)

    def _block_valid(self, block: Block) -> bool:
        return self.proposal_book.block_valid(block)

    def _evaluate(self) -> None:
        if not self.running or self.committer.busy:
            return
        # Commit: a precommit quorum for a proposed block, in any round.
        for (phase, round), _ in list(self.votes.items()):
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
        later = self.vote_book.voters_after(self.round)
        weights, _ = self.committee.weights()
        for round in sorted(later, reverse=True):
            voters = set().union(*(later[r] for r in later if r >= round))
            if self.committee.more_than_third(
                    sum(weights[v] for v in voters)):
                self._start_round(self.height, round)
                return
        self._evaluate_round(self.round)

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
                             if floor < r < self.round}, reverse=True):
            proposal = self.proposals.get(round)
            if proposal is not None and self._quorum(self._tally(
                    PREVOTE, round).get(proposal.block.hash, 0)) and \
                    self._block_valid(proposal.block):
                self.valid = (round, proposal.block)
                self._valid_restored = False
                return

    def _evaluate_round(self, r: int) -> None:
        proposal = self.proposals.get(r)
        prevotes = self._tally(PREVOTE, r)
        if self.step == PROPOSE and proposal is not None:
            block = proposal.block
            vr = proposal.valid_round
            if vr == -1:
                ok = self._block_valid(block) and (
                    self.locked is None or self.locked[1] == block.hash)
                self.step = STEP_PREVOTE
                self._vote(PREVOTE, block.hash if ok else NIL)
                return self._evaluate_round(r)
            if self._quorum(self._tally(PREVOTE, vr).get(block.hash, 0)):
                ok = self._block_valid(block) and (
                    self.locked is None or self.locked[0] <= vr
                    or self.locked[1] == block.hash)
                self.step = STEP_PREVOTE
                self._vote(PREVOTE, block.hash if ok else NIL)
                return self._evaluate_round(r)
        if self.step == STEP_PREVOTE and ("prevote-any", r) not in \
                self._fired and self._quorum(sum(prevotes.values())):
            self._fired.add(("prevote-any", r))
            self.timers.later(self.timeout(r), self._timeout_prevote,
                              self.height, r)
        if proposal is not None and self.step in (STEP_PREVOTE,
                                                  STEP_PRECOMMIT) \
                and ("polka", r) not in self._fired \
                and self._quorum(prevotes.get(proposal.block.hash, 0)) \
                and self._block_valid(proposal.block):
            self._fired.add(("polka", r))
            self.valid = (r, proposal.block)
            self._valid_restored = False
            if self.step == STEP_PREVOTE:
                self.locked = (r, proposal.block.hash)
                self.step = STEP_PRECOMMIT
                self._vote(PRECOMMIT, proposal.block.hash)
                return self._evaluate_round(r)
        if self.step == STEP_PREVOTE and self._quorum(prevotes.get(NIL, 0)):
            self.step = STEP_PRECOMMIT
            self._vote(PRECOMMIT, NIL)
            return self._evaluate_round(r)
        precommits = self._tally(PRECOMMIT, r)
        if ("precommit-any", r) not in self._fired and \
                self._quorum(sum(precommits.values())):
            self._fired.add(("precommit-any", r))
            self.timers.later(self.timeout(r), self._timeout_precommit,
                              self.height, r)
        return None

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
