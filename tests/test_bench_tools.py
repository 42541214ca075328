"""
What the load benchmark relies on: the node's finality feed
(C{listfinalizedsince}) and the benchmark's own bookkeeping.
"""

from __future__ import annotations

import random
from collections import deque

from twisted.trial import unittest

from benchmarks.load_bench import percentile, sign_payments
from tests.helpers import key
from tests.test_rpc import RPCTestBase
from timecoin import params
from timecoin.rpc import RPCMethods
from timecoin.tx import OutPoint


class FinalizedFeedTests(RPCTestBase):
    """
    C{listfinalizedsince}: the txids a node finalized, after a cursor.
    """

    def test_feed(self) -> None:
        """
        Payments finalized by the node appear once, in order; the returned
        cursor resumes after them; a cursor past the end is clamped.
        """
        start = self.rpc("listfinalizedsince")
        txids = [self.rpc("sendtoaddress", self.external_address(), 1)
                 for _ in range(3)]
        self.clock.advance(0.2)
        feed = self.rpc("listfinalizedsince", start["cursor"])
        self.assertEqual(feed["txids"], txids)
        self.assertEqual(feed["missed"], 0)
        self.assertEqual(feed["cursor"], start["cursor"] + 3)
        again = self.rpc("listfinalizedsince", feed["cursor"])
        self.assertEqual((again["txids"], again["cursor"]),
                         ([], feed["cursor"]))
        self.assertEqual(self.rpc("listfinalizedsince", 10**9)["txids"], [])
        self.assertEqual(self.rpc_error("listfinalizedsince", -1).code, -8)

    def test_missed(self) -> None:
        """
        Finalizations older than what the feed keeps are reported as
        missed, not silently skipped.
        """
        methods = RPCMethods(self.node)
        methods._finalized = deque(maxlen=2)
        for n in range(5):
            methods._tx_finalized(bytes([n]) * 32, 0.1)
        feed = methods.rpc_listfinalizedsince(1)
        self.assertEqual(feed["missed"], 2)
        self.assertEqual(feed["txids"], [bytes([3]).hex() * 32,
                                         bytes([4]).hex() * 32])
        self.assertEqual(feed["cursor"], 5)


class BookkeepingTests(unittest.TestCase):
    """
    The load benchmark's payments and statistics.
    """

    def test_payments_and_twins(self) -> None:
        """
        Each payment spends its own coin on its round-robin node; a twin
        spends the same coin on another node and points back.
        """
        coins = [(OutPoint(bytes([n]) * 32, 0), 10 * params.COIN)
                 for n in range(40)]
        payments = sign_payments(key(1), "TIME0" + "x" * 30, coins, 40, 4,
                                 0.5, random.Random(3))
        primaries = [p for i, p in enumerate(payments)
                     if p.twin is None or i < p.twin]
        self.assertEqual(len(primaries), 40)
        pairs = 0
        for i, p in enumerate(payments):
            if p.twin is not None and i < p.twin:
                twin = payments[p.twin]
                pairs += 1
                self.assertEqual(twin.twin, i)
                self.assertNotEqual(twin.node, p.node)
                self.assertEqual(twin.tx.inputs[0].prevout,
                                 p.tx.inputs[0].prevout)
                self.assertNotEqual(twin.txid, p.txid)
        self.assertGreater(pairs, 5)
        self.assertEqual([p.node for p in primaries],
                         [n % 4 for n in range(40)])

    def test_percentile(self) -> None:
        """
        Nearest-rank percentiles.
        """
        values = [float(v) for v in range(1, 101)]
        self.assertEqual(percentile(values, 0.5), 50.0)
        self.assertEqual(percentile(values, 0.99), 99.0)
        self.assertEqual(percentile([3.0], 0.99), 3.0)
