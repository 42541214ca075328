"""
Instant finality across four real masternode processes: payments sent to
any node are final on all four within 2 s and mined with one utxo_hash
everywhere; a double spend sent to two nodes at once finalizes at most one
spender, the same on every node; with one of four down payments finalize,
with two down they are rejected by timeout, and nothing is lost when the
nodes return.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from decimal import Decimal
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import one_utxo_set, wait_until
from tests.nodeprocess import free_port_range
from timecoin import devnet
from timecoin.devnet import rpc as raw_call


class FourNodeFinalityTests(unittest.TestCase):
    """
    A 4-masternode devnet of real processes.
    """

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).resolve()
        self.base = free_port_range(8)
        self.addCleanup(lambda: devnet.down(self.root))
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = devnet.up(self.root, 4, self.base, 0.5)
        self.assertEqual(code, 0, out.getvalue())

    def call(self, i: int, method: str, *params):
        return raw_call(self.root / f"node{i}", self.base + 2 * i + 1,
                        method, *params)

    def wait(self, predicate, timeout: float, what: str) -> float:
        return wait_until(self, predicate, timeout, what, step=0.02)

    def states(self, txid: str, nodes=range(4)) -> list[str]:
        out = []
        for i in nodes:
            try:
                out.append(self.call(i, "gettransaction", txid)["state"])
            except Exception:
                out.append("unknown")
        return out

    def fund(self, amount: int) -> list[str]:
        """
        Give nodes 1-3 a coin of C{amount} TIME each from node0.
        """
        txids = []
        for i in (1, 2, 3):
            # node0's single coin is locked until each payment is final.
            txid = self.call(0, "sendtoaddress",
                             self.call(i, "getnewaddress"), amount)
            self.wait(lambda t=txid: self.states(t) == ["finalized"] * 4, 10,
                      "funding not final everywhere")
            txids.append(txid)
        return txids

    def test_payments_double_spend_and_outages(self) -> None:
        """
        See the module docstring; every step on the same devnet.
        """
        self.fund(50)
        # A payment from each node is final on all four within 2 s.
        latencies = []
        for i in range(4):
            away = self.call((i + 1) % 4, "getnewaddress")
            txid = self.call(i, "sendtoaddress", away, 1)
            latencies.append(self.wait(
                lambda t=txid: self.states(t) == ["finalized"] * 4, 2.0,
                f"payment from node{i} not final on all four in 2 s"))
            self.wait(lambda t=txid: all(
                self.call(n, "gettransaction", t).get("blockheight")
                is not None for n in range(4)), 10, "not mined")
        self.assertLess(max(latencies), 2.0)

        # A double spend sent to nodes 1 and 2 at the same moment.
        coin = [u for u in self.call(0, "listunspent")
                if Decimal(str(u["amount"])) >= 100][0]
        spend = {"txid": coin["txid"], "vout": coin["vout"]}
        change = Decimal(str(coin["amount"])) - Decimal("10.1")
        raws = []
        for i in (1, 2):
            raw = self.call(0, "createrawtransaction", [spend],
                            {self.call(i, "getnewaddress"): 10,
                             coin["address"]: str(change)})
            raws.append(self.call(0, "signrawtransactionwithwallet",
                                  raw)["hex"])
        sent: dict[int, str] = {}
        errors: dict[int, str] = {}

        def send(i: int, raw: str) -> None:
            try:
                sent[i] = self.call(i, "sendrawtransaction", raw)
            except Exception as e:
                errors[i] = str(e)

        threads = [threading.Thread(target=send, args=(i, raw))
                   for i, raw in zip((1, 2), raws)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertTrue(sent, f"neither spender was accepted: {errors}")
        txids = list(sent.values())
        self.wait(lambda: all(s in ("finalized", "rejected", "unknown")
                              for t in txids for s in self.states(t)), 30,
                  "double spend undecided")
        time.sleep(1.0)
        finals = [t for t in txids
                  if "finalized" in self.states(t)]
        self.assertLessEqual(len(finals), 1)
        for t in txids:
            decided = {s for s in self.states(t) if s != "unknown"}
            self.assertLessEqual(len(decided), 1, (t, self.states(t)))

        # One of four down: payments still finalize.
        with contextlib.redirect_stdout(io.StringIO()):
            devnet.stop_node(self.root, 3)
        txid = self.call(1, "sendtoaddress", self.call(0, "getnewaddress"),
                         1)
        self.wait(lambda: self.states(txid, range(3)) == ["finalized"] * 3,
                  5, "not final with 3 of 4")

        # Two of four down: a payment is rejected by timeout, with reason.
        devnet.stop_node(self.root, 2)
        coin = max(self.call(1, "listunspent"), key=lambda u: u["amount"])
        raw = self.call(1, "createrawtransaction",
                        [{"txid": coin["txid"], "vout": coin["vout"]}],
                        {self.call(0, "getnewaddress"): 1,
                         coin["address"]: str(Decimal(str(coin["amount"]))
                                              - Decimal("1.1"))})
        signed = self.call(1, "signrawtransactionwithwallet", raw)["hex"]
        txid = self.call(1, "sendrawtransaction", signed)
        self.wait(lambda: self.states(txid, (0, 1)) == ["rejected"] * 2, 30,
                  "not rejected with 2 of 4")
        reason = self.call(1, "gettransaction", txid).get("reason")
        self.assertIn("timeout", str(reason))

        # Both return: nothing was lost; the same payment sent again is
        # final everywhere and mined.
        devnet.start_node(self.root, 2)
        devnet.start_node(self.root, 3)
        self.wait(lambda: min(self.call(n, "getconnectioncount")
                              for n in range(4)) == 3, 30, "no mesh")
        self.assertEqual(self.call(1, "sendrawtransaction", signed), txid)
        payment = txid
        self.wait(lambda: self.states(payment) == ["finalized"] * 4, 30,
                  "no finality after the nodes returned")
        self.wait(lambda: all(
            self.call(n, "gettransaction", payment).get("blockheight")
            is not None for n in range(4)), 30, "not mined after return")
        for n in range(4):
            self.call(n, "stop")
        time.sleep(0.5)
        for n in range(4):
            with contextlib.redirect_stdout(io.StringIO()):
                devnet.stop_node(self.root, n)
        for n in range(4):
            devnet.start_node(self.root, n)
        self.wait(lambda: len({self.call(n, "getblockcount")
                               for n in range(4)}) == 1, 20, "heights")
        one_utxo_set(lambda: [self.call(n, "gettxoutsetinfo")
                              for n in range(4)])
