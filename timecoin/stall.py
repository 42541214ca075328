"""
Whether the chain is stalled (L{StallWatch}): the age of the tip, and,
once a synced node saw no block for C{stall_after} seconds, who is missing
from the current round.  The node's health check and the metrics read it.

This module imports the core (C{chain}, C{config}, C{quorum}); the node
builds it, giving it the consensus engine's view of who is online.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from timecoin.chain import Chain
from timecoin.config import Config
from timecoin.quorum import approval_threshold

__all__ = ["StallWatch"]


class StallWatch:
    """
    The tip's age and the stall report of one node.
    """

    def __init__(self, chain: Chain, clock: IReactorTime, config: Config,
                 online: Callable[[], set[bytes]],
                 synced: Callable[[], bool]) -> None:
        """
        @param config: its C{stall_after} is read as it goes.
        @param online: the masternodes heard from in the current round
            (L{timecoin.consensus.BlockConsensus.online}).
        @param synced: whether the node caught up with the network.
        """
        self.chain = chain
        self.clock = clock
        self.config = config
        self.online = online
        self.synced = synced

    def tip_age(self) -> float:
        """
        Seconds since the tip block's timestamp.
        """
        return max(0.0, self.clock.seconds()
                   - self.chain.tip.header.timestamp / 1000.0)

    def stall(self) -> dict[str, Any] | None:
        """
        C{None} unless the chain is stalled: the node is synced and no
        block came for C{stall_after} seconds.  Then C{reason} (how long,
        the weight heard from in the current round against the weight a
        block needs) and C{missing} (the masternodes not heard from).
        """
        age = self.tip_age()
        if age < self.config.stall_after or not self.synced():
            return None
        chain = self.chain
        snapshot = chain.committee_for(chain.height + 1)
        weights = {m.pubkey: chain.quorum.weight(m) for m in snapshot}
        total = sum(weights.values())
        online = self.online()
        heard = sum(w for k, w in weights.items() if k in online)
        needed = approval_threshold(total) if total else 0
        return {"reason": f"stalled: no commit for {age:.0f} s, weight "
                          f"online {heard} of {total}, {needed} needed",
                "missing": sorted(k.hex() for k in weights
                                  if k not in online)}
