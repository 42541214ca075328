"""
Tests of vote aggregation (L{timecoin.p2p.aggregation}): in a dense mesh a
masternode's own vote goes to its aggregator only and to every peer if it
does not come back in a bundle in time; an aggregator gathers the votes it
accepts and sends them in one C{vote_bundle}; a bundle's items are handled
as if they came alone and not relayed on; small meshes and meshes with a
protocol-2 peer are unchanged.  One node's manager with ready peers on
C{StringTransport}s and a fake clock; the engine's verdict is stubbed and
the aggregator of a round is fixed per test (the proposer choice is the
selection policy's, tested with it).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

from tests.helpers import key
from tests.helpers.chain import payment
from tests.helpers.p2p import KeyedPeersTestBase, ProtocolTestBase, Wire
from timecoin.consensus import NIL, PREVOTE, BlockVote, sign_vote
from timecoin.encoding import canonical
from timecoin.finality.tally import BatchResult
from timecoin.finality.votes import APPROVE, REJECT, TxVote, sign_tx_votes
from timecoin.p2p.aggregation import Aggregation, VoteBundleMsg, encoded
from timecoin.p2p.consensus_relay import BlockVoteMsg, ConsensusRelay
from timecoin.p2p.dependencies import Direction
from timecoin.p2p.messages import GetTxVotes, TxVotesMsg
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.settings import P2PSettings


class AggregationTests(KeyedPeersTestBase):
    """
    Our node with a consensus relay wired to gossip's aggregation, and
    ready inbound peers of test keys 50, 51, ... (a dense mesh above
    three peers).
    """

    settings = P2PSettings(port=24200, relay_fanout=3, relay_fanout_direct=1,
                           aggregate_delay=0.05, aggregate_timeout=0.5)

    def setUp(self) -> None:
        super().setUp()
        assert self.manager.consensus is not None
        self.relay = self.manager.consensus
        self.aggregation = self.gossip.aggregation
        self.handled: list[object] = []
        self.patch(self.node.consensus, "receive", self.handled.append)
        self.aggregator = key(51).public
        self.patch(self.aggregation, "aggregator",
                   lambda height, round: self.aggregator)

    def consensus_relay(self, peers: PeerRegistry[PeerProtocol]
                        ) -> ConsensusRelay:
        """
        The relay under test, aggregating through gossip's aggregation.
        """
        return ConsensusRelay(self.node, peers, 1000, self.gossip.aggregation)

    def own_vote(self) -> BlockVote:
        """
        A prevote for nil at height 1 signed by our node.
        """
        return sign_vote(self.node.key, "devnet", PREVOTE, 1, 0, NIL)

    def cast_to_the_aggregator(self) -> tuple[BlockVote, bytes]:
        """
        With peers 50 to 53, cast our own vote: it goes to the aggregator
        (51) only.  Returns the vote and its line.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        vote = self.own_vote()
        line = BlockVoteMsg(vote).encode()
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [51])
        return vote, line

    def test_own_vote_to_the_aggregator_then_everyone(self) -> None:
        """
        Our vote goes to the aggregator only; when it has not come back in
        a bundle after C{aggregate_timeout}, to every other peer.
        """
        vote, line = self.cast_to_the_aggregator()
        self.clock.advance(0.49)
        self.assertEqual(self.got(line), [])
        self.clock.advance(0.02)
        self.assertEqual(self.got(line), [50, 52, 53])
        self.assertEqual(self.aggregation.counters["fallback"], 1)

    def test_echo_in_a_bundle_confirms(self) -> None:
        """
        Our vote back in the aggregator's bundle counts as delivered: no
        fallback.  The next periodic re-broadcast skips it (the bundle
        went to every peer); the one after reaches the peers not known to
        hold it (an aggregator may echo our vote to us alone).
        """
        vote, line = self.cast_to_the_aggregator()
        self.peers[51].feed(VoteBundleMsg((vote,), ()))
        self.clock.advance(1.0)
        self.assertEqual(self.got(line), [])
        self.assertEqual(self.aggregation.counters["confirmed"], 1)
        self.assertEqual(self.aggregation.counters["fallback"], 0)
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [])
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [50, 52, 53])
        self.assertEqual(
            self.aggregation.counters["rebroadcast-skipped:fresh"], 1)

    def test_rebroadcast_waits_for_the_echo(self) -> None:
        """
        A re-broadcast while our vote awaits its aggregator's echo sends
        nothing (the fallback will, if the echo does not come).
        """
        vote, line = self.cast_to_the_aggregator()
        self.clock.advance(0.1)
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [])
        self.assertEqual(
            self.aggregation.counters["rebroadcast-skipped:awaiting"], 1)
        self.clock.advance(0.5)
        self.assertEqual(self.got(line), [50, 52, 53])

    def test_rebroadcast_of_a_peers_vote_skipped_once(self) -> None:
        """
        A peer's vote we accepted (here from a bundle) and re-broadcast as
        a proof is skipped the first time, sent the next.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        self.patch(self.node.consensus, "receive", lambda message: None)
        vote = sign_vote(key(50), "devnet", PREVOTE, 1, 0, NIL)
        line = BlockVoteMsg(vote).encode()
        self.peers[51].feed(VoteBundleMsg((vote,), ()))
        self.got(line)
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [])
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [50, 51, 52, 53])

    def test_small_mesh_rebroadcast_unchanged(self) -> None:
        """
        With at most C{relay_fanout} peers nothing is skipped: our vote
        goes to every peer, and is re-broadcast to them once
        C{resend_known_after} has passed.
        """
        for n in (50, 51):
            self.peer(n)
        vote = self.own_vote()
        line = BlockVoteMsg(vote).encode()
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [50, 51])
        self.clock.advance(self.settings.resend_known_after)
        self.relay.cast(vote)
        self.assertEqual(self.got(line), [50, 51])
        self.assertEqual(sum(v for k, v in self.aggregation.counters.items()
                             if k.startswith("rebroadcast-skipped")), 0)

    def test_aggregator_gathers_a_batch_of_unseen_transactions(self) -> None:
        """
        As the aggregator, a vote batch whose signature holds but whose
        transactions we have not seen yet (its decisions kept as orphans)
        goes in our bundle: left out, its signer would send it to every
        peer after C{aggregate_timeout}.  Not being the aggregator, we
        neither gather nor relay it.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        # Test keys 50... are no masternodes here: the engine's verdict
        # on a batch of votes for unseen transactions stands in.
        self.patch(self.node.finality, "receive_batch",
                   lambda batch: BatchResult(orphans=[cast(
                       TxVote, SimpleNamespace(txid=b"\x07" * 32,
                                               voter=key(50).public))]))
        self.patch(self.gossip.orphans, "keep", lambda vote, item: None)
        self.patch(self.gossip.fetch, "voted", lambda txid, conn, voter: None)
        batch = sign_tx_votes(key(50), "devnet", 0,
                              [(b"\x07" * 32, APPROVE)])
        self.aggregator = self.node.key.public
        self.peers[50].feed(TxVotesMsg(batch))
        self.assertEqual(self.aggregation.counters["gathered"], 1)
        self.clock.advance(0.05)
        self.assertEqual(self.got(VoteBundleMsg((), (batch,))),
                         [50, 51, 52, 53])
        other = sign_tx_votes(key(52), "devnet", 0,
                              [(b"\x08" * 32, APPROVE)])
        self.aggregator = key(51).public
        self.peers[52].feed(TxVotesMsg(other))
        self.clock.advance(1.0)
        self.assertEqual(self.got(TxVotesMsg(other)), [])
        self.assertEqual(self.aggregation.counters["gathered"], 1)

    def test_aggregator_bundles_what_it_accepts(self) -> None:
        """
        As the aggregator, the peers' votes it accepts are not relayed one
        by one: after C{aggregate_delay} they go to every peer in one
        bundle, ours with them.
        """
        self.aggregator = self.node.key.public
        for n in (50, 51, 52, 53):
            self.peer(n)
        votes = [sign_vote(key(n), "devnet", PREVOTE, 1, 0, NIL)
                 for n in (50, 52)]
        self.patch(self.node.consensus, "receive", lambda message: None)
        for n, vote in zip((50, 52), votes):
            self.peers[n].feed(BlockVoteMsg(vote))
        own = self.own_vote()
        self.relay.cast(own)
        for vote in votes + [own]:
            self.assertEqual(self.got(BlockVoteMsg(vote).encode()), [])
        self.clock.advance(0.05)
        bundle = VoteBundleMsg((votes[0], votes[1], own), ()).encode()
        self.assertEqual(self.got(bundle), [50, 51, 52, 53])
        self.assertEqual(self.aggregation.counters["bundles-sent"], 1)

    def test_spliced_bundle_is_canonical(self) -> None:
        """
        A bundle the aggregator splices from its items' encodings is the
        canonical line of the same bundle, votes and batches, with either
        C{forward}.
        """
        votes = tuple(sign_vote(key(n), "devnet", PREVOTE, 1, 0, NIL)
                      for n in (50, 52))
        batches = (sign_tx_votes(key(53), "devnet", 1,
                                 [(b"\x01" * 32, APPROVE),
                                  (b"\x02" * 32, REJECT)]),)
        for forward in (False, True):
            spliced = VoteBundleMsg(
                votes, batches, forward,
                (tuple(encoded(v) for v in votes),
                 tuple(encoded(b) for b in batches)))
            self.assertEqual(spliced.encode(),
                             canonical(spliced.to_obj()))
            self.assertEqual(spliced.encode(),
                             VoteBundleMsg(votes, batches, forward).encode())

    def test_bundled_items_handled_not_relayed(self) -> None:
        """
        Each vote of a bundle reaches the engine as if it came alone, and
        none is relayed on (the aggregator sent it to every peer); a copy
        of the bundle is dropped.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        votes = tuple(sign_vote(key(n), "devnet", PREVOTE, 1, 0, NIL)
                      for n in (50, 52))
        self.patch(self.node.consensus, "receive", lambda message:
                   self.handled.append(message))
        bundle = VoteBundleMsg(votes, ())
        self.peers[51].feed(bundle)
        self.assertEqual(self.handled, list(votes))
        for vote in votes:
            self.assertEqual(self.got(BlockVoteMsg(vote).encode()), [])
        self.peers[53].feed(bundle)
        self.assertEqual(len(self.handled), 2)
        self.assertEqual(self.got(bundle.encode()), [])

    def test_forward_flag_relays_the_bundle(self) -> None:
        """
        A bundle whose aggregator is not connected to every masternode is
        relayed on, whole, as a vote of a neighbour is
        (C{relay_fanout_direct}: one peer here), never back to its sender.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        votes = (sign_vote(key(50), "devnet", PREVOTE, 1, 0, NIL),)
        self.patch(self.node.consensus, "receive", lambda message: None)
        bundle = VoteBundleMsg(votes, (), forward=True)
        self.peers[51].feed(bundle)
        relayed = self.got(bundle.encode())
        self.assertEqual(len(relayed), 1)
        self.assertNotIn(51, relayed)
        self.assertEqual(self.aggregation.counters["bundles-forwarded"], 1)

    def test_vote_passed_to_its_aggregator(self) -> None:
        """
        A vote accepted from a peer (a signer without a link to the
        aggregator sent it to a few peers) goes to the aggregator only.
        """
        for n in (50, 51, 52, 53):
            self.peer(n)
        vote = sign_vote(key(60), "devnet", PREVOTE, 1, 0, NIL)
        self.patch(self.node.consensus, "receive", lambda message: None)
        self.peers[50].feed(BlockVoteMsg(vote))
        self.assertEqual(self.got(BlockVoteMsg(vote).encode()), [51])
        self.assertEqual(
            self.aggregation.counters["passed-to-aggregator"], 1)

    def test_no_link_to_the_aggregator(self) -> None:
        """
        Without a link to the aggregator our vote goes to
        C{relay_fanout_direct} peers (one here), who pass it on; to every
        other peer if it does not come back in time.
        """
        self.aggregator = key(60).public
        for n in (50, 51, 52, 53):
            self.peer(n)
        vote = self.own_vote()
        line = BlockVoteMsg(vote).encode()
        self.relay.cast(vote)
        first = self.got(line)
        self.assertEqual(len(first), 1)
        self.clock.advance(0.5)
        self.assertEqual(sorted(first + self.got(line)), [50, 51, 52, 53])

    def test_small_mesh_unchanged(self) -> None:
        """
        With at most C{relay_fanout} peers our vote goes to every peer at
        once.
        """
        for n in (50, 51, 52):
            self.peer(n)
        vote = self.own_vote()
        self.relay.cast(vote)
        self.assertEqual(self.got(BlockVoteMsg(vote).encode()), [50, 51, 52])
        self.assertFalse(self.aggregation.active())

    def test_protocol_2_peer_turns_it_off(self) -> None:
        """
        A peer on protocol 2 (no C{vote_bundle}) turns aggregation off:
        every vote to every peer, as before.
        """
        for n in (50, 51, 52):
            self.peer(n)
        self.peer(53, version=2)
        vote = self.own_vote()
        self.relay.cast(vote)
        self.assertEqual(self.got(BlockVoteMsg(vote).encode()),
                         [50, 51, 52, 53])


class AggregatorChoiceTests(ProtocolTestBase):
    """
    Who aggregates the votes of a round.
    """

    def test_proposer_of_the_round(self) -> None:
        """
        The aggregator of (h, r) is the proposer the chain names for it,
        at the next height (and the tip's, for late precommits); unknown
        further away.
        """
        aggregation: Aggregation = self.gossip.aggregation
        chain = self.node.chain
        tip = chain.tip
        for round in (0, 1, 2):
            self.assertEqual(
                aggregation.aggregator(tip.height + 1, round),
                chain.expected_producer(tip.height + 1, tip.hash, round))
        self.assertIsNone(aggregation.aggregator(tip.height + 2, 0))


class QueryShareTests(ProtocolTestBase):
    """
    In a dense mesh the vote queries ask a share of the peers each time.
    """

    settings = P2PSettings(port=24200, relay_fanout=3)

    def connect_peers(self, count: int) -> list[Wire]:
        """
        C{count} ready inbound peers of test keys 50, 51, ...
        """
        wires = []
        for n in range(50, 50 + count):
            wire = self.connect(Direction.INBOUND, ip=f"10.0.1.{n}")
            hello = self.hello(pubkey=key(n).public, nonce=bytes([n]) * 8)
            wire.feed(hello, self.proof(hello, key(n)))
            wire.sent()
            wires.append(wire)
        return wires

    def test_shares_cover_every_peer_once(self) -> None:
        """
        Six peers above a fanout of three: three disjoint shares of two
        (one per query of a rejected payment), together every peer.
        """
        self.connect_peers(6)
        shares = self.gossip._shares()
        self.assertEqual([len(share) for share in shares], [2, 2, 2])
        self.assertEqual(
            sorted(id(c) for share in shares for c in share),
            sorted(id(c) for c in self.manager.peers.ready.values()))

    def test_small_mesh_asks_everyone(self) -> None:
        """
        With at most C{relay_fanout} peers every query asks every peer.
        """
        self.connect_peers(3)
        self.assertEqual([len(share) for share in self.gossip._shares()],
                         [3])

    def test_undecided_queries_ask_a_few_of_a_share(self) -> None:
        """
        An undecided payment's query asks C{relay_fanout_direct} peers of
        the next share (any peer holding the votes will do); in a small
        mesh, every peer.
        """
        wires = self.connect_peers(9)
        self.assertEqual([len(share) for share in self.gossip._shares()],
                         [3, 3, 3])
        tx = payment(1)
        self.patch(self.node.finality, "late_due", lambda limit=256: [])
        self.patch(self.node.finality, "stalled", lambda limit=256: [tx])
        self.gossip.query_stalled()
        query = GetTxVotes((tx.txid,), False)
        asked = [n for n, wire in enumerate(wires) if query in wire.sent()]
        self.assertEqual(len(asked), self.settings.relay_fanout_direct)
        self.assertTrue(set(asked) <= {
            wires.index(w) for w in wires
            if w.proto in self.gossip._shares()[self.gossip._turn % 3]})

    def test_rejected_queries_rotate_over_the_shares(self) -> None:
        """
        A rejected payment's three queries ask for final approvals, each of
        another share, so every peer is asked once.
        """
        wires = self.connect_peers(6)
        txid = b"\x42" * 32
        queries = iter([[(txid, n)] for n in range(3)] + [[]] * 3)
        self.patch(self.node.finality, "late_due",
                   lambda limit=256: next(queries))
        self.patch(self.node.finality, "stalled", lambda limit=256: [])
        asked = []
        for _ in range(3):
            self.gossip.query_stalled()
            asked.append([n for n, wire in enumerate(wires)
                          if GetTxVotes((txid,), True) in wire.sent()])
        self.assertEqual(sorted(n for share in asked for n in share),
                         list(range(6)))
        self.assertEqual([len(share) for share in asked], [2, 2, 2])
