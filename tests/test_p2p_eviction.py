"""
Connection slots an attacker cannot hold (issue 14, item 3).

Before, 30 identities that answered pings filled C{max_peers} and an honest
node could not reconnect (no eviction); silent sockets from loopback filled
the pending handshakes (loopback was exempt from the per-IP limit).  Now a
full node evicts an inbound peer that shows no useful behaviour to make
room, and pending handshakes are limited per IP and per /24, loopback
included unless the network is a devnet.

One connection at a time on C{StringTransport}s and a fake clock
(L{tests.test_p2p_protocol.ProtocolTestBase}).
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import START, addr, key
from tests.helpers.clusters import PeerCluster
from tests.helpers.p2p import ProtocolTestBase, Wire, make_node
from timecoin.genesis import make_genesis, write_genesis
from timecoin.masternodes import Masternode
from timecoin.node import Node
from timecoin.p2p.dependencies import Direction, State
from timecoin.p2p.gossip import Gossip
from timecoin.p2p.manager import PeerManager
from timecoin.p2p.messages import Ping, Pong
from timecoin.p2p.peers import PeerTable
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync import BlockSync
from timecoin.tx import TxOut

HONEST = 60
"""The test key of the honest node that wants a slot."""


class SlotTestBase(ProtocolTestBase):
    """
    A node with room for 12 peers whose genesis names test key 61 as a
    masternode (besides the node itself, test key 1).
    """

    settings = P2PSettings(port=24200, max_peers=12)

    def make_node(self, clock: Clock) -> Node:
        genesis = Path(self.mktemp()) / "genesis.json"
        genesis.parent.mkdir(parents=True)
        write_genesis(genesis, make_genesis(
            "devnet", int(START * 1000), [TxOut(10**12, addr(key(1)))],
            [Masternode(key(n).public, f"10.9.9.{n}:24200", addr(key(n)),
                        "free") for n in (1, 61)]))
        return make_node(self, clock, genesis=str(genesis))

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.node = self.make_node(self.clock)
        self.scores = Scores(self.clock, ban_seconds=600)
        peers: PeerRegistry[PeerProtocol] = PeerRegistry(
            self.clock, self.settings, random.Random(7),
            PeerTable(None, self.clock), self.scores)
        gossip = Gossip(self.node, peers, self.clock, self.settings)
        sync = BlockSync(self.node, peers, gossip, self.clock, self.settings,
                         self.node.sync_status)
        self.manager = PeerManager(self.node, peers, gossip, sync)
        self.manager.start()

    def peer(self, n: int, ip: str, rtt: float | None = 0.001,
             port: int = 40000) -> Wire:
        """
        A ready inbound peer with test key C{n} from C{ip}; it answers our
        first ping after C{rtt} seconds (never if C{None}).
        """
        wire = self.connect(Direction.INBOUND, ip, port)
        wire.sent()
        hello = self.hello(pubkey=key(n).public, nonce=bytes([n]) * 8)
        wire.feed(hello, self.proof(hello, signer=key(n)))
        pings = [m for m in wire.sent() if isinstance(m, Ping)]
        if wire.proto.state == State.READY and rtt is not None and pings:
            self.clock.advance(rtt)
            wire.feed(Pong(pings[0].nonce))
        return wire

    def fill(self, count: int, first: int = 100, **kw: Any) -> list[Wire]:
        """
        C{count} attacker identities (keys from C{first}) from one /24,
        each answering pings, one second apart.
        """
        wires = []
        for i in range(count):
            wires.append(self.peer(first + i, f"10.66.0.{i + 1}", **kw))
            self.clock.advance(1)
        return wires


class EvictionTests(SlotTestBase):
    """
    A full node makes room by evicting an inbound peer that is not useful.
    """

    def test_honest_node_gets_a_slot(self) -> None:
        """
        Twelve attacker identities answering pings fill max_peers; an
        honest node connecting next is accepted, and one attacker (not
        among the four lowest-RTT nor the four longest connected) is
        evicted with reason C{evicted}.  (Before: the honest node was
        refused with too-many-peers.)
        """
        attackers = self.fill(12)
        self.assertEqual(len(self.manager.peers.ready), 12)
        honest = self.peer(HONEST, "10.1.2.3")
        self.assertEqual(honest.proto.state, State.READY)
        self.assertIn("10.1.2.3", self.manager.peers.ready)
        self.assertEqual(len(self.manager.peers.ready), 12)
        evicted = [w for w in attackers if w.proto.close_reason == "evicted"]
        self.assertEqual(len(evicted), 1)
        self.assertEqual(self.manager.peers.counters["evicted"], 1)
        self.assertEqual(self.manager.peers.counters["closed:evicted"], 1)
        # The four oldest (first connected) were protected.
        self.assertNotIn(evicted[0], attackers[:4])

    def test_useful_peers_protected(self) -> None:
        """
        A masternode of the snapshot, and peers that recently sent a new
        block, vote or transaction, are never the one evicted, however
        young and slow they are (younger than every other peer, no RTT);
        the victim is the youngest unprotected peer of the most
        represented network group (the attackers' /24).
        """
        self.manager.peers.settings = replace(self.settings, max_peers=16)
        self.fill(4)
        others = [self.peer(120 + i, f"10.66.0.{50 + i}", rtt=None)
                  for i in range(8)]
        self.clock.advance(1)
        mn = self.peer(61, "10.2.0.1", rtt=None)
        useful = []
        for kind, n in (("blocks", 70), ("votes", 71), ("txs", 72)):
            self.clock.advance(1)
            wire = self.peer(n, f"10.3.{n}.1", rtt=None)
            self.manager.peers.delivered(wire.proto, kind)
            useful.append(wire)
        self.assertEqual(len(self.manager.peers.ready), 16)
        honest = self.peer(HONEST, "10.1.2.3")
        self.assertEqual(honest.proto.state, State.READY)
        self.assertIsNone(mn.proto.close_reason)
        for wire in useful:
            self.assertIsNone(wire.proto.close_reason)
        self.assertEqual(others[-1].proto.close_reason, "evicted")

    def test_refused_when_all_protected(self) -> None:
        """
        When every inbound peer is protected (here: masternode or among
        the few lowest RTTs / oldest), a newcomer is refused
        (too-many-peers) instead of evicting one.
        """
        settings = P2PSettings(port=24200, max_peers=4)
        self.manager.peers.settings = settings
        self.fill(4)
        late = self.peer(HONEST, "10.1.2.3")
        self.assertEqual(late.proto.close_reason, "too-many-peers")
        self.assertEqual(self.manager.peers.counters["eviction-none"], 1)


class PendingLimitTests(SlotTestBase):
    """
    Pending handshakes are limited per IP and per /24; loopback counts too
    unless the network is a devnet.
    """

    def test_per_subnet_limit(self) -> None:
        """
        Silent sockets from one /24 (distinct IPs) hold at most
        max_pending_per_subnet handshakes; the next is refused
        (too-many-from-subnet) while other ranges still get in.
        """
        limit = self.settings.max_pending_per_subnet
        silent = [self.connect(Direction.INBOUND, f"10.77.0.{i + 1}", 40000)
                  for i in range(limit)]
        for wire in silent:
            self.assertIsNone(wire.proto.close_reason)
        extra = self.connect(Direction.INBOUND, "10.77.0.200", 40000)
        self.assertEqual(extra.proto.close_reason, "too-many-from-subnet")
        other = self.connect(Direction.INBOUND, "10.78.0.1", 40000)
        self.assertIsNone(other.proto.close_reason)

    def test_loopback_limited_unless_devnet(self) -> None:
        """
        On a network other than devnet, a second pending handshake from
        127.0.0.1 is refused (too-many-from-ip); on devnet loopback is
        exempt (local test networks share it).
        """
        first = self.connect(Direction.INBOUND, "127.0.0.1", 40001)
        second = self.connect(Direction.INBOUND, "127.0.0.1", 40002)
        self.assertIsNone(first.proto.close_reason)
        self.assertIsNone(second.proto.close_reason)
        self.node.network = replace(self.node.network, name="testnet")
        third = self.connect(Direction.INBOUND, "127.0.0.1", 40003)
        self.assertEqual(third.proto.close_reason, "too-many-from-ip")

    def test_full_handshakes_evict_the_oldest(self) -> None:
        """
        With max_pending_handshakes silent sockets (each from its own /24)
        in their handshake, a new connection is not refused: the oldest
        pending one is closed (handshake-evicted) and the newcomer, an
        honest node, completes its handshake.  (Before: refused with
        too-many-peers until a silent socket timed out.)
        """
        limit = self.settings.max_pending_handshakes
        silent = []
        for i in range(limit):
            silent.append(self.connect(Direction.INBOUND,
                                       f"10.{i // 200}.{i % 200}.1", 40000))
            self.clock.advance(0.01)
        self.assertTrue(all(w.proto.close_reason is None for w in silent))
        honest = self.peer(HONEST, "172.16.0.1")
        self.assertEqual(honest.proto.state, State.READY)
        self.assertEqual(silent[0].proto.close_reason, "handshake-evicted")
        self.assertEqual(self.manager.peers.counters["handshake-evicted"], 1)
        self.assertTrue(all(w.proto.close_reason is None
                            for w in silent[1:]))


class NetworkEvictionTests(unittest.TestCase):
    """
    Whole nodes on the fake network: slots held by identities that only
    answer pings are taken back for an honest node.
    """

    def test_honest_node_reconnects_to_full_hub(self) -> None:
        """
        A hub with max_peers 12 is filled by 12 nodes that do nothing but
        answer pings (one /24); an honest node that dials it afterwards is
        connected within seconds, and one of the fillers was evicted.
        (Before: refused with too-many-peers as long as they stayed.)
        """
        cluster = PeerCluster(self)
        hub = cluster.start("10.0.0.1", 20, max_peers=12)
        for i in range(12):
            cluster.start(f"10.66.0.{i + 1}", 100 + i,
                          connect=("10.0.0.1:24200",))
            cluster.net.advance(1)
        self.assertEqual(len(hub.manager.peers.ready), 12)
        cluster.start("10.0.0.2", 21, connect=("10.0.0.1:24200",))
        cluster.net.advance(5)
        self.assertIn("10.0.0.2", hub.manager.peers.ready)
        self.assertEqual(len(hub.manager.peers.ready), 12)
        self.assertGreaterEqual(hub.manager.peers.counters["evicted"], 1)
