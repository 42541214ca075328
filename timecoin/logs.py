"""
Log observers for ``twistd --logger``, and rate-limited logging.

``twistd --logger timecoin.logs.json_observer timecoin ...`` writes every
event as one JSON object per line (twisted.logger's own format, with the
stable event fields each log call names) to standard output.

L{RateLimitedLog} keeps a repeated message (the same peer misbehaving in
the same way, say) from flooding the log: the first occurrence of a key is
logged, then at most one per interval, and the one logged after a quiet
spell says how many were suppressed (field C{suppressed}).  Log spam was a
recurring bug of the Rust reference node.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from dataclasses import dataclass
from typing import IO, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger, LogLevel, jsonFileLogObserver

MAX_KEYS = 10_000
"""Keys a L{RateLimitedLog} remembers at most (a flood of distinct keys
cannot grow it without bound)."""


def json_observer(out: IO[Any] | None = None) -> ILogObserver:
    """
    A JSON-lines observer on C{out} (standard output by default): one
    JSON object per event, each on its own line.
    """
    return jsonFileLogObserver(out if out is not None else sys.stdout,
                               recordSeparator="")


@dataclass
class _Seen:
    logged_at: float
    suppressed: int = 0


class RateLimitedLog:
    """
    Log an event the first time its key is seen, then at most once per
    C{interval} seconds per key, counting the ones suppressed in between.

    Every event logged through it carries the field C{suppressed} (how many
    events of its key were dropped since the last one logged, usually 0);
    when it is not 0 the message ends with "(N similar suppressed)".

    @ivar suppressed_total: events suppressed since creation.
    """

    def __init__(self, logger: Logger, clock: IReactorTime, interval: float,
                 max_keys: int = MAX_KEYS) -> None:
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.max_keys = max_keys
        self.suppressed_total = 0
        self._seen: dict[Hashable, _Seen] = {}

    def emit(self, key: Hashable, level: LogLevel, fmt: str, /,
             **fields: Any) -> bool:
        """
        Log C{fmt} with C{fields} at C{level} unless an event of C{key} was
        logged less than C{interval} seconds ago; return whether it was
        logged.
        """
        now = self.clock.seconds()
        seen = self._seen.get(key)
        if seen is not None and now - seen.logged_at < self.interval:
            seen.suppressed += 1
            self.suppressed_total += 1
            return False
        suppressed = 0 if seen is None else seen.suppressed
        if seen is None and len(self._seen) >= self.max_keys:
            self._forget(now)
        self._seen[key] = _Seen(now)
        if suppressed:
            fmt += " ({suppressed} similar suppressed)"
        self.logger.emit(level, fmt, suppressed=suppressed, **fields)
        return True

    def _forget(self, now: float) -> None:
        """
        Drop the keys whose interval is over; if that frees nothing, all.
        """
        self._seen = {k: v for k, v in self._seen.items()
                      if now - v.logged_at < self.interval}
        if len(self._seen) >= self.max_keys:
            self._seen.clear()

    def warn(self, key: Hashable, fmt: str, /, **fields: Any) -> bool:
        """
        L{emit} at warn level.
        """
        return self.emit(key, LogLevel.warn, fmt, **fields)

    def info(self, key: Hashable, fmt: str, /, **fields: Any) -> bool:
        """
        L{emit} at info level.
        """
        return self.emit(key, LogLevel.info, fmt, **fields)
