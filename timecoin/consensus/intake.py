"""
The checks every received proposal or vote passes before the books of the
current height (L{Intake}): its height (a late precommit for the tip goes
to the tip's certificate, the next height's messages wait in a bounded
buffer) and its round, not too far ahead.
"""

from __future__ import annotations

from collections.abc import Callable

from timecoin.chain import Chain
from timecoin.consensus.messages import PRECOMMIT, BlockVote, Proposal, Signed
from timecoin.consensus.proposals import ProposalBook
from timecoin.consensus.votes import VoteBook, late_precommit

MAX_ROUND_AHEAD = 50
"""Messages for rounds further ahead than this are dropped."""
MAX_BUFFERED = 2_000
"""Messages for the next height kept until we reach it."""

class Intake:
    """
    The gate of received consensus messages.

    @ivar buffer: messages for the next height, kept (at most
        L{MAX_BUFFERED}) until this node reaches it.
    """

    def __init__(self, chain: Chain, count: Callable[[str], None]) -> None:
        self.chain = chain
        self.count = count
        self.buffer: list[Signed] = []

    def proposal(self, p: Proposal, height: int, round: int,
                 book: ProposalBook) -> str | None:
        """
        Check C{p} against the current (C{height}, C{round}), then add it
        to C{book}.  Returns a reason code when it is not taken.
        """
        if p.height != height:
            return self._buffered(p, height)
        if p.round > round + MAX_ROUND_AHEAD:
            return "round-too-far"
        return book.add(p)

    def vote(self, v: BlockVote, height: int, round: int, book: VoteBook,
             weights: Callable[[], tuple[dict[bytes, int], int]]
             ) -> str | None:
        """
        Check C{v} against the current (C{height}, C{round}), then add it
        to C{book} (with the committee's C{weights}).  Returns a reason
        code when it is not taken.
        """
        if v.height != height:
            if v.height == self.chain.height and v.phase == PRECOMMIT:
                return late_precommit(self.chain, v, self.count)
            return self._buffered(v, height)
        if v.round > round + MAX_ROUND_AHEAD:
            return "round-too-far"
        voters, _ = weights()
        return book.add(v, voters)

    def _buffered(self, message: Signed, height: int) -> str | None:
        if message.height == height + 1 and len(self.buffer) < MAX_BUFFERED:
            self.buffer.append(message)
            return "buffered-next-height"
        return "wrong-height"

    def drain(self) -> list[Signed]:
        """
        The buffered messages, taken out (this node reached their height).
        """
        buffered, self.buffer = self.buffer, []
        return buffered
