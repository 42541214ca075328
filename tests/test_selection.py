"""
Contract tests every selection policy must pass: a pure function of
(snapshot, height, previous hash, round), the same in every process and
under every hash seed, drawing candidates from the snapshot only, and
spreading production by weight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import addr, key
from timecoin.encoding import sha256
from timecoin.masternodes import Masternode, make_snapshot
from timecoin.params import TIER_WEIGHT
from timecoin.selection import load_policy

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = str(ROOT / "plugins")
POLICIES = ("round-robin", "stake-weighted", "lowest-hash")
TIERS = ("gold", "silver", "bronze", "free", "free", "bronze")

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.test_selection import orders
print(json.dumps(orders()))
"""


def snapshot():
    """
    Six masternodes of mixed tiers.
    """
    return make_snapshot([Masternode(key(i).public, f"10.0.0.{i}:1",
                                     addr(key(i)), tier)
                          for i, tier in enumerate(TIERS)])


def policy(name: str):
    return load_policy(name, (PLUGINS,) if name == "lowest-hash" else ())


def orders() -> dict[str, list[list[str]]]:
    """
    The candidate orders of every policy for a fixed set of inputs.
    """
    snap = snapshot()
    out = {}
    for name in POLICIES:
        p = policy(name)
        out[name] = [[c.hex() for c in p.candidates(
            snap, height, sha256(b"%d" % height), rnd)]
            for height in range(40) for rnd in range(3)]
    return out


class PolicyContractTests(unittest.TestCase):
    """
    Every policy (built-ins and the plugins/ one).
    """

    def setUp(self) -> None:
        import twisted.plugins
        self.addCleanup(lambda: PLUGINS in twisted.plugins.__path__
                        and twisted.plugins.__path__.remove(PLUGINS))

    def test_same_across_processes_and_hash_seeds(self) -> None:
        """
        Two fresh interpreters with different PYTHONHASHSEEDs compute
        exactly the orders this process computes.
        """
        here = orders()
        for seed in ("0", "4242"):
            env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
            out = subprocess.run(
                [sys.executable, "-c", SCRIPT.format(root=str(ROOT))],
                env=env, capture_output=True, text=True, check=True,
                timeout=60)
            self.assertEqual(json.loads(out.stdout), here, seed)

    def test_candidates_from_snapshot_only(self) -> None:
        """
        Each order is a permutation of the snapshot's keys, and a round
        change hands the proposal to another masternode.
        """
        snap = snapshot()
        members = sorted(m.pubkey for m in snap)
        for name in POLICIES:
            p = policy(name)
            for height in range(50):
                prev = sha256(b"%d" % height)
                first = p.candidates(snap, height, prev, 0)
                self.assertEqual(sorted(first), members, name)
                self.assertNotEqual(first[0],
                                    p.candidates(snap, height, prev, 1)[0])

    def test_spread_by_weight(self) -> None:
        """
        Over many heights, round-robin gives everyone an equal share and
        the stake-weighted lottery gives shares proportional to tier weight
        (within 15 % for the larger weights).
        """
        snap = snapshot()
        heights = 20_000
        for name in ("round-robin", "stake-weighted"):
            p = policy(name)
            wins = Counter(p.candidates(snap, h, sha256(b"%d" % h), 0)[0]
                           for h in range(heights))
            if name == "round-robin":
                self.assertLessEqual(max(wins.values())
                                     - min(wins.values()), 1)
                continue
            total = sum(TIER_WEIGHT[m.tier] for m in snap)
            for m in snap:
                expected = heights * TIER_WEIGHT[m.tier] / total
                if TIER_WEIGHT[m.tier] >= 100:
                    ratio = wins[m.pubkey] / expected
                    self.assertTrue(0.85 < ratio < 1.15, (m.tier, ratio))
            gold = [m.pubkey for m in snap if m.tier == "gold"][0]
            free = [m.pubkey for m in snap if m.tier == "free"]
            self.assertGreater(wins[gold], 50 * max(wins[f] for f in free))
