"""
Masternode liveness: signed heartbeats and the view they feed.

Every masternode signs a heartbeat every ``interval`` seconds over
(network, pubkey, seq, height), where ``seq`` is its clock in milliseconds
(strictly increasing per sender, so a replayed or reordered heartbeat is
recognized as stale).  Heartbeats from keys outside the current snapshot,
with bad signatures, stale or far-future sequence numbers are dropped with
a reason code.  The view says when each masternode was last heard from; it
is shown in RPC and never enters selection, which depends on chain state
only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from timecoin.encoding import (
    canonical,
    hash_obj,
    need_dict,
    need_int,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.signal import Signal

log = Logger()

HEARTBEAT_DOMAIN = b"TIMECOIN/heartbeat"
MAX_FUTURE_MS = 60_000
"""A heartbeat stamped further ahead of our clock than this is refused."""


@dataclass(frozen=True)
class Heartbeat:
    """
    A masternode's signed "I am alive at my height".
    """

    pubkey: bytes
    seq: int
    height: int
    signature: bytes

    def to_obj(self) -> dict[str, Any]:
        return {"pubkey": self.pubkey.hex(), "seq": self.seq,
                "height": self.height, "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> Heartbeat:
        need_dict(obj, "heartbeat", {"pubkey", "seq", "height", "signature"})
        return cls(unhex(obj["pubkey"], 32, "pubkey"),
                   need_int(obj["seq"], "seq"),
                   need_int(obj["height"], "height"),
                   unhex(obj["signature"], 64, "signature"))

    @property
    def id(self) -> bytes:
        """
        The gossip deduplication id.
        """
        return hash_obj(self.to_obj())


def heartbeat_message(network: str, pubkey: bytes, seq: int,
                      height: int) -> bytes:
    """
    What a heartbeat signs.
    """
    return canonical({"network": network, "pubkey": pubkey.hex(),
                      "seq": seq, "height": height})


def sign_heartbeat(key: PrivateKey, network: str, seq: int,
                   height: int) -> Heartbeat:
    """
    A heartbeat signed by C{key}.
    """
    return Heartbeat(key.public, seq, height, key.sign(
        HEARTBEAT_DOMAIN, heartbeat_message(network, key.public, seq,
                                            height)))


@dataclass
class Seen:
    """
    What the view knows of one masternode.
    """

    seq: int
    height: int
    last_seen: float


class Liveness:
    """
    The liveness view of one node, and its own heartbeat timer.

    @ivar heartbeat_cast: emitted with every heartbeat this node signs
        (the P2P layer gossips them).
    """

    def __init__(self, chain: Any, clock: IReactorTime,
                 interval: float = 30.0, expiry: float = 120.0) -> None:
        self.chain = chain
        self.clock = clock
        self.interval = interval
        self.expiry = expiry
        self.seen: dict[bytes, Seen] = {}
        self.heartbeat_cast: Signal[Heartbeat] = Signal(
            "liveness.heartbeat_cast")
        self.counters: dict[str, int] = {}
        self._key: PrivateKey | None = None
        self._call: IDelayedCall | None = None

    def _members(self) -> set[bytes]:
        return {m.pubkey for m in self.chain.snapshot_for(
            self.chain.height + 1)}

    def receive(self, heartbeat: Heartbeat) -> str | None:
        """
        Check and record a heartbeat; return a reason code if dropped.
        """
        reason = self._problem(heartbeat)
        key = reason or "accepted"
        self.counters[key] = self.counters.get(key, 0) + 1
        if reason is None:
            self.seen[heartbeat.pubkey] = Seen(
                heartbeat.seq, heartbeat.height, self.clock.seconds())
        return reason

    def _problem(self, heartbeat: Heartbeat) -> str | None:
        if heartbeat.pubkey not in self._members():
            return "heartbeat-not-masternode"
        known = self.seen.get(heartbeat.pubkey)
        if known is not None and heartbeat.seq <= known.seq:
            return "heartbeat-stale"
        if heartbeat.seq > self.clock.seconds() * 1000 + MAX_FUTURE_MS:
            return "heartbeat-future"
        if not verify(heartbeat.pubkey, HEARTBEAT_DOMAIN, heartbeat_message(
                self.chain.network.name, heartbeat.pubkey, heartbeat.seq,
                heartbeat.height), heartbeat.signature):
            return "heartbeat-bad-signature"
        return None

    def is_alive(self, pubkey: bytes) -> bool:
        """
        Whether C{pubkey} was heard from within C{expiry} seconds.
        """
        seen = self.seen.get(pubkey)
        return seen is not None and \
            self.clock.seconds() - seen.last_seen <= self.expiry

    def view(self) -> dict[bytes, dict[str, Any]]:
        """
        For every masternode of the snapshot: last_seen (seconds since the
        epoch, or None), height it reported, and alive.
        """
        out = {}
        for pubkey in sorted(self._members()):
            seen = self.seen.get(pubkey)
            out[pubkey] = {
                "last_seen": None if seen is None else seen.last_seen,
                "height": None if seen is None else seen.height,
                "alive": self.is_alive(pubkey)}
        return out

    def start(self, key: PrivateKey) -> None:
        """
        Sign and cast a heartbeat now and every C{interval} seconds while
        C{key} is a masternode of the snapshot.
        """
        self._key = key
        self._beat()

    def stop(self) -> None:
        """
        Stop the heartbeat timer.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._key = None

    def _beat(self) -> None:
        self._call = None
        key = self._key
        if key is None:
            return
        if key.public in self._members():
            heartbeat = sign_heartbeat(
                key, self.chain.network.name,
                int(self.clock.seconds() * 1000), self.chain.height)
            self.receive(heartbeat)
            self.heartbeat_cast.emit(heartbeat)
        self._call = self.clock.callLater(self.interval, self._beat)
