"""
BFT block production: rounds, proposals, prevotes and precommits.

The masternodes of the snapshot for height h agree on block h with the
round-based protocol of Tendermint ("The latest gossip on BFT consensus",
Buchman, Kwon and Milosevic, 2018, Algorithm 1), with weights: "2f+1" is
the quorum rule's approval threshold over the snapshot's *total* weight and
"f+1" is more than the complement of it.

- Round r of height h starts at the slot time (the tip's timestamp plus the
  block time) for r = 0, and when round r-1 times out.  Its proposer is the
  selection policy's first candidate for (snapshot, h, previous hash, r).
  It proposes the block it saw a prevote quorum for (its valid value) if
  any, else a new block.
- A masternode prevotes the proposal if it is valid and it is not locked on
  another block (or the proposal carries a prevote quorum from a round at
  or after its lock); otherwise it prevotes nil.  No proposal within the
  propose timeout: prevote nil.
- A prevote quorum for a block locks it and precommits it; a nil quorum,
  or the prevote timeout, precommits nil.
- A precommit quorum for a block commits it: the precommits are its commit
  certificate, carried by the next block.  The precommit timeout starts the
  next round.  Timeouts grow with the round.

Safety (never two committed blocks at one height) holds with less than a
third of the weight Byzantine, whatever the network does; progress needs a
quorum connected.  Signed messages bind (network, height, round, block
hash); duplicates are dropped, conflicting ones from one signer (a proposer
sending two blocks for one round, a voter voting twice) are kept as
evidence.  Committed blocks are final: the chain never reorganizes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from timecoin.block import (
    BLOCK_VOTE_DOMAIN,
    Block,
    CommitCertificate,
    Vote,
    block_vote_message,
)
from timecoin.chain import BlockInvalid, Chain
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

log = Logger()

PREVOTE = "prevote"
PRECOMMIT = "precommit"
PREVOTE_DOMAIN = b"TIMECOIN/block-prevote"
PROPOSAL_DOMAIN = b"TIMECOIN/proposal"
NIL = ZERO_HASH
"""The block hash of a nil vote."""

MAX_ROUND_AHEAD = 50
"""Messages for rounds further ahead than this are dropped."""
MAX_BUFFERED = 2_000
"""Messages for the next height kept until we reach it."""
MAX_EVIDENCE = 100
MAX_CONFLICTING = 4
"""Conflicting votes kept per equivocating voter, phase and round.  They
count in the tally of the block they name (as they would at a node that
saw only them): a prevote quorum for a block may include an
equivocator's vote that this node saw second, and without it the quorum
could never be verified here -- a stall the simulator found."""

PROPOSE, STEP_PREVOTE, STEP_PRECOMMIT, WAITING = (
    "propose", "prevote", "precommit", "waiting")

SIGNING_STATE_KEY = "signing_state"
"""The store's meta key of this node's last signed consensus message."""
LOCKED_BLOCK_KEY = "locked_block"
"""The store's meta key of the block this node is locked on (encoded)."""
SIGN_STEPS = {"proposal": 1, PREVOTE: 2, PRECOMMIT: 3}
"""The order of what a masternode signs within one round."""


@dataclass(frozen=True)
class SigningState:
    """
    The last proposal or vote this node signed, and its lock then: kept
    durably, and written before the message leaves the node, so that after
    a crash it never signs anything different for a (height, round, step)
    it already signed, nor anything for an earlier one, and it keeps its
    lock (CometBFT's C{priv_validator_state}).

    @ivar step: L{SIGN_STEPS} of what was signed.
    @ivar lock: C{(round, block hash)} this node was locked on at
        C{height}, or C{None}.
    @ivar vote: the signed vote itself (not kept for a proposal): a
        restarted node sends it again, as it may not sign another.
    """

    height: int
    round: int
    step: int
    block_hash: bytes
    lock: tuple[int, bytes] | None = None
    vote: BlockVote | None = None

    def pack(self) -> bytes:
        return canonical({
            "height": self.height, "round": self.round, "step": self.step,
            "block_hash": self.block_hash.hex(),
            "lock": None if self.lock is None
            else [self.lock[0], self.lock[1].hex()],
            "vote": None if self.vote is None else self.vote.to_obj()})

    @classmethod
    def unpack(cls, raw: bytes) -> SigningState:
        from timecoin.encoding import decode
        obj = decode(raw)
        lock, vote = obj["lock"], obj.get("vote")
        return cls(obj["height"], obj["round"], obj["step"],
                   bytes.fromhex(obj["block_hash"]),
                   None if lock is None else (lock[0], bytes.fromhex(lock[1])),
                   None if vote is None else BlockVote.from_obj(vote))

    def allows(self, height: int, round: int, step: int,
               block_hash: bytes) -> bool:
        """
        Whether signing C{block_hash} at (height, round, step) cannot
        contradict this state: it comes later, or it is the very same.
        """
        here = (height, round, step)
        last = (self.height, self.round, self.step)
        return here > last or (here == last and block_hash == self.block_hash)


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


class BlockConsensus:
    """
    The block-consensus state machine of one node for the current height.

    @ivar outbox: callbacks given every proposal and vote this node signs
        (the P2P layer gossips them).
    @ivar committed: callbacks given every block this node commits.
    @ivar evidence: equivocations seen (bounded), newest last.
    @ivar offences: equivocations counted per masternode key (its score).
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
        self.outbox: list[Callable[[Any], None]] = []
        self.committed: list[Callable[[Block], None]] = []
        self.evidence: list[dict[str, Any]] = []
        self.offences: dict[bytes, int] = {}
        self.counters: dict[str, int] = {}
        self.running = False
        self.signed: SigningState | None = None
        """What this node signed last (see L{SigningState})."""
        self._locked_raw: bytes | None = None
        """The block of the lock, as stored (read at start)."""
        self._committing = False
        self._heartbeat: IDelayedCall | None = None
        self._timers: list[IDelayedCall] = []
        self._buffer: list[Any] = []
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
        self.proposals: dict[int, Proposal] = {}
        self.votes: dict[tuple[str, int], dict[bytes, BlockVote]] = {}
        self._mine: list[Proposal | BlockVote] = []
        self._unsigned: set[tuple[str, int]] = set()
        self._fired: set[tuple[str, int]] = set()
        self._valid_blocks: dict[bytes, bool] = {}
        self.conflicting: dict[tuple[str, int],
                               dict[bytes, dict[bytes, BlockVote]]] = {}
        self.last_round_started = self.clock.seconds()
        self._watched = self.last_round_started
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers = []

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    @property
    def snapshot(self) -> Any:
        """
        Who proposes and votes at the current height: its committee (the
        whole snapshot unless the network sets a committee size).
        """
        return self.chain.committee_for(self.height)

    def _weights(self) -> tuple[dict[bytes, int], int]:
        weights = {m.pubkey: self.chain.quorum.weight(m)
                   for m in self.snapshot}
        return weights, sum(weights.values())

    def _proposer(self, round: int) -> bytes | None:
        return self.chain.expected_producer(self.height, self.chain.tip.hash,
                                            round)

    @property
    def is_voter(self) -> bool:
        """
        Whether this node votes at the current height.
        """
        return self.key is not None and \
            self.key.public in {m.pubkey for m in self.snapshot}

    def timeout(self, round: int) -> float:
        """
        The propose/prevote/precommit timeout of C{round}: it grows
        linearly with the round, capped at ten times the first.
        """
        return self.round_timeout * min(1 + round, 10)

    def _later(self, delay: float, fn: Callable[..., None],
               *args: Any) -> None:
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.clock.callLater(delay, fn, *args))

    # Lifecycle -----------------------------------------------------------

    @defer.inlineCallbacks
    def load_signing_state(self) -> Any:
        """
        Read what this node signed last from the store (before L{start}).
        """
        raw = yield self.chain.store.get_meta(SIGNING_STATE_KEY)
        self.signed = None if raw is None else SigningState.unpack(raw)
        self._locked_raw = yield self.chain.store.get_meta(LOCKED_BLOCK_KEY)
        if self.signed is not None:
            log.info("last signed: height {height} round {round} step "
                     "{step}", height=self.signed.height,
                     round=self.signed.round, step=self.signed.step)

    def start(self) -> None:
        """
        Take part from the next height on (the nodes outside the snapshot
        follow the rounds and sign nothing).
        """
        self.running = True
        self._reset(self.chain.height + 1)
        self._restore_lock()
        self._schedule_height()
        self._heartbeat = self.clock.callLater(self.round_timeout,
                                               self._rebroadcast)

    def stop(self) -> None:
        """
        Stop taking part; cancel every timer.
        """
        self.running = False
        self._reset(self.height)
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = None

    def _schedule_height(self) -> None:
        due = self.chain.tip.header.timestamp / 1000.0 + self.block_time
        # At most one block time from now: a node whose clock runs behind
        # the tip's producer would otherwise start its rounds late and, as
        # proposer, always miss the others' propose timeout (the
        # simulator's clock skew found it).
        delay = min(max(0.0, due - self.clock.seconds()), self.block_time)
        self._later(delay, self._start_round, self.height, self.round)

    def _restore_lock(self) -> None:
        """
        After a restart at the height it last signed at, rejoin at the
        round it signed in, with the lock it had.
        """
        signed = self.signed
        if signed is not None and signed.height == self.height:
            self.round = signed.round
            self.locked = signed.lock
            block = self._stored_lock_block()
            if block is not None and signed.lock is not None:
                # A proposer locked on it proposes it again (as a new
                # value: its prevote quorum is gone with the restart);
                # every node locked on it prevotes it.  Without the block
                # a network whose nodes all restarted locked stalled for
                # good (the simulator's seed 36).
                self.valid = (signed.lock[0], block)
                self._valid_restored = True
            if signed.vote is not None:
                self._mine.append(signed.vote)
                self.receive(signed.vote)

    def _stored_lock_block(self) -> Block | None:
        """
        The block of the restored lock, if the store holds it.
        """
        signed, raw = self.signed, self._locked_raw
        if signed is None or signed.lock is None or raw is None:
            return None
        try:
            block = Block.decode(raw)
        except (EncodingError, ValueError, KeyError):
            return None
        if block.hash != signed.lock[1] or block.height != self.height:
            return None
        return block

    def _block_connected(self, block: Block) -> None:
        if block.height + 1 <= self.height:
            return
        self._reset(block.height + 1)
        if self.running:
            self._schedule_height()
        buffered, self._buffer = self._buffer, []
        for message in buffered:
            self.receive(message)

    # Rounds --------------------------------------------------------------

    def _start_round(self, height: int, round: int) -> None:
        if height != self.height or not self.running:
            return
        self.round = round
        self.step = PROPOSE
        self.last_round_started = self.clock.seconds()
        if round:
            self._count("round-changes")
            log.info("height {height} moves to round {round}",
                     height=height, round=round)
        proposer = self._proposer(round)
        if self.key is not None and self.is_voter and self.synced() and \
                proposer == self.key.public and self._may_sign(
                    round, SIGN_STEPS["proposal"], None):
            self._propose(round)
        self._later(self.timeout(round), self._timeout_propose, height,
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
        signed = self.signed
        if signed is None:
            return True
        if block_hash is None:
            return (self.height, round, step) > \
                (signed.height, signed.round, signed.step)
        if signed.allows(self.height, round, step, block_hash):
            return True
        self._count("sign-refused")
        log.info("not signing step {step} of height {height} round {round}: "
                 "it signed height {sh} round {sr} step {ss} already",
                 step=step, height=self.height, round=round,
                 sh=signed.height, sr=signed.round, ss=signed.step)
        return False

    def _send(self, message: Any) -> None:
        """
        Record C{message} as signed, durably, then let it leave the node.
        """
        if isinstance(message, Proposal):
            step, block_hash = SIGN_STEPS["proposal"], message.block.hash
        else:
            step, block_hash = SIGN_STEPS[message.phase], message.block_hash
        state = SigningState(message.height, message.round, step, block_hash,
                             self.locked, None if isinstance(message, Proposal)
                             else message)
        self.signed = state
        store = self.chain.store
        locked = self.locked
        block = None if locked is None or step != SIGN_STEPS[PRECOMMIT] \
            or block_hash != locked[1] else self._proposed_block(block_hash)
        if block is not None:
            # The lock's block goes first: after a crash the node can
            # propose it again (see _restore_lock).
            d = store.put_meta(LOCKED_BLOCK_KEY, block.encode())
            d.addCallback(lambda _: store.put_meta(SIGNING_STATE_KEY,
                                                   state.pack()))
        else:
            d = store.put_meta(SIGNING_STATE_KEY, state.pack())

        def recorded(_: object) -> None:
            if message.height != self.height:
                return
            self._mine.append(message)
            for callback in list(self.outbox):
                callback(message)

        def failed(failure: Any) -> None:
            self._count("sign-record-failed")
            log.failure("could not record the signing state; not sending "
                        "step {step} of height {height} round {round}",
                        failure, step=step, height=message.height,
                        round=message.round)

        d.addCallbacks(recorded, failed)

    def resume(self) -> None:
        """
        Block sync reports that this node caught up.  If it sat the current
        round out while behind (it signed nothing in it, and no timer runs:
        its timeouts fired while it could not vote), enter the round again
        so it proposes or votes now instead of waiting for messages that
        will not come.  It stays in the same round: jumping ahead alone
        could leave the others short of a quorum in theirs.
        """
        self._timers = [t for t in self._timers if t.active()]
        if not self.running or self._committing:
            return
        if self._sign_missed():
            return
        if self._timers:
            return
        if any(m.height == self.height and m.round == self.round
               for m in self._mine):
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
        span = 3 * self.timeout(self.round)
        since = max(self.last_round_started, self._watched)
        if self.clock.seconds() - since >= span:
            self._watched = self.clock.seconds()
            self._count("timeouts-round")
            log.warn("height {height} round {round} has waited {seconds:.0f} s "
                     "at step {step}", height=self.height, round=self.round,
                     seconds=self.clock.seconds() - self.last_round_started,
                     step=self.step)

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
        missed = sorted(p for p, r in self._unsigned if r == self.round)
        self._unsigned = {k for k in self._unsigned if k[1] == self.round}
        done = False
        for phase in (PREVOTE, PRECOMMIT):
            if phase in missed and self._signed_in(phase, self.round) is None:
                self._unsigned.discard((phase, self.round))
                self._count("resigned-missed")
                self._vote(phase, NIL)
                done = True
        return done

    def _signed_in(self, phase: str, round: int) -> BlockVote | None:
        assert self.key is not None
        return self.votes.get((phase, round), {}).get(self.key.public)

    def _rebroadcast(self) -> None:
        """
        Send again what this node signed in the current and previous round
        of this height, every C{round_timeout}: peers that connected late
        or restarted (and so missed them) need them to join the round;
        peers that have them drop them as duplicates without relaying.

        With a valid block (a prevote quorum seen for it), the prevotes of
        that quorum go too: they justify re-proposing the block in a later
        round, and a peer that restarted or joined after that round lacks
        them, so it would prevote nil on the re-proposal while the nodes
        locked on the block prevote nil on anything else -- a stall the
        simulator found.
        """
        if not self.running:
            return
        self._sign_missed()
        self._watch_round()
        resend: list[Proposal | BlockVote] = [
            m for m in self._mine if m.round >= self.round - 1]
        if self.valid is not None:
            valid_round, block = self.valid
            resend += [v for v in self._votes_for(PREVOTE, valid_round,
                                                  block.hash)
                       if v not in resend]
        for message in resend:
            for callback in list(self.outbox):
                callback(message)
        self._heartbeat = self.clock.callLater(self.round_timeout,
                                               self._rebroadcast)

    def _vote(self, phase: str, block_hash: bytes) -> None:
        if not self.is_voter:
            return
        if not self.synced():
            self._unsigned.add((phase, self.round))
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

    def receive(self, message: Any) -> str | None:
        """
        Take a proposal or vote from the network (or ourselves).  Returns
        a reason code when it is dropped, else C{None}; the caller relays
        only accepted messages.
        """
        if isinstance(message, Proposal):
            reason = self._check_proposal(message)
        elif isinstance(message, BlockVote):
            reason = self._check_vote(message)
        else:
            reason = "unknown-message"
        self._count(reason or "accepted")
        if reason is None or reason == "equivocating-vote":
            self._evaluate()
        return reason

    def _buffered(self, message: Any, height: int) -> str | None:
        if height == self.height + 1 and len(self._buffer) < MAX_BUFFERED:
            self._buffer.append(message)
            return "buffered-next-height"
        return "wrong-height"

    def _check_proposal(self, p: Proposal) -> str | None:
        if p.height != self.height:
            return self._buffered(p, p.height)
        if p.round > self.round + MAX_ROUND_AHEAD:
            return "round-too-far"
        if p.proposer != self._proposer(p.round):
            return "not-the-proposer"
        if p.valid_round >= p.round:
            return "bad-valid-round"
        if not proposal_signature_ok(p, self.chain.network.name):
            return "bad-proposal-signature"
        known = self.proposals.get(p.round)
        if known is not None:
            if known.block.hash == p.block.hash:
                return "duplicate"
            self._equivocation("proposal", p.proposer, p.round,
                               known.block.hash, p.block.hash)
            return "equivocating-proposal"
        self.proposals[p.round] = p
        return None

    def _check_vote(self, v: BlockVote) -> str | None:
        if v.height != self.height:
            if v.height == self.chain.height and v.phase == PRECOMMIT:
                return self._late_precommit(v)
            return self._buffered(v, v.height)
        if v.round > self.round + MAX_ROUND_AHEAD:
            return "round-too-far"
        weights, _ = self._weights()
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
            if vote_signature_ok(v, self.chain.network.name):
                self._equivocation(v.phase, v.voter, v.round,
                                   known.block_hash, v.block_hash)
                if len(extra) < MAX_CONFLICTING:
                    extra[v.block_hash] = v
            return "equivocating-vote"
        if not vote_signature_ok(v, self.chain.network.name):
            return "bad-vote-signature"
        box[v.voter] = v
        return None

    def _late_precommit(self, v: BlockVote) -> str | None:
        """
        A precommit for the tip that came after this node committed it:
        added to the tip's commit certificate, which the next block
        carries, so the certificate holds every precommit this node has,
        not only the first quorum (proof of service reads who signed).
        """
        cert = self.chain.tip_commit
        if cert is None or (v.round, v.block_hash) != (cert.round,
                                                       cert.block_hash):
            return "wrong-height"
        if any(known.voter == v.voter for known in cert.votes):
            return "duplicate"
        if v.voter not in {m.pubkey
                           for m in self.chain.committee_for(v.height)}:
            return "vote-not-masternode"
        if not vote_signature_ok(v, self.chain.network.name):
            return "bad-vote-signature"
        self.chain.tip_commit = CommitCertificate(
            cert.height, cert.round, cert.block_hash, tuple(sorted(
                (*cert.votes, Vote(v.voter, v.signature)),
                key=lambda vote: vote.voter)))
        self._count("late-precommits")
        return None

    def online(self) -> set[bytes]:
        """
        The masternodes heard from at the current height in the current
        or the previous round (their votes), and this node if it votes.
        """
        found = {voter for (_, round), box in self.votes.items()
                 if round >= self.round - 1 for voter in box}
        if self.key is not None and self.is_voter and self.running:
            found.add(self.key.public)
        return found

    def _equivocation(self, kind: str, signer: bytes, round: int,
                      first: bytes, second: bytes) -> None:
        self._count("equivocations")
        self.offences[signer] = self.offences.get(signer, 0) + 1
        record = {"kind": kind, "signer": signer.hex(),
                  "height": self.height, "round": round,
                  "first": first.hex(), "second": second.hex(),
                  "at": self.clock.seconds()}
        self.evidence.append(record)
        del self.evidence[:-MAX_EVIDENCE]
        log.warn("equivocation by {signer}: two {kind}s at height {height} "
                 "round {round}", signer=signer.hex(), kind=kind,
                 height=self.height, round=round)

    def _replay(self, round: int) -> None:
        if round in self.proposals or any(k[1] == round for k in self.votes):
            self._evaluate()

    # The rules -----------------------------------------------------------

    def _tally(self, phase: str, round: int) -> dict[bytes, int]:
        weights, _ = self._weights()
        out: dict[bytes, int] = {}
        for voter, vote in self.votes.get((phase, round), {}).items():
            out[vote.block_hash] = out.get(vote.block_hash, 0) + \
                weights.get(voter, 0)
        for voter, extra in self.conflicting.get((phase, round), {}).items():
            for block_hash in extra:
                out[block_hash] = out.get(block_hash, 0) + \
                    weights.get(voter, 0)
        return out

    def _votes_for(self, phase: str, round: int,
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

    def _quorum(self, weight: int) -> bool:
        _, total = self._weights()
        return self.chain.quorum.approved(weight, total)

    def _more_than_third(self, weight: int) -> bool:
        _, total = self._weights()
        return self.chain.quorum.rejected(weight, total)

    def _block_valid(self, block: Block) -> bool:
        known = self._valid_blocks.get(block.hash)
        if known is None:
            try:
                self.chain.validate_block(block)
                known = True
            except BlockInvalid as e:
                log.info("invalid proposed block {hash}: {reason}",
                         hash=block.hash.hex(), reason=str(e))
                known = False
            self._valid_blocks[block.hash] = known
        return known

    def _evaluate(self) -> None:
        if not self.running or self._committing:
            return
        # Commit: a precommit quorum for a proposed block, in any round.
        for (phase, round), _ in list(self.votes.items()):
            if phase != PRECOMMIT:
                continue
            for block_hash, weight in self._tally(PRECOMMIT, round).items():
                if block_hash == NIL or not self._quorum(weight):
                    continue
                block = self._proposed_block(block_hash)
                if block is not None and self._block_valid(block):
                    self._commit(block, round)
                    return
        self._learn_valid()
        # Round skip: more than a third of the weight is in a later round.
        later: dict[int, set[bytes]] = {}
        for (_, round), box in self.votes.items():
            if round > self.round:
                for voter in box:
                    later.setdefault(round, set()).add(voter)
        weights, _ = self._weights()
        for round in sorted(later, reverse=True):
            voters = set().union(*(later[r] for r in later if r >= round))
            if self._more_than_third(sum(weights[v] for v in voters)):
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
        for round in sorted({r for phase, r in self.votes
                             if phase == PREVOTE and floor < r < self.round},
                            reverse=True):
            proposal = self.proposals.get(round)
            if proposal is not None and self._quorum(self._tally(
                    PREVOTE, round).get(proposal.block.hash, 0)) and \
                    self._block_valid(proposal.block):
                self.valid = (round, proposal.block)
                self._valid_restored = False
                return

    def _proposed_block(self, block_hash: bytes) -> Block | None:
        for proposal in self.proposals.values():
            if proposal.block.hash == block_hash:
                return proposal.block
        return None

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
            self._later(self.timeout(r), self._timeout_prevote, self.height,
                        r)
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
            self._later(self.timeout(r), self._timeout_precommit,
                        self.height, r)
        return None

    def _commit(self, block: Block, round: int) -> None:
        votes = tuple(sorted(
            (Vote(v.voter, v.signature)
             for v in self._votes_for(PRECOMMIT, round, block.hash)),
            key=lambda v: v.voter))
        cert = CommitCertificate(block.height, round, block.hash, votes)
        self._committing = True
        d = self.chain.connect_block(block, cert)

        def done(_: object) -> None:
            self._committing = False
            self._count("committed")
            log.info("committed block {height} {hash} in round {round} "
                     "with {n} txs", height=block.height,
                     hash=block.hash.hex(), round=round,
                     n=len(block.txs) - 1)
            for callback in list(self.committed):
                callback(block)

        def failed(failure: Any) -> None:
            self._committing = False
            log.failure("could not connect committed block {height}",
                        failure, height=block.height)

        d.addCallbacks(done, failed)

    # Queries -------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """
        The consensus state, for RPC C{getconsensusinfo}.
        """
        _, total = self._weights()
        commit = self.chain.tip_commit
        return {
            "height": self.height, "round": self.round, "step": self.step,
            "proposer": (self._proposer(self.round) or b"").hex(),
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
