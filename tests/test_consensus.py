"""
Deterministic multi-node tests of BFT block production: four masternodes
in one process on a fake network and clock (seeded), with crashes, a
partition, an equivocating proposer, and forged, replayed and
non-masternode votes.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import START, addr, key, result_of
from timecoin import params
from timecoin.config import Config
from timecoin.consensus import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    BlockVote,
    sign_proposal,
    sign_vote,
)
from timecoin.genesis import make_genesis, write_genesis
from timecoin.masternodes import Masternode
from timecoin.node import Node
from timecoin.p2p.consensus_relay import BlockVoteMsg, ProposalMsg
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.testing import FakeNetwork
from timecoin.storage.memory import MemoryStore
from timecoin.tx import TxOut
from timecoin.wallet import write_private
from timecoin.wiring import build

PORT = 24200
ROOT = Path(__file__).resolve().parent.parent
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]


class MasternodeCluster:
    """
    Four masternodes (test keys 0-3) registered by one genesis, each on its
    own IP of one fake network, all told about each other.
    """

    def __init__(self, testcase: unittest.TestCase, policy: str =
                 "round-robin", tiers: tuple[str, ...] = ("free",) * 4,
                 plugin_dirs: tuple[str, ...] = ()) -> None:
        self.testcase = testcase
        self.policy = policy
        self.plugin_dirs = list(plugin_dirs)
        self.clock = Clock()
        self.clock.advance(START)
        self.net = FakeNetwork(self.clock)
        self.services: dict[str, P2PService] = {}
        self.datadirs: dict[str, Path] = {}
        self.genesis_path = Path(testcase.mktemp()) / "genesis.json"
        self.genesis_path.parent.mkdir(parents=True)
        write_genesis(self.genesis_path, make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(0)))],
            [Masternode(key(i).public, f"{ip}:{PORT}", addr(key(i)), tier)
             for i, (ip, tier) in enumerate(zip(IPS, tiers))]))
        testcase.addCleanup(self.stop_all)

    def start(self, i: int) -> P2PService:
        """
        Start (or restart with its data dir) masternode C{i}.
        """
        ip = IPS[i]
        datadir = self.datadirs.get(ip)
        if datadir is None:
            datadir = Path(self.testcase.mktemp())
            write_private(datadir / "private" / "node_key",
                          key(i).seed.hex().encode() + b"\n")
            write_private(datadir / "private" / "wallet.json",
                          json.dumps({"keys": [key(i).seed.hex()]}).encode())
            self.datadirs[ip] = datadir
        config = Config(network="devnet", datadir=str(datadir),
                        block_time=2.0,
                        p2p=P2PSettings(port=PORT, bind=ip, connect=tuple(
                            f"{o}:{PORT}" for o in IPS if o != ip)),
                        genesis=str(self.genesis_path), policy=self.policy,
                        plugin_dirs=self.plugin_dirs, round_timeout=2.0)
        config.resolve()
        store = getattr(self, "stores", {}).get(ip) or MemoryStore()
        self.__dict__.setdefault("stores", {})[ip] = store
        built = build(config, self.clock, reactor=self.net.reactor(ip),
                      store=store,
                      p2p_settings=replace(
                          config.p2p, initial_delay=1.0, max_delay=4.0,
                          passive_wait=2.0),
                      rng=random.Random(i))
        built.startService()
        result_of(built.node.ready)
        self.services[ip] = built.p2p
        return built.p2p

    def start_all(self) -> None:
        for i in range(4):
            self.start(i)
        self.net.advance(3, step=0.1)

    def stop(self, i: int) -> None:
        """
        Crash masternode C{i} (its store is kept for a restart).
        """
        ip = IPS[i]
        service = self.services.pop(ip)
        self.net.crash(ip)
        service.table.path = None
        service.stopService()
        result_of(service.node.stopService())
        self.net.flush()

    def stop_all(self) -> None:
        for i, ip in enumerate(IPS):
            if ip in self.services:
                self.stop(i)

    def nodes(self) -> list[Node]:
        return [s.node for s in self.services.values()]

    def heights(self) -> list[int]:
        return [n.chain.height for n in self.nodes()]

    def advance(self, seconds: float) -> None:
        self.net.advance(seconds, step=0.1)

    def assert_agree(self) -> int:
        """
        Every running node has the same block at every height up to the
        lowest tip, and equal utxo_hash where heights are equal; returns
        the lowest height.
        """
        nodes = self.nodes()
        low = min(n.chain.height for n in nodes)
        for h in range(low + 1):
            hashes = {result_of(n.store.get_block_hash(h)) for n in nodes}
            self.testcase.assertEqual(len(hashes), 1, f"height {h} differs")
        by_height: dict[int, set[bytes]] = {}
        for n in nodes:
            by_height.setdefault(n.chain.height, set()).add(
                n.chain.utxo_hash())
        for h, hashes in by_height.items():
            self.testcase.assertEqual(len(hashes), 1, f"utxo at {h}")
        return low


class ProductionTests(unittest.TestCase):
    """
    Four masternodes produce, survive one crash, stop without a quorum.
    """

    def test_continuous_production(self) -> None:
        """
        Blocks commit every block time; every node has the same hash at
        every height and the same utxo_hash; all four take turns.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(40)
        low = cluster.assert_agree()
        self.assertGreaterEqual(low, 15)
        node = cluster.nodes()[0]
        producers = {result_of(node.block_at(h)).header.producer
                     for h in range(1, low + 1)}
        self.assertEqual(producers, {key(i).public for i in range(4)})
        # Committed in round 0 (no timeouts) while all are up.
        self.assertEqual(node.consensus.counters.get("round-changes", 0), 0)

    def test_payment_finalized_and_mined(self) -> None:
        """
        A payment made on one masternode is finalized by the 2/3 quorum
        and mined; all nodes agree on the result.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(4)
        node = cluster.nodes()[0]
        txid = result_of(node.send_to_address(addr(key(7)), params.COIN))
        cluster.advance(0.5)
        for n in cluster.nodes():
            self.assertEqual(n.mempool.state_of(txid), "finalized")
        cluster.advance(6)
        for n in cluster.nodes():
            self.assertIsNotNone(result_of(n.store.get_tx_location(txid)))
        cluster.assert_agree()

    def test_producer_crash_costs_a_round(self) -> None:
        """
        Crashing the next height's round-0 proposer delays that height by
        at most a round timeout; the other three keep producing.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(6)
        node = cluster.nodes()[0]
        height = node.chain.height
        nxt = node.chain.expected_producer(height + 1, node.chain.tip.hash,
                                           0)
        victim = [i for i in range(4) if key(i).public == nxt][0]
        cluster.stop(victim)
        cluster.advance(2.0 + 2.0 + 2.0 + 1.0)
        survivors = cluster.nodes()
        self.assertTrue(all(n.chain.height >= height + 1 for n in survivors))
        self.assertGreater(sum(n.consensus.counters.get("round-changes", 0)
                               for n in survivors), 0)
        cluster.advance(20)
        low = cluster.assert_agree()
        self.assertGreaterEqual(low, height + 4)

    def test_no_quorum_then_resume(self) -> None:
        """
        With two of four stopped nothing commits and nothing diverges;
        restarting one resumes production and it catches up.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(6)
        cluster.stop(2)
        cluster.stop(3)
        stuck = cluster.heights()
        cluster.advance(30)
        self.assertEqual(cluster.heights(), stuck)
        cluster.assert_agree()
        cluster.start(2)
        cluster.advance(20)
        low = cluster.assert_agree()
        self.assertGreater(low, max(stuck))

    def test_partition_two_two(self) -> None:
        """
        A 2/2 partition commits nothing on either side; after the heal the
        four converge and produce again.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(6)
        for a in IPS[:2]:
            for b in IPS[2:]:
                cluster.net.partition(a, b)
        cluster.advance(2)
        stuck = max(cluster.heights())
        cluster.advance(30)
        self.assertLessEqual(max(cluster.heights()), stuck)
        cluster.assert_agree()
        for a in IPS[:2]:
            for b in IPS[2:]:
                cluster.net.heal(a, b)
        cluster.advance(40)
        low = cluster.assert_agree()
        self.assertGreater(low, stuck)


class ByzantineTests(unittest.TestCase):
    """
    Misbehaving masternodes and outsiders.
    """

    def test_equivocating_proposer(self) -> None:
        """
        A proposer that signs two different blocks for one round has its
        evidence kept by the others, and at most one block commits.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(6)
        node = cluster.nodes()[0]
        height = node.chain.height + 1
        proposer = node.chain.expected_producer(height, node.chain.tip.hash,
                                                0)
        i = [i for i in range(4) if key(i).public == proposer][0]
        byz = cluster.services[IPS[i]].node
        first = byz.builder.build_block(0)
        cluster.clock.advance(0.001)
        second = byz.builder.build_block(0)
        self.assertNotEqual(first.hash, second.hash)
        p1 = sign_proposal(key(i), "devnet", first, 0, -1)
        p2 = sign_proposal(key(i), "devnet", second, 0, -1)
        others = [s for ip, s in cluster.services.items() if ip != IPS[i]]
        for n, service in enumerate(others):
            engine = service.node.consensus
            engine.receive(p1 if n % 2 else p2)
            engine.receive(p2 if n % 2 else p1)
            self.assertEqual(engine.evidence[-1]["kind"], "proposal")
            self.assertEqual(engine.offences[key(i).public], 1)
        cluster.advance(30)
        cluster.assert_agree()

    def test_bad_votes(self) -> None:
        """
        Votes from non-masternodes, forged, replayed from another height,
        or for another network are dropped with reasons; a double vote is
        kept as evidence; over P2P a forged vote scores the sender.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(5)
        service = cluster.services[IPS[0]]
        engine = service.node.consensus
        h, r = engine.height, engine.round
        outsider = sign_vote(key(9), "devnet", PREVOTE, h, r, NIL)
        self.assertEqual(engine.receive(outsider), "vote-not-masternode")
        good = sign_vote(key(1), "devnet", PREVOTE, h, r, NIL)
        self.assertEqual(engine.receive(replace(good, signature=bytes(64))),
                         "bad-vote-signature")
        self.assertEqual(engine.receive(sign_vote(
            key(1), "testnet", PREVOTE, h, r, NIL)), "bad-vote-signature")
        self.assertEqual(engine.receive(sign_vote(
            key(1), "devnet", PREVOTE, h - 3, r, NIL)), "wrong-height")
        first = engine.receive(good)
        self.assertIn(first, (None, "duplicate"))
        self.assertEqual(engine.receive(good), "duplicate")
        other = sign_vote(key(1), "devnet", PREVOTE, h, r, b"\x07" * 32)
        self.assertEqual(engine.receive(other), "equivocating-vote")
        self.assertEqual(engine.evidence[-1]["kind"], PREVOTE)
        # Over the wire: a forged precommit costs the relaying peer.
        peer = cluster.services[IPS[1]]
        conn = next(iter(peer.manager.peers.ready.values()))
        forged = BlockVote(PRECOMMIT, h, r, NIL, key(2).public, bytes(64))
        before = service.scores.score(IPS[1])
        conn.send(BlockVoteMsg(forged))
        cluster.net.flush()
        self.assertGreater(service.scores.score(IPS[1]), before)
        self.assertIsNotNone(ProposalMsg)


class PolicyTests(unittest.TestCase):
    """
    The selection policy is a config switch.
    """

    def producers(self, cluster: MasternodeCluster) -> list[bytes]:
        node = cluster.nodes()[0]
        return [result_of(node.block_at(h)).header.producer
                for h in range(1, node.chain.height + 1)]

    def test_other_policies_converge(self) -> None:
        """
        The stake-weighted policy (with tiers) and the lowest-hash policy
        from plugins/ both produce a converging chain, with a different
        producer sequence than round-robin.
        """
        import twisted.plugins
        path = str(ROOT / "plugins")
        self.addCleanup(lambda: path in twisted.plugins.__path__
                        and twisted.plugins.__path__.remove(path))
        sequences = {}
        for policy, dirs in (("round-robin", ()), ("stake-weighted", ()),
                             ("lowest-hash", (path,))):
            cluster = MasternodeCluster(
                self, policy, ("gold", "silver", "bronze", "free"), dirs)
            cluster.start_all()
            cluster.advance(30)
            self.assertGreaterEqual(cluster.assert_agree(), 10)
            sequences[policy] = self.producers(cluster)[:10]
            cluster.stop_all()
        self.assertNotEqual(sequences["round-robin"],
                            sequences["stake-weighted"])
        self.assertNotEqual(sequences["round-robin"],
                            sequences["lowest-hash"])


