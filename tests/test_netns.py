"""
The network as real hosts: four masternodes, each a real ``twistd``
process in its own network namespace with its own address on one bridge
(L{tests.netns}), their links cut and healed, a node killed and started
again, and a second node behind an address already in use.

Skipped, with the reason, where the machine cannot make namespaces (not
root, no ``ip netns``).  The namespaces are deleted at the end, also when
a test fails.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import one_utxo_set
from timecoin.testing import netns

SKIP = netns.available()
N = 4


class RealNetworkTests(unittest.TestCase):
    """
    Four masternodes on 10.77.0.1-4.
    """

    if SKIP:
        skip = f"network namespaces unavailable here: {SKIP}"

    def setUp(self) -> None:
        netns.sweep()
        self.lab = netns.Lab(N + 1)
        self.lab.create()
        self.addCleanup(self.lab.destroy)
        self.base = Path(self.mktemp()).resolve()
        self.base.mkdir(parents=True)
        self.nodes = netns.masternode_network(self.lab, self.base, N)
        for node in self.nodes:
            self.addCleanup(node.close)
        for node in self.nodes:
            node.start()

    def live_peers(self, node: netns.NsNode) -> set[str]:
        """
        The addresses (IPs) of C{node}'s ready peers; fails on two entries
        for one IP.
        """
        ips = [p["addr"].rsplit(":", 1)[0] for p in node.peers()]
        self.assertEqual(len(ips), len(set(ips)), f"node {node.host}: {ips}")
        return set(ips)

    def full_mesh(self, nodes: list[netns.NsNode]) -> bool:
        want = {n.address for n in nodes}
        return all(self.live_peers(n) == want - {n.address} for n in nodes)

    def heights(self) -> list[int]:
        return [n.call("getblockcount") for n in self.nodes]

    def agree(self) -> None:
        """
        One block hash per height on every node, and one utxo_hash.
        """
        low = min(self.heights())
        for h in range(max(0, low - 30), low + 1):
            self.assertEqual(len({n.call("getblockhash", h)
                                  for n in self.nodes}), 1, f"height {h}")
        self.same_utxo_set(self.nodes)

    def same_utxo_set(self, nodes: list[netns.NsNode]) -> None:
        """
        C{nodes} hold one UTXO set (L{tests.helpers.one_utxo_set}).
        """
        one_utxo_set(lambda: [n.call("gettxoutsetinfo") for n in nodes])

    def partition(self, victim: int, seconds: float) -> float:
        """
        Cut host C{victim} for C{seconds}; after the heal, wait until every
        node lists exactly its live peers and the victim is at the tip.
        Returns the seconds from the heal until then.
        """
        others = [n for n in self.nodes if n.host != victim]
        cut = self.nodes[victim]
        self.lab.cut(victim)
        time.sleep(seconds)
        # The others went on (three of four).
        self.assertGreater(min(n.call("getblockcount") for n in others),
                           cut.call("getblockcount"))
        self.lab.heal(victim)
        healed = time.monotonic()
        cut.wait_for(lambda: self.full_mesh(self.nodes) and
                     cut.call("getblockcount") >=
                     others[0].call("getblockcount") - 1, 60)
        return time.monotonic() - healed

    def test_partitions_restart_and_a_second_node_behind_one_ip(self) -> None:
        """
        One connection per peer by plain IPs; payments final everywhere;
        after a 45 s and a 100 s (longer than the ping timeout) cut of one
        node, every node lists exactly its live peers and the cut node is
        at the tip within 20 s of the heal; a second node behind an
        address in use makes no more attempts than its backoff allows and
        logs once why; a masternode SIGKILLed and started 60 s later has
        its peers back within 15 s; every node agrees on every block; a
        node told of one seed finds and connects to every masternode.
        """
        nodes = self.nodes
        nodes[0].wait_for(lambda: self.full_mesh(nodes), 40)
        for node in nodes:
            self.assertEqual(len(node.call("getpeerinfo")), N - 1)
        address = nodes[1].call("getnewaddress")
        txids = []
        for i in range(5):
            txids.append(nodes[0].call("sendtoaddress", address, 1 + i))
            nodes[0].call("waitfortransaction", txids[-1], 10)
        for node in nodes:
            node.wait_for(lambda node=node: all(
                node.call("waitfortransaction", t, 5)["state"] == "finalized"
                for t in txids), 30)

        took = self.partition(3, 45)
        self.assertLess(took, 20, "45 s cut: recovery after the heal")
        took = self.partition(2, 100)
        self.assertLess(took, 20, "100 s cut: recovery after the heal")

        # A second node behind node 0's address, and node 1 down for 60 s.
        extra = netns.network_node(self.lab, self.base, 0, N, N,
                                   p2p_port=netns.P2P_PORT + 10,
                                   rpc_port=netns.RPC_PORT + 10)
        self.addCleanup(extra.close)
        extra.start()
        nodes[1].kill()
        started = time.monotonic()
        time.sleep(60)
        attempts = extra.call("getnetworkinfo")["counters"]
        log = extra.log()
        refusals = len(re.findall(r"sent error duplicate-ip", log))
        explained = len(re.findall(r"cannot connect to \S+: another node "
                                   r"at this node's IP address", log))
        self.assertLessEqual(refusals, 8, f"{attempts}\n{log[-3000:]}")
        self.assertEqual(explained, 1, log[-3000:])
        nodes[1].start()
        back = nodes[1].wait_for(
            lambda: self.live_peers(nodes[1]) ==
            {n.address for n in nodes if n is not nodes[1]}, 30)
        self.assertLess(back, 15, f"peers back after "
                        f"{time.monotonic() - started:.0f} s down")
        nodes[0].wait_for(lambda: len(set(self.heights())) == 1, 30)
        self.agree()

        # Discovery from one seed: a node on a fifth host told only of
        # node 0 learns the others by peer exchange and connects to all.
        config = self.base / "follower.toml"
        config.write_text(netns.CONFIG.format(address=self.lab.address(N)))
        follower = netns.NsNode(
            self.lab, N, self.base / "follower", self.base / "genesis.json",
            [f"{nodes[0].address}:{netns.P2P_PORT}"], config)
        self.addCleanup(follower.close)
        follower.start()
        found = follower.wait_for(
            lambda: self.live_peers(follower) == {n.address for n in nodes},
            60)
        self.assertLess(found, 60)
        follower.wait_for(lambda: follower.call("getblockcount")
                          >= nodes[0].call("getblockcount") - 1, 30)
        self.same_utxo_set(nodes + [follower])
