"""
Who takes part in block consensus at one height (L{Committee}): the
committee's members and their weights, the proposer of each round, and
the quorum thresholds over the committee's total weight.  Every answer is
read from the chain when asked (the weights kept while the members and
the quorum rule stay the same objects).
"""

from __future__ import annotations

from timecoin.chain import Chain
from timecoin.masternodes import Snapshot


class Committee:
    """
    The committee of one height.
    """

    def __init__(self, chain: Chain, height: int) -> None:
        self.chain = chain
        self.height = height
        self._weights: tuple[object, object, dict[bytes, int], int] | None \
            = None

    @property
    def members(self) -> Snapshot:
        """
        Who proposes and votes: the committee of the height (the whole
        snapshot unless the network sets a committee size).
        """
        return self.chain.committee_for(self.height)

    def weights(self) -> tuple[dict[bytes, int], int]:
        """
        Each member's weight under the quorum rule, and their total (kept
        while the members and the rule are the same objects: asked at every
        block vote, it was 2 % of a fifty-masternode simulation).
        """
        members, rule = self.members, self.chain.quorum
        cached = self._weights
        if cached is not None and cached[0] is members and cached[1] is rule:
            return cached[2], cached[3]
        weights = {m.pubkey: rule.weight(m) for m in members}
        total = sum(weights.values())
        self._weights = (members, rule, weights, total)
        return weights, total

    def proposer(self, round: int) -> bytes | None:
        """
        The proposer of C{round} the selection policy names.
        """
        return self.chain.expected_producer(self.height, self.chain.tip.hash,
                                            round)

    def includes(self, pubkey: bytes) -> bool:
        """
        Whether the masternode C{pubkey} is a member.
        """
        return pubkey in {m.pubkey for m in self.members}

    def quorum(self, weight: int) -> bool:
        """
        Whether C{weight} is a quorum (2/3 of the total weight).
        """
        _, total = self.weights()
        return self.chain.quorum.approved(weight, total)

    def more_than_third(self, weight: int) -> bool:
        """
        Whether C{weight} is more than a third of the total weight.
        """
        _, total = self.weights()
        return self.chain.quorum.rejected(weight, total)
