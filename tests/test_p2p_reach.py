"""
Tests for L{timecoin.p2p.reach}: a node connected to every masternode
says so (C{reach}, protocol 4), and the messages it signs or sends first
are then relayed only to peers that are not masternodes.  One node's
manager with ready peers on C{StringTransport}s and a fake clock, the
snapshot's masternodes given; and four masternodes of a fake network.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

from twisted.trial import unittest

from tests.helpers import key
from tests.helpers.clusters import IPS, MasternodeCluster, service_of
from tests.helpers.p2p import KeyedPeersTestBase
from timecoin.consensus import NIL, PREVOTE, sign_vote
from timecoin.encoding import EncodingError
from timecoin.p2p.consensus_relay import BlockVoteMsg, ConsensusRelay
from timecoin.p2p.dependencies import Direction
from timecoin.p2p.messages import Message, parse_line
from timecoin.p2p.outbox import TxOutbox
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.reach import REACH_VERSION, ReachMsg
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.settings import P2PSettings

MASTERNODES = (50, 51, 52, 53)
"""The test keys of the snapshot's masternodes (our node's peers 54 and 55
are not masternodes)."""


def vote(signer: int, round: int = 0) -> BlockVoteMsg:
    """
    A prevote for nil at height 1 signed by test key C{signer}.
    """
    return BlockVoteMsg(sign_vote(key(signer), "devnet", PREVOTE, 1, round,
                                  NIL))


class ReachTestBase(KeyedPeersTestBase):
    """
    Our node (test key 0) with a consensus relay; the next snapshot's
    masternodes are us and L{MASTERNODES}.
    """

    settings = P2PSettings(port=24200, relay_fanout=3, relay_fanout_direct=1)

    def setUp(self) -> None:
        super().setUp()
        self.masternodes = frozenset(
            [self.node.key.public] + [key(n).public for n in MASTERNODES])
        self.manager.peers.masternodes = lambda: self.masternodes
        self.reach = self.gossip.reach
        self.patch(self.node.consensus, "receive", lambda message: None)

    def consensus_relay(self, peers: PeerRegistry[PeerProtocol]
                        ) -> ConsensusRelay:
        return ConsensusRelay(self.node, peers, 1000)

    def joined(self, n: int) -> list[Message]:
        """
        Connect the peer of test key C{n} and return what it was sent
        after its handshake (L{peer} clears it).
        """
        wire = self.connect(Direction.INBOUND, ip=f"10.0.1.{n}")
        hello = self.hello(pubkey=key(n).public, nonce=bytes([n]) * 8)
        wire.feed(hello, self.proof(hello, key(n)))
        self.peers[n] = wire
        return [m for m in wire.sent() if m.name != "hello_proof"]

    def told(self) -> dict[int, list[bool]]:
        """
        What each peer was told in C{reach} lines since the last call.
        """
        return {n: [m.every for m in wire.sent() if isinstance(m, ReachMsg)]
                for n, wire in self.peers.items()}


class TellingTests(ReachTestBase):
    """
    What we tell our peers, and when.
    """

    def test_told_when_it_changes(self) -> None:
        """
        Connected to three of the four other masternodes we say nothing
        (a connection starts as C{false}); the fourth makes it C{true},
        told to every peer at once; losing one makes it C{false}, told to
        the rest.  A peer that connects meanwhile hears C{true}.
        """
        for n in (50, 51, 52):
            self.peer(n)
        self.assertEqual(self.told(), {50: [], 51: [], 52: []})
        self.assertIn(ReachMsg(True), self.joined(53))
        self.assertTrue(self.reach.every)
        self.assertEqual(self.told(), {50: [True], 51: [True], 52: [True],
                                       53: []})
        self.assertIn(ReachMsg(True), self.joined(54))
        self.assertEqual(self.told(), {n: [] for n in range(50, 55)})
        self.peers.pop(53).lose()
        self.assertFalse(self.reach.every)
        self.assertEqual(self.told(), {50: [False], 51: [False],
                                       52: [False], 54: [False]})
        self.assertEqual(self.gossip.counters["reach-sent:false"], 1)

    def test_snapshot_change_checked(self) -> None:
        """
        A masternode that joins the snapshot makes us C{false} at the
        next check (the service runs it every C{relay_interval}).
        """
        for n in MASTERNODES:
            self.peer(n)
        self.told()
        self.masternodes = self.masternodes | {key(60).public}
        self.reach.update()
        self.assertEqual(self.told(), {n: [False] for n in MASTERNODES})
        self.reach.update()
        self.assertEqual(self.told(), {n: [] for n in MASTERNODES})

    def test_older_peers_not_told(self) -> None:
        """
        A peer on protocol 3 does not know C{reach}: it is never sent.
        """
        for n in (50, 51, 52):
            self.peer(n)
        self.peer(53, version=REACH_VERSION - 1)
        self.assertEqual(self.told(), {50: [True], 51: [True], 52: [True],
                                       53: []})

    def test_unknown_snapshot_is_false(self) -> None:
        """
        Without the snapshot's masternodes we never claim to reach them.
        """
        self.manager.peers.masternodes = frozenset
        for n in MASTERNODES:
            self.peer(n)
        self.assertFalse(self.reach.every)
        self.assertEqual(self.told(), {n: [] for n in MASTERNODES})


class RelayTests(ReachTestBase):
    """
    What we relay for a peer that said it reaches every masternode.
    """

    def test_relayed_only_to_peers_that_are_not_masternodes(self) -> None:
        """
        A vote signed by peer 53 goes, from 53 or from another peer, to
        one random peer of the six (C{relay_fanout_direct}) while 53 says
        nothing; once 53 says C{true}, only to 54 or 55, which are not
        masternodes; once it says C{false} again, as before.
        """
        for n in range(50, 56):
            self.peer(n)
        first = vote(53, 0)
        self.peers[51].feed(first)
        self.assertEqual(len(self.got(first)), 1)
        self.peers[53].feed(ReachMsg(True))
        self.assertTrue(self.peers[53].proto.reaches)
        self.assertTrue(
            self.peers[53].proto.info()["reaches_every_masternode"])
        self.assertEqual(self.gossip.counters["reach-received:true"], 1)
        for round in (1, 2, 3, 4):
            msg = vote(53, round)
            self.peers[51 if round % 2 else 53].feed(msg)
            got = self.got(msg)
            self.assertEqual(len(got), 1, round)
            self.assertIn(got[0], (54, 55), round)
        self.assertGreater(
            self.manager.peers.counters["relay-skipped:reached"], 0)
        self.peers[53].feed(ReachMsg(False))
        seen = set()
        for round in range(5, 25):
            msg = vote(53, round)
            self.peers[53].feed(msg)
            seen.update(self.got(msg))
        self.assertTrue(seen & {50, 51, 52}, seen)

    def test_other_signers_unchanged(self) -> None:
        """
        A vote of a signer that is not our peer goes to C{relay_fanout}
        (3) peers whatever the peer that sent it said.
        """
        for n in range(50, 56):
            self.peer(n)
        self.peers[53].feed(ReachMsg(True))
        msg = vote(60)
        self.peers[53].feed(msg)
        self.assertEqual(len(self.got(msg)), 3)


class _Peer:
    """
    A ready connection as the outbox sees it.
    """

    def __init__(self, n: int, reaches: bool = False) -> None:
        self.peer_key = f"10.0.1.{n}:24200"
        self.hello: Any = type("H", (), {"pubkey": key(n).public})()
        self.reaches = reaches


class _PeerSet:
    """
    A dense peer set of L{_Peer}s whose masternodes are L{MASTERNODES}.
    """

    def __init__(self, peers: list[_Peer]) -> None:
        self.ready = {p.peer_key: p for p in peers}
        self.rng = random.Random(3)
        self.ready_serial = 1

    def dense(self) -> bool:
        return True

    def masternodes(self) -> frozenset[bytes]:
        return frozenset(key(n).public for n in MASTERNODES)


class OutboxTests(unittest.TestCase):
    """
    A transaction from a peer that said it reaches every masternode is
    queued only for peers that are not masternodes.
    """

    def test_fanout(self) -> None:
        peers = [_Peer(n) for n in range(50, 56)]
        peerset: Any = _PeerSet(peers)
        counters: Counter[str] = Counter()
        outbox = TxOutbox(peerset, None, P2PSettings(relay_fanout_direct=2),
                          counters)
        picked = outbox._fanout(peers[0])
        assert picked is not None
        self.assertEqual(len(picked), 2)
        peers[0].reaches = True
        for _ in range(10):
            picked = outbox._fanout(peers[0])
            assert picked is not None
            self.assertEqual({p.peer_key for p in picked},
                             {"10.0.1.54:24200", "10.0.1.55:24200"})
        # The three masternodes but the sender, ten times.
        self.assertEqual(counters["txs-relay-skipped:reached"], 30)


class MessageTests(unittest.TestCase):
    """
    The C{reach} line.
    """

    def test_round_trip_and_refusal(self) -> None:
        self.assertEqual(parse_line(b'{"every":false,"type":"reach"}'),
                         ReachMsg(False))
        with self.assertRaises(EncodingError):
            ReachMsg.parse({"every": 1, "type": "reach"})


class ClusterTests(unittest.TestCase):
    """
    Four masternodes of a fake network, each connected to the three
    others.
    """

    def test_small_network_sends_none(self) -> None:
        """
        With the default C{relay_fanout} (8) four masternodes are a small
        network: nobody claims anything and no C{reach} line is sent, so
        it behaves exactly as before.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(3)
        for i in range(4):
            service = service_of(cluster, i)
            self.assertEqual(len(service.manager.peers.ready), 3)
            self.assertFalse(service.gossip.reach.every)
            self.assertEqual(
                [c.sent["reach"] for c in
                 service.manager.peers.ready.values()], [0, 0, 0])

    def test_a_lost_masternode_clears_the_claims(self) -> None:
        """
        Made a dense mesh (C{relay_fanout} 2, three peers each), every
        node says at its next check that it reaches every masternode and
        holds its peers' C{true}; when masternode 3 stops, the others lack
        a link to it and say C{false}.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        for i in range(4):
            peers = service_of(cluster, i).manager.peers
            self.patch(peers, "settings",
                       replace(peers.settings, relay_fanout=2))
        cluster.advance(2)
        for i in range(4):
            ready = service_of(cluster, i).manager.peers.ready
            self.assertEqual(len(ready), 3)
            self.assertTrue(all(c.reaches for c in ready.values()), i)
            self.assertTrue(service_of(cluster, i).gossip.reach.every)
        cluster.stop(3)
        cluster.advance(1)
        for i in range(3):
            service = service_of(cluster, i)
            self.assertFalse(service.gossip.reach.every, i)
            ready = service.manager.peers.ready
            self.assertEqual(
                sorted(k for k, c in ready.items() if c.reaches), [], i)
        self.assertNotIn(IPS[3], service_of(cluster, 0).manager.peers.ready)
