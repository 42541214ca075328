"""
Masternodes as chain state sees them, and the canonical snapshot.

The snapshot used for height h is derived from chain state only (the
registry as of block h-1), sorted by operator public key, so every node
computes the same set.  Liveness (heartbeats) never enters it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timecoin import params
from timecoin.address import AddressError, decode_address
from timecoin.encoding import EncodingError, need_dict, need_str, unhex


@dataclass(frozen=True, order=True)
class Masternode:
    """
    A registered masternode.

    @ivar pubkey: the operator's Ed25519 public key (signs votes, blocks).
    @ivar p2p_address: C{host:port} it listens on.
    @ivar reward_address: where its share of block rewards is paid.
    @ivar tier: one of C{free, bronze, silver, gold}.
    """

    pubkey: bytes
    p2p_address: str
    reward_address: str
    tier: str

    def to_obj(self) -> dict[str, Any]:
        return {"pubkey": self.pubkey.hex(), "p2p_address": self.p2p_address,
                "reward_address": self.reward_address, "tier": self.tier}

    @classmethod
    def from_obj(cls, obj: Any, prefix: str) -> Masternode:
        need_dict(obj, "masternode",
                  {"pubkey", "p2p_address", "reward_address", "tier"})
        tier = need_str(obj["tier"], "tier", 16)
        if tier not in params.TIER_WEIGHT:
            raise EncodingError(f"unknown tier {tier!r}")
        reward = need_str(obj["reward_address"], "reward_address", 64)
        try:
            decode_address(reward, prefix)
        except AddressError as e:
            raise EncodingError(f"bad reward address: {e}") from e
        return cls(unhex(obj["pubkey"], 32, "masternode pubkey"),
                   need_str(obj["p2p_address"], "p2p_address", 128),
                   reward, tier)


Snapshot = tuple[Masternode, ...]


def make_snapshot(masternodes: list[Masternode]) -> Snapshot:
    """
    The canonical snapshot: unique by pubkey, sorted by pubkey bytes.
    """
    by_key = {m.pubkey: m for m in masternodes}
    return tuple(by_key[k] for k in sorted(by_key))
