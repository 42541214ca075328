"""
Deterministic tests of transaction finality across masternodes (a fake
network and clock, seeded): conflicting spenders sent to different
masternodes at once, Byzantine and equivocating voters, votes from
non-masternodes, timeouts, a restart mid-vote, bounded vote state, blocks
that conflict with a finalized transaction, mempool limits at the seeds'
numbers, per-peer rate limits, and signature work per finalized
transaction with batched votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.helpers import DEVNET, Harness, addr, key, result_of, widen_snapshot
from tests.helpers.clusters import (
    IPS,
    MasternodeCluster,
    fan_out,
    node_of,
    service_of,
)
from timecoin import params
from timecoin import tx as tx_module
from timecoin.chain import BlockInvalid, TxInvalid
from timecoin.finality import (
    APPROVE,
    MAX_BATCH_VOTES,
    MAX_BRANCH,
    REJECT,
    RELEASED_BLOCKS,
    VOTE_HEIGHT_WINDOW,
    Finality,
    FinalitySettings,
    TxVote,
    TxVoteBatch,
    sign_tx_vote,
    sign_tx_votes,
    tx_vote_ok,
    tx_votes_ok,
)
from timecoin.finality import votes as finality_module
from timecoin.finality.records import (
    RELEASED,
    RecordWriter,
    ReleasedApprovals,
    decode_record,
    group_records,
)
from timecoin.mempool import (
    FINALIZED,
    PENDING,
    REJECTED,
    Mempool,
    MempoolSettings,
)
from timecoin.node import Node
from timecoin.p2p.messages import (
    MAX_TXIDS_PER_QUERY,
    GetTxVotes,
    TxMsg,
    TxVoteMsg,
    TxVotesMsg,
    parse_line,
)
from timecoin.p2p.settings import DEFAULT_RATE_LIMITS
from timecoin.producer import BlockBuilder
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs


def conflicting_pair(node: Node, coins: list[Any] | None = None
                     ) -> tuple[Transaction, Transaction]:
    """
    Two payments from C{node}'s wallet spending the same coins (by
    default its largest spendable coin).
    """
    coins = node.spendable() if coins is None else coins
    first = node.wallet.build_payment(coins, addr(key(7)), params.COIN,
                                      "devnet")
    second = node.wallet.build_payment(coins, addr(key(8)), 2 * params.COIN,
                                       "devnet")
    assert {i.prevout for i in first.inputs} & \
        {i.prevout for i in second.inputs}
    return first, second


def decided(node: Node, txid: bytes) -> str | None:
    """
    The state of C{txid} on C{node}, C{finalized} also once mined.
    """
    if result_of(node.store.get_tx_location(txid)) is not None:
        return FINALIZED
    return node.mempool.state_of(txid)


def states(cluster: MasternodeCluster, txid: bytes) -> dict[str, str | None]:
    """
    The state of C{txid} on every running node, by IP (finalized also
    once mined).
    """
    return {ip: decided(s.node, txid) for ip, s in cluster.services.items()}


def engine(h: Harness, masternode: bool = False, timeout: float = 10.0,
           settings: FinalitySettings | None = None) -> Finality:
    """
    A finality engine on the one-masternode harness C{h}.
    """
    found = Finality(h.chain, h.mempool, h.mn_key if masternode else None,
                     h.clock, timeout, settings)
    h.chain.block_connected.disconnect(h.mempool.block_connected)
    h.chain.block_connected.connect(found.block_connected)
    return found


class DoubleSpendTests(unittest.TestCase):
    """
    Conflicting spenders sent to different masternodes at the same moment
    end with at most one finalized, and the same decision on every node.
    """

    def assert_same_everywhere(self, cluster: MasternodeCluster,
                               txid: bytes) -> str | None:
        """
        Every running node has C{txid} in one state; returns it.
        """
        found = states(cluster, txid)
        self.assertEqual(len(set(found.values())), 1, found)
        return next(iter(found.values()))

    def test_two_masternodes_at_once(self) -> None:
        """
        A goes to masternode 0 and B (same coin) to masternode 3 in the
        same instant.  Each is finalized or rejected identically on all
        four nodes, never both finalized; here A reaches two of the others
        first and wins, and masternode 3, which locked B first, unlocks it
        and adopts A.  The next block mines A; the chains agree.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        a, b = conflicting_pair(node_of(cluster, 0))
        result_of(node_of(cluster, 0).submit(a))
        result_of(node_of(cluster, 3).submit(b))
        cluster.advance(1)
        state_a = self.assert_same_everywhere(cluster, a.txid)
        state_b = self.assert_same_everywhere(cluster, b.txid)
        self.assertEqual((state_a, state_b), (FINALIZED, REJECTED))
        loser = node_of(cluster, 3)
        self.assertIn(loser.mempool.rejected[b.txid],
                      ("conflict-finalized", "rejected-by-vote"))
        self.assertEqual(set(loser.mempool.locks.values()), {a.txid})
        cluster.advance(5)
        for n in cluster.nodes():
            self.assertIsNotNone(result_of(n.store.get_tx_location(a.txid)))
            self.assertIsNone(result_of(n.store.get_tx_location(b.txid)))
        cluster.assert_agree()

    def test_every_pair_of_masternodes(self) -> None:
        """
        For every ordered pair of distinct masternodes receiving the two
        spenders at once: at most one is finalized, each ends in the same
        state on all four nodes, and nothing stays pending.
        """
        outcomes = set()
        for i, j in [(0, 1), (1, 0), (0, 2), (2, 1), (1, 3), (3, 2)]:
            cluster = MasternodeCluster(self)
            cluster.start_all()
            cluster.advance(1)
            a, b = conflicting_pair(node_of(cluster, 0))
            result_of(node_of(cluster, i).submit(a))
            result_of(node_of(cluster, j).submit(b))
            cluster.advance(12)
            pair = (self.assert_same_everywhere(cluster, a.txid),
                    self.assert_same_everywhere(cluster, b.txid))
            self.assertNotEqual(pair, (FINALIZED, FINALIZED), (i, j))
            self.assertNotIn(PENDING, pair, (i, j))
            outcomes.add(pair)
            cluster.stop_all()
        self.assertIn((FINALIZED, REJECTED), outcomes)

    def test_even_split_rejects_both(self) -> None:
        """
        A to masternodes 0 and 1, B to 2 and 3, at once: each gets two
        approvals and two rejections (more than 1/3 rejecting), so both
        are rejected everywhere and the coin is unlocked on every node.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        a, b = conflicting_pair(node_of(cluster, 0))
        for i, tx in [(0, a), (1, a), (2, b), (3, b)]:
            result_of(node_of(cluster, i).submit(tx))
        cluster.advance(1)
        for tx in (a, b):
            self.assertEqual(self.assert_same_everywhere(cluster, tx.txid),
                             REJECTED)
        for n in cluster.nodes():
            self.assertEqual(n.mempool.locks, {})
            self.assertEqual(n.mempool.contenders, {})

    def test_byzantine_double_voter(self) -> None:
        """
        Masternode 3 is Byzantine and approves both spenders.  A reaches
        masternodes 0 and 1, B reaches 2: A is finalized (0, 1 and the
        Byzantine vote) and B rejected (0 and 1 reject) on every honest
        node, including 2, which had locked B.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        cluster.stop(3)
        a, b = conflicting_pair(node_of(cluster, 0))
        result_of(node_of(cluster, 0).submit(a))
        result_of(node_of(cluster, 1).submit(a))
        result_of(node_of(cluster, 2).submit(b))
        cluster.advance(0.02)
        height = node_of(cluster, 0).chain.height
        both = sign_tx_votes(key(3), "devnet", height,
                             [(a.txid, APPROVE), (b.txid, APPROVE)])
        conn = service_of(cluster, 0).manager.peers.ready[IPS[2]]
        conn.send(TxVotesMsg(both))
        cluster.advance(1)
        self.assertEqual(set(states(cluster, a.txid).values()), {FINALIZED})
        self.assertEqual(set(states(cluster, b.txid).values()), {REJECTED})
        cluster.advance(5)
        cluster.assert_agree()

    def test_equivocating_voter(self) -> None:
        """
        A masternode that signs approve for A to one node and reject for A
        to another is caught: every node that sees both counts only the
        first and keeps the pair as evidence; the honest quorum still
        decides A the same way everywhere.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        cluster.stop(3)
        a, _ = conflicting_pair(node_of(cluster, 0))
        height = node_of(cluster, 0).chain.height
        yes = sign_tx_votes(key(3), "devnet", height, [(a.txid, APPROVE)])
        no = sign_tx_votes(key(3), "devnet", height, [(a.txid, REJECT)])
        result_of(node_of(cluster, 0).submit(a))
        cluster.net.flush()
        service_of(cluster, 0).manager.peers.ready[IPS[1]].send(TxVotesMsg(yes))
        service_of(cluster, 0).manager.peers.ready[IPS[2]].send(TxVotesMsg(no))
        cluster.advance(1)
        self.assertEqual(set(states(cluster, a.txid).values()), {FINALIZED})
        caught = [n for n in cluster.nodes()
                  if n.finality.counters["equivocations"]]
        self.assertTrue(caught)
        first, second = next(iter(caught[0].finality.equivocations.values()))
        self.assertEqual({first.decision, second.decision}, {APPROVE, REJECT})


class VoteCheckTests(unittest.TestCase):
    """
    Batches and single votes: Merkle proofs, and every reason a vote is
    dropped.
    """

    def test_batch_and_proofs(self) -> None:
        """
        Every single vote cut from a batch (any size, odd levels included)
        verifies on its own and proves the batch root; a changed decision,
        index or branch does not.  Encodings round-trip.
        """
        for n in (1, 2, 3, 5, 8, 13):
            decisions = [(bytes([i]) * 32, APPROVE if i % 2 else REJECT)
                         for i in range(1, n + 1)]
            batch = sign_tx_votes(key(0), "devnet", 4, decisions)
            self.assertTrue(tx_votes_ok(batch, "devnet"))
            self.assertFalse(tx_votes_ok(batch, "testnet"))
            self.assertEqual(TxVoteBatch.from_obj(batch.to_obj()), batch)
            for vote in batch.votes():
                self.assertEqual(vote.root(), batch.root())
                self.assertTrue(tx_vote_ok(vote, "devnet"))
                self.assertEqual(TxVote.from_obj(vote.to_obj()), vote)
                flipped = replace(vote, decision=REJECT
                                  if vote.decision == APPROVE else APPROVE)
                self.assertFalse(tx_vote_ok(flipped, "devnet"))
                self.assertFalse(tx_vote_ok(
                    replace(vote, txid=b"\xee" * 32), "devnet"))
                if vote.branch:
                    self.assertFalse(tx_vote_ok(
                        replace(vote, branch=vote.branch[:-1]), "devnet"))
                    self.assertIsNone(replace(
                        vote, index=2 ** len(vote.branch)).root())
            if n == 2:
                left, right = batch.votes()
                self.assertFalse(tx_vote_ok(replace(left, index=1),
                                            "devnet"))

    def test_sizes_fit_caps(self) -> None:
        """
        A batch of the most decisions, a vote with the longest branch and a
        query for the most txids fit their message caps and parse.
        """
        batch = TxVoteBatch(b"\xff" * 32, 2**63 - 1, tuple(
            (i.to_bytes(32, "big"), APPROVE)
            for i in range(MAX_BATCH_VOTES)), b"\xff" * 64)
        line = TxVotesMsg(batch).encode()
        self.assertLessEqual(len(line), TxVotesMsg.max_bytes)
        self.assertEqual(parse_line(line), TxVotesMsg(batch))
        vote = TxVote(b"\xff" * 32, APPROVE, 2**63 - 1, b"\xff" * 32,
                      b"\xff" * 64, 2**MAX_BRANCH - 1,
                      (b"\xff" * 32,) * MAX_BRANCH)
        line = TxVoteMsg(vote).encode()
        self.assertLessEqual(len(line), TxVoteMsg.max_bytes)
        self.assertEqual(parse_line(line), TxVoteMsg(vote))
        query = GetTxVotes((b"\xff" * 32,) * MAX_TXIDS_PER_QUERY)
        self.assertLessEqual(len(query.encode()), GetTxVotes.max_bytes)

    def test_batch_checks(self) -> None:
        """
        A batch from a non-masternode, a forged or other-network batch, one
        stamped far from our height, and a duplicate are dropped with
        their reason codes; a batch about unseen transactions yields
        verified orphans; a good batch is tallied with one signature
        check, and its orphan votes later cost none.
        """
        h = Harness(funds=[10 * params.COIN] * 2)
        found = engine(h)
        txs = [h.pay([h.funding(i)], [(addr(key(2)), 9 * params.COIN)])
               for i in range(2)]
        result_of(found.submit(txs[0]))
        decisions = [(t.txid, APPROVE) for t in txs]
        outsider = sign_tx_votes(key(9), "devnet", 0, decisions)
        self.assertEqual(found.receive_batch(outsider).reason,
                         "vote-not-masternode")
        good = sign_tx_votes(h.mn_key, "devnet", 0, decisions)
        forged = replace(good, signature=bytes(64))
        self.assertEqual(found.receive_batch(forged).reason,
                         "vote-bad-signature")
        other_net = sign_tx_votes(h.mn_key, "testnet", 0, decisions)
        self.assertEqual(found.receive_batch(other_net).reason,
                         "vote-bad-signature")
        far = sign_tx_votes(h.mn_key, "devnet", 50, decisions)
        self.assertEqual(found.receive_batch(far).reason,
                         "vote-height-out-of-window")
        checks = found.counters["vote_signature_checks"]
        result = found.receive_batch(good)
        self.assertIsNone(result.reason)
        self.assertEqual(result.tallied, 1)
        self.assertEqual([v.txid for v in result.orphans], [txs[1].txid])
        self.assertEqual(found.counters["vote_signature_checks"], checks + 1)
        self.assertEqual(h.mempool.state_of(txs[0].txid), FINALIZED)
        result_of(found.submit(txs[1]))
        self.assertIsNone(found.receive_vote(result.orphans[0]))
        self.assertEqual(found.counters["vote_signature_checks"], checks + 1)
        self.assertEqual(h.mempool.state_of(txs[1].txid), FINALIZED)
        again = found.receive_batch(good)
        self.assertEqual(again.tallied, 0)

    def test_non_masternode_batch_scored_over_the_network(self) -> None:
        """
        A batch signed by a key outside the snapshot is dropped by the
        node that receives it, which scores the peer that sent it.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        a, _ = conflicting_pair(node_of(cluster, 0))
        result_of(node_of(cluster, 0).submit(a))
        outsider = sign_tx_votes(key(9), "devnet", 0, [(a.txid, APPROVE)])
        service_of(cluster, 0).manager.peers.ready[IPS[1]].send(
            TxVotesMsg(outsider))
        cluster.net.flush()
        receiver = service_of(cluster, 1)
        self.assertEqual(receiver.gossip.counters[
            "vote-refused:vote-not-masternode"], 1)
        self.assertGreater(receiver.scores.score(IPS[0]), 0)


class TimeoutAndRestartTests(unittest.TestCase):
    """
    Without a quorum a payment times out and unlocks; a node restarted
    mid-vote recovers its locks and the vote completes.
    """

    def test_timeout_rejects_and_unlocks_then_retry(self) -> None:
        """
        With 2 of 4 masternodes down a payment times out as rejected
        (vote-timeout) on both live nodes and its coin is unlocked.  When
        the others return, sending the same payment again finalizes it on
        all four (nothing was lost).
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        cluster.stop(2)
        cluster.stop(3)
        sender = node_of(cluster, 0)
        tx, _ = conflicting_pair(sender)
        before = sender.balance()
        result_of(sender.submit(tx))
        cluster.advance(5)
        self.assertEqual(set(states(cluster, tx.txid).values()), {PENDING})
        cluster.advance(6)
        for n in cluster.nodes():
            self.assertEqual(n.mempool.rejected[tx.txid], "vote-timeout")
            self.assertEqual(n.mempool.locks, {})
        self.assertEqual(sender.balance(), before)
        cluster.start(2)
        cluster.start(3)
        cluster.advance(3)
        result_of(sender.submit(tx))
        cluster.advance(3)
        self.assertEqual(set(states(cluster, tx.txid).values()), {FINALIZED})

    def test_restart_mid_vote(self) -> None:
        """
        Masternode 0 crashes while its payment waits for a quorum (2 and 3
        down) and restarts: it recovers the payment as pending with its
        lock from storage, votes reject on a conflicting spender, and once
        2 and 3 return it announces the payment again and asks for its
        votes, and the payment is finalized everywhere.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        cluster.stop(2)
        cluster.stop(3)
        a, b = conflicting_pair(node_of(cluster, 0))
        result_of(node_of(cluster, 0).submit(a))
        cluster.advance(1)
        cluster.stop(0)
        cluster.start(0)
        restarted = node_of(cluster, 0)
        self.assertEqual(restarted.mempool.state_of(a.txid), PENDING)
        self.assertEqual(set(restarted.mempool.locks.values()), {a.txid})
        result_of(restarted.submit(b))
        self.assertIn(b.txid, restarted.mempool.contenders)
        cluster.start(2)
        cluster.start(3)
        cluster.advance(5)
        self.assertEqual(set(states(cluster, a.txid).values()), {FINALIZED})
        # B reached only the restarted node (its peers were not back yet).
        self.assertEqual(restarted.mempool.state_of(b.txid), REJECTED)
        self.assertNotIn(FINALIZED, states(cluster, b.txid).values())
        self.assertGreater(
            service_of(cluster, 0).gossip.counters["votes-queried"], 0)

    def test_recover_from_storage(self) -> None:
        """
        On one node: a payment pending when the node stops comes back
        pending with its lock, and the restarted masternode casts the vote
        it had not cast (here the whole quorum, so it is finalized); the
        certificate of a payment mined before the stop survives and its
        votes verify.
        """
        h = Harness(funds=[10 * params.COIN] * 3)
        settings = FinalitySettings(batch_delay=0)
        first = engine(h, masternode=True, timeout=3, settings=settings)
        mined = h.pay([h.funding(0)], [(addr(key(2)), 9 * params.COIN)])
        result_of(first.submit(mined))
        h.next_block()
        # Stored as pending, and the node stops before its vote.
        pending = h.pay([h.funding(1)], [(addr(key(2)), 9 * params.COIN)])
        first.key = None
        result_of(first.submit(pending))
        self.assertEqual(h.mempool.state_of(pending.txid), PENDING)
        again = Harness(funds=[10 * params.COIN] * 3, store=h.store)
        engine2 = engine(again, settings=settings)
        result_of(engine2.recover())
        self.assertEqual(again.mempool.state_of(pending.txid), PENDING)
        self.assertEqual(set(again.mempool.locks.values()), {pending.txid})
        third = Harness(funds=[10 * params.COIN] * 3, store=h.store)
        engine3 = engine(third, masternode=True, settings=settings)
        result_of(engine3.recover())
        self.assertEqual(third.mempool.state_of(pending.txid), FINALIZED)
        cert = result_of(engine3.certificate(mined.txid))
        self.assertEqual([v.voter for v in cert["certificate"]],
                         [third.mn_key.public])
        self.assertTrue(all(tx_vote_ok(v, "devnet")
                            for v in cert["certificate"]))

    def test_gettransaction_serves_certificate_after_mining(self) -> None:
        """
        Once a payment is mined on four masternodes, gettransaction on each
        still lists its votes, the weights and a certificate of at least
        three approving votes that verify on their own.
        """
        from timecoin.rpc.transactions import TransactionMethods
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        tx, _ = conflicting_pair(node_of(cluster, 0))
        result_of(node_of(cluster, 0).submit(tx))
        cluster.advance(5)
        for n in cluster.nodes():
            info = result_of(TransactionMethods(n).rpc_gettransaction(tx.txid.hex()))
            self.assertIn("blockheight", info)
            self.assertGreaterEqual(len(info["votes"]), 3)
            self.assertEqual(info["weights"]["total"], 4)
            self.assertGreaterEqual(info["weights"]["approve"], 3)
            votes = [TxVote.from_obj(v) for v in info["certificate"]]
            self.assertGreaterEqual(len(votes), 3)
            self.assertTrue(all(tx_vote_ok(v, "devnet") for v in votes))


def minority(synced: Callable[[], bool] = lambda: True,
             store: MemoryStore | None = None,
             others: tuple[int, ...] = (5, 6)) -> tuple[
        Harness, Finality, Transaction, Transaction, Any]:
    """
    The harness masternode (on C{store}, if given), a minority in a
    snapshot with the keys of C{others}, with a vote timeout of 3 s; A
    and B spend its coin, neither submitted.  Returns the harness, its
    engine, A, B and the snapshot.
    """
    h = Harness(funds=[10 * params.COIN], store=store)
    bigger = widen_snapshot(h.chain, others)
    found = engine(h, masternode=True, timeout=3,
                   settings=FinalitySettings(batch_delay=0))
    found.synced = synced
    a = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
    b = h.pay([h.funding()], [(addr(key(3)), 9 * params.COIN)])
    return h, found, a, b, bigger


def approved_then_timed_out(test: unittest.TestCase) -> tuple[
        Harness, Finality, Transaction, Transaction, Any]:
    """
    The harness masternode, a minority in a three-member snapshot,
    approves A, which times out; B spends A's coin, not yet submitted.
    Returns the harness, its engine, A, B and the snapshot.
    """
    h, found, a, b, bigger = minority()
    result_of(found.submit(a))
    h.clock.advance(3.1)
    test.assertEqual(h.mempool.rejected[a.txid], "vote-timeout")
    return h, found, a, b, bigger


class ReleasedApprovalTests(unittest.TestCase):
    """
    A masternode never approves two spenders of one coin while the first
    approval can still count.
    """

    def test_released_inputs_get_reject(self) -> None:
        """
        The harness masternode approves A, which then times out (its
        weight is made a minority by a three-member snapshot).  A
        different spender of the coin gets its reject vote until A's vote
        leaves the height window; the same A again gets approve.  The
        memory survives a restart.
        """
        h, found, a, b, bigger = approved_then_timed_out(self)
        self.assertEqual(h.mempool.locks, {})
        result_of(found.submit(b))
        mine = h.mempool.entries[b.txid].votes[h.mn_key.public]
        self.assertEqual(mine.decision, REJECT)
        record = decode_record(result_of(h.store.get_tx_record(a.txid)))
        self.assertEqual(record["state"], "released")
        again = Harness(funds=[10 * params.COIN], store=h.store)
        again.chain.snapshot_for = lambda height: bigger  # type: ignore
        engine2 = engine(again, masternode=True,
                         settings=FinalitySettings(batch_delay=0))
        result_of(engine2.recover())
        self.assertIn(OutPoint(a.inputs[0].prevout.txid, 0),
                      engine2.released.by_input)


class RejectionKeepsInputsTests(unittest.TestCase):
    """
    A rejection never precedes, by less than two vote windows, the end of
    the memory that caused it.
    """

    def test_rejection_extends_the_kept_inputs_durably(self) -> None:
        """
        The harness masternode approved A three blocks ago and saw it
        rejected; B spends A's coin.  Its reject vote on B leaves only once
        A's kept inputs are stored again with B's height, so they last two
        windows after this rejection (with the approval's height they
        ended a few blocks after it, B then got approve, and other nodes
        held both votes: lifecycle seed 657).  A lower height changes
        nothing.
        """
        h, found, a, b, _ = approved_then_timed_out(self)
        found.released._released[a.txid].height = h.chain.height - 3
        held: list[tuple[defer.Deferred[None], bytes, bytes]] = []

        def put(txid: bytes, raw: bytes) -> defer.Deferred[None]:
            d: defer.Deferred[None] = defer.Deferred()
            held.append((d, txid, raw))
            return d

        self.patch(h.store, "put_tx_record", put)
        result_of(found.submit(b))
        pending = held.pop(0)
        self.assertEqual(pending[1], b.txid)
        pending[0].callback(None)
        # The rejection waits for A's record, written with B's height.
        self.assertNotIn(h.mn_key.public, h.mempool.entries[b.txid].votes)
        record, a_txid, raw = held.pop(0)
        self.assertEqual(a_txid, a.txid)
        self.assertEqual(decode_record(raw)["height"], h.chain.height)
        record.callback(None)
        mine = h.mempool.entries[b.txid].votes[h.mn_key.public]
        self.assertEqual(mine.decision, REJECT)
        self.assertIsNone(found.released.extend([a.txid], h.chain.height))


class UnvotedLockKeepsInputsTests(unittest.TestCase):
    """
    A masternode that rejected a contender of a transaction it held
    locked, without having voted on that transaction, does not approve
    the contender later while its rejection can count.
    """

    def test_rejected_contender_never_approved_after_restart(self) -> None:
        """
        The harness masternode locks A while behind (no vote), then,
        caught up, rejects B, A's contender.  Both time out.  Restarted on
        its store (which forgets its vote on B), it is sent B again: B is
        no contender any more, and without A's kept inputs it got approve,
        and other nodes held both votes (fifty masternodes, seed 53).  It
        gets reject; A itself would get approve.
        """
        caught_up = [False]
        h, found, a, b, bigger = minority(lambda: caught_up[0])
        result_of(found.submit(a))
        self.assertNotIn(h.mn_key.public, h.mempool.entries[a.txid].votes)
        caught_up[0] = True
        result_of(found.submit(b))
        mine = found.subjects.get(b.txid).votes[h.mn_key.public]
        self.assertEqual(mine.decision, REJECT)
        h.clock.advance(3.1)
        self.assertEqual(h.mempool.rejected[a.txid], "vote-timeout")
        record = decode_record(result_of(h.store.get_tx_record(a.txid)))
        self.assertEqual(record["state"], "released")
        again, engine2, _, _, _ = minority(store=h.store)
        result_of(engine2.recover())
        result_of(engine2.submit(b))
        mine = engine2.subjects.get(b.txid).votes[again.mn_key.public]
        self.assertEqual(mine.decision, REJECT)
        self.assertEqual(engine2.released.by_input[a.inputs[0].prevout],
                         a.txid)

    def test_rejected_contender_never_approved_once_forgotten(self) -> None:
        """
        Without a restart: once B's late entry (and with it this node's
        vote on B) is forgotten, B sent again still gets reject.
        """
        caught_up = [False]
        h, found, a, b, _ = minority(lambda: caught_up[0])
        result_of(found.submit(a))
        caught_up[0] = True
        result_of(found.submit(b))
        h.clock.advance(3.1)
        h.clock.advance(found.settings.late_ttl + 1)
        found.subjects.expire()
        self.assertNotIn(b.txid, found.subjects.late)
        result_of(found.submit(b))
        mine = found.subjects.get(b.txid).votes[h.mn_key.public]
        self.assertEqual(mine.decision, REJECT)

    def test_own_rejection_keeps_no_inputs(self) -> None:
        """
        A transaction this node itself rejected (its inputs kept for
        another it approved) keeps nothing of its own when rejected: the
        other's memory is not cut short.
        """
        h, found, a, b, _ = approved_then_timed_out(self)
        result_of(found.submit(b))
        h.clock.advance(3.1)
        self.assertEqual(h.mempool.rejected[b.txid], "vote-timeout")
        self.assertEqual(found.released.by_input[a.inputs[0].prevout],
                         a.txid)
        self.assertIsNone(result_of(h.store.get_tx_record(b.txid)))

    def test_contender_rejected_once_the_lock_is_stored(self) -> None:
        """
        The reject vote on a contender leaves only once the pending record
        of the transaction holding its inputs is stored: a node killed
        before that would restart without the lock, and approve the
        contender it rejected.
        """
        h, found, a, b, _ = minority()
        held: list[tuple[defer.Deferred[None], bytes]] = []

        def put(txid: bytes, raw: bytes) -> defer.Deferred[None]:
            d: defer.Deferred[None] = defer.Deferred()
            held.append((d, txid))
            return d

        self.patch(h.store, "put_tx_record", put)
        result_of(found.submit(a))
        result_of(found.submit(b))
        self.assertEqual(found.subjects.get(b.txid).votes, {})
        self.assertEqual(found.counters["contender_votes_waiting"], 1)
        d, txid = held.pop(0)
        self.assertEqual(txid, a.txid)
        d.callback(None)
        self.assertEqual(
            h.mempool.entries[a.txid].votes[h.mn_key.public].decision,
            APPROVE)
        self.assertEqual(
            found.subjects.get(b.txid).votes[h.mn_key.public].decision,
            REJECT)


class LateApprovalAsksAgainTests(unittest.TestCase):
    """
    A rejected transaction whose queries ran out is asked about again when
    a new approval of it comes.
    """

    def test_new_approval_rearms_the_queries(self) -> None:
        """
        The harness masternode approves A, which times out; its peers are
        asked for A's votes C{max_queries} times, then no more.  Another
        masternode's approval of A comes (it did not complete the quorum
        here, but may have where a vote withheld from this node was
        held; two approvals of four are no quorum): A is asked about
        again, C{query_after} seconds later, and as many times.  The same
        approval again changes nothing.
        """
        h, found, a, _, _ = minority(others=(5, 6, 9))
        result_of(found.submit(a))
        h.clock.advance(3.1)
        self.assertEqual(h.mempool.rejected[a.txid], "vote-timeout")
        settings = found.settings

        def asked() -> int:
            count = 0
            for _ in range(2 * settings.max_queries):
                count += sum(1 for txid, _ in found.late_due(10)
                             if txid == a.txid)
                h.clock.advance(settings.query_after)
            return count

        self.assertEqual(asked(), settings.max_queries)
        vote = sign_tx_votes(key(5), "devnet", h.chain.height,
                             [(a.txid, APPROVE)]).votes()[0]
        self.assertIsNone(found.receive_vote(vote))
        self.assertEqual(found.late_due(10), [])
        self.assertEqual(asked(), settings.max_queries)
        found.receive_vote(vote)
        self.assertEqual(asked(), 0)


class ReleasedWindowTests(unittest.TestCase):
    """
    How long a released approval is remembered.
    """

    def test_kept_for_two_vote_windows(self) -> None:
        """
        The inputs of an approval stamped at height 5 are kept (and get
        reject for other spenders) through height 5 + 2 x the vote window
        and forgotten, record deleted, after it -- also when recovered
        after a restart: one window let an honest masternode's approval
        and its later rejection of a replayed payment meet in one tally
        (lifecycle seed 10).
        """
        store = MemoryStore()
        writer = RecordWriter(store, Counter())
        released = ReleasedApprovals(writer, 100)
        h = Harness(funds=[10 * params.COIN])
        tx = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        released.release(tx.txid, 5, tx)
        self.assertEqual(RELEASED_BLOCKS, 2 * VOTE_HEIGHT_WINDOW)
        released.expire(5 + RELEASED_BLOCKS)
        self.assertIn(tx.inputs[0].prevout, released.by_input)
        again = ReleasedApprovals(RecordWriter(store, Counter()), 100)
        by_state = group_records(result_of(store.load_tx_records()))
        result_of(again.recover(by_state[RELEASED], 5 + RELEASED_BLOCKS))
        self.assertIn(tx.inputs[0].prevout, again.by_input)
        released.expire(5 + RELEASED_BLOCKS + 1)
        self.assertNotIn(tx.inputs[0].prevout, released.by_input)
        self.assertIsNone(result_of(store.get_tx_record(tx.txid)))


class BoundedStateTests(unittest.TestCase):
    """
    Vote and lock state returns to empty once every transaction is decided
    and mined, and stays bounded.
    """

    def test_many_transactions_leave_no_state(self) -> None:
        """
        Sixty payments on four masternodes (twenty honest, twenty pairs of
        conflicting spenders sent to two masternodes at once, one timed
        out while two masternodes are down), then blocks and the late-vote
        time: every node's vote and lock state is back to zero, no orphan
        votes are left, and the store holds only certificates of mined
        transactions.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        sender = node_of(cluster, 0)
        coins = 40
        fan = fan_out(sender, coins)
        result_of(sender.submit(fan))
        cluster.advance(0.5)
        self.assertEqual(set(states(cluster, fan.txid).values()), {FINALIZED})
        for i in range(coins):
            op = OutPoint(fan.txid, i)
            coin = [(op, sender.mempool.outputs.get(op)
                     or sender.chain.utxos[op])]
            a, b = conflicting_pair(sender, coin)
            result_of(sender.submit(a))
            if i % 2:
                result_of(node_of(cluster, 1 + i % 3).submit(b))
            cluster.advance(0.3)
            for tx in (a, b) if i % 2 else (a,):
                found = set(states(cluster, tx.txid).values())
                self.assertEqual(len(found), 1, found)
                self.assertNotIn(PENDING, found)
        cluster.stop(3)
        cluster.stop(2)
        lost = sender.wallet.build_payment(sender.spendable(),
                                           addr(key(9)), params.COIN,
                                           "devnet")
        result_of(sender.submit(lost))
        cluster.advance(11)
        self.assertEqual(sender.mempool.rejected[lost.txid], "vote-timeout")
        cluster.start(2)
        cluster.start(3)
        cluster.advance(70)
        for n in cluster.nodes():
            with self.subTest(n.config.p2p.bind):
                self.assertEqual(set(n.finality.vote_state().values()), {0},
                                 n.finality.vote_state())
                # What is left are certificates: finalized records of
                # mined transactions (or archived ones).
                records = result_of(n.store.load_tx_records())
                for txid, raw in records:
                    self.assertIn(decode_record(raw)["state"],
                                  {"finalized", "archived"})
                    self.assertIsNotNone(
                        result_of(n.store.get_tx_location(txid)))
        for s in cluster.services.values():
            self.assertEqual(s.gossip.orphans.votes, {})
        self.assertGreaterEqual(sender.finality.counters["finalized"], 21)
        cluster.assert_agree()

    def test_certificates_pruned(self) -> None:
        """
        Archived certificates are kept for C{certificate_blocks} blocks and
        then deleted from memory and the store.
        """
        h = Harness(funds=[10 * params.COIN] * 3)
        found = engine(h, masternode=True,
                       settings=FinalitySettings(batch_delay=0,
                                                 certificate_blocks=2))
        tx = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        result_of(found.submit(tx))
        h.next_block()
        self.assertEqual(len(result_of(found.votes_for(tx.txid))), 1)
        for _ in range(3):
            h.next_block()
        self.assertEqual(result_of(found.votes_for(tx.txid)), [])
        self.assertEqual(result_of(h.store.load_tx_records()), [])

    def test_contenders_bounded(self) -> None:
        """
        Contenders beyond their count limit are refused with
        too-many-conflicts; the pool's own count is not used by them.
        """
        h = Harness(funds=[10 * params.COIN])
        h.mempool.limits = MempoolSettings(max_contenders=2)
        found = engine(h)
        spenders = [h.pay([h.funding()], [(addr(key(2)), v)])
                    for v in (9 * params.COIN, 8 * params.COIN,
                              7 * params.COIN, 6 * params.COIN)]
        for tx in spenders[:3]:
            result_of(found.submit(tx))
        failure = self.failureResultOf(found.submit(spenders[3]), TxInvalid)
        self.assertEqual(failure.value.reason, "too-many-conflicts")
        self.assertEqual((len(h.mempool), len(h.mempool.contenders)), (1, 2))


class BlockConflictTests(unittest.TestCase):
    """
    A block that double-spends a finalized transaction is invalid.
    """

    def test_block_conflicting_with_finalized_refused(self) -> None:
        """
        With A finalized here, a block (properly produced and signed)
        carrying B, which spends A's coin, fails validation with
        conflicts-finalized and is not connected; the honest block with A
        connects.
        """
        h = Harness()
        found = engine(h, masternode=True)
        a = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        b = h.pay([h.funding()], [(addr(key(3)), 999 * params.COIN)])
        result_of(found.submit(a))
        self.assertEqual(h.mempool.state_of(a.txid), FINALIZED)
        rogue_pool = Mempool(h.chain, MempoolSettings(), h.clock.seconds)
        rogue_pool.add(b, params.min_fee(999 * params.COIN))
        rogue_pool.finalize(b.txid)
        h.clock.advance(2)
        block = BlockBuilder(h.chain, rogue_pool, h.mn_key,
                             h.clock).build_block()
        self.assertEqual([t.txid for t in block.txs[1:]], [b.txid])
        e = self.assertRaises(BlockInvalid, h.chain.validate_block, block)
        self.assertEqual(e.reason, "conflicts-finalized")
        self.assertEqual(h.chain.height, 0)
        honest = h.next_block()
        self.assertEqual([t.txid for t in honest.txs[1:]], [a.txid])


class MempoolLimitTests(unittest.TestCase):
    """
    The seeds' limits, each at and one past its bound.
    """

    def refused(self, found: Finality, tx: Transaction, reason: str) -> None:
        failure = self.failureResultOf(found.submit(tx), TxInvalid)
        self.assertEqual(failure.value.reason, reason)

    def fill(self, h: Harness, count: int) -> None:
        """
        Put C{count} placeholder entries in the pool (not validated).
        """
        for i in range(count):
            fake = Transaction((TxIn(OutPoint(i.to_bytes(32, "big"), 0),
                                     b"\x01" * 32, b"\x02" * 64),),
                               (TxOut(1_000, addr(key(2))),))
            h.mempool.add(fake, 1_000)

    def test_count_limit_10000(self) -> None:
        """
        With the default limits the 10,000th transaction is admitted and
        the 10,001st refused with mempool-full.
        """
        h = Harness(funds=[10 * params.COIN] * 2)
        self.assertEqual(h.mempool.limits.max_count, 10_000)
        found = engine(h)
        self.fill(h, 9_999)
        txs = [h.pay([h.funding(i)], [(addr(key(2)), 9 * params.COIN)])
               for i in range(2)]
        result_of(found.submit(txs[0]))
        self.assertEqual(len(h.mempool), 10_000)
        self.refused(found, txs[1], "mempool-full")

    def test_byte_limit_300mb(self) -> None:
        """
        The default byte limit is 300,000,000: a transaction that brings
        the tracked bytes exactly to it is admitted, one byte more is not.
        """
        h = Harness(funds=[10 * params.COIN] * 2)
        self.assertEqual(h.mempool.limits.max_bytes, 300_000_000)
        found = engine(h)
        txs = [h.pay([h.funding(i)], [(addr(key(2)), 9 * params.COIN)])
               for i in range(2)]
        h.mempool.total_bytes = 300_000_000 - txs[0].size
        result_of(found.submit(txs[0]))
        self.assertEqual(h.mempool.total_bytes, 300_000_000)
        h.mempool.total_bytes -= txs[1].size - 1
        self.refused(found, txs[1], "mempool-full")

    def test_tx_size_1000000(self) -> None:
        """
        A transaction of exactly 1,000,000 bytes is admitted; one of
        1,000,001 bytes is refused with tx-too-large.
        """
        h = Harness(funds=[10 * params.COIN] * 2_000)
        found = engine(h)
        built = {target: self.exact(h, target)
                 for target in (1_000_001, 1_000_000)}
        self.assertEqual({t: tx.size for t, tx in built.items()},
                         {1_000_000: 1_000_000, 1_000_001: 1_000_001})
        self.refused(found, built[1_000_001], "tx-too-large")
        result_of(found.submit(built[1_000_000]))
        self.assertEqual(h.mempool.state_of(built[1_000_000].txid), PENDING)

    def exact(self, h: Harness, target: int) -> Transaction:
        """
        A signed transaction of exactly C{target} bytes paying the payer
        back (change only: the fee is 1,000): 9,000 outputs of six-digit
        values and as many inputs as fit, then one more digit on as many
        outputs as bytes are missing.  Sized with placeholder signatures
        (signatures have a fixed size), signed once.
        """
        outputs = 9_000
        pay_to = addr(h.payer)

        def build(inputs: int, widened: int,
                  signature: bytes) -> Transaction:
            values = [1_000_000] * widened + \
                [100_000] * (outputs - 1 - widened)
            first = inputs * 10 * params.COIN - 1_000 - sum(values)
            return Transaction(
                tuple(TxIn(h.funding(i), h.payer.public, signature)
                      for i in range(inputs)),
                tuple(TxOut(v, pay_to) for v in [first, *values]))

        placeholder = b"\x00" * 64
        one = build(1, 0, placeholder).size
        per_input = build(2, 0, placeholder).size - one
        inputs = 1 + (target - one) // per_input
        while build(inputs, 0, placeholder).size > target:
            inputs -= 1
        widened = target - build(inputs, 0, placeholder).size
        while build(inputs, widened, placeholder).size != target:
            widened += 1 if build(inputs, widened,
                                  placeholder).size < target else -1
        tx = sign_inputs(build(inputs, widened, b""), "devnet",
                         [h.payer] * inputs)
        assert tx.size == target
        return tx

    def test_fee_and_dust_bounds(self) -> None:
        """
        A fee of exactly 1,000 + 0.1 % of the amount sent is admitted, one
        unit less is fee-too-low; an output of 546 units is admitted, 545
        is dust-output.
        """
        h = Harness(funds=[10 * params.COIN] * 4)
        found = engine(h)
        total = 10 * params.COIN
        sent = 3 * params.COIN
        fee = params.min_fee(sent)
        self.assertEqual(fee, 1_000 + sent // 1_000)
        exact = h.pay([h.funding(0)], [(addr(key(2)), sent),
                                       (addr(h.payer), total - sent - fee)])
        short = h.pay([h.funding(1)], [(addr(key(2)), sent),
                                       (addr(h.payer), total - sent - fee + 1)])
        result_of(found.submit(exact))
        self.refused(found, short, "fee-too-low")
        dust_ok = h.pay([h.funding(2)], [(addr(key(2)), 546),
                                         (addr(h.payer), total - 546
                                          - params.min_fee(546))])
        dust = h.pay([h.funding(3)], [(addr(key(2)), 545),
                                      (addr(h.payer), total - 545
                                       - params.min_fee(545))])
        result_of(found.submit(dust_ok))
        self.refused(found, dust, "dust-output")

    def test_no_eviction_of_finalized(self) -> None:
        """
        A pool full of finalized transactions refuses newcomers and keeps
        every finalized one; they leave only with a block.
        """
        h = Harness(funds=[10 * params.COIN] * 3)
        h.mempool.limits = MempoolSettings(max_count=2)
        found = engine(h, masternode=True,
                       settings=FinalitySettings(batch_delay=0))
        txs = [h.pay([h.funding(i)], [(addr(key(2)), 9 * params.COIN)])
               for i in range(3)]
        for tx in txs[:2]:
            result_of(found.submit(tx))
        self.refused(found, txs[2], "mempool-full")
        self.assertEqual({h.mempool.state_of(t.txid) for t in txs[:2]},
                         {FINALIZED})
        h.next_block()
        self.assertEqual(len(h.mempool), 0)
        result_of(found.submit(txs[2]))


class RateLimitTests(unittest.TestCase):
    """
    Per-peer limits on transactions and votes bite.
    """

    def test_tx_and_vote_limits(self) -> None:
        """
        Past the burst of its type, a peer's tx, tx_vote and tx_votes
        messages are dropped (rate-limited) before any handling.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        # Refused or kept as orphans, so they start no traffic of their own.
        a = sign_inputs(Transaction(
            (TxIn(OutPoint(b"\x09" * 32, 0), key(0).public),),
            (TxOut(params.COIN, addr(key(7))),)), "devnet", [key(0)])
        vote = sign_tx_vote(key(0), "devnet", a.txid, APPROVE, 0)
        batch = sign_tx_votes(key(0), "devnet", 0, [(a.txid, APPROVE)])
        sender = service_of(cluster, 0).manager.peers.ready[IPS[1]]
        receiver = service_of(cluster, 1)
        for name, msg in [("tx", TxMsg(a)), ("tx_vote", TxVoteMsg(vote)),
                          ("tx_votes", TxVotesMsg(batch))]:
            _, burst = DEFAULT_RATE_LIMITS[name]
            before = receiver.manager.peers.counters["rate-limited"]
            for _ in range(int(burst) + 3):
                sender.send(msg)
            cluster.net.flush()
            with self.subTest(name):
                self.assertEqual(
                    receiver.manager.peers.counters["rate-limited"] - before, 3)
                conn = receiver.manager.peers.ready.get(IPS[0])
                if conn is not None:
                    self.assertEqual(conn.received[name], int(burst))


class SignatureWorkTests(unittest.TestCase):
    """
    Batching keeps signature work near one verification per input per
    node.
    """

    def count_verifications(self) -> dict[str, int]:
        """
        Count Ed25519 verifications of transaction inputs and of votes.
        """
        counts = {"inputs": 0, "votes": 0}

        def counting(kind: str, real: Any) -> Any:
            def wrapped(*args: Any) -> bool:
                counts[kind] += 1
                return bool(real(*args))
            return wrapped

        self.patch(tx_module, "verify", counting("inputs", tx_module.verify))
        self.patch(finality_module, "verify",
                   counting("votes", finality_module.verify))
        return counts

    def run_payments(self, batch_delay: float, n: int) -> dict[str, float]:
        """
        Finalize C{n} one-input payments submitted at once on a 4-node
        network; return verifications per finalized transaction per node.
        """
        cluster = MasternodeCluster(self)
        if batch_delay != FinalitySettings().batch_delay:
            for i in range(4):
                cluster.start(i)
                node = node_of(cluster, i)
                node.finality.settings = replace(node.finality.settings,
                                                 batch_delay=batch_delay)
            cluster.net.advance(3, step=0.1)
        else:
            cluster.start_all()
        cluster.advance(1)
        sender = node_of(cluster, 0)
        fan = fan_out(sender, n)
        result_of(sender.submit(fan))
        cluster.advance(1)
        self.assertEqual(set(states(cluster, fan.txid).values()), {FINALIZED})
        payments = [sign_inputs(Transaction(
            (TxIn(OutPoint(fan.txid, i), key(0).public),),
            (TxOut(5 * params.COIN - 2_000, addr(key(0))),)), "devnet",
            [key(0)]) for i in range(n)]
        counts = self.count_verifications()
        for tx in payments:
            result_of(sender.submit(tx))
        cluster.advance(2)
        finalized = sum(decided(n, t.txid) == FINALIZED
                        for n in cluster.nodes() for t in payments)
        self.assertEqual(finalized, 4 * n)
        cluster.stop_all()
        return {k: v / finalized for k, v in counts.items()}

    def test_verifications_per_finalized_tx(self) -> None:
        """
        With batching, each node verifies each payment's input once and
        well under one vote signature per payment (one signature per other
        masternode's batch covers all of them); signing every vote alone
        costs two vote verifications per payment per node (the node's own
        vote and two others make the quorum of three; the fourth arrives
        for a decided transaction and is dropped unverified).
        """
        n = 100
        batched = self.run_payments(FinalitySettings().batch_delay, n)
        single = self.run_payments(0.0, n)
        self.assertEqual(batched["inputs"], 1.0)
        self.assertLess(batched["votes"], 0.1)
        self.assertEqual(single["inputs"], 1.0)
        self.assertGreaterEqual(single["votes"], 2.0)
        print(f"\nsignature verifications per finalized tx per node "
              f"({n} one-input payments, 4 masternodes): batched "
              f"{batched['inputs'] + batched['votes']:.3f} "
              f"(inputs {batched['inputs']:.3f}, votes "
              f"{batched['votes']:.3f}); unbatched "
              f"{single['inputs'] + single['votes']:.3f} "
              f"(votes {single['votes']:.3f})")


DEVNET_NAME = DEVNET.name
