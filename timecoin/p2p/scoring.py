"""
Misbehaviour scores and expiring bans, per peer identity.

Every offence has a reason code with a cost in points.  Costs separate two
kinds of peers:

- *slow or misconfigured* (wrong network or genesis, other policy, too old
  a version, timeouts, duplicates, full node): the connection ends, the
  peer costs nothing and may come back later;
- *malicious or broken* (garbage, oversized lines, invalid blocks,
  transactions or votes, answers to requests never made): points that
  decay with a half-life; at the threshold the identity is banned for a
  while, and the ban expires on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime


@dataclass(frozen=True)
class Offence:
    """
    What one kind of misbehaviour costs.

    @ivar points: added to the peer's score.
    @ivar close: whether the connection ends (besides a ban).
    @ivar reply: whether an C{error} message tells the peer.
    """

    points: int
    close: bool = False
    reply: bool = True


OFFENCES: dict[str, Offence] = {
    # Slow or misconfigured: disconnect, no score.
    "wrong-network": Offence(0, True),
    "wrong-genesis": Offence(0, True),
    "unsupported-version": Offence(0, True),
    "policy-mismatch": Offence(0, True),
    "self-connection": Offence(0, True),
    "duplicate-connection": Offence(0, True),
    "duplicate-ip": Offence(0, True),
    "too-many-peers": Offence(0, True),
    "too-many-from-ip": Offence(0, True),
    "handshake-timeout": Offence(0, True),
    "ping-timeout": Offence(0, True),
    "output-overflow": Offence(0, True, reply=False),
    "banned": Offence(0, True),
    "shutdown": Offence(0, True),
    "tls-unexpected": Offence(0, True),
    "tls-key-mismatch": Offence(0, True),
    # Protocol slips: a few points, the connection stays unless noted.
    "expected-hello": Offence(10, True),
    "not-allowed-in-state": Offence(10),
    "unknown-type": Offence(5),
    "unsolicited-response": Offence(5, reply=False),
    # Dropped, not scored: a burst is what an honest peer sends when a
    # network cut heals (its queued re-broadcasts arrive at once); scoring
    # it banned honest nodes after a 100 s cut.  The check is cheap and
    # runs before decoding.
    "rate-limited": Offence(0, reply=False),
    # Garbage and invalid data: scored to a ban.
    "line-too-long": Offence(50, True),
    "not-utf8": Offence(20),
    "bad-json": Offence(20),
    "not-an-object": Offence(20),
    "no-type": Offence(20),
    "message-too-large": Offence(20),
    "bad-message": Offence(20),
    "bad-response": Offence(20),
    "invalid-tx": Offence(20, reply=False),
    "invalid-vote": Offence(20, reply=False),
    "invalid-heartbeat": Offence(20, reply=False),
    "invalid-block": Offence(100, reply=False),
    "conflicting-block": Offence(100, reply=False),
}
"""Every reason code a peer can be charged with."""


class Scores:
    """
    Decaying misbehaviour scores and expiring bans, keyed by peer identity
    (an IP, or C{ip:port} on loopback).
    """

    def __init__(self, clock: IReactorTime, threshold: float = 100.0,
                 ban_seconds: float = 3600.0, half_life: float = 600.0,
                 max_entries: int = 10_000) -> None:
        self.clock = clock
        self.threshold = threshold
        self.ban_seconds = ban_seconds
        self.half_life = half_life
        self.max_entries = max_entries
        self._scores: dict[str, tuple[float, float]] = {}
        self._bans: dict[str, float] = {}

    def score(self, key: str) -> float:
        """
        The current (decayed) score of C{key}.
        """
        value, at = self._scores.get(key, (0.0, 0.0))
        if not value:
            return 0.0
        elapsed = max(0.0, self.clock.seconds() - at)
        return float(value * 0.5 ** (elapsed / self.half_life))

    def add(self, key: str, points: float) -> bool:
        """
        Charge C{key} C{points}; ban it if its score reaches the threshold.
        Returns whether C{key} is (now) banned.
        """
        if points > 0:
            value = self.score(key) + points
            self._scores[key] = (value, self.clock.seconds())
            if value >= self.threshold:
                self.ban(key)
                self._scores.pop(key, None)
            self._bound()
        return self.banned(key)

    def ban(self, key: str, seconds: float | None = None) -> None:
        """
        Ban C{key} for C{seconds} (default: the configured ban length).
        """
        self._bans[key] = self.clock.seconds() + (
            self.ban_seconds if seconds is None else seconds)

    def unban(self, key: str) -> None:
        """
        Lift the ban and score of C{key}.
        """
        self._bans.pop(key, None)
        self._scores.pop(key, None)

    def banned(self, key: str) -> bool:
        """
        Whether C{key} is banned now (expired bans are forgotten).
        """
        until = self._bans.get(key)
        if until is None:
            return False
        if until <= self.clock.seconds():
            del self._bans[key]
            return False
        return True

    def bans(self) -> dict[str, float]:
        """
        Current bans: key → time the ban ends.
        """
        for key in list(self._bans):
            self.banned(key)
        return dict(self._bans)

    def prune(self) -> None:
        """
        Forget scores that decayed below one point and expired bans.
        """
        for key in list(self._scores):
            if self.score(key) < 1.0:
                del self._scores[key]
        self.bans()

    def _bound(self) -> None:
        if len(self._scores) > self.max_entries:
            self.prune()
        while len(self._scores) > self.max_entries:
            lowest = min(self._scores, key=self.score)
            del self._scores[lowest]
