"""
What block sync counts and how it warns: one L{SyncReport} shared by the
parts of L{timecoin.p2p.sync}.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

LOG_REPEAT_SECONDS = 60.0
"""A repeated warning (same kind, same peer) is logged at most this often."""

MAX_WARNING_KEYS = 10_000
"""Remembered (peer, kind) pairs of warnings; all are forgotten beyond."""


class SyncReport:
    """
    The counters of block sync, by reason code, and its warnings about
    one peer, logged at most once per C{LOG_REPEAT_SECONDS} per (peer,
    kind).

    @ivar counters: every event counted by reason code.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.counters: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], float] = {}

    def warn(self, who: str, kind: str, fmt: str, **fields: Any) -> None:
        """
        Log a warning at most once per C{LOG_REPEAT_SECONDS} per (peer
        C{who}, kind).
        """
        now = self.clock.seconds()
        mark = (who, kind)
        if now - self._logged.get(mark, float("-inf")) < LOG_REPEAT_SECONDS:
            self.counters["log-suppressed"] += 1
            return
        if len(self._logged) > MAX_WARNING_KEYS:
            self._logged.clear()
        self._logged[mark] = now
        log.warn(fmt, **fields)

    def internal_error(self, failure: Failure) -> None:
        """
        An errback: count and log an unexpected failure.
        """
        self.counters["errors"] += 1
        log.failure("block sync failed", failure)
