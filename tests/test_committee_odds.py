"""
The committee security arithmetic of C{docs/consensus.md}
(C{scripts/committee_odds.py}).
"""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from pathlib import Path

from twisted.trial import unittest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / \
    "committee_odds.py"


def load():
    """
    The script as a module.
    """
    spec = importlib.util.spec_from_file_location("committee_odds", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CommitteeOddsTests(unittest.TestCase):
    """
    The tails are exact, and the table in the docs is what the script
    prints.
    """

    def setUp(self) -> None:
        self.odds = load()

    def test_exact_small_cases(self) -> None:
        """
        Worked by hand: three fair coins, at least one head: 7/8; two
        drawn of four of which two are bad, at least one bad: 5/6; a
        third or more of 9 is 3, of 10 is 4.
        """
        odds = self.odds
        self.assertEqual(odds.binomial_tail(3, Fraction(1, 2), 1),
                         Fraction(7, 8))
        self.assertEqual(odds.hypergeometric_tail(4, 2, 2, 1),
                         Fraction(5, 6))
        self.assertEqual([odds.third_or_more(c) for c in (9, 10, 400)],
                         [3, 4, 134])

    def test_large_network_approaches_the_binomial(self) -> None:
        """
        Drawing 30 from a network of 350,000 is nearly drawing with
        replacement: the hypergeometric tail is within 1 % of the
        binomial one; from 300 it is clearly smaller.
        """
        odds = self.odds
        binomial = float(odds.binomial_tail(30, Fraction(1, 5), 10))
        large = float(odds.hypergeometric_tail(350_000, 70_000, 30, 10))
        small = float(odds.hypergeometric_tail(300, 60, 30, 10))
        self.assertLess(abs(large / binomial - 1.0), 0.01)
        self.assertLess(small, 0.9 * binomial)

    def test_docs_table_is_the_scripts(self) -> None:
        """
        Every row of the 3,500-masternode table in C{docs/consensus.md}
        is a row the script prints.
        """
        odds = self.odds
        rows = odds.table([10, 20, 30, 50, 100, 200, 400],
                          [0.1, 0.2, 0.25, 0.3], 3500,
                          365.25 * 86400 / 6000.0)
        doc = (SCRIPT.parent.parent / "docs" / "consensus.md").read_text()
        for row in rows:
            self.assertIn(row, doc)
