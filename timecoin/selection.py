"""
Built-in block-producer selection policies (L{ISelectionPolicy}) and the
loader that finds a policy by name among Twisted plugins.

Policies are pure functions of (snapshot, height, previous hash, round):
no clock, no connections, no hash-seeded containers.
"""

from __future__ import annotations

from pathlib import Path

from twisted.plugin import IPlugin, getPlugins
from zope.interface import implementer

from timecoin import params
from timecoin.encoding import sha256
from timecoin.interfaces import ISelectionPolicy
from timecoin.masternodes import Snapshot


class PolicyError(LookupError):
    """
    No selection policy of the configured name was found.
    """


@implementer(IPlugin, ISelectionPolicy)
class RoundRobin:
    """
    Masternodes take turns by height: block h's round-0 producer is
    snapshot[h mod n]; each later round moves one place on.
    """

    name = "round-robin"

    def candidates(self, snapshot: Snapshot, height: int, prev_hash: bytes,
                   round: int) -> list[bytes]:
        n = len(snapshot)
        start = (height + round) % n
        return [snapshot[(start + i) % n].pubkey for i in range(n)]


@implementer(IPlugin, ISelectionPolicy)
class StakeWeightedLottery:
    """
    A hash lottery weighted by tier (free 1, bronze 10, silver 100,
    gold 1,000): weighted sampling without replacement in integers only.
    Draw k takes r = SHA-256(seed ‖ k) mod (weight still in the pool) and
    picks the masternode whose cumulative weight interval holds r, where
    seed = SHA-256("stake-weighted" ‖ height ‖ prev hash).  Round r's
    proposer is the r-th of that order (cyclically).
    """

    name = "stake-weighted"

    def candidates(self, snapshot: Snapshot, height: int, prev_hash: bytes,
                   round: int) -> list[bytes]:
        seed = sha256(b"stake-weighted" + height.to_bytes(8, "big")
                      + prev_hash)
        pool = [(params.TIER_WEIGHT[m.tier], m.pubkey) for m in snapshot]
        order = []
        for draw in range(len(pool)):
            total = sum(weight for weight, _ in pool)
            r = int.from_bytes(sha256(seed + draw.to_bytes(4, "big")),
                               "big") % total
            for index, (weight, pubkey) in enumerate(pool):
                if r < weight:
                    order.append(pubkey)
                    del pool[index]
                    break
                r -= weight
        shift = round % len(order)
        return order[shift:] + order[:shift]


def load_policy(name: str,
                plugin_dirs: tuple[str, ...] = ()) -> ISelectionPolicy:
    """
    Find the selection policy called C{name} among the Twisted plugins of
    C{twisted.plugins}, after adding C{plugin_dirs} to that package's
    search path (the way Twisted finds plugins outside the package).

    @raise PolicyError: naming the policies that do exist.
    """
    import twisted.plugins

    for directory in plugin_dirs:
        path = str(Path(directory).resolve())
        if not Path(path).is_dir():
            raise PolicyError(f"plugin directory {path} does not exist")
        if path not in twisted.plugins.__path__:
            twisted.plugins.__path__.append(path)
    found: dict[str, ISelectionPolicy] = {}
    for plugin in getPlugins(ISelectionPolicy, twisted.plugins):
        found[plugin.name] = plugin
    if name not in found:
        raise PolicyError(
            f"unknown selection policy {name!r}; available: "
            f"{', '.join(sorted(found)) or 'none'}")
    return found[name]
