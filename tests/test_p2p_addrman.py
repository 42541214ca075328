"""
Peer-table poisoning cannot take over the outbound dialers (issue 14,
item 4).

Before, C{peers} replies went straight into the table and a learned address
held a dialer through its whole backoff (~20 minutes to give up): a peer
that answered C{get_peers} with hundreds of unreachable addresses had every
outbound dialer of its victim redialling them, none on honest peers (an
eclipse).  Now addresses from one source fill only a few buckets of the
table, a learned address whose dial fails frees its dialer at once, outbound
peers are chosen one per network group first, and the seeds and the last
good outbound peers (anchors, kept across restarts) are always dialled.

Unit tests of L{timecoin.p2p.peers.PeerTable}, and whole nodes on
L{timecoin.p2p.testing.FakeNetwork} with one fake clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import key
from tests.helpers.clusters import PeerCluster, keys_by_order
from timecoin.p2p.messages import GetPeers, Peers
from timecoin.p2p.peers import PeerTable, Source
from timecoin.p2p.service import P2PService, table_secret

SECRET = b"\x42" * 16


def poison(count: int, first: int = 1) -> list[str]:
    """
    C{count} unreachable addresses, each in its own /24, that sort before
    the honest peers' (10.0.0.x) as strings.
    """
    return [f"1.{(first + i) // 250}.{(first + i) % 250}.1:24200"
            for i in range(count)]


def poisoner(service: P2PService, count: int) -> None:
    """
    Make C{service} answer every C{get_peers} with C{count} unreachable
    addresses (at most 250 per reply, the protocol's cap).
    """
    batches = [poison(count)[i:i + 250] for i in range(0, count, 250)]
    replies = iter(batches * 100)

    def serve(conn: Any, msg: GetPeers) -> None:
        conn.send(Peers(msg.id, tuple(next(replies))))

    service.manager._serve_peers = serve  # type: ignore[method-assign]


class BucketTests(unittest.TestCase):
    """
    The address table keeps one source to a small share.
    """

    def test_one_source_fills_a_small_share(self) -> None:
        """
        1,000 addresses (in 1,000 /24s) from one source occupy at most
        buckets_per_source * bucket_size entries (64); a second source's
        addresses still get in; tried addresses and seeds never leave for
        learned ones.  (Before: all 1,000 went in, evicting the rest.)
        """
        table = PeerTable(None, Clock(), max_entries=1000, secret=SECRET)
        table.add("192.168.0.1", 24200, Source.SEED)
        table.connected("192.168.0.2", "192.168.0.2", 24200, b"\x01" * 32)
        for address in poison(1000):
            host, port = address.rsplit(":", 1)
            table.add(host, int(port), Source.EXCHANGE, origin="6.6.6.0/24")
        share = table.bucket_size * table.buckets_per_source
        self.assertLessEqual(table.from_source("6.6.6.0/24"), share)
        self.assertGreater(table.from_source("6.6.6.0/24"), share // 2)
        for i in range(20):
            table.add(f"172.16.{i}.1", 24200, Source.EXCHANGE,
                      origin="8.8.8.0/24")
        self.assertGreaterEqual(table.from_source("8.8.8.0/24"), 15)
        self.assertEqual(table.get("192.168.0.1").source, Source.SEED)
        self.assertTrue(table.get("192.168.0.2").tried)

    def test_anchors_and_buckets_persisted(self) -> None:
        """
        The anchors (most recent good outbound first, at most
        C{anchor_count}), the secret and each entry's origin survive a
        save and load; buckets are rebuilt the same.
        """
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        table = PeerTable(path, Clock(), anchor_count=2)
        for i in range(3):
            table.connected(f"10.0.0.{i + 1}", f"10.0.0.{i + 1}", 24200,
                            bytes([i]) * 32)
            table.good_outbound(f"10.0.0.{i + 1}")
        table.add("1.2.3.4", 24200, Source.EXCHANGE, origin="6.6.6.0/24")
        table.save()
        loaded = PeerTable(path, Clock(), anchor_count=2)
        loaded.load()
        self.assertEqual(loaded.anchors, ["10.0.0.3", "10.0.0.2"])
        self.assertEqual(loaded.secret, table.secret)
        self.assertEqual(loaded.get("1.2.3.4"), table.get("1.2.3.4"))
        self.assertEqual(loaded.buckets, table.buckets)


class SecretTests(unittest.TestCase):
    """
    The bucket secret of a node's table.
    """

    def test_secret_of_the_node_key(self) -> None:
        """
        A node's table is keyed by a secret derived from its node key: the
        same across restarts and runs (a simulated seed replays exactly;
        it came from the OS), different for another key, and not the key
        itself.
        """
        cluster = PeerCluster(self)
        one = cluster.start("10.0.0.1", 1)
        two = cluster.start("10.0.0.2", 2)
        self.assertEqual(one.table.secret, table_secret(key(1).seed))
        self.assertEqual(len(one.table.secret), 16)
        self.assertNotEqual(one.table.secret, two.table.secret)
        self.assertNotIn(one.table.secret, key(1).seed)
        cluster.stop("10.0.0.1")
        again = cluster.start("10.0.0.1", 1)
        self.assertEqual(again.table.secret, one.table.secret)


class PoisoningTests(unittest.TestCase):
    """
    A poisoner's addresses never keep a node from its honest peers.
    """

    def setUp(self) -> None:
        self.cluster = PeerCluster(self)
        self.net = self.cluster.net
        # The victim has the lowest key: it dials everyone it knows.
        self.victim_key, self.seed_key, self.honest_key, self.bad_key = \
            keys_by_order(4)

    def start_victim(self) -> P2PService:
        return self.cluster.start("10.0.0.1", self.victim_key,
                                  connect=("10.0.0.2:24200",),
                                  max_outbound=4)

    def test_poisoned_table_does_not_hold_the_dialers(self) -> None:
        """
        The victim does not listen (nobody can dial it) and has two seeds:
        a poisoner that answers get_peers with 1,000 unreachable addresses,
        and an honest one, up two seconds later, that knows an honest peer
        (10.0.0.3).  Within
        30 s the victim has dialled and is connected to the honest peer it
        learned, at most 64 of the poisoner's addresses are in its table,
        and no dialer is left on an unreachable address.  (Before: the two
        free dialers sat in backoff on poisoned addresses for ~20 minutes
        and the honest peer was never dialled.)
        """
        bad = self.cluster.start("10.0.0.66", self.bad_key)
        poisoner(bad, 1000)
        victim = self.cluster.start(
            "10.0.0.1", self.victim_key, connect=("10.0.0.66:24200",
                                                  "10.0.0.2:24200"),
            max_outbound=4, listen=False)
        # The honest seed comes up a moment later: the poison is in first.
        self.net.advance(2)
        self.cluster.start("10.0.0.2", self.seed_key)
        self.cluster.start("10.0.0.3", self.honest_key,
                           connect=("10.0.0.2:24200",))
        self.net.advance(30)
        self.assertEqual(sorted(victim.manager.peers.ready),
                         ["10.0.0.2", "10.0.0.3", "10.0.0.66"])
        self.assertEqual(victim.manager.peers.ready["10.0.0.3"].direction,
                         "outbound")
        self.assertLessEqual(victim.table.from_source("10.0.0.0/24"), 64)
        dead = [k for k in victim.manager.peers.dialers if k.startswith("1.")]
        self.assertEqual(dead, [])

    def test_restart_reconnects_to_seed_and_anchor(self) -> None:
        """
        A node restarted with a table full of poisoned addresses dials its
        seed and its anchor (the last good outbound peer, a learned one)
        first and is connected to both within 15 s.
        """
        self.cluster.start("10.0.0.2", self.seed_key)
        self.cluster.start("10.0.0.3", self.honest_key,
                           connect=("10.0.0.2:24200",))
        self.net.advance(2)
        victim = self.start_victim()
        self.net.advance(5)
        self.assertIn("10.0.0.3", victim.manager.peers.ready)
        self.assertIn("10.0.0.3", victim.table.anchors)
        for address in poison(1000):
            host, port = address.rsplit(":", 1)
            victim.table.add(host, int(port), Source.EXCHANGE,
                             origin=f"{host}/24")
        # Mostly poison (bucket collisions drop some of the thousand).
        self.assertGreater(len(victim.table), 800)
        self.cluster.stop("10.0.0.1")
        victim = self.start_victim()
        self.assertIn("10.0.0.3", victim.table.anchors)
        self.net.advance(15)
        self.assertEqual(sorted(k for k in victim.manager.peers.ready
                                if k.startswith("10.0.0.")),
                         ["10.0.0.2", "10.0.0.3"])
