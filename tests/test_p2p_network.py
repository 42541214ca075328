"""
Whole nodes talking over an in-memory TCP network on one fake clock
(L{timecoin.p2p.testing.FakeNetwork}, built on C{twisted.test.iosim}):
simultaneous opens, hours of stable connections, the dial rule and backoff,
restarts, peer exchange, the peer table, gossip deduplication, and a
follower catching up with a producing masternode and getting its
transaction finalized.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import addr, key, result_of
from tests.helpers.clusters import PeerCluster, keys_by_order
from timecoin import params
from timecoin.p2p.messages import TxMsg
from timecoin.p2p.peers import PeerTable, Source, parse_address, peer_key
from timecoin.p2p.service import P2PService


class ConnectionTests(unittest.TestCase):
    """
    One connection per pair of nodes, settled deterministically, and kept.
    """

    def setUp(self) -> None:
        self.cluster = PeerCluster(self)
        self.net = self.cluster.net

    def test_simultaneous_open(self) -> None:
        """
        Two nodes that dial each other at the same instant end with exactly
        one connection, the one dialled by the lower key, on both sides;
        the higher node stops dialing; nothing reconnects afterwards.
        """
        low, high = keys_by_order(2)
        a = self.cluster.start("10.0.0.1", low, connect=("10.0.0.2:24200",))
        b = self.cluster.start("10.0.0.2", high, connect=("10.0.0.1:24200",))
        self.net.flush()
        self.assertEqual(a.manager.peers.counters["dials"], 1)
        self.assertEqual(b.manager.peers.counters["dials"], 1)
        self.assertEqual(a.manager.peers.counters["simultaneous-open"]
                         + b.manager.peers.counters["simultaneous-open"], 2)
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        self.assertEqual(self.cluster.ready_keys("10.0.0.2"), ["10.0.0.1"])
        self.assertEqual(sorted(b.manager.peers.dialers), [])
        self.net.advance(3600, step=10)
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])
        self.assertEqual(a.manager.peers.counters["dials"], 1)
        self.assertEqual(b.manager.peers.counters["dials"], 1)

    def test_three_nodes_two_hours(self) -> None:
        """
        Three nodes that all know each other keep exactly one connection
        per pair for two hours of simulated time: no reconnect, no second
        dial, pings answered with an RTT on every connection.
        """
        ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        services = [self.cluster.start(
            ip, n, connect=tuple(f"{o}:24200" for o in ips if o != ip))
            for ip, n in zip(ips, keys_by_order(3))]
        self.net.advance(5)
        links = self.cluster.links()
        self.assertEqual(links, [("10.0.0.1", "10.0.0.2"),
                                 ("10.0.0.1", "10.0.0.3"),
                                 ("10.0.0.2", "10.0.0.3")])
        before = [dict(s.manager.peers.counters) for s in services]
        self.net.advance(7200, step=5)
        self.assertEqual(self.cluster.links(), links)
        for service, counters in zip(services, before):
            self.assertEqual(len(service.manager.peers.ready), 2)
            for name in ("handshakes", "dials"):
                self.assertEqual(service.manager.peers.counters[name],
                                 counters.get(name, 0), name)
            for info in service.peer_info():
                self.assertEqual(info["state"], "ready")
                self.assertIsNotNone(info["rtt"])
                self.assertEqual(info["missed_pongs"], 0)
                self.assertGreaterEqual(info["msgs_recv"]["pong"], 240)

    def test_identity_is_ip_not_port(self) -> None:
        """
        A peer's identity is its IP: its inbound connections (from any
        ephemeral port) count as one peer, and a second node at the same
        IP is refused while the first is connected; on loopback, nodes are
        told apart by their listen port.
        """
        self.assertEqual(peer_key("10.0.0.7", 1234), "10.0.0.7")
        self.assertEqual(peer_key("127.0.0.1", 1234), "127.0.0.1:1234")
        self.assertEqual(peer_key("::1", 1234), "[::1]:1234")
        low, mid, high = keys_by_order(3)
        hub = self.cluster.start("10.0.0.1", high)
        self.cluster.start("10.0.0.2", low, connect=("10.0.0.1:24200",))
        self.net.flush()
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        other = self.cluster.start("10.0.0.2", mid, port=24300,
                                   connect=("10.0.0.1:24200",),
                                   name="second")
        self.net.flush()
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        self.assertEqual(hub.manager.peers.counters["closed:duplicate-ip"], 1)
        self.assertEqual(len(other.manager.peers.ready), 0)

    def test_loopback_devnet(self) -> None:
        """
        Three nodes on 127.0.0.1 with different ports all connect to each
        other (identity ip:port on loopback), and never dial themselves.
        """
        ports = [24200, 24210, 24220]
        services = []
        for port, n in zip(ports, keys_by_order(3)):
            self.cluster.net.listeners.pop(("127.0.0.1", port), None)
            services.append(self._loopback(port, n, ports))
        self.net.advance(5)
        for service in services:
            self.assertEqual(len(service.manager.peers.ready), 2)
            self.assertEqual(service.manager.peers.counters["closed:self-connection"],
                             0)
        self.assertEqual(len(self.net.connections()), 3)

    def _loopback(self, port: int, n: int, ports: list[int]) -> P2PService:
        config = self.cluster.config(
            "127.0.0.1", self.cluster.new_datadir(key(n)),
            [f"127.0.0.1:{p}" for p in ports], port=port, block_time=2.0)
        return self.cluster.start_node(f"lo:{port}", config,
                                       random.Random(port))

    def test_max_peers(self) -> None:
        """
        Beyond max_peers, a new peer is refused with too-many-peers.
        """
        hub = self.cluster.start("10.0.0.1", 20, max_peers=1)
        self.cluster.start("10.0.0.2", 21, connect=("10.0.0.1:24200",))
        self.net.flush()
        self.cluster.start("10.0.0.3", 22, connect=("10.0.0.1:24200",))
        self.net.flush()
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        self.assertEqual(hub.manager.peers.counters["closed:too-many-peers"], 1)


class DialTests(unittest.TestCase):
    """
    The dial rule, backoff and restarts.
    """

    def setUp(self) -> None:
        self.cluster = PeerCluster(self)
        self.net = self.cluster.net

    def watch_dialers(self, service: P2PService, seconds: float,
                      step: float = 1.0) -> int:
        """
        Advance time, checking at every step that no peer ever has more
        than one dialer or attempt in flight; returns the largest number of
        connections seen to any one peer.
        """
        most = 0
        end = self.clock_now() + seconds
        while self.clock_now() < end:
            self.net.advance(step, step)
            per_peer: dict[str, int] = {}
            for link in self.net.connections():
                if link.client_ip == "10.0.0.1" or link.server_ip == \
                        "10.0.0.1":
                    other = link.server_ip if link.client_ip == "10.0.0.1" \
                        else link.client_ip
                    per_peer[other] = per_peer.get(other, 0) + 1
            most = max([most, *per_peer.values()])
        return most

    def clock_now(self) -> float:
        """
        The fake time.
        """
        return self.cluster.clock.seconds()

    def test_backoff_to_dead_peer(self) -> None:
        """
        A seed that is down is redialled by one dialer only, after delays
        of ≈5 s doubling to 300 s; when it comes up the next attempt
        connects, and the handshake resets the delay.
        """
        a = self.cluster.start("10.0.0.1", 20, connect=("10.0.0.2:24200",))
        reactor = a.reactor
        self.net.advance(1000, step=1)
        factory = a.manager.peers.dialers["10.0.0.2"]
        self.assertEqual(len(a.manager.peers.dialers), 1)
        bases = [5, 10, 20, 40, 80, 160, 300]
        for delay, base in zip(factory.delays, bases):
            self.assertTrue(base * 0.9 <= delay <= min(base * 1.1, 300),
                            (delay, base))
        attempts = reactor.dials_to("10.0.0.2", 24200)
        self.assertEqual(attempts, len(factory.delays))
        self.assertTrue(factory.in_backoff)
        self.cluster.start("10.0.0.2", 21)
        self.net.advance(330, step=1)
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        self.assertEqual(reactor.dials_to("10.0.0.2", 24200), attempts + 1)
        self.assertEqual(factory.delay, 5.0)
        self.assertEqual(self.cluster.services["10.0.0.1"].table.get(
            "10.0.0.2").failures, 0)

    def test_failed_handshake_does_not_reset(self) -> None:
        """
        A peer that accepts TCP but refuses the handshake (another genesis)
        is redialled with growing delays: the reset waits for a completed
        handshake.
        """
        a = self.cluster.start("10.0.0.1", 20, connect=("10.0.0.2:24200",))
        b = self.cluster.start("10.0.0.2", 21, genesis="")
        self.net.advance(400, step=1)
        factory = a.manager.peers.dialers["10.0.0.2"]
        self.assertGreaterEqual(len(factory.delays), 5)
        self.assertTrue(all(later > earlier for earlier, later in zip(
            factory.delays, factory.delays[1:5])), factory.delays)
        self.assertGreaterEqual(a.manager.peers.counters["closed:wrong-genesis"], 5)
        self.assertGreaterEqual(b.manager.peers.counters["closed:wrong-genesis"], 5)
        self.assertEqual(b.scores.score("10.0.0.1"), 0.0)
        self.assertEqual(a.scores.score("10.0.0.2"), 0.0)

    def test_crash_and_restart(self) -> None:
        """
        When a peer crashes, its dialer (the lower key) redials on the
        reset schedule (≈5 s, 10 s, …) and reconnects soon after the peer
        is back; never two connections or attempts at once.
        """
        low, high = keys_by_order(2)
        a = self.cluster.start("10.0.0.1", low, connect=("10.0.0.2:24200",))
        self.cluster.start("10.0.0.2", high)
        self.net.advance(5)
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])
        self.cluster.stop("10.0.0.2", crash=True)
        self.assertEqual(a.manager.peers.ready, {})
        most = self.watch_dialers(a, 30)
        self.cluster.start("10.0.0.2", high)
        most = max(most, self.watch_dialers(a, 40))
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])
        self.assertEqual(most, 1)
        factory = a.manager.peers.dialers["10.0.0.2"]
        self.assertLessEqual(factory.delays[0], 5.5)
        self.assertLessEqual(len(factory.delays), 5)

    def test_restart_of_lower_key(self) -> None:
        """
        The higher key keeps dialing the lower one while it is down when
        it is its --connect seed (an operator's seed is always honoured),
        with its backoff; once the lower node is back there is exactly one
        link between them within a few seconds.  A learned peer with a
        lower key is waited for instead (the dial rule's passive wait).
        """
        low, high = keys_by_order(2)
        self.cluster.start("10.0.0.1", high, connect=("10.0.0.2:24200",))
        self.cluster.start("10.0.0.2", low)
        self.net.advance(5)
        survivor = self.cluster.services["10.0.0.1"]
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])
        self.cluster.stop("10.0.0.2")
        self.net.advance(10)
        self.assertIn("10.0.0.2", survivor.manager.peers.dialers)
        self.cluster.start("10.0.0.2", low)
        self.net.advance(10)
        self.assertEqual(len(self.cluster.links()), 1)
        self.assertIn("10.0.0.2", survivor.manager.peers.ready)

    def test_seed_with_lower_key_dialled_at_once(self) -> None:
        """
        If the lower key does not know our address (its peer table is
        gone), the higher one still dials it at once when it is a seed:
        linked again within seconds, not after passive_wait (a restarted
        node with the highest key waited up to a minute for peers that
        could not know it was back).
        """
        low, high = keys_by_order(2)
        self.cluster.start("10.0.0.1", high, connect=("10.0.0.2:24200",))
        self.cluster.start("10.0.0.2", low)
        self.net.advance(5)
        self.cluster.stop("10.0.0.2")
        table = self.cluster.datadirs["10.0.0.2"] / "peers.json"
        table.unlink()
        self.cluster.start("10.0.0.2", low)
        self.net.advance(15)
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])

    def test_half_open_replaced(self) -> None:
        """
        A peer that comes back while we still hold its old, silent inbound
        connection replaces it: still one connection for its IP.
        """
        low, high = keys_by_order(2)
        b = self.cluster.start("10.0.0.2", high)
        self.cluster.start("10.0.0.1", low, connect=("10.0.0.2:24200",))
        self.net.advance(5)
        self.net.partition("10.0.0.1", "10.0.0.2")
        self.cluster.stop("10.0.0.1")
        self.cluster.start("10.0.0.1", low, connect=("10.0.0.2:24200",))
        self.net.heal("10.0.0.1", "10.0.0.2")
        self.net.advance(20)
        self.assertEqual(self.cluster.ready_keys("10.0.0.2"), ["10.0.0.1"])
        self.assertEqual(b.manager.peers.counters["closed:replaced"], 1)
        self.assertEqual(self.cluster.links(), [("10.0.0.1", "10.0.0.2")])

    def test_partition_times_out_then_reconnects(self) -> None:
        """
        A silent peer is dropped by ping timeouts on both sides (about
        90 s); after the partition heals the dialer reconnects.
        """
        low, high = keys_by_order(2)
        a = self.cluster.start("10.0.0.1", low, connect=("10.0.0.2:24200",))
        b = self.cluster.start("10.0.0.2", high)
        self.net.advance(5)
        self.net.partition("10.0.0.1", "10.0.0.2")
        self.net.advance(120)
        self.assertEqual(a.manager.peers.ready, {})
        self.assertEqual(b.manager.peers.ready, {})
        self.assertEqual(a.manager.peers.counters["closed:ping-timeout"], 1)
        self.assertEqual(b.manager.peers.counters["closed:ping-timeout"], 1)
        self.net.heal("10.0.0.1", "10.0.0.2")
        self.net.advance(330)
        self.assertEqual(self.cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])

    def test_own_address_never_dialled(self) -> None:
        """
        A seed naming our own listen address is never dialled.
        """
        a = self.cluster.start("10.0.0.1", 20, connect=("10.0.0.1:24200",))
        self.net.advance(30)
        self.assertEqual(a.manager.peers.counters["dials"], 0)

    def test_peer_exchange(self) -> None:
        """
        A node that knows one peer learns the others through get_peers and
        connects to them; the learned addresses are saved in peers.json.
        """
        self.cluster.start("10.0.0.1", 20)
        self.cluster.start("10.0.0.2", 21, connect=("10.0.0.1:24200",))
        self.net.advance(5)
        c = self.cluster.start("10.0.0.3", 22, connect=("10.0.0.1:24200",))
        self.net.advance(20)
        self.assertEqual(self.cluster.ready_keys("10.0.0.3"),
                         ["10.0.0.1", "10.0.0.2"])
        self.assertEqual(c.table.get("10.0.0.2").source, Source.EXCHANGE)
        self.cluster.stop("10.0.0.3")
        saved = json.loads(
            (self.cluster.datadirs["10.0.0.3"] / "peers.json").read_text())
        self.assertEqual(sorted(p["host"] for p in saved["peers"]),
                         ["10.0.0.1", "10.0.0.2"])


class PeerTableTests(unittest.TestCase):
    """
    The peer table is bounded and persisted atomically.
    """

    def test_bounded(self) -> None:
        """
        Beyond table_size, learned addresses evict the worst learned ones;
        seeds are never evicted.
        """
        table = PeerTable(None, Clock(), max_entries=1000)
        for i in range(3):
            table.add(f"192.168.0.{i + 1}", 24200, Source.SEED)
        for i in range(1500):
            table.add(f"10.{i // 250}.{i % 250}.1", 24200, Source.EXCHANGE)
        self.assertEqual(len(table), 1000)
        self.assertEqual(sum(1 for e in table.entries.values()
                             if e.source == Source.SEED), 3)

    def test_persisted(self) -> None:
        """
        save() then load() gives the same entries (seeds reload as learned
        addresses; the config re-marks its seeds); no temporary file is
        left; an unreadable file is ignored.
        """
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        clock = Clock()
        clock.advance(100)
        table = PeerTable(path, clock)
        table.add("10.0.0.1", 24200, Source.SEED)
        table.connected("10.0.0.2", "10.0.0.2", 24300, key(3).public)
        table.add("::1", 24200, Source.EXCHANGE)
        table.save()
        self.assertFalse(path.with_name(path.name + ".tmp").exists())
        loaded = PeerTable(path, clock)
        loaded.load()
        self.assertEqual(
            {k: replace(e, source=Source.EXCHANGE if e.source == Source.SEED
                        else e.source)
             for k, e in table.entries.items()}, loaded.entries)
        self.assertEqual(loaded.get("10.0.0.2").pubkey, key(3).public)
        path.write_text("{not json")
        broken = PeerTable(path, clock)
        broken.load()
        self.assertEqual(len(broken), 0)

    def test_failures_forget_learned(self) -> None:
        """
        A learned address is given up after max_failures failed dials; a
        seed never is.
        """
        table = PeerTable(None, Clock(), max_failures=3)
        table.add("10.0.0.1", 1, Source.SEED)
        table.add("10.0.0.2", 1, Source.EXCHANGE)
        self.assertEqual([table.failed("10.0.0.2") for _ in range(3)],
                         [False, False, True])
        self.assertEqual([table.failed("10.0.0.1") for _ in range(5)],
                         [False] * 5)

    def test_addresses(self) -> None:
        """
        Addresses are parsed strictly (IPs only from peers), formatted with
        IPv6 brackets, and loopback ones are shared with loopback peers
        only.
        """
        self.assertEqual(parse_address("[::1]:5"), ("::1", 5))
        self.assertEqual(parse_address("localhost:5"), ("127.0.0.1", 5))
        for bad in ["host:5", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:x",
                    "0.0.0.0:5", "224.0.0.1:5"]:
            self.assertRaises(ValueError, parse_address, bad)
        self.assertEqual(parse_address("seed.example:5", ip_only=False),
                         ("seed.example", 5))
        table = PeerTable(None, Clock())
        table.add("127.0.0.1", 5, Source.EXCHANGE)
        table.add("::2", 5, Source.EXCHANGE)
        self.assertEqual(table.addresses(10, loopback=False), ["[::2]:5"])
        self.assertEqual(sorted(table.addresses(10, loopback=True)),
                         ["127.0.0.1:5", "[::2]:5"])


class ChainTests(unittest.TestCase):
    """
    Blocks and transactions over the network.
    """

    def setUp(self) -> None:
        self.cluster = PeerCluster(self)
        self.net = self.cluster.net

    def test_follower_catches_up_and_tx_finalizes(self) -> None:
        """
        A non-masternode follower sharing the genesis of a producing devnet
        node catches up from height 0, follows new blocks as they are
        announced, and a transaction submitted on the follower is finalized
        by the masternode's vote and ends up in both chains, with equal
        UTXO sets.
        """
        producer = self.cluster.start("10.0.0.1", 20, genesis="")
        mn = producer.node
        self.net.advance(40)
        self.assertEqual(mn.chain.height, 20)
        genesis = str(Path(mn.datadir) / "genesis.json")
        follower = self.cluster.start("10.0.0.2", 21, genesis=genesis,
                                      connect=("10.0.0.1:24200",))
        node = follower.node
        self.assertFalse(node.is_masternode)
        self.assertEqual(node.chain.height, 0)
        self.net.advance(1)
        self.assertEqual(node.chain.height, mn.chain.height)
        self.assertGreaterEqual(follower.sync.counters["sync-blocks"], 20)
        self.net.advance(10)
        self.assertEqual(node.chain.height, mn.chain.height)
        # New blocks reach it announced, or through the consensus messages
        # it follows (every node follows the rounds; only members sign).
        self.assertGreaterEqual(
            follower.sync.counters["block-connected"]
            + node.consensus.counters.get("committed", 0), 4)
        self.assertEqual(node.chain.tip.hash, mn.chain.tip.hash)

        tx = mn.wallet.build_payment(mn.spendable(), node.new_address(),
                                     5 * params.COIN, "devnet")
        txid = result_of(node.submit(tx))
        self.assertEqual(node.mempool.state_of(txid), "pending")
        self.net.advance(1)
        self.assertIsNotNone(result_of(mn.transaction(txid)))
        self.net.advance(4)
        for n in (mn, node):
            location = result_of(n.store.get_tx_location(txid))
            self.assertIsNotNone(location)
        self.assertEqual(node.chain.height, mn.chain.height)
        self.assertEqual(node.chain.utxo_hash(), mn.chain.utxo_hash())
        self.assertEqual(node.balance(), 5 * params.COIN)

    def test_follower_sees_finality_before_block(self) -> None:
        """
        The masternode's vote reaches the follower, which marks the
        transaction finalized before any block archives it.
        """
        producer = self.cluster.start("10.0.0.1", 20, genesis="",
                                      block_time=60.0)
        mn = producer.node
        genesis = str(Path(mn.datadir) / "genesis.json")
        follower = self.cluster.start("10.0.0.2", 21, genesis=genesis,
                                      connect=("10.0.0.1:24200",))
        self.net.advance(1)
        node = follower.node
        tx = mn.wallet.build_payment(mn.spendable(), node.new_address(),
                                     5 * params.COIN, "devnet")
        txid = result_of(node.submit(tx))
        self.net.advance(1.5, step=0.5)
        self.assertEqual(mn.mempool.state_of(txid), "finalized")
        self.assertEqual(node.mempool.state_of(txid), "finalized")
        self.assertEqual(node.chain.height, 0)

    def test_gossip_dedup(self) -> None:
        """
        In a triangle of nodes (one producing) a transaction and each block
        are relayed at most once by each node; copies arriving by the
        other path are dropped as duplicates before any relay.
        """
        ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        producer = self.cluster.start("10.0.0.1", 20, genesis="")
        genesis = str(Path(producer.node.datadir) / "genesis.json")
        others = [self.cluster.start(
            ip, n, genesis=genesis,
            connect=tuple(f"{o}:24200" for o in ips if o != ip))
            for ip, n in zip(ips[1:], (21, 22))]
        self.net.advance(5)
        self.assertEqual(len(self.net.connections()), 3)
        mn = producer.node
        tx = mn.wallet.build_payment(mn.spendable(), addr(key(5)),
                                     5 * params.COIN, "devnet")
        result_of(others[0].node.submit(tx))
        self.net.advance(6)
        services = [producer, *others]
        for service in services:
            counters = service.gossip.counters
            with self.subTest(service.settings.bind):
                self.assertEqual(counters["tx-announced"]
                                 + counters["tx-relayed"], 1)
                self.assertEqual(counters["vote-announced"]
                                 + counters["vote-relayed"], 1)
                sent = sum(c.sent["tx"] for c in service.manager.peers.ready.values())
                self.assertLessEqual(sent, 2)
        duplicates = sum(s.gossip.counters["tx-duplicate"]
                         + s.gossip.counters["tx-refused:already-known"]
                         for s in services)
        self.assertGreaterEqual(duplicates, 1)
        height = mn.chain.height
        for service in services:
            self.assertEqual(service.node.chain.height, height)
            blocks_sent = sum(c.sent["block"]
                              for c in service.manager.peers.ready.values())
            self.assertLessEqual(blocks_sent, 2 * height)
        self.assertGreaterEqual(
            sum(s.sync.counters["block-duplicate"]
                + s.sync.counters["block-known"] for s in services), height)

    def test_invalid_block_bans(self) -> None:
        """
        A peer announcing a block with a forged certificate is scored as
        malicious and banned; the block is not connected.
        """
        from timecoin.block import CommitCertificate, Vote
        from timecoin.p2p.messages import BlockMsg
        producer = self.cluster.start("10.0.0.1", 20, genesis="",
                                      block_time=600.0)
        mn = producer.node
        genesis = str(Path(mn.datadir) / "genesis.json")
        follower = self.cluster.start("10.0.0.2", 21, genesis=genesis,
                                      connect=("10.0.0.1:24200",))
        self.net.advance(1)
        block = mn.builder.build_block()
        forged = CommitCertificate(block.height, 0, block.hash, (
            Vote(key(0).public, b"\x00" * 64),))
        conn = producer.manager.peers.ready["10.0.0.2"]
        conn.send(BlockMsg(block, forged))
        self.net.flush()
        self.assertEqual(follower.node.chain.height, 0)
        self.assertTrue(follower.scores.banned("10.0.0.1"))
        self.assertEqual(follower.manager.peers.ready, {})

    def test_tx_message_invalid_signature_scored(self) -> None:
        """
        A transaction with a broken signature is refused and scored, and
        does not shadow the valid transaction with the same txid.
        """
        from timecoin.tx import Transaction, TxIn
        producer = self.cluster.start("10.0.0.1", 20, genesis="",
                                      block_time=600.0)
        mn = producer.node
        genesis = str(Path(mn.datadir) / "genesis.json")
        follower = self.cluster.start("10.0.0.2", 21, genesis=genesis,
                                      connect=("10.0.0.1:24200",))
        self.net.advance(1)
        tx = mn.wallet.build_payment(mn.spendable(), addr(key(5)),
                                     5 * params.COIN, "devnet")
        broken = Transaction(tuple(TxIn(i.prevout, i.pubkey, b"\x01" * 64)
                                   for i in tx.inputs), tx.outputs)
        self.assertEqual(broken.txid, tx.txid)
        conn = producer.manager.peers.ready["10.0.0.2"]
        conn.send(TxMsg(broken))
        self.net.flush()
        self.assertEqual(follower.gossip.counters["tx-refused:bad-signature"],
                         1)
        self.assertAlmostEqual(follower.scores.score("10.0.0.1"), 20)
        conn.send(TxMsg(tx))
        self.net.flush()
        # Admitted (and, relayed at once to the masternode, voted final).
        self.assertIn(follower.node.mempool.state_of(tx.txid),
                      ("pending", "finalized"))


class OperatorTests(unittest.TestCase):
    """
    What RPC will call on the service.
    """

    def test_ban_info_and_stop(self) -> None:
        """
        An operator ban drops the peer's connection and keeps it out until
        cleared; network and peer info report the connections; stopping
        the service leaves no timer behind.
        """
        cluster = PeerCluster(self)
        a = cluster.start("10.0.0.1", 20)
        cluster.start("10.0.0.2", 21, connect=("10.0.0.1:24200",))
        cluster.net.advance(3)
        info = a.network_info()
        self.assertEqual((info["connections"], info["connections_in"]),
                         (1, 1))
        self.assertEqual([p["id"] for p in a.peer_info()], ["10.0.0.2"])
        a.set_ban("10.0.0.2", 600)
        cluster.net.advance(60)
        self.assertEqual(a.manager.peers.ready, {})
        self.assertIn("10.0.0.2", a.banned())
        a.clear_ban()
        self.assertEqual(a.banned(), {})
        cluster.net.advance(330)
        self.assertEqual(cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        cluster.stop_all()
        self.assertEqual(cluster.clock.getDelayedCalls(), [])

    def test_garbage_client_does_not_disturb(self) -> None:
        """
        A client sending garbage over the network is refused each time and
        banned after repeated offences, while the node keeps serving its
        other peer.
        """
        from twisted.internet.protocol import ClientFactory, Protocol

        class Garbage(Protocol):
            """
            Writes non-UTF-8 bytes as soon as it connects.
            """

            def connectionMade(self) -> None:
                self.transport.write(b"\x00\xff\xfe garbage\n")

        cluster = PeerCluster(self)
        a = cluster.start("10.0.0.1", 20)
        cluster.start("10.0.0.2", 21, connect=("10.0.0.1:24200",))
        cluster.net.advance(3)
        attacker = cluster.net.reactor("10.0.0.9")
        for _ in range(6):
            attacker.connectTCP("10.0.0.1", 24200,
                                ClientFactory.forProtocol(Garbage))
            cluster.net.advance(1)
        self.assertEqual(a.manager.peers.counters["closed:not-utf8"], 5)
        self.assertEqual(a.manager.peers.counters["closed:banned"], 1)
        self.assertIn("10.0.0.9", a.banned())
        self.assertEqual(cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
        cluster.net.advance(120)
        self.assertEqual(cluster.ready_keys("10.0.0.1"), ["10.0.0.2"])
