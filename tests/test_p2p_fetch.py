"""
Transactions known only by their votes, asked for (C{get_txs}) of the
peers that sent the votes, and served to peers that ask.

The twelve-masternode simulator found the gap (seed 4, reach liars): a
Byzantine masternode that a client gave a payment sent it to half of its
peers, saying it reached every masternode, so none of them relayed it to
a masternode; the payment was final on six honest nodes, and three others
held only its votes, as orphans, until the run ended.
"""

from __future__ import annotations

from dataclasses import replace

from tests.helpers import addr, key, result_of, widen_snapshot
from tests.helpers.p2p import KeyedPeersTestBase
from timecoin import params
from timecoin.finality import APPROVE, TxVote, sign_tx_vote
from timecoin.p2p.fetch import GetTxs
from timecoin.p2p.messages import TxsMsg, TxVoteMsg
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs


class FetchTests(KeyedPeersTestBase):
    """
    The node (test key 1) is one masternode of four (keys 1, 5, 6, 9);
    C{tx} spends its coin but was never sent to it.
    """

    def setUp(self) -> None:
        super().setUp()
        widen_snapshot(self.node.chain, (5, 6, 9))
        self.tx = self.node.wallet.build_payment(
            self.node.spendable(), addr(key(7)), params.COIN, "devnet")
        self.fetch = self.gossip.fetch

    def approval(self, voter: int, tx: Transaction | None = None) -> TxVote:
        """
        Masternode C{voter}'s approval of C{tx} (default: C{self.tx}).
        """
        return sign_tx_vote(key(voter), "devnet", (tx or self.tx).txid,
                            APPROVE, self.node.chain.height)

    def sweep(self, seconds: float) -> None:
        """
        Let C{seconds} pass, then run the gossip's periodic sweep.
        """
        self.clock.advance(seconds)
        self.gossip.expire_orphans()

    def asked(self, n: int) -> list[tuple[bytes, ...]]:
        """
        The txids peer C{n} was asked for since the last call.
        """
        return [m.txids for m in self.peers[n].sent()
                if isinstance(m, GetTxs)]

    def test_asks_the_sender_and_counts_the_vote(self) -> None:
        """
        A vote on an unknown transaction makes it wanted; C{fetch_after}
        seconds later its sender is asked for it, and the transaction it
        answers with is admitted and the orphan vote counted.
        """
        self.peer(50).feed(TxVoteMsg(self.approval(5)))
        self.assertEqual(self.gossip.counters["orphan-kept"], 1)
        self.sweep(self.settings.fetch_after / 2)
        self.assertEqual(self.asked(50), [])
        self.sweep(self.settings.fetch_after / 2)
        self.assertEqual(self.asked(50), [(self.tx.txid,)])
        self.peers[50].feed(TxsMsg.of([self.tx]))
        self.clock.advance(0)
        self.assertEqual(self.node.mempool.state_of(self.tx.txid),
                         "pending")
        votes = result_of(self.node.finality.votes_for(self.tx.txid))
        self.assertIn((key(5).public, APPROVE),
                      {(v.voter, v.decision) for v in votes})
        self.assertEqual(self.gossip.counters["orphan-tallied"], 1)
        self.assertEqual(self.fetch.wanted, {})

    def test_sources_in_turn_then_gives_up(self) -> None:
        """
        Unanswered, the transaction is asked of the latest sender first,
        then of the one before, in turn, the wait doubling from
        C{fetch_after}, C{fetch_tries} times in all (four here: the test's
        peers answer no ping, so they do not outlive the default six).
        """
        self.fetch.settings = replace(self.settings, fetch_tries=4)
        self.peer(50).feed(TxVoteMsg(self.approval(5)))
        self.peer(51).feed(TxVoteMsg(self.approval(6)))
        asked = []
        for n in range(1, 17):
            self.sweep(self.settings.fetch_after)
            for peer in (50, 51):
                if self.asked(peer):
                    asked.append((n, peer))
        self.assertEqual(asked, [(1, 51), (2, 50), (4, 51), (8, 50)])
        self.assertEqual(self.gossip.counters["tx-fetch-gave-up"], 1)
        self.assertEqual(self.fetch.wanted, {})

    def test_refused_answer_asked_again(self) -> None:
        """
        A transaction refused when it comes (it spends an output of a
        transaction not here) stays wanted, and is asked for again.
        """
        child = sign_inputs(Transaction(
            (TxIn(OutPoint(self.tx.txid, 0), key(7).public),),
            (TxOut(params.COIN // 2, addr(key(8))),)), "devnet", [key(7)])
        self.peer(50).feed(TxVoteMsg(self.approval(5, child)))
        self.sweep(self.settings.fetch_after)
        self.assertEqual(self.asked(50), [(child.txid,)])
        self.peers[50].feed(TxsMsg.of([child]))
        self.clock.advance(0)
        self.assertEqual(self.node.mempool.state_of(child.txid), "rejected")
        self.sweep(2 * self.settings.fetch_after)
        self.assertEqual(self.asked(50), [(child.txid,)])

    def test_signer_asked_before_the_relay(self) -> None:
        """
        A vote relayed by one peer and signed by another (masternode 5):
        the signer is asked first, then the relay.
        """
        self.peer(5)
        self.peer(50).feed(TxVoteMsg(self.approval(5)))
        asked = []
        for _ in range(2):
            self.sweep(self.settings.fetch_after)
            asked.append((len(self.asked(5)), len(self.asked(50))))
        self.assertEqual(asked, [(1, 0), (0, 1)])

    def test_not_asked_when_it_comes(self) -> None:
        """
        A transaction that comes by relay before it is due is not asked
        for.
        """
        self.peer(50).feed(TxVoteMsg(self.approval(5)))
        self.peers[50].feed(TxsMsg.of([self.tx]))
        self.clock.advance(0)
        self.sweep(self.settings.fetch_after)
        self.assertEqual(self.asked(50), [])
        self.assertEqual(self.fetch.wanted, {})

    def test_old_peer_not_asked(self) -> None:
        """
        A peer of protocol 4 does not know C{get_txs}: it is not asked.
        """
        self.peer(52, version=4).feed(TxVoteMsg(self.approval(5)))
        self.sweep(self.settings.fetch_after)
        self.assertEqual(self.asked(52), [])
        self.assertEqual(self.gossip.counters["tx-fetch-asked"], 0)

    def test_serves_what_it_holds(self) -> None:
        """
        Asked for a transaction it holds and one it does not, a node
        answers with a C{txs} line holding the first; asked only for one
        it does not hold, it sends nothing.
        """
        result_of(self.node.finality.submit(self.tx))
        self.clock.advance(self.settings.tx_batch_delay + 1)
        wire = self.peer(50)
        wire.feed(GetTxs((b"\x07" * 32, self.tx.txid)))
        self.assertEqual(wire.sent(), [TxsMsg.of([self.tx])])
        wire.feed(GetTxs((b"\x07" * 32,)))
        self.assertEqual(wire.sent(), [])
        self.assertEqual(self.gossip.counters["tx-fetch-served"], 1)
