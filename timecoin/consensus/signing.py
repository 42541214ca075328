"""
The durable record of what this node signed in block consensus
(CometBFT's C{priv_validator_state}): L{SigningState}, the rule that never
lets a node sign twice for one (height, round, step) nor go back, and
L{SigningRecord}, which writes that state to the store before a message
leaves the node and reads it back (with the block of its lock) after a
restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.consensus.messages import PRECOMMIT, PREVOTE, BlockVote, Proposal
from timecoin.encoding import EncodingError, canonical, decode
from timecoin.interfaces import IChainStore

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""

SIGNING_STATE_KEY = "signing_state"
"""The store's meta key of this node's last signed consensus message."""
LOCKED_BLOCK_KEY = "locked_block"
"""The store's meta key of the block this node is locked on (encoded)."""
SIGN_STEPS = {"proposal": 1, PREVOTE: 2, PRECOMMIT: 3}
"""The order of what a masternode signs within one round."""
SIGNED_VOTES_KEPT = 8
"""How many of its own votes of one height a node keeps in its signing
state (newest last): the prevotes and precommits of its last four rounds,
which it sends again after a restart."""


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
    @ivar votes: the votes this node signed at C{height}, newest last (at
        most L{SIGNED_VOTES_KEPT}): a restarted node sends them all again.
        Its last vote alone was not enough: two nodes that prevoted,
        precommitted nil and then crashed took their prevotes with them;
        a third that had missed those prevotes never saw two thirds of
        any kind, so no timeout ever fired and the round stalled for good
        (the simulator's seeds 818 and 826 of four/one).
    """

    height: int
    round: int
    step: int
    block_hash: bytes
    lock: tuple[int, bytes] | None = None
    votes: tuple[BlockVote, ...] = ()

    def pack(self) -> bytes:
        return canonical({
            "height": self.height, "round": self.round, "step": self.step,
            "block_hash": self.block_hash.hex(),
            "lock": None if self.lock is None
            else [self.lock[0], self.lock[1].hex()],
            "votes": [vote.to_obj() for vote in self.votes]})

    @classmethod
    def unpack(cls, raw: bytes) -> SigningState:
        """
        Read a packed state back; a state written before the votes were
        kept (its one C{vote}) reads as that vote alone.
        """
        obj = decode(raw)
        lock = obj["lock"]
        votes = obj.get("votes")
        if votes is None:
            votes = [] if obj.get("vote") is None else [obj["vote"]]
        return cls(obj["height"], obj["round"], obj["step"],
                   bytes.fromhex(obj["block_hash"]),
                   None if lock is None else (lock[0], bytes.fromhex(lock[1])),
                   tuple(BlockVote.from_obj(vote) for vote in votes))

    def then(self, message: Proposal | BlockVote, step: int,
             block_hash: bytes,
             lock: tuple[int, bytes] | None) -> SigningState:
        """
        The state after also signing C{message}: the votes of its height
        kept, its own added (bounded by L{SIGNED_VOTES_KEPT}).
        """
        votes = self.votes if self.height == message.height else ()
        if isinstance(message, BlockVote):
            votes = (votes + (message,))[-SIGNED_VOTES_KEPT:]
        return SigningState(message.height, message.round, step, block_hash,
                            lock, votes)

    def allows(self, height: int, round: int, step: int,
               block_hash: bytes) -> bool:
        """
        Whether signing C{block_hash} at (height, round, step) cannot
        contradict this state: it comes later, or it is the very same.
        """
        here = (height, round, step)
        last = (self.height, self.round, self.step)
        return here > last or (here == last and block_hash == self.block_hash)


class Restored(NamedTuple):
    """
    Where a restarted node rejoins the height it last signed at.

    @ivar round: the round it signed in.
    @ivar lock: its lock then, or C{None}.
    @ivar valid: C{(lock round, block)} when the store holds the block of
        the lock: the node's valid block, which it proposes again.
    @ivar votes: the votes it signed at that height, to send again (it
        may not sign others in their place), oldest first.
    """

    round: int
    lock: tuple[int, bytes] | None
    valid: tuple[int, Block] | None
    votes: tuple[BlockVote, ...]


class SigningRecord:
    """
    What this node signed last, kept in its store under
    L{SIGNING_STATE_KEY} (and the block of its lock under
    L{LOCKED_BLOCK_KEY}): the may-sign rule reads it, every signed message
    is recorded in it before it leaves, and a restarted node reads it back.

    @ivar signed: what this node signed last, or C{None}.
    @ivar locked_raw: the block of the lock, as stored (read by L{load}).
    """

    def __init__(self, store: IChainStore,
                 count: Callable[[str], None]) -> None:
        self.store = store
        self.count = count
        self.signed: SigningState | None = None
        self.locked_raw: bytes | None = None

    @defer.inlineCallbacks
    def load(self) -> Any:
        """
        Read what this node signed last from the store.
        """
        raw = yield self.store.get_meta(SIGNING_STATE_KEY)
        self.signed = None if raw is None else SigningState.unpack(raw)
        self.locked_raw = yield self.store.get_meta(LOCKED_BLOCK_KEY)
        if self.signed is not None:
            log.info("last signed: height {height} round {round} step "
                     "{step}", height=self.signed.height,
                     round=self.signed.round, step=self.signed.step)

    def may_sign(self, height: int, round: int, step: int,
                 block_hash: bytes | None) -> bool:
        """
        Whether this node may sign at (C{height}, C{round}, C{step})
        without contradicting what it signed before (a proposal, whose
        block is built anew, only at a later step).  A refusal is counted
        (C{sign-refused}) and logged.
        """
        signed = self.signed
        if signed is None:
            return True
        if block_hash is None:
            return (height, round, step) > \
                (signed.height, signed.round, signed.step)
        if signed.allows(height, round, step, block_hash):
            return True
        self.count("sign-refused")
        log.info("not signing step {step} of height {height} round {round}: "
                 "it signed height {sh} round {sr} step {ss} already",
                 step=step, height=height, round=round,
                 sh=signed.height, sr=signed.round, ss=signed.step)
        return False

    def record(self, message: Proposal | BlockVote,
               lock: tuple[int, bytes] | None,
               proposed_block: Callable[[bytes], Block | None],
               recorded: Callable[[], None]) -> None:
        """
        Record C{message} as signed, with the lock C{lock}, durably; call
        C{recorded} once the store acknowledged it, never if the write
        failed (counted as C{sign-record-failed}).  The block of the lock
        a precommit makes (C{proposed_block} of its hash) is written first,
        so that after a crash the node can propose it again.
        """
        if isinstance(message, Proposal):
            step, block_hash = SIGN_STEPS["proposal"], message.block.hash
        else:
            step, block_hash = SIGN_STEPS[message.phase], message.block_hash
        state = (self.signed or SigningState(-1, 0, 0, b"")).then(
            message, step, block_hash, lock)
        self.signed = state
        store = self.store
        block = None if lock is None or step != SIGN_STEPS[PRECOMMIT] \
            or block_hash != lock[1] else proposed_block(block_hash)
        if block is not None:
            d = store.put_meta(LOCKED_BLOCK_KEY, block.encode())
            d.addCallback(lambda _: store.put_meta(SIGNING_STATE_KEY,
                                                   state.pack()))
        else:
            d = store.put_meta(SIGNING_STATE_KEY, state.pack())

        def done(_: object) -> None:
            recorded()

        def failed(failure: Any) -> None:
            self.count("sign-record-failed")
            log.failure("could not record the signing state; not sending "
                        "step {step} of height {height} round {round}",
                        failure, step=step, height=message.height,
                        round=message.round)

        d.addCallbacks(done, failed)

    def restored(self, height: int) -> Restored | None:
        """
        After a restart at C{height}, the height it last signed at: the
        round it signed in, with the lock it had, else C{None}.
        """
        signed = self.signed
        if signed is None or signed.height != height:
            return None
        valid = None
        block = self.lock_block(height)
        if block is not None and signed.lock is not None:
            # A proposer locked on it proposes it again (as a new value:
            # its prevote quorum is gone with the restart); every node
            # locked on it prevotes it.  Without the block a network whose
            # nodes all restarted locked stalled for good (the
            # simulator's seed 36).
            valid = (signed.lock[0], block)
        return Restored(signed.round, signed.lock, valid, signed.votes)

    def lock_block(self, height: int) -> Block | None:
        """
        The block of the restored lock at C{height}, if the store holds
        it.
        """
        signed, raw = self.signed, self.locked_raw
        if signed is None or signed.lock is None or raw is None:
            return None
        try:
            block = Block.decode(raw)
        except (EncodingError, ValueError, KeyError):
            return None
        if block.hash != signed.lock[1] or block.height != height:
            return None
        return block
