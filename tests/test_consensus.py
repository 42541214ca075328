"""
Deterministic multi-node tests of BFT block production: four masternodes
in one process on a fake network and clock (seeded), with crashes, a
partition, an equivocating proposer, and forged, replayed and
non-masternode votes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import addr, key, result_of
from tests.helpers.clusters import IPS, MasternodeCluster
from timecoin import params
from timecoin.consensus import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    BlockVote,
    sign_proposal,
    sign_vote,
)
from timecoin.p2p.consensus_relay import BlockVoteMsg, ProposalMsg

ROOT = Path(__file__).resolve().parent.parent


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


