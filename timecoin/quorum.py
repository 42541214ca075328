"""
Quorum rules (L{IQuorumRule}): how masternode votes are weighed.

Both rules count over the snapshot's total weight, never over the votes
received: with n weight units, approval needs at least ceil(2n/3), and
rejection more than n - ceil(2n/3) (so the two can never both hold).
"""

from __future__ import annotations

from zope.interface import implementer

from timecoin import params
from timecoin.interfaces import IQuorumRule
from timecoin.masternodes import Masternode, Snapshot


def approval_threshold(total: int) -> int:
    """
    The smallest weight that is at least two thirds of C{total}.
    """
    return -(-2 * total // 3)


@implementer(IQuorumRule)
class _TwoThirds:
    name = ""

    def weight(self, masternode: Masternode) -> int:
        raise NotImplementedError

    def total(self, snapshot: Snapshot) -> int:
        """
        The total voting weight of C{snapshot}.
        """
        return sum(self.weight(m) for m in snapshot)

    def approved(self, approving: int, total: int) -> bool:
        return total > 0 and approving >= approval_threshold(total)

    def rejected(self, rejecting: int, total: int) -> bool:
        return total > 0 and rejecting > total - approval_threshold(total)


class CountQuorum(_TwoThirds):
    """
    One masternode, one vote (as in the seeds).
    """

    name = "count"

    def weight(self, masternode: Masternode) -> int:
        return 1


class TierWeightedQuorum(_TwoThirds):
    """
    Votes weighted by collateral tier (free 1, bronze 10, silver 100,
    gold 1,000).
    """

    name = "tier-weighted"

    def weight(self, masternode: Masternode) -> int:
        return params.TIER_WEIGHT[masternode.tier]


QUORUM_RULES = {rule.name: rule for rule in (CountQuorum(),
                                             TierWeightedQuorum())}
