"""
Gossip of masternode heartbeats over the in-memory network: the
C{heartbeat} message's size cap, relay once per node, no relay of
replayed or refused heartbeats, and forged heartbeats scored.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import key
from tests.helpers.clusters import PeerCluster
from timecoin.liveness import Heartbeat, sign_heartbeat
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.messages import HeartbeatMsg, MessageError, parse_line
from timecoin.p2p.scoring import OFFENCES
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import DEFAULT_RATE_LIMITS

MN, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class HeartbeatMessageTests(unittest.TestCase):
    """
    The C{heartbeat} message's limits.
    """

    def test_largest_heartbeat_fits_cap(self) -> None:
        """
        A heartbeat with the largest sequence number and height encodes
        within the type's cap; a longer C{heartbeat} line is
        C{message-too-large} and a malformed one C{bad-message}.
        """
        big = HeartbeatMsg(Heartbeat(b"\xff" * 32, 2**63 - 1, 2**63 - 1,
                                     b"\xff" * 64))
        line = big.encode()
        self.assertLessEqual(len(line), HeartbeatMsg.max_bytes)
        self.assertEqual(parse_line(line), big)
        padded = line[:-1] + b',"pad":"' + b"x" * HeartbeatMsg.max_bytes \
            + b'"}'
        e = self.assertRaises(MessageError, parse_line, padded)
        self.assertEqual(e.reason, "message-too-large")
        short = line.replace(b"ff" * 64, b"ff" * 63)
        e = self.assertRaises(MessageError, parse_line, short)
        self.assertEqual(e.reason, "bad-message")

    def test_limits_and_score_named(self) -> None:
        """
        C{heartbeat} has a per-type rate limit and C{invalid-heartbeat} a
        score that leaves the connection up without a reply.
        """
        self.assertIn("heartbeat", DEFAULT_RATE_LIMITS)
        offence = OFFENCES["invalid-heartbeat"]
        self.assertEqual((offence.points, offence.close, offence.reply),
                         (20, False, False))


class HeartbeatGossipTests(unittest.TestCase):
    """
    A masternode and two followers, all connected to each other.
    """

    def setUp(self) -> None:
        self.cluster = PeerCluster(self)
        self.net = self.cluster.net
        self.mn = self.cluster.start(MN, 20, genesis="", block_time=600.0)
        genesis = str(Path(self.mn.node.datadir) / "genesis.json")
        ips = [MN, B, C]
        self.others = [self.cluster.start(
            ip, n, genesis=genesis,
            connect=tuple(f"{o}:24200" for o in ips if o != ip))
            for ip, n in ((B, 21), (C, 22))]
        self.cast: list[Heartbeat] = []
        self.mn.node.liveness.heartbeat_cast.connect(self.cast.append)
        self.net.advance(5)
        self.assertEqual(len(self.net.connections()), 3)

    def received(self, service: P2PService) -> int:
        """
        Heartbeat messages C{service} received over all its connections.
        """
        return sum(c.received["heartbeat"]
                   for c in service.manager.peers.ready.values())

    def sent(self, service: P2PService) -> int:
        """
        Heartbeat messages C{service} sent over all its connections.
        """
        return sum(c.sent["heartbeat"]
                   for c in service.manager.peers.ready.values())

    def test_reaches_all_relayed_once(self) -> None:
        """
        Every heartbeat the masternode signs reaches both followers'
        liveness views; each follower relays each heartbeat exactly once
        (to the peer it did not get it from) and every second copy, at
        any node, the masternode included, is dropped as a duplicate
        without a relay: four messages per heartbeat in a triangle.
        """
        self.net.advance(90)
        self.assertEqual(len(self.cast), 3)
        pubkey = self.mn.node.key.public
        self.assertEqual(self.mn.gossip.counters["heartbeat-announced"], 3)
        for service in self.others:
            with self.subTest(service.settings.bind):
                node = service.node
                self.assertTrue(node.liveness.is_alive(pubkey))
                self.assertEqual(node.liveness.seen[pubkey].seq,
                                 self.cast[-1].seq)
                counters = service.gossip.counters
                self.assertEqual(counters["heartbeat-relayed"], 3)
                self.assertEqual(self.sent(service), 3)
        self.assertEqual(self.mn.gossip.counters["heartbeat-relayed"], 0)
        self.assertEqual(self.sent(self.mn), 6)
        services = [self.mn, *self.others]
        self.assertEqual(sum(self.received(s) for s in services), 12)
        self.assertEqual(sum(s.gossip.counters["heartbeat-duplicate"]
                             for s in services), 6)

    def test_replay_not_relayed(self) -> None:
        """
        A heartbeat sent again is dropped as a duplicate; once the dedup
        cache forgot it, the liveness view refuses it as stale; either way
        it is not relayed and costs the sender nothing.
        """
        self.net.advance(30)
        old = self.cast[-1]
        c = self.others[1]
        b = self.others[0]
        to_b = c.manager.peers.ready[B]
        before = self.received(self.mn), self.received(c)
        duplicates = b.gossip.counters["heartbeat-duplicate"]
        to_b.send(HeartbeatMsg(old))
        self.net.flush()
        self.assertEqual(b.gossip.counters["heartbeat-duplicate"],
                         duplicates + 1)
        b.gossip.heartbeats.seen = SeenCache(b.settings.seen_size)
        to_b.send(HeartbeatMsg(old))
        self.net.flush()
        self.assertEqual(
            b.gossip.counters["heartbeat-refused:heartbeat-stale"], 1)
        self.assertEqual(b.gossip.counters["heartbeat-relayed"], 1)
        self.assertEqual((self.received(self.mn), self.received(c)), before)
        self.assertEqual(b.scores.score(C), 0)

    def test_forged_scored(self) -> None:
        """
        A heartbeat with a forged signature is scored as
        C{invalid-heartbeat} and not relayed; one from a key outside the
        masternode set is dropped unscored; the connection stays.
        """
        c, b = self.others[1], self.others[0]
        to_b = c.manager.peers.ready[B]
        now_ms = int(self.net.clock.seconds() * 1000)
        good = sign_heartbeat(key(20), "devnet", now_ms, 0)
        forged = replace(good, signature=bytes(64))
        to_b.send(HeartbeatMsg(forged))
        self.net.flush()
        self.assertEqual(
            b.gossip.counters["heartbeat-refused:heartbeat-bad-signature"], 1)
        self.assertEqual(b.manager.peers.counters["invalid-heartbeat"], 1)
        self.assertEqual(b.scores.score(C), 20)
        outsider = sign_heartbeat(key(9), "devnet", now_ms, 0)
        to_b.send(HeartbeatMsg(outsider))
        self.net.flush()
        self.assertEqual(
            b.gossip.counters["heartbeat-refused:heartbeat-not-masternode"],
            1)
        self.assertEqual(b.scores.score(C), 20)
        self.assertEqual(b.gossip.counters["heartbeat-relayed"], 0)
        self.assertEqual(self.received(self.mn), 0)
        self.assertIn(C, b.manager.peers.ready)
        self.assertFalse(b.node.liveness.is_alive(key(9).public))
        to_b.send(HeartbeatMsg(good))
        self.net.flush()
        self.assertEqual(b.gossip.counters["heartbeat-relayed"], 1)

    def test_unhooked_on_stop(self) -> None:
        """
        Stopping the P2P service removes its heartbeat hook.
        """
        hooks = self.mn.node.liveness.heartbeat_cast
        self.assertIn(self.mn.gossip.heartbeats.cast, hooks)
        self.mn.stopService()
        self.assertNotIn(self.mn.gossip.heartbeats.cast, hooks)
