"""
Block consensus by a committee on a devnet of real processes, as an
operator sets it up: C{timecoin-devnet up -n 12 --config committee.toml}
with C{committee_size = 7} and C{committee_epoch = 4}.  Every node
reports a committee of seven; every certificate is signed by two thirds
of seven, never more than seven; the committee rotates between epochs;
and a payment is final on all twelve (transaction finality still asks
every masternode).  With eleven peers each (more than C{relay_fanout})
the votes travel through aggregators (C{docs/protocol.md}, "Vote
aggregation"): every node sends and receives bundles.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from tests.helpers import wait_until
from tests.nodeprocess import free_port_range
from timecoin import devnet
from timecoin.devnet import rpc as raw_call

NODES = 12
COMMITTEE = 7
EPOCH = 4


class CommitteeDevnetTests(unittest.TestCase):
    """
    Twelve masternodes of real processes, committees of seven.
    """

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).resolve()
        self.root.mkdir(parents=True)
        self.base = free_port_range(2 * NODES)
        config = self.root / "committee.toml"
        config.write_text(f"committee_size = {COMMITTEE}\n"
                          f"committee_epoch = {EPOCH}\n")
        self.addCleanup(lambda: devnet.down(self.root))
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = devnet.up(self.root, NODES, self.base, 1.0, config)
        self.assertEqual(code, 0, out.getvalue())

    def call(self, i: int, method: str, *params: Any) -> Any:
        return raw_call(self.root / f"node{i}", self.base + 2 * i + 1,
                        method, *params)

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        wait_until(self, predicate, timeout, what)

    def test_committees_commit_and_payments_finalize_everywhere(self) -> None:
        """
        See the module docstring.
        """
        for i in range(NODES):
            info = self.call(i, "getconsensusinfo")
            self.assertEqual((info["committee_size"], info["snapshot_size"]),
                             (COMMITTEE, NODES), f"node{i}")
        target = 3 * EPOCH + 2
        self.wait(lambda: min(self.call(i, "getblockcount")
                              for i in range(NODES)) >= target, 120,
                  f"not every node reached height {target}")
        signers_by_epoch: dict[int, set[str]] = {}
        for height in range(2, target + 1):
            block = self.call(0, "getblock", self.call(0, "getblockhash",
                                                       height))
            commit = block["commit"]
            # Block h carries the certificate of block h - 1.
            voters = set(commit["voters"])
            self.assertEqual(commit["height"], height - 1)
            self.assertLessEqual(len(voters), COMMITTEE, height)
            self.assertGreaterEqual(3 * len(voters), 2 * COMMITTEE, height)
            epoch = (commit["height"] - 1) // EPOCH
            signers_by_epoch.setdefault(epoch, set()).update(voters)
        for epoch, signers in signers_by_epoch.items():
            self.assertLessEqual(len(signers), COMMITTEE, epoch)
        everyone = set().union(*signers_by_epoch.values())
        self.assertGreater(len(everyone), COMMITTEE,
                           "the committee never rotated")
        txid = self.call(0, "sendtoaddress",
                         self.call(NODES - 1, "getnewaddress"), 1)
        self.wait(lambda: all(
            self.call(i, "gettransaction", txid)["state"] == "finalized"
            for i in range(NODES)), 30, "payment not final on all twelve")
        # Eleven peers each, above relay_fanout (8): votes went through
        # aggregators, and every node received their bundles.
        counters = [self.call(i, "getnetworkinfo")["aggregation"]
                    for i in range(NODES)]
        self.assertGreater(sum(c.get("bundles-sent", 0) for c in counters), 0)
        for i, c in enumerate(counters):
            self.assertGreater(c.get("bundles-received", 0), 0, f"node{i}")
            self.assertGreater(c.get("confirmed", 0), 0, f"node{i}")
        # Each connected to the eleven others, every node said so
        # (timecoin.p2p.reach), and the nodes relayed the blocks,
        # proposals and heartbeats of such peers to no other masternode.
        infos = [self.call(i, "getnetworkinfo") for i in range(NODES)]
        for i, info in enumerate(infos):
            self.assertGreater(info["gossip"].get("reach-sent:true", 0), 0,
                               f"node{i}")
            self.assertGreater(
                info["gossip"].get("reach-received:true", 0), 0, f"node{i}")
        self.assertGreater(sum(info["counters"].get("relay-skipped:reached", 0)
                               for info in infos), 0)
        peers = self.call(0, "getpeerinfo")
        self.assertEqual(len(peers), NODES - 1)
        self.assertTrue(all(p["reaches_every_masternode"] for p in peers))
