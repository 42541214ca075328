"""
Admission control of clients' new transactions (L{Admission}): the node
refuses them at once, with the retryable reason C{node-busy}, while its
undecided backlog or its finalized payments waiting for a block are at
their bounds (C{rpc_max_undecided}, C{rpc_max_unmined}).

This module imports the core (C{chain}, C{config}, C{logs}, C{mempool})
and C{finality}; the node builds it and RPC calls it.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.chain import TxInvalid
from timecoin.config import Config
from timecoin.finality import Finality
from timecoin.logs import RateLimitedLog
from timecoin.mempool import Mempool

__all__ = ["BUSY_LOG_SECONDS", "NODE_BUSY", "Admission"]

log = Logger(namespace="timecoin.node")
"""The admission log lines keep the namespace they had in the node."""

NODE_BUSY = "node-busy"
"""Reason code of a new transaction refused by admission control."""
BUSY_LOG_SECONDS = 60.0
"""The node logs turning busy (and accepting again) at most once per this
many seconds each: near the bound it may switch many times a second."""


class Admission:
    """
    Whether a client's new transaction is taken now, and the count of
    those refused.

    @ivar busy_refusals: new transactions refused by admission control
        since start.
    """

    def __init__(self, config: Config, finality: Finality, mempool: Mempool,
                 clock: IReactorTime,
                 waiting: Callable[[], int] = lambda: 0) -> None:
        """
        @param config: read as it goes (its bounds may change at run time).
        @param waiting: how many transactions from peers wait for
            admission in the P2P layer.
        """
        self.config = config
        self.finality = finality
        self.mempool = mempool
        self.waiting = waiting
        self.busy_refusals = 0
        self._busy = False
        self._busy_log = RateLimitedLog(log, clock, BUSY_LOG_SECONDS)

    def undecided(self) -> int:
        """
        Transactions admitted and not yet finalized or rejected: pending
        mempool entries and contenders, from peers as well as from RPC
        (each holds a vote timeout until it is decided), plus those from
        peers still waiting for admission (the P2P service's queue, see
        L{timecoin.p2p.settings.P2PSettings.admit_slice}).
        """
        return self.finality.undecided + self.waiting()

    def backlog(self) -> str | None:
        """
        Why clients' new transactions are refused now, or C{None}: the
        undecided backlog is at C{rpc_max_undecided}, or the finalized
        payments waiting for a block are at C{rpc_max_unmined} (blocks lag
        behind finality; taking more would fill the mempool and grow every
        block past what a round can carry).  A bound of 0 is none.
        """
        config = self.config
        limit = config.rpc.max_undecided
        if limit:
            undecided = self.undecided()
            if undecided >= limit:
                return f"{undecided} transactions undecided, limit {limit}"
        limit = config.rpc.max_unmined
        if limit:
            unmined = self.mempool.finalized_count
            if unmined >= limit:
                return (f"{unmined} finalized transactions waiting for a "
                        f"block, limit {limit}")
        return None

    def check(self) -> None:
        """
        Refuse a new transaction from a client at once while the node is
        backlogged (L{backlog}), before any parsing or signature work.
        Refusals are counted (C{busy_refusals}, and as the mempool
        refusal reason C{node-busy}); the node logs when it turns busy and
        when it accepts again, not each refusal.

        @raise TxInvalid: C{node-busy}, a retryable refusal.
        """
        why = self.backlog()
        if why is None:
            if self._busy:
                self._busy = False
                self._busy_log.info(
                    "accepted", "accepting new transactions again: "
                    "{undecided} undecided, {unmined} waiting for a block; "
                    "{refused} refused since start",
                    undecided=self.undecided(),
                    unmined=self.mempool.finalized_count,
                    refused=self.busy_refusals, reason=NODE_BUSY)
            return
        if not self._busy:
            self._busy = True
            self._busy_log.warn(
                "busy", "node busy: {why}; refusing new transactions from "
                "clients until the backlog drains", why=why,
                reason=NODE_BUSY)
        self.busy_refusals += 1
        rejections = self.mempool.rejections
        rejections[NODE_BUSY] = rejections.get(NODE_BUSY, 0) + 1
        raise TxInvalid(NODE_BUSY, f"{why}; retry later")
