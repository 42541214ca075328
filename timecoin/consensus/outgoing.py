"""
What this node signed in block consensus and hands to the network
(L{Outgoing}): the signal its messages go out by (the engine's C{outbox}),
the messages it signed at the current height, which the periodic
re-broadcast sends again, and the votes it stepped past while not synced,
which it signs as nil once caught up.
"""

from __future__ import annotations

from timecoin.consensus.messages import BlockVote, Signed
from timecoin.signal import Signal


class Outgoing:
    """
    This node's own consensus messages.

    @ivar outbox: emitted with every proposal and vote this node signs
        or sends again (the P2P layer gossips them); kept across heights.
    @ivar mine: what it signed at the current height.
    @ivar unsigned: the (phase, round) of the votes it stepped past
        unsigned at the current height, as it was not synced.
    """

    def __init__(self) -> None:
        self.outbox: Signal[Signed] = Signal("consensus.outbox")
        self.mine: list[Signed] = []
        self.unsigned: set[tuple[str, int]] = set()

    def reset(self) -> None:
        """
        A new height: nothing signed or skipped in it yet.
        """
        self.mine = []
        self.unsigned = set()

    def deliver(self, message: Signed) -> None:
        """
        C{message}, signed and recorded, leaves the node.
        """
        self.mine.append(message)
        self.send(message)

    def send(self, message: Signed) -> None:
        """
        Hand C{message} to every listener of the outbox.
        """
        self.outbox.emit(message)

    def recent(self, round: int) -> list[Signed]:
        """
        What this node signed in C{round} and the round before.
        """
        return [m for m in self.mine if m.round >= round - 1]

    def resend(self, round: int, proofs: list[BlockVote]) -> None:
        """
        Send again what this node signed in C{round} and the round before
        (the periodic re-broadcast): peers that connected late or
        restarted (and so missed them) need them to join the round; peers
        that have them drop them as duplicates without relaying.

        With a valid block (a prevote quorum seen for it), the prevotes of
        that quorum (C{proofs}) go too: they justify re-proposing the
        block in a later round, and a peer that restarted or joined after
        that round lacks them, so it would prevote nil on the re-proposal
        while the nodes locked on the block prevote nil on anything else
        -- a stall the simulator found.
        """
        resend = self.recent(round)
        resend += [v for v in proofs if v not in resend]
        for message in resend:
            self.send(message)

    def signed_in(self, height: int, round: int) -> bool:
        """
        Whether this node signed anything at (C{height}, C{round}).
        """
        return any(m.height == height and m.round == round
                   for m in self.mine)

    def missed(self, round: int) -> list[str]:
        """
        The phases of C{round} this node stepped past unsigned, sorted;
        the skipped votes of other rounds are forgotten.
        """
        missed = sorted(p for p, r in self.unsigned if r == round)
        self.unsigned = {k for k in self.unsigned if k[1] == round}
        return missed
