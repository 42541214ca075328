"""
A peer that lies about its height must not keep a node out of consensus
(issue 14, item 1).

The attack: a peer says C{height: 1000000000} in its C{hello} and its
C{tip} replies, answers pings, and never answers C{get_blocks}; a fresh
identity (new IP, new node key) replaces it every 10 s.  Before the fix the
claimed height was trusted: the masternode it talked to turned
C{catching-up}, stopped proposing and voting, and the chain stopped for as
long as the attack lasted.

Everything runs on L{timecoin.p2p.testing.FakeNetwork} with one fake clock
(the L{tests.helpers.clusters.SyncNet} harness: one masternode, test key
0, whose weight alone is a quorum, commits a block every C{BLOCK_TIME}).
"""

from __future__ import annotations

import random
from typing import Any

from twisted.trial import unittest

from tests.helpers import key, result_of
from tests.helpers.clusters import IPS as CLUSTER_IPS
from tests.helpers.clusters import (
    PORT,
    PRODUCER,
    MasternodeCluster,
    SyncNet,
    hashes,
    silent_after,
)
from timecoin.block import CommitCertificate, Vote
from timecoin.p2p.messages import BlockMsg, GetTip, Hello, Tip
from timecoin.p2p.service import P2PService
from timecoin.p2p.sync import CATCHING_UP, SYNCED

LIE = 1_000_000_000
BLOCK_TIME = 0.2


def make_liar(net: SyncNet, ip: str, n: int,
              connect: tuple[str, ...]) -> P2PService:
    """
    Start a node with test key C{n} at C{ip} that claims height L{LIE} in
    its C{hello} and C{tip} replies and never answers C{get_blocks}
    (pings and everything else are answered as usual).
    """
    liar = net.start(ip, n, connect=connect)
    lie(liar)
    return liar


def lie(liar: P2PService) -> None:
    """
    Make C{liar} claim height L{LIE} in its C{hello} and C{tip} replies and
    never answer C{get_blocks}.
    """
    manager = liar.manager
    honest_hello = manager.local_hello

    def lying_hello() -> Hello:
        hello = honest_hello()
        return Hello(hello.network, hello.version, hello.genesis, LIE,
                     hello.listen_port, hello.pubkey, hello.policy,
                     hello.nonce, hello.user_agent)

    def lying_tip(conn: Any, msg: GetTip) -> None:
        conn.send(Tip(msg.id, LIE, b"\x11" * 32))

    manager.local_hello = lying_hello  # type: ignore[method-assign]
    manager._serve_tip = lying_tip  # type: ignore[method-assign]
    silent_after(liar, 0)
    # The liar itself never catches up from anyone (it only lies).
    liar.sync.stop()


class HeightLiarTests(unittest.TestCase):
    """
    Height claims are hints: a peer that does not deliver the blocks it
    claims is dropped from the sync candidates and scored, and never keeps
    a node out of consensus.
    """

    def setUp(self) -> None:
        self.net = SyncNet(self, block_time=BLOCK_TIME)
        self.producer = self.net.start(PRODUCER, 0)
        self.mn = self.producer.node
        self.net.grow(self.mn, 10)
        self.follower = self.net.start("10.0.0.2", 21, connect=(PRODUCER,))
        self.net.advance(1, step=BLOCK_TIME)
        self.assertEqual(self.follower.node.chain.tip.hash,
                         self.mn.chain.tip.hash)
        self.assertEqual(self.producer.sync.state, SYNCED)

    def rotate_liars(self, seconds: float, every: float = 10.0,
                     targets: tuple[str, ...] = (PRODUCER, "10.0.0.2")
                     ) -> list[str]:
        """
        Run the attack for C{seconds}: a liar with a fresh IP and key
        connects to C{targets} and is replaced every C{every} seconds.
        Returns the liars' IPs.  Every second, the producer must be
        synced (checked by the caller through C{self.unsynced}).
        """
        ips: list[str] = []
        self.unsynced = 0
        elapsed = 0.0
        liar: P2PService | None = None
        while elapsed < seconds:
            if liar is not None:
                self.net.stop(liar.node.config.p2p.bind)
            ip = f"10.0.1.{len(ips) + 1}"
            ips.append(ip)
            liar = make_liar(self.net, ip, 40 + len(ips), targets)
            for _ in range(int(every)):
                self.net.advance(1, step=BLOCK_TIME)
                if not self.producer.sync.is_synced():
                    self.unsynced += 1
            elapsed += every
        if liar is not None:
            self.net.stop(liar.node.config.p2p.bind)
        return ips

    def test_rotating_height_liar_does_not_halt_the_chain(self) -> None:
        """
        Liars claiming height 1,000,000,000 with a fresh identity every
        10 s for 60 s, against the masternode and a follower: the
        masternode stays synced every second, keeps committing blocks
        throughout (at least half the slots) and the follower follows.
        After the attack the chain still commits.  (Before the fix the
        masternode was catching-up, so not producing, all 60 s.)
        """
        before = self.mn.chain.height
        ips = self.rotate_liars(60)
        self.assertEqual(self.unsynced, 0)
        made = self.mn.chain.height - before
        self.assertGreaterEqual(made, int(60 / BLOCK_TIME / 2), made)
        self.assertEqual(len(ips), 6)
        after = self.mn.chain.height
        self.net.advance(5, step=BLOCK_TIME)
        self.assertGreater(self.mn.chain.height, after)
        self.assertEqual(self.follower.node.chain.tip.hash,
                         self.mn.chain.tip.hash)

    def test_undelivered_peer_dropped_from_candidates(self) -> None:
        """
        One liar stays connected: once its request timed out it is no
        longer asked for blocks (its skip grows with every miss), its claim
        no longer counts toward the sync state or the reported best
        height, and it was charged C{sync-undelivered}.
        """
        liar = make_liar(self.net, "10.0.1.1", 41, (PRODUCER,))
        self.net.advance(1, step=BLOCK_TIME)
        sync = self.producer.sync
        self.assertIn("10.0.1.1", self.producer.manager.peers.ready)
        self.assertTrue(sync.is_synced())
        timeout = self.producer.settings.sync_request_timeout
        self.net.advance(timeout + 1, step=BLOCK_TIME)
        peer = sync.peers["10.0.1.1"]
        self.assertGreaterEqual(peer.undelivered, 1)
        self.assertGreater(peer.failed_until, self.net.clock.seconds())
        self.assertEqual(sync.in_flight(), 0)
        self.assertLess(sync.best_height(), LIE)
        self.assertGreater(self.producer.scores.score("10.0.1.1"), 0)
        self.assertTrue(sync.is_synced())
        self.assertEqual(sync.state, SYNCED)
        requests = sync.counters["sync-requests"]
        # Skipped for longer after each miss: within the first skip
        # period nothing more is asked of it.
        self.net.advance(self.producer.settings.sync_retry_after - timeout
                         - 2, step=BLOCK_TIME)
        self.assertEqual(sync.counters["sync-requests"], requests)
        self.assertIn("10.0.1.1", self.producer.manager.peers.ready)
        self.net.stop(liar.node.config.p2p.bind)

    def test_empty_node_still_catches_up_next_to_a_liar(self) -> None:
        """
        A node started empty next to the honest peers and a liar still
        believes the honest claims (nobody is at its height), catches up
        to the honest chain, and is synced once the liar's claim was found
        out; the honest peers are not scored.
        """
        self.net.grow(self.mn, 150)
        make_liar(self.net, "10.0.1.1", 41, (PRODUCER,))
        self.net.advance(1, step=BLOCK_TIME)
        new = self.net.start("10.0.0.9", 30, connect=(
            PRODUCER, "10.0.0.2", "10.0.1.1"))
        self.net.advance(0.4, step=BLOCK_TIME)
        self.assertEqual(new.sync.counters["state:catching-up"], 1)
        self.assertFalse(new.sync.counters["state:synced"] and
                         new.node.chain.height < self.mn.chain.height - 1)
        self.net.advance(new.settings.sync_request_timeout + 2,
                         step=BLOCK_TIME)
        self.assertEqual(new.node.chain.tip.hash, self.mn.chain.tip.hash)
        self.assertEqual(hashes(new.node)[:100], hashes(self.mn)[:100])
        self.assertTrue(new.sync.is_synced())
        self.assertEqual(new.scores.score(PRODUCER), 0)
        self.assertEqual(new.scores.score("10.0.0.2"), 0)
        self.assertGreater(new.scores.score("10.0.1.1"), 0)
        self.assertEqual(PORT, new.settings.port)


class RestartNextToLiarTests(unittest.TestCase):
    """
    A node restarted with its chain, next to an honest peer at its height
    and a liar, is synced at once: a peer at its height is evidence of
    being current, which an unproven claim does not outweigh.
    """

    def test_restarted_node_synced_despite_liar(self) -> None:
        """
        The follower restarts on its own store (same height as the
        producer, production paused) while a liar claiming height
        1,000,000,000 is connected to it from the start: it is synced as
        soon as both hellos are in, without waiting for the liar's request
        to time out; the liar is found out after one request timeout.
        """
        net = SyncNet(self, block_time=BLOCK_TIME)
        producer = net.start(PRODUCER, 0)
        net.grow(producer.node, 10)
        follower = net.start("10.0.0.2", 21, connect=(PRODUCER,))
        net.advance(1, step=BLOCK_TIME)
        producer.node.consensus.stop()
        store = follower.node.store
        net.stop("10.0.0.2")
        net.advance(1)
        make_liar(net, "10.0.1.1", 41, ())
        restarted = start_on_store(net, "10.0.0.2", 21, store,
                                   connect=(PRODUCER, "10.0.1.1"))
        self.assertEqual(restarted.node.chain.height,
                         producer.node.chain.height)
        net.advance(1)
        self.assertEqual(sorted(restarted.manager.peers.ready),
                         ["10.0.0.1", "10.0.1.1"])
        self.assertEqual(restarted.sync.heights["10.0.1.1"], LIE)
        self.assertEqual(restarted.sync.state, SYNCED)
        self.assertTrue(restarted.sync.is_synced())
        self.assertEqual(restarted.sync.counters["state:catching-up"], 0)
        net.advance(restarted.settings.sync_request_timeout + 1)
        self.assertEqual(restarted.sync.counters["sync-undelivered"], 1)
        self.assertTrue(restarted.sync.is_synced())


def start_on_store(net: SyncNet, ip: str, n: int, store: Any,
                   connect: tuple[str, ...]) -> P2PService:
    """
    Like L{SyncNet.start}, but on an existing C{store} (a restart that
    keeps the chain).
    """
    config = net.config(ip, net.new_datadir(key(n)),
                        [f"{c}:{PORT}" for c in connect],
                        block_time=net.block_time)
    return net.start_node(ip, config, random.Random(n * 1000 + 99),
                          store=store)


def cluster_liar(cluster: MasternodeCluster, ip: str, n: int,
                 targets: list[str]) -> P2PService:
    """
    A height liar (as L{make_liar}) on the four-masternode cluster's
    network and genesis, dialing C{targets}.
    """
    config = cluster.config(ip, cluster.new_datadir(key(n)),
                            [f"{t}:{PORT}" for t in targets],
                            block_time=2.0, round_timeout=2.0)
    built = cluster.build_node(config, random.Random(n))
    built.node.startService()
    result_of(built.node.ready)
    built.node.consensus.stop()
    liar = built.p2p
    assert liar is not None
    liar.startService()
    cluster.services[ip] = liar
    lie(liar)
    return liar


class FourMasternodeTests(unittest.TestCase):
    """
    The pen test's scenario on fakes: four masternodes, height liars with a
    fresh identity every 10 s against two of them.
    """

    def test_chain_commits_during_and_after_attack(self) -> None:
        """
        Liars claiming height 1,000,000,000 (fresh IP and key every 10 s,
        for 60 s, dialing masternodes 0 and 1): every masternode stays
        synced, the chain commits throughout (at least 15 blocks of 2 s in
        the 60 s) and after the attack (at least 5 in the next 20 s), and
        all four agree.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(10)
        start = min(cluster.heights())
        unsynced = 0
        liar: P2PService | None = None
        for i in range(6):
            if liar is not None:
                self.stop_liar(cluster, liar)
            liar = cluster_liar(cluster, f"10.0.9.{i + 1}", 60 + i,
                                CLUSTER_IPS[:2])
            for _ in range(10):
                cluster.advance(1)
                unsynced += sum(
                    1 for ip in CLUSTER_IPS
                    if not cluster.services[ip].sync.is_synced())
        assert liar is not None
        self.stop_liar(cluster, liar)
        during = min(cluster.heights()) - start
        cluster.advance(20)
        after = min(cluster.heights()) - start - during
        self.assertEqual(unsynced, 0)
        self.assertGreaterEqual(during, 15)
        self.assertGreaterEqual(after, 5)
        cluster.assert_agree()

    def stop_liar(self, cluster: MasternodeCluster,
                  liar: P2PService) -> None:
        """
        The liar leaves (its connections reset).
        """
        ip = liar.node.config.p2p.bind
        cluster.stop_node(ip, crash=True)


class ForgedProofTests(unittest.TestCase):
    """
    Only a certificate that verifies is proof that a node is behind.
    """

    def test_forged_certificate_is_not_proof(self) -> None:
        """
        A liar announces real blocks beyond a synced follower's tip with
        forged certificates (the masternode's key, zero signatures): the
        follower stays synced and checks one certificate (sync-unproven);
        a second forgery within sync_unproven_cooldown costs no signature
        check (sync-unproven-skipped).  After the cooldown the same block
        with its real certificate is proof: the follower is catching-up.
        (Before: the first announcement alone made it catching-up.)
        """
        net = SyncNet(self, block_time=BLOCK_TIME)
        producer = net.start(PRODUCER, 0)
        net.grow(producer.node, 10)
        follower = net.start("10.0.0.2", 21, connect=(PRODUCER,))
        liar = make_liar(net, "10.0.1.1", 41, ("10.0.0.2",))
        net.advance(1, step=BLOCK_TIME)
        self.assertEqual(follower.sync.state, SYNCED)
        net.net.partition("10.0.0.2", PRODUCER)
        net.net.partition("10.0.1.1", PRODUCER)
        net.grow(producer.node, 6)
        producer.node.consensus.stop()
        ours = follower.node.chain.height
        conn = liar.manager.peers.ready["10.0.0.2"]

        def announce(height: int, forged: bool) -> None:
            block, commit = result_of(producer.node.committed_block(height))
            if forged:
                commit = CommitCertificate(
                    commit.height, commit.round, commit.block_hash,
                    tuple(Vote(v.voter, b"\x00" * 64)
                          for v in commit.votes))
            conn.send(BlockMsg(block, commit))
            net.net.flush()

        sync = follower.sync
        announce(ours + 5, forged=True)
        self.assertEqual(sync.counters["sync-unproven"], 1)
        self.assertTrue(sync.is_synced())
        announce(ours + 4, forged=True)
        self.assertEqual(sync.counters["sync-unproven"], 1)
        self.assertEqual(sync.counters["sync-unproven-skipped"], 1)
        self.assertTrue(sync.is_synced())
        net.advance(follower.settings.sync_unproven_cooldown + 1)
        announce(ours + 5, forged=False)
        self.assertEqual(sync.state, CATCHING_UP)
        self.assertFalse(sync.is_synced())
