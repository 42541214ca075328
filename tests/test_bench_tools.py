"""
What the load benchmark relies on: the node's finality feed
(C{listfinalizedsince}) and the benchmark's own bookkeeping.
"""

from __future__ import annotations

import os
import random
import time
from collections import deque
from typing import Any

from twisted.trial import unittest

from benchmarks.load_bench import (
    Load,
    Payment,
    busy_refusal,
    memory_kib,
    percentile,
    sign_payments,
)
from benchmarks.scale_bench import MEANS, mean_row
from tests.helpers import key
from tests.helpers.rpc import BusyNodeBase, RPCTestBase
from timecoin import params
from timecoin.finality import Finalized
from timecoin.rpc.transactions import TransactionMethods
from timecoin.tx import OutPoint, Transaction


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
        methods = TransactionMethods(self.node)
        methods._finalized = deque(maxlen=2)
        for n in range(5):
            methods._tx_finalized(Finalized(bytes([n]) * 32, 0.1))
        feed = methods.rpc_listfinalizedsince(1)
        self.assertEqual(feed["missed"], 2)
        self.assertEqual(feed["txids"], [bytes([3]).hex() * 32,
                                         bytes([4]).hex() * 32])
        self.assertEqual(feed["cursor"], 5)

    def test_poll_reads_only_the_new(self) -> None:
        """
        A poll reads the kept history from its newest end, as far as its
        cursor: with 50,000 kept, one new txid costs one step, not
        50,000.
        """
        class Counted(deque):  # type: ignore[type-arg]
            steps = 0

            def __iter__(self) -> Any:
                for item in super().__iter__():
                    Counted.steps += 1
                    yield item

            def __reversed__(self) -> Any:
                for item in super().__reversed__():
                    Counted.steps += 1
                    yield item

        methods = TransactionMethods(self.node)
        methods._finalized = Counted(maxlen=100_000)
        for n in range(50_001):
            methods._tx_finalized(Finalized(n.to_bytes(32, "big"), 0.1))
        feed = methods.rpc_listfinalizedsince(50_000)
        self.assertEqual(feed["txids"], [(50_000).to_bytes(32, "big").hex()])
        self.assertLessEqual(Counted.steps, 2)


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

    def test_memory_of_a_process(self) -> None:
        """
        The memory benchmark reads a process's resident set and its peak
        (this process: some MB, the peak not below the current).
        """
        kib = memory_kib(os.getpid())
        self.assertGreater(kib["VmRSS"], 10 * 1024)
        self.assertGreaterEqual(kib["VmHWM"], kib["VmRSS"])


class BusyNode:
    """
    A stand-in for one node's RPC client: refuses the first C{busy}
    sendrawtransaction calls as a busy node does (C{replies} from a real
    busy node), accepts the rest.
    """

    def __init__(self, busy: int, refusal: dict[str, Any]) -> None:
        self.busy = busy
        self.refusal = refusal
        self.batches: list[list[str]] = []

    def batch(self, method: str, params: list[list[Any]]) -> list[Any]:
        assert method == "sendrawtransaction"
        self.batches.append([p[0] for p in params])
        replies = []
        for p in params:
            if self.busy:
                self.busy -= 1
                replies.append({"error": self.refusal})
            else:
                replies.append({"result": p[0]})
        return replies


class OneNodeNet:
    """
    The devnet as L{Load} sees it: one node, its client.
    """

    nodes = 1

    def __init__(self, client: BusyNode) -> None:
        self.client = client

    def rpc(self, index: int) -> BusyNode:
        return self.client


class BusyRetryTests(BusyNodeBase):
    """
    The load benchmark's sender retries what a busy node refuses.
    """

    def refusal(self) -> dict[str, Any]:
        """
        The error object a busy node really answers.
        """
        self.fill()
        _, reply = self.post({"jsonrpc": "2.0", "id": 1,
                              "method": "sendrawtransaction",
                              "params": ["zz"]})
        return dict(reply["error"])

    def test_recognized(self) -> None:
        """
        A busy node's refusal is recognized as such; other refusals, even
        with the same code, are not.
        """
        self.assertTrue(busy_refusal(self.refusal()))
        self.assertFalse(busy_refusal({"code": -26,
                                       "message": "double-spend: x"}))
        self.assertFalse(busy_refusal({"code": -22,
                                       "message": "node-busy"}))

    def test_sender_retries(self) -> None:
        """
        Payments refused busy are sent again in a later batch, first,
        until accepted: all end accepted, none counted as an error, the
        refusals counted apart.
        """
        client = BusyNode(3, self.refusal())
        payments = [Payment(Transaction((), ()), 0, raw=f"tx{n}")
                    for n in range(5)]
        load = Load(OneNodeNet(client), payments, rate=1e6,  # type: ignore[arg-type]
                    tick=0.001, poll=0.001)
        load.started = time.monotonic() - 10
        load.sender(0)
        self.assertTrue(all(p.accepted for p in payments))
        self.assertEqual(dict(load.errors), {})
        self.assertEqual(load.busy_refusals, 3)
        self.assertEqual(load.unsent_busy, 0)
        self.assertEqual(client.batches, [["tx0", "tx1", "tx2", "tx3", "tx4"],
                                          ["tx0", "tx1", "tx2"]])


class ScaleMeanTests(unittest.TestCase):
    """
    The scale benchmark's average of several seeds.
    """

    def run_of(self, lines: float, p99: float, top: float,
               ok: bool = True) -> dict[str, Any]:
        """
        A run row of 30 masternodes with C{lines} per node per block.
        """
        row: dict[str, Any] = {name: 1.0 for name in MEANS}
        row.update(nodes=30, committee=30, ok=ok, violations=[] if ok
                   else ["n1 equivocated"], lines_per_node_per_block=lines,
                   finality_latency={"p50": 0.4, "p99": p99, "max": top})
        return row

    def test_mean_of_seeds(self) -> None:
        """
        Figures are averaged, the largest latency kept, a broken run
        marks the row not ok and names its violation.
        """
        row = mean_row([self.run_of(80.0, 0.4, 1.9),
                        self.run_of(120.0, 1.2, 3.4, ok=False)], [0, 1])
        self.assertEqual(row["lines_per_node_per_block"], 100.0)
        self.assertEqual(row["finality_latency"],
                         {"p50": 0.4, "p99": 0.8, "max": 3.4})
        self.assertEqual(row["seeds"], [0, 1])
        self.assertFalse(row["ok"])
        self.assertEqual(row["violations"], ["n1 equivocated"])
