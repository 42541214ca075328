"""
Dialing on a real network (issue: test the network as real hosts): a peer
that refuses us right after the hellos keeps our backoff growing, the
operator is told once why a second node behind one IP cannot connect, and
a restarted node always dials its --connect seeds, whatever its key.
"""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from tests.helpers.p2p import PEER_IP, ProtocolTestBase, Wire
from timecoin.p2p.dependencies import Direction
from timecoin.p2p.messages import Error
from timecoin.p2p.peers import Source
from timecoin.p2p.protocol import PeerClientFactory


class RefusalBackoffTests(ProtocolTestBase):
    """
    A refusal after the handshake is not a success.
    """

    def test_refused_after_hello_keeps_backoff_growing(self) -> None:
        """
        Five times over, our dialer completes the hellos and the peer then
        refuses us (duplicate-ip) and closes: the delays before each
        redial grow (5, 10, 20, 40, 80 s, ±10 %), instead of starting over
        at 5 s each time (the connection cycling seen on real hosts).
        """
        factory = PeerClientFactory(self.manager, PEER_IP, PEER_IP, 24200,
                                    random.Random(1))
        self.manager.peers.dialers[PEER_IP] = factory
        factory.startedConnecting(type("C", (), {
            "connect": lambda self: None,
            "stopConnecting": lambda self: None})())
        delays = []
        for _ in range(5):
            proto = factory.buildProtocol(None)
            proto.makeConnection(StringTransport(
                peerAddress=IPv4Address("TCP", PEER_IP, 24200)))
            wire = Wire(proto, proto.transport)
            self.handshake(wire)
            wire.feed(Error("duplicate-ip", "another node holds this IP"))
            wire.lose()
            factory.clientConnectionLost(factory.connector,
                                         Failure(ConnectionDone()))
            delays.append(factory.delays[-1])
            self.clock.advance(factory.delays[-1])
        for delay, base in zip(delays, [5, 10, 20, 40, 80]):
            self.assertTrue(base * 0.9 <= delay <= base * 1.1,
                            (delays, base))

    def test_stable_connection_resets_backoff(self) -> None:
        """
        A connection that lasts stable_after seconds after its handshake
        does reset the backoff: the next redial comes after ≈5 s.
        """
        wire = self.connect(Direction.OUTBOUND)
        factory = self.manager.peers.dialers[PEER_IP]
        factory.delay = 160.0
        factory.startedConnecting(type("C", (), {
            "connect": lambda self: None,
            "stopConnecting": lambda self: None})())
        self.handshake(wire)
        self.clock.advance(self.settings.stable_after + 0.1)
        wire.lose()
        factory.clientConnectionLost(factory.connector,
                                     Failure(ConnectionDone()))
        self.assertLessEqual(factory.delays[-1], 5.5)


class DuplicateIpTests(ProtocolTestBase):
    """
    The operator is told, once, what a duplicate-ip refusal means.
    """

    def test_explained_once(self) -> None:
        """
        Every duplicate-ip refusal is counted; one warning explains that
        peers are identified by IP and what to do.
        """
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for _ in range(3):
            wire = self.ready(Direction.OUTBOUND)
            wire.feed(Error("duplicate-ip", "another node holds this IP"))
            wire.proto.close("refused")
            wire.lose()
        self.assertEqual(
            self.manager.peers.counters["error-received:duplicate-ip"], 3)
        told = [e for e in events if "cannot connect to" in
                e.get("log_format", "")]
        self.assertEqual(len(told), 1)
        self.assertIn("identified by IP address", told[0]["log_format"])


class SeedTests(ProtocolTestBase):
    """
    An operator's --connect is always honoured.
    """

    def test_seed_dialled_whatever_the_key(self) -> None:
        """
        A seed whose key is lower than ours (so it is the one meant to
        dial) is still dialled at once after a restart; a learned peer
        with a lower key waits passive_wait for it.
        """
        now = self.clock.seconds()
        low = b"\x00" * 32
        assert low < self.node.key.public
        seed = self.manager.peers.table.add("10.0.0.20", 24200, Source.SEED)
        learned = self.manager.peers.table.add(
            "10.0.0.21", 24200, Source.EXCHANGE, origin="10.0.0.0/24")
        for entry in (seed, learned):
            assert entry is not None
            entry.pubkey = low
        assert seed is not None and learned is not None
        self.assertTrue(self.manager.dialing.should_dial(seed, now))
        self.assertFalse(self.manager.dialing.should_dial(learned, now))


class ProvenPeerTests(ProtocolTestBase):
    """
    A peer once connected for good is redialled within seconds.
    """

    def test_proven_peer_retried_often(self) -> None:
        """
        After a connection that lasted stable_after, a dialer whose redials
        keep failing (the link is cut) retries at most every
        proven_max_delay (15 s), where an unproven one backs off to 300 s.
        """
        connector: Any = type("C", (), {
            "connect": lambda self: None,
            "stopConnecting": lambda self: None})()
        proven = PeerClientFactory(self.manager, PEER_IP, PEER_IP, 24200,
                                   random.Random(1))
        self.manager.peers.dialers[PEER_IP] = proven
        proven.startedConnecting(connector)
        proto = proven.buildProtocol(None)
        proto.makeConnection(StringTransport(
            peerAddress=IPv4Address("TCP", PEER_IP, 24200)))
        self.handshake(Wire(proto, proto.transport))
        self.clock.advance(self.settings.stable_after + 1)
        self.assertIn(PEER_IP, self.manager.proven)
        other = PeerClientFactory(self.manager, "10.0.0.77", "10.0.0.77",
                                  24200, random.Random(2))
        other.startedConnecting(connector)
        for factory in (proven, other):
            for _ in range(8):
                factory.retry(connector)
                self.clock.advance(factory.delays[-1])
        self.assertLessEqual(max(proven.delays[-4:]),
                             self.settings.proven_max_delay * 1.1)
        self.assertGreater(other.delays[-1], 200)
