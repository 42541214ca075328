"""
Crash safety on each persistent backend: a real node process SIGKILLed at
seeded random moments under load, restarted and checked by
L{benchmarks.crash_harness} (height never below what was acknowledged,
acknowledged finalized payments kept, supply exactly genesis + rewards,
verifychain ok).  A short fixed schedule runs here; ``make crash`` runs 50
kills per backend.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from benchmarks.crash_harness import CrashHarness

KILLS = 4
SEED = 20260807


class CrashTests(unittest.TestCase):
    """
    Kill-and-restart runs; every child process is killed at cleanup.
    """

    def survive(self, backend: str) -> None:
        """
        Run C{KILLS} seeded kills on C{backend}; every one must be
        survived, with payments finalized and blocks made along the way.
        """
        lines: list[str] = []
        harness = CrashHarness(backend, Path(self.mktemp()).resolve(), SEED,
                               say=lines.append)
        self.addCleanup(harness.close)
        summary = harness.run(KILLS)
        report = "\n".join(lines)
        self.assertEqual(harness.failures, [], report)
        self.assertEqual(summary["survived"], KILLS, report)
        self.assertGreater(summary["finalized_txs"], 0, report)
        self.assertGreater(summary["final_height"], KILLS, report)

    def test_sqlite_survives_sigkill(self) -> None:
        """
        The SQLite store loses nothing acknowledged and resurrects nothing
        across seeded SIGKILLs under load.
        """
        self.survive("sqlite")

    def test_redis_survives_sigkill(self) -> None:
        """
        The Redis store (a private redis-server with appendfsync always,
        itself SIGKILLed now and then) loses nothing acknowledged and
        resurrects nothing across seeded SIGKILLs under load.
        """
        self.survive("redis")
