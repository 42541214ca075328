"""
What keeps a round moving when messages were missed (L{CatchUp}): the
periodic re-broadcast of this node's messages and of the votes it holds,
the votes it stepped past while not synced (signed as nil once caught
up), the watchdog of a round that does not move, and re-entering the
round when block sync reports this node caught up.

It acts on the round state machine
(L{timecoin.consensus.engine.BlockConsensus}) through L{CatchUpMachine}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from timecoin.consensus.commit import Committer
from timecoin.consensus.messages import NIL, PRECOMMIT, PREVOTE, BlockVote
from timecoin.consensus.outgoing import Outgoing
from timecoin.consensus.rules import WAITING, RoundRules
from timecoin.consensus.timers import RoundTimers
from timecoin.consensus.votes import VoteBook
from timecoin.keys import PrivateKey

__all__ = ["CatchUp", "CatchUpMachine"]


class CatchUpMachine(Protocol):
    """
    What L{CatchUp} reads and drives of the round state machine.
    """

    key: PrivateKey | None
    height: int
    round: int
    step: str
    running: bool
    vote_book: VoteBook
    synced: Callable[[], bool]

    @property
    def is_voter(self) -> bool:
        """Whether this node votes at the current height."""

    def timeout(self, round: int) -> float:
        """The step timeout of C{round}."""

    def vote(self, phase: str, block_hash: bytes) -> None:
        """Sign and take C{phase} for C{block_hash} in the current
        round."""

    def start_round(self, height: int, round: int) -> None:
        """Enter C{round} of C{height}."""


class CatchUp:
    """
    The re-broadcast heartbeat, the missed votes, the round watchdog and
    the resume after sync of one node's block consensus.
    """

    def __init__(self, machine: CatchUpMachine, outgoing: Outgoing,
                 timers: RoundTimers, committer: Committer,
                 rules: RoundRules, count: Callable[[str], None]) -> None:
        self.machine = machine
        self.outgoing = outgoing
        self.timers = timers
        self.committer = committer
        self.rules = rules
        self.count = count

    def resume(self) -> None:
        """
        Block sync reports that this node caught up.  If it sat the current
        round out while behind (it signed nothing in it, and no timer runs:
        its timeouts fired while it could not vote), enter the round again
        so it proposes or votes now instead of waiting for messages that
        will not come.  It stays in the same round: jumping ahead alone
        could leave the others short of a quorum in theirs.
        """
        machine = self.machine
        self.timers.prune()
        if not machine.running or self.committer.busy:
            return
        if self.sign_missed():
            return
        if self.timers.pending:
            return
        if self.outgoing.signed_in(machine.height, machine.round):
            return
        self.count("resumed")
        machine.start_round(machine.height, machine.round)

    def _watch_round(self) -> None:
        """
        Count a round that has lasted three times its timeout without
        moving on (C{timeouts-round}), once per such span: a halted chain
        shows in the round-timeout metric even where no timer runs (a
        round waits for votes that do not come, as Tendermint does).
        """
        machine = self.machine
        if machine.step == WAITING:
            return
        self.timers.watch(machine.height, machine.round, machine.step,
                          3 * machine.timeout(machine.round))

    def sign_missed(self) -> bool:
        """
        Sign now, as nil, the votes of the current round this node stepped
        past without signing because it was not synced then.  Without them
        the round may never gather a quorum of any votes, so no timeout
        ever fires and the chain halts for good after a peer kept the
        nodes "catching up" (found by the penetration test).  Nil is
        always safe: it locks nothing.  Returns whether it signed.
        """
        machine = self.machine
        if not machine.is_voter or not machine.synced():
            return False
        missed = self.outgoing.missed(machine.round)
        done = False
        for phase in (PREVOTE, PRECOMMIT):
            if phase in missed and \
                    self._signed_in(phase, machine.round) is None:
                self.outgoing.unsigned.discard((phase, machine.round))
                self.count("resigned-missed")
                machine.vote(phase, NIL)
                done = True
        return done

    def _signed_in(self, phase: str, round: int) -> BlockVote | None:
        key = self.machine.key
        assert key is not None
        return self.machine.vote_book.vote_of(key.public, phase, round)

    def rebroadcast(self) -> None:
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
        machine = self.machine
        if not machine.running:
            return
        self.sign_missed()
        self._watch_round()
        self.outgoing.resend(machine.round, self.rules.proofs(machine.round))
        self.timers.heartbeat(self.rebroadcast)
