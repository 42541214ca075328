"""
Orphan votes (votes that come before their transaction) on one P2P
connection: they count once the transaction comes, a contender too, and
one dropped uncounted does not make later copies duplicates.

The fifty-masternode simulator found both (seed 53): equivocating
masternodes' approvals of a payment came to a node before the payment,
which came as a contender (the node had locked its double spend); the
replay skipped contenders and dropped the votes, and every copy a peer
sent later, answering the node's queries, was dropped as a duplicate.
The payment was final on 24 honest nodes and rejected for good on 14.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import addr, key, result_of, widen_snapshot
from tests.helpers.p2p import ProtocolTestBase
from timecoin import params
from timecoin.finality import APPROVE, TxVote, sign_tx_vote
from timecoin.p2p.messages import TxMsg, TxVoteMsg
from timecoin.tx import Transaction


class OrphanVoteTests(ProtocolTestBase):
    """
    The node (test key 1) is one masternode of four (keys 1, 5, 6, 9):
    its own vote finalizes nothing.  A and B spend its coin; A is
    submitted here, so B is a contender.
    """

    def setUp(self) -> None:
        super().setUp()
        widen_snapshot(self.node.chain, (5, 6, 9))
        node = self.node
        coins = node.spendable()
        self.a = node.wallet.build_payment(coins, addr(key(7)), params.COIN,
                                           "devnet")
        self.b = node.wallet.build_payment(coins, addr(key(8)),
                                           2 * params.COIN, "devnet")
        self.wire = self.ready()
        result_of(node.finality.submit(self.a))
        self.assertEqual(node.mempool.state_of(self.a.txid), "pending")

    def approval(self, tx: Transaction) -> TxVote:
        """
        Masternode 5's approval of C{tx}.
        """
        return sign_tx_vote(key(5), "devnet", tx.txid, APPROVE,
                            self.node.chain.height)

    def held(self, tx: Transaction) -> dict[bytes, Any]:
        """
        The votes the node holds on C{tx}, by voter.
        """
        votes = result_of(self.node.finality.votes_for(tx.txid))
        return {v.voter: v.decision for v in votes}

    def admit(self, tx: Transaction) -> None:
        """
        The peer sends C{tx}; it is admitted.
        """
        self.wire.feed(TxMsg(tx))
        self.clock.advance(0)
        self.assertIsNotNone(self.node.mempool.state_of(tx.txid))

    def test_orphan_counts_on_a_contender(self) -> None:
        """
        An approval of B that came before B counts once B comes as a
        contender.
        """
        gossip = self.gossip
        self.wire.feed(TxVoteMsg(self.approval(self.b)))
        self.assertEqual(gossip.counters["orphan-kept"], 1)
        self.admit(self.b)
        self.assertIn(self.b.txid, self.node.mempool.contenders)
        self.assertEqual(gossip.counters["orphan-tallied"], 1)
        self.assertEqual(self.held(self.b).get(key(5).public), APPROVE)

    def test_expired_orphan_is_not_a_duplicate(self) -> None:
        """
        An orphan that expired before its transaction came is not kept as
        seen: the same line sent again after the transaction (as a peer
        answers a query) counts.
        """
        gossip = self.gossip
        vote = self.approval(self.b)
        self.wire.feed(TxVoteMsg(vote))
        self.clock.advance(self.settings.orphan_ttl + 1)
        gossip.expire_orphans()
        self.assertEqual(gossip.orphans.votes, {})
        self.assertEqual(gossip.counters["orphan-expired"], 1)
        self.admit(self.b)
        self.assertNotIn(key(5).public, self.held(self.b))
        self.wire.feed(TxVoteMsg(vote))
        self.assertEqual(gossip.counters["vote-duplicate"], 0)
        self.assertEqual(self.held(self.b).get(key(5).public), APPROVE)

    def test_counted_vote_stays_seen(self) -> None:
        """
        A vote that counted stays seen: its copies are duplicates, handled
        once.
        """
        gossip = self.gossip
        vote = self.approval(self.a)
        self.wire.feed(TxVoteMsg(vote))
        self.wire.feed(TxVoteMsg(vote))
        self.assertEqual(gossip.counters["vote-relayed"], 1)
        self.assertEqual(gossip.counters["vote-duplicate"], 1)
