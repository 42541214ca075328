"""
Per-peer, per-message-type token buckets.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.interfaces import IReactorTime


class TokenBucket:
    """
    C{rate} tokens per second, holding at most C{burst}.
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: float) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = clock.seconds()

    def take(self, cost: float = 1.0) -> bool:
        """
        Take C{cost} tokens if there are that many; return whether it did.
        """
        now = self.clock.seconds()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False

    def level(self) -> float:
        """
        The tokens there are now (none taken).
        """
        return min(self.burst, self.tokens
                   + (self.clock.seconds() - self.at) * self.rate)


class RateLimiter:
    """
    One bucket per message type for one connection; types without a limit
    always pass.
    """

    def __init__(self, clock: IReactorTime,
                 limits: Mapping[str, tuple[float, float]]) -> None:
        self._buckets = {name: TokenBucket(clock, rate, burst)
                         for name, (rate, burst) in limits.items()}

    def allow(self, name: str, cost: int = 1) -> bool:
        """
        Whether one more message of type C{name}, taking C{cost} tokens
        (the items of a batch), is within the limit.
        """
        bucket = self._buckets.get(name)
        return bucket is None or bucket.take(cost)

    def exhausted(self, name: str) -> bool:
        """
        Whether not even one message of type C{name} would pass now (a
        check before the work of decoding it; nothing is taken).
        """
        bucket = self._buckets.get(name)
        return bucket is not None and bucket.level() < 1
