"""
Whether this node has caught up with the network (L{SyncStatus}): what
block consensus, transaction voting and masternode activation ask before
they take part.

This module imports nothing of timecoin: L{timecoin.node} builds the one
status of a node and gives it to those parts in their constructors, and
block sync (L{timecoin.p2p.sync}) gets it too and answers for it while it
runs.
"""

from __future__ import annotations

from collections.abc import Callable

Judge = Callable[[], bool]
"""Answers whether the node is synced, from the facts at the time asked."""


class SyncStatus:
    """
    Whether this node is synced: always, while nothing judges it (a node
    without P2P); otherwise what its judge (block sync's state machine,
    L{timecoin.p2p.sync.BlockSync.is_synced}) answers at the time of each
    question.

    The answer is asked, not stored: block sync recomputes its state from
    facts that expire (heights reported within a time to live, skips that
    end, a start grace), so a stored flag would be stale between events.
    """

    def __init__(self) -> None:
        self._judge: Judge | None = None

    def is_synced(self) -> bool:
        """
        Whether the node may take part in consensus and vote now.
        """
        judge = self._judge
        return True if judge is None else judge()

    def judge_by(self, judge: Judge | None) -> Judge | None:
        """
        From now on ask C{judge} (C{None}: always synced); returns the
        judge it replaces, to be put back with this same method.
        """
        previous, self._judge = self._judge, judge
        return previous
