"""
Tests that each gossip message reaches each peer about once: per-connection
knowledge of what a peer holds (L{timecoin.p2p.gossip.KnownSet}), relay
through L{timecoin.p2p.manager.PeerManager.relay} (never back to a peer
that sent the message, never twice over one connection, to a bounded
fanout), and the consensus re-broadcast (L{ConsensusRelay.cast} of a
message sent before) reaching late peers but not, or only rarely, the
peers that hold it.  One node's manager with several ready peers on
C{StringTransport}s and a fake clock; the consensus engine's verdict is
stubbed (the relay is under test, not the engine).
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.helpers import key
from tests.helpers.clusters import IPS, MasternodeCluster, node_of, service_of
from tests.helpers.p2p import KeyedPeersTestBase, ProtocolTestBase
from timecoin.consensus import NIL, PREVOTE, BlockVote, sign_vote
from timecoin.encoding import sha256
from timecoin.p2p.caches import KnownSet
from timecoin.p2p.consensus_relay import BlockVoteMsg, ConsensusRelay
from timecoin.p2p.dependencies import Direction
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.settings import P2PSettings


def vote(signer: int, round: int = 0) -> BlockVote:
    """
    A prevote for nil at height 1 signed by test key C{signer}.
    """
    return sign_vote(key(signer), "devnet", PREVOTE, 1, round, NIL)


class KnownSetTests(ProtocolTestBase):
    """
    L{KnownSet} is a bounded map of digests to when the peer was last
    known to hold them.
    """

    def test_bounded_least_recently_touched_first(self) -> None:
        """
        Past its size the digest touched longest ago is forgotten; adding
        a digest again refreshes its time and its place.
        """
        known = KnownSet(2)
        known.add(b"a", 1.0)
        known.add(b"b", 2.0)
        known.add(b"a", 3.0)
        known.add(b"c", 4.0)
        self.assertNotIn(b"b", known)
        self.assertEqual((known.since(b"a"), known.since(b"c")), (3.0, 4.0))
        self.assertEqual(len(known), 2)
        self.assertIsNone(known.since(b"b"))

    def test_received_lines_are_known(self) -> None:
        """
        A ready-state line a peer sends us is known to be held by it (its
        digest is in the connection's known-set), even a repeat dropped
        before parsing.
        """
        wire = self.connect(Direction.INBOUND)
        self.handshake(wire)
        msg = BlockVoteMsg(vote(50))
        wire.feed(msg)
        self.assertIn(sha256(msg.encode()), wire.proto.known)


class RelayTestBase(KeyedPeersTestBase):
    """
    Our node's manager with a consensus relay and ready inbound peers of
    test keys 50, 51, ... at 10.0.1.50, 10.0.1.51, ...; the engine's
    verdict on a received proposal or vote is L{verdict}.
    """

    settings = P2PSettings(port=24200, relay_fanout=3, relay_fanout_direct=1,
                           resend_known_after=10.0)

    def setUp(self) -> None:
        super().setUp()
        assert self.manager.consensus is not None
        self.relay = self.manager.consensus
        self.verdict: str | None = None
        self.patch(self.node.consensus, "receive",
                   lambda message: self.verdict)

    def consensus_relay(self, peers: PeerRegistry[PeerProtocol]
                        ) -> ConsensusRelay:
        """
        The relay under test, with a seen-cache of 1000.
        """
        return ConsensusRelay(self.node, peers, 1000)


class NotBackToSenderTests(RelayTestBase):
    """
    A relayed message never goes back to a peer that sent it.
    """

    def test_refused_then_taken_not_sent_back(self) -> None:
        """
        Peer 51 sends a vote this node refuses for now (wrong height: it
        is catching up), peer 50 sends it again once it is taken: it is
        relayed to peer 52 only, not back to 51 (which sent it) nor 50.
        The old relay sent it to every peer but the last sender.
        """
        for n in (50, 51, 52):
            self.peer(n)
        msg = BlockVoteMsg(vote(60))
        self.verdict = "wrong-height"
        self.peers[51].feed(msg)
        self.assertEqual(self.got(msg), [])
        self.verdict = None
        self.peers[50].feed(msg)
        self.assertEqual(self.got(msg), [52])
        self.assertEqual(self.relay.counters.get("relayed"), 1)
        self.assertGreater(self.manager.peers.counters["relay-skipped:known"], 0)

    def test_relay_fanout_bounded(self) -> None:
        """
        A vote whose signer is not a peer of ours goes to at most
        C{relay_fanout} (3) of the 5 other peers; one whose signer is a
        peer (who sends it to all its peers itself) to at most
        C{relay_fanout_direct} (1).  Neither goes back to its sender.
        """
        for n in range(50, 56):
            self.peer(n)
        far = BlockVoteMsg(vote(60))
        self.peers[50].feed(far)
        got = self.got(far)
        self.assertEqual(len(got), 3)
        self.assertNotIn(50, got)
        near = BlockVoteMsg(vote(53))
        self.peers[51].feed(near)
        got = self.got(near)
        self.assertEqual(len(got), 1)
        self.assertNotIn(51, got)
        self.assertEqual(self.manager.peers.counters["relay-skipped:fanout"],
                         2 + 4)


    def test_small_network_relays_to_all(self) -> None:
        """
        With at most C{relay_fanout} (3) peers (a small network or a
        sparse overlay, where relays carry messages hop by hop) a relayed
        message goes to every peer but its sender, whoever signed it.
        """
        for n in (50, 51, 52):
            self.peer(n)
        near = BlockVoteMsg(vote(51))
        self.peers[50].feed(near)
        self.assertEqual(self.got(near), [51, 52])
        self.assertEqual(self.manager.peers.counters["relay-skipped:fanout"], 0)


class HeldNotSentAgainTests(RelayTestBase):
    """
    A peer known to hold a message is not sent it again; the periodic
    re-broadcast reaches it only every C{resend_known_after} seconds.
    """

    def test_rebroadcast_skips_peers_that_hold_it(self) -> None:
        """
        Our vote goes to both peers when signed; sent again at once (the
        engine's re-broadcast every round timeout) it goes to none; once
        C{resend_known_after} passed, to both again (a peer may have
        dropped it as too early).  The old relay sent it every time.
        """
        self.peer(50)
        self.peer(51)
        mine = vote(1)
        msg = BlockVoteMsg(mine)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [50, 51])
        self.clock.advance(1)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [])
        self.clock.advance(9)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [50, 51])
        self.assertEqual(self.relay.counters["recast"], 2)

    def test_proof_of_lock_not_sent_to_its_sender(self) -> None:
        """
        A peer's prevote we took and re-send (with our own messages, as
        the proof of our valid block) is not sent back to that peer, which
        sent it to us, until C{resend_known_after} passed.
        """
        self.peer(50)
        self.peer(51)
        theirs = vote(50)
        msg = BlockVoteMsg(theirs)
        self.peers[50].feed(msg)
        self.assertEqual(self.got(msg), [51])
        self.relay.cast(theirs)
        self.assertEqual(self.got(msg), [])
        self.clock.advance(10)
        self.relay.cast(theirs)
        self.assertEqual(self.got(msg), [50, 51])


class LatePeerTests(RelayTestBase):
    """
    A peer that connects (or reconnects) after a message was sent starts
    with an empty known-set, so the re-broadcast brings it the current
    round's messages.
    """

    def test_late_peer_gets_rebroadcast(self) -> None:
        """
        Our vote went to peer 50; peer 51 connects later; the next
        re-broadcast sends it to 51 only.  Peer 50 reconnects (a restart:
        a new connection): the next one sends it to 50 again.
        """
        self.peer(50)
        mine = vote(1)
        msg = BlockVoteMsg(mine)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [50])
        self.peer(51)
        self.clock.advance(1)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [51])
        self.peers[50].lose()
        self.peer(50)
        self.relay.cast(mine)
        self.assertEqual(self.got(msg), [50])


class HopByHopTests(unittest.TestCase):
    """
    Relay of first-seen messages carries them across a missing link, hop
    by hop, on whole nodes over the fake network.
    """

    def test_votes_cross_a_missing_link(self) -> None:
        """
        Masternodes 0 and 2 can never connect, 3 is down: a quorum (3 of
        4) needs 0's and 2's votes at each other, which only masternode 1
        relays.  Blocks are committed on all three.
        """
        cluster = MasternodeCluster(self)
        cluster.net.partition(IPS[0], IPS[2])
        for i in range(3):
            cluster.start(i)
        cluster.net.advance(30, step=0.1)
        self.assertNotIn(IPS[2], {c.ip for c in service_of(
            cluster, 0).manager.peers.ready.values()})
        heights = [node_of(cluster, i).chain.height for i in range(3)]
        self.assertGreaterEqual(min(heights), 3, heights)
        relayed = service_of(cluster, 1).consensus.counters
        self.assertGreater(relayed.get("relayed", 0), 0)
