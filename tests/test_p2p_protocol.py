"""
Message-level tests of one P2P connection on a C{StringTransport} and a
fake clock: the handshake in both directions, every refusal, the handshake
timeout, ping/pong on inbound and outbound connections alike, bad input of
every kind, requests matched by id, rate limits and bans.
"""

from __future__ import annotations

import random
from typing import Any

from tests.helpers import result_of
from tests.helpers.p2p import PEER_IP, ProtocolTestBase, Wire
from timecoin.p2p.consensus_relay import ConsensusRelay
from timecoin.p2p.dependencies import Direction, RequestFailed, State
from timecoin.p2p.messages import (
    MAX_LINE_BYTES,
    Blocks,
    Error,
    GetBlocks,
    GetPeers,
    GetTip,
    Hello,
    Peers,
    Ping,
    Pong,
    Tip,
)
from timecoin.p2p.protocol import PeerClientFactory, PeerProtocol
from timecoin.p2p.registry import PeerRegistry


class HandshakeTests(ProtocolTestBase):
    """
    Both sides send hello first; anything else ends the connection with an
    error giving the reason.
    """

    def test_success_both_directions(self) -> None:
        """
        In either direction the first thing we send is our hello (network,
        version, genesis, height, listen port, key, policy, nonce, agent);
        the peer's valid hello makes the connection ready: it is registered
        under the peer's IP, pings start and peers are asked for.
        """
        for direction in (Direction.INBOUND, Direction.OUTBOUND):
            with self.subTest(direction):
                wire = self.connect(direction)
                first = wire.sent()
                self.assertEqual([m.name for m in first], ["hello"])
                ours = first[0]
                assert isinstance(ours, Hello)
                self.assertEqual(
                    (ours.network, ours.genesis, ours.pubkey, ours.policy,
                     ours.listen_port, ours.nonce),
                    ("devnet", self.node.genesis.hash, self.node.key.public,
                     "round-robin", 24200, self.manager.nonce))
                self.assertEqual(wire.proto.state, State.HELLO)
                wire.feed(self.hello())
                self.assertEqual(wire.proto.state, State.HELLO)
                self.assertEqual(wire.sent_types(), ["hello_proof"])
                wire.feed(self.proof())
                self.assertEqual(wire.proto.state, State.READY)
                self.assertIs(self.manager.peers.ready[PEER_IP], wire.proto)
                self.assertEqual(sorted(wire.sent_types()),
                                 ["get_peers", "ping"])
                wire.proto.close("test")
                wire.lose()
                self.assertNotIn(PEER_IP, self.manager.peers.ready)

    def assertRefused(self, wire: Wire, reason: str) -> None:
        """
        C{wire} sent exactly one error, C{reason}, and closed.
        """
        sent = wire.sent()
        errors = [m for m in sent if isinstance(m, Error)]
        self.assertEqual([e.reason for e in errors], [reason], sent)
        self.assertTrue(wire.closed)
        self.assertEqual(wire.proto.close_reason, reason)
        wire.lose()
        self.assertEqual(wire.proto.state, State.CLOSED)
        self.assertEqual(self.manager.peers.ready, {})

    def test_refusals(self) -> None:
        """
        Another network, another genesis, a too old version, another
        selection policy, and our own nonce or key (a self-connection) are
        each refused with their reason, in both directions, costing the
        peer no score (misconfigured, not malicious).
        """
        cases = [
            ({"network": "testnet"}, "wrong-network"),
            ({"genesis": b"\x00" * 32}, "wrong-genesis"),
            ({"version": 0}, "unsupported-version"),
            ({"policy": "stake-weighted"}, "policy-mismatch"),
            ({"nonce": self.manager.nonce}, "self-connection"),
            ({"pubkey": self.node.key.public}, "self-connection"),
        ]
        for changes, reason in cases:
            for direction in (Direction.INBOUND, Direction.OUTBOUND):
                with self.subTest(reason=reason, direction=direction):
                    wire = self.connect(direction)
                    wire.sent()
                    wire.feed(self.hello(**changes))
                    self.assertRefused(wire, reason)
                    self.manager.peers.dialers.clear()
        self.assertEqual(self.scores.score(PEER_IP), 0.0)

    def test_newer_version_accepted(self) -> None:
        """
        A peer of a newer protocol version is accepted (it talks down to
        ours).
        """
        wire = self.connect()
        self.handshake(wire, version=7)
        self.assertEqual(wire.proto.state, State.READY)

    def test_self_connection_not_redialled(self) -> None:
        """
        An outbound connection that reaches ourselves marks the address as
        self and stops its dialer.
        """
        wire = self.connect(Direction.OUTBOUND)
        wire.feed(self.hello(nonce=self.manager.nonce))
        self.assertIn(PEER_IP, self.manager.dialing.self_keys)
        self.assertNotIn(PEER_IP, self.manager.peers.dialers)

    def test_anything_else_first(self) -> None:
        """
        A ping, a garbage line or a non-JSON line before the hello ends the
        connection with an error.
        """
        for line, reason in [(Ping(1).encode(), "expected-hello"),
                             (b"GET / HTTP/1.1", "bad-json"),
                             (b'{"type":"tx","tx":5}', "bad-message")]:
            with self.subTest(reason):
                wire = self.connect()
                wire.sent()
                wire.feed(line)
                self.assertRefused(wire, reason)

    def test_handshake_timeout(self) -> None:
        """
        No hello within 10 s ends the connection (handshake-timeout) in
        either direction; a hello in time cancels the timer.
        """
        for direction in (Direction.INBOUND, Direction.OUTBOUND):
            with self.subTest(direction):
                wire = self.connect(direction)
                wire.sent()
                self.clock.advance(9.9)
                self.assertFalse(wire.closed)
                self.clock.advance(0.1)
                self.assertRefused(wire, "handshake-timeout")
                self.manager.peers.dialers.clear()
        wire = self.connect()
        self.clock.advance(5)
        self.handshake(wire)
        self.clock.advance(60)
        self.assertEqual(wire.proto.state, State.READY)

    def test_error_during_handshake(self) -> None:
        """
        An error from the peer instead of its hello (it refused us) closes
        the connection without an error of ours.
        """
        wire = self.connect(Direction.OUTBOUND)
        wire.sent()
        wire.feed(Error("wrong-genesis", "x"))
        self.assertTrue(wire.closed)
        self.assertEqual(wire.sent(), [])
        self.assertEqual(
            self.manager.peers.counters["error-received:wrong-genesis"], 1)


class PingTests(ProtocolTestBase):
    """
    The same ping/pong on inbound and outbound connections (the seeds'
    outbound side never processed pongs).
    """

    def test_rtt_both_directions(self) -> None:
        """
        We ping as soon as the handshake is done and every 30 s; a pong with
        the nonce measures the round-trip time; a peer's ping is answered
        with a pong echoing its nonce.
        """
        for direction in (Direction.INBOUND, Direction.OUTBOUND):
            with self.subTest(direction):
                wire = self.connect(direction)
                wire.sent()
                self.handshake(wire)
                ping = [m for m in wire.sent() if isinstance(m, Ping)][0]
                self.clock.advance(0.25)
                wire.feed(Pong(ping.nonce))
                self.assertEqual(wire.proto.rtt, 0.25)
                wire.feed(Ping(99))
                self.assertEqual(wire.sent(), [Pong(99)])
                self.clock.advance(30)
                self.assertEqual(wire.sent_types(), ["ping"])
                wire.proto.close("test")
                wire.lose()
                self.manager.peers.dialers.clear()

    def test_unknown_pong_ignored(self) -> None:
        """
        A pong with a nonce we never sent (or already expired) changes
        nothing and costs nothing.
        """
        wire = self.ready()
        wire.feed(Pong(12345))
        self.assertIsNone(wire.proto.rtt)
        self.assertEqual(self.manager.peers.counters["pong-unknown-nonce"], 1)
        self.assertEqual(self.scores.score(PEER_IP), 0.0)

    def test_missed_pongs_disconnect_both_directions(self) -> None:
        """
        Three pings in a row without a pong end the connection
        (ping-timeout), inbound and outbound alike, without a score; one
        pong in time resets the count.
        """
        for direction in (Direction.INBOUND, Direction.OUTBOUND):
            with self.subTest(direction):
                wire = self.ready(direction)
                self.clock.advance(30)
                self.clock.advance(30)
                ping = [m for m in wire.sent() if isinstance(m, Ping)][-1]
                wire.feed(Pong(ping.nonce))
                self.assertEqual(wire.proto.keepalive.missed_pongs, 0)
                self.clock.advance(30)
                self.clock.advance(30)
                self.clock.advance(30)
                self.assertFalse(wire.closed)
                self.clock.advance(30)
                self.assertTrue(wire.closed)
                errors = [m for m in wire.sent() if isinstance(m, Error)]
                self.assertEqual(errors[-1].reason, "ping-timeout")
                wire.lose()
                self.manager.peers.dialers.clear()
        self.assertEqual(self.scores.score(PEER_IP), 0.0)


class BadInputTests(ProtocolTestBase):
    """
    Bad input is logged with a reason, counted, scored and answered with an
    error where useful, and never crashes the connection.
    """

    def assertErrorReply(self, wire: Wire, reason: str) -> None:
        """
        C{wire} answered with one error C{reason}, which was counted.
        """
        errors = [m for m in wire.sent() if isinstance(m, Error)]
        self.assertEqual([e.reason for e in errors], [reason])
        self.assertGreaterEqual(self.manager.peers.counters[reason], 1)

    def test_garbage_after_handshake(self) -> None:
        """
        Non-UTF-8, non-JSON, unknown types, malformed fields and messages
        not allowed in the ready state (a second hello) each get an error
        reply and points; the connection stays up and keeps working.
        """
        wire = self.ready()
        cases = [(b"\xff\xfe{}", "not-utf8", 20),
                 (b"{not json", "bad-json", 20),
                 (b'{"type":"version","v":1}', "unknown-type", 5),
                 (b'{"type":"get_tip","id":-1}', "bad-message", 20),
                 (self.hello().encode(), "not-allowed-in-state", 10)]
        total = 0
        for line, reason, points in cases:
            with self.subTest(reason):
                wire.feed(line)
                self.assertErrorReply(wire, reason)
                total += points
                self.assertAlmostEqual(self.scores.score(PEER_IP), total)
        self.assertFalse(wire.closed)
        wire.feed(GetTip(8))
        self.assertEqual(wire.sent(), [Tip(8, 0, self.node.genesis.hash)])

    def test_chunked_byte_by_byte(self) -> None:
        """
        Lines split anywhere (here one byte at a time, and several lines in
        one chunk) are reassembled.
        """
        wire = self.connect()
        wire.sent()
        data = self.hello().encode() + b"\n" + self.proof().encode() + \
            b"\n" + Ping(5).encode() + b"\n"
        for i in range(len(data)):
            wire.proto.dataReceived(data[i:i + 1])
        self.assertEqual(wire.proto.state, State.READY)
        self.assertIn(Pong(5), wire.sent())
        wire.proto.dataReceived(Ping(6).encode() + b"\n"
                                + Ping(7).encode() + b"\n" + b'{"ty')
        self.assertEqual([m for m in wire.sent() if isinstance(m, Pong)],
                         [Pong(6), Pong(7)])
        wire.proto.dataReceived(b'pe":"ping","nonce":8}\n')
        self.assertEqual(wire.sent(), [Pong(8)])

    def test_line_at_max_length(self) -> None:
        """
        A line of exactly MAX_LENGTH bytes passes framing (here it is then
        too large for its type: an error, the connection stays); one byte
        more is line-too-long: error, 50 points, closed.
        """
        wire = self.ready()
        prefix = b'{"type":"ping","nonce":1,"pad":"'
        line = prefix + b"x" * (MAX_LINE_BYTES - len(prefix) - 2) + b'"}'
        self.assertEqual(len(line), MAX_LINE_BYTES)
        wire.feed(line)
        self.assertErrorReply(wire, "message-too-large")
        self.assertFalse(wire.closed)
        self.assertEqual(self.manager.peers.counters["line-too-long"], 0)
        longer = prefix + b"x" * (MAX_LINE_BYTES - len(prefix) - 1) + b'"}'
        for i in range(0, len(longer), 65536):
            wire.proto.dataReceived(longer[i:i + 65536])
        self.assertTrue(wire.closed)
        errors = [m for m in wire.sent() if isinstance(m, Error)]
        self.assertEqual(errors[-1].reason, "line-too-long")
        self.assertEqual(self.manager.peers.counters["line-too-long"], 1)

    def test_unterminated_overflow(self) -> None:
        """
        Bytes past MAX_LENGTH without any newline end the connection at
        once, without waiting for the line to finish.
        """
        wire = self.ready()
        wire.proto.dataReceived(b"x" * MAX_LINE_BYTES)
        self.assertFalse(wire.closed)
        wire.proto.dataReceived(b"x")
        self.assertTrue(wire.closed)
        self.assertEqual(self.manager.peers.counters["line-too-long"], 1)

    def test_ban_and_expiry(self) -> None:
        """
        Enough garbage bans the IP: the connection ends with C{banned};
        new connections from it are refused at once until the ban expires.
        """
        wire = self.ready()
        for _ in range(5):
            wire.feed(b"garbage")
        self.assertTrue(wire.closed)
        self.assertEqual(wire.proto.close_reason, "banned")
        wire.lose()
        self.assertTrue(self.scores.banned(PEER_IP))
        again = self.connect()
        self.assertEqual(again.sent(), [Error("banned", "")])
        self.assertTrue(again.closed)
        again.lose()
        self.clock.advance(601)
        fresh = self.connect()
        self.handshake(fresh)
        self.assertEqual(fresh.proto.state, State.READY)

    def test_rate_limit(self) -> None:
        """
        Messages beyond a type's token bucket are dropped with a point each
        and no reply; the bucket refills with time.
        """
        wire = self.ready()
        for i in range(5):
            wire.feed(GetPeers(i))
        replies = [m for m in wire.sent() if isinstance(m, Peers)]
        self.assertEqual(len(replies), 3)
        self.assertEqual(self.manager.peers.counters["rate-limited"], 2)
        self.clock.advance(10)
        wire.feed(GetPeers(9))
        self.assertEqual([m.name for m in wire.sent()
                          if m.name == "peers"], ["peers"])

    def test_handler_error_contained(self) -> None:
        """
        An exception in a handler is logged and counted; the connection
        stays up.
        """
        wire = self.ready()

        def broken(conn: Any, msg: Any) -> None:
            raise RuntimeError("boom")

        self.patch(self.manager, "message_received", broken)
        wire.feed(GetTip(1))
        self.assertEqual(self.manager.peers.counters["handler-error"], 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertFalse(wire.closed)


class RequestTests(ProtocolTestBase):
    """
    Requests carry ids and responses are matched by id, never by arrival
    order.
    """

    def test_out_of_order_responses(self) -> None:
        """
        Two concurrent requests answered in reverse order each get their
        own response.
        """
        wire = self.ready()
        first = wire.proto.request(GetTip())
        second = wire.proto.request(GetTip())
        sent = [m for m in wire.sent() if isinstance(m, GetTip)]
        self.assertEqual(len({m.id for m in sent}), 2)
        wire.feed(Tip(sent[1].id, 22, b"\x02" * 32))
        wire.feed(Tip(sent[0].id, 11, b"\x01" * 32))
        self.assertEqual(result_of(first).height, 11)
        self.assertEqual(result_of(second).height, 22)

    def test_mixed_types(self) -> None:
        """
        A response of the wrong type for its id fails that request with
        bad-response and scores the peer; an id we never used is an
        unsolicited response.
        """
        wire = self.ready()
        d = wire.proto.request(GetTip())
        request = [m for m in wire.sent() if isinstance(m, GetTip)][0]
        wire.feed(Blocks(request.id, ()))
        failure = self.failureResultOf(d, RequestFailed)
        self.assertEqual(failure.value.reason, "bad-response")
        wire.feed(Tip(777, 1, b"\x00" * 32))
        self.assertEqual(self.manager.peers.counters["unsolicited-response"], 1)
        self.assertAlmostEqual(self.scores.score(PEER_IP), 25)

    def test_timeout(self) -> None:
        """
        A request unanswered for request_timeout fails with timeout; a late
        answer is then unsolicited.
        """
        wire = self.ready()
        d = wire.proto.request(GetBlocks(1, 10))
        request = [m for m in wire.sent() if isinstance(m, GetBlocks)][0]
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.assertEqual(self.failureResultOf(d, RequestFailed).value.reason,
                         "timeout")
        wire.feed(Blocks(request.id, ()))
        self.assertEqual(self.manager.peers.counters["unsolicited-response"], 1)

    def test_connection_lost_fails_requests(self) -> None:
        """
        Pending requests fail with connection-lost when the connection
        ends, and their timers are cancelled.
        """
        wire = self.ready()
        d = wire.proto.request(GetTip())
        wire.proto.close("test")
        wire.lose()
        self.assertEqual(self.failureResultOf(d, RequestFailed).value.reason,
                         "connection-lost")
        self.assertEqual([c for c in self.clock.getDelayedCalls()
                          if c.func == wire.proto.requests._timed_out], [])

    def test_bounded_outstanding(self) -> None:
        """
        At most max_pending_requests may be outstanding per connection.
        """
        wire = self.ready()
        pending = [wire.proto.request(GetTip()) for _ in range(16)]
        extra = wire.proto.request(GetTip())
        self.assertEqual(
            self.failureResultOf(extra, RequestFailed).value.reason,
            "too-many-requests")
        wire.proto.close("test")
        wire.lose()
        for d in pending:
            self.failureResultOf(d, RequestFailed)

    def test_served_requests(self) -> None:
        """
        get_tip, get_peers and get_blocks are answered with the request's
        id; get_blocks above our height gets an empty reply.
        """
        wire = self.ready()
        self.manager.peers.table.add("10.1.1.1", 24200, "exchange")
        self.manager.peers.table.add("127.0.0.1", 24201, "exchange")
        wire.feed(GetTip(41), GetPeers(42), GetBlocks(1, 5, 43))
        sent = wire.sent()
        self.assertEqual(sent, [Tip(41, 0, self.node.genesis.hash),
                                Peers(42, ("10.1.1.1:24200",)),
                                Blocks(43, ())])


class FactoryTests(ProtocolTestBase):
    """
    The dialer's backoff.
    """

    def test_backoff_grows_with_jitter_and_caps(self) -> None:
        """
        Failed dials are retried after ≈5 s doubling to the 300 s cap, each
        delay within ±10 % jitter (from the seeded generator); a completed
        handshake resets the delay once the connection lasted stable_after,
        a connection that failed its handshake does not.
        """
        factory = PeerClientFactory(self.manager, "10.0.0.5", "10.0.0.5",
                                    24200, random.Random(3))

        class Connector:
            """
            Counts reconnection attempts.
            """

            def __init__(self) -> None:
                self.connects = 0

            def connect(self) -> None:
                self.connects += 1

            def stopConnecting(self) -> None:
                pass

        connector: Any = Connector()
        factory.startedConnecting(connector)
        for _ in range(9):
            factory.retry(connector)
            self.clock.advance(factory.delays[-1])
        expected = [5, 10, 20, 40, 80, 160, 300, 300, 300]
        for delay, base in zip(factory.delays, expected):
            self.assertTrue(base * 0.9 <= delay <= min(base * 1.1, 300),
                            (delay, base))
        self.assertEqual(connector.connects, 9)
        conn = factory.buildProtocol(None)
        factory.handshake_done(conn)
        # Reset once the connection has lasted stable_after seconds.
        self.clock.advance(self.settings.stable_after)
        factory.retry(connector)
        self.assertLessEqual(factory.delays[-1], 5.5)

    def test_stop_trying_cancels(self) -> None:
        """
        stopTrying cancels a scheduled redial, and a later handshake does
        not revive the dialer.
        """
        factory = PeerClientFactory(self.manager, "10.0.0.5", "10.0.0.5",
                                    24200, random.Random(3))
        connector: Any = type("C", (), {"connect": lambda self: None,
                                        "stopConnecting": lambda self: None})()
        factory.startedConnecting(connector)
        factory.retry(connector)
        self.assertTrue(factory.in_backoff)
        factory.stopTrying()
        self.assertFalse(factory.in_backoff)
        factory.handshake_done(PeerProtocol(self.manager, Direction.OUTBOUND,
                                            factory))
        self.assertFalse(factory.continueTrying)


class StateTableTests(ProtocolTestBase):
    """
    The per-state tables.
    """

    def consensus_relay(self, peers: PeerRegistry[PeerProtocol]
                        ) -> ConsensusRelay:
        """
        Every relay is wired here, as the service wires them.
        """
        return ConsensusRelay(self.node, peers, self.settings.seen_size)

    def test_tables(self) -> None:
        """
        In the hello state only hello, hello_proof and error are accepted;
        every other message type is accepted only once ready, and hello and
        hello_proof are not.
        """
        from timecoin.p2p.intake import STATES
        from timecoin.p2p.messages import MESSAGES
        self.assertEqual(set(STATES[State.HELLO]),
                         {"hello", "hello_proof", "error"})
        wire = self.ready()
        accepted = {name for name in MESSAGES
                    if wire.proto.handler_for(name) is not None}
        self.assertEqual(accepted, set(MESSAGES) - {"hello", "hello_proof"})


class HelloLimitTests(ProtocolTestBase):
    """
    Before the handshake the line limit is small.
    """

    def test_big_line_before_hello(self) -> None:
        """
        More than MAX_HELLO_LENGTH bytes before a completed handshake end
        the connection with line-too-long; the same data after the
        handshake is only a bad message.
        """
        wire = self.connect()
        wire.sent()
        wire.proto.dataReceived(b"x" * (PeerProtocol.MAX_HELLO_LENGTH + 1))
        self.assertTrue(wire.closed)
        self.assertEqual(wire.sent(), [Error("line-too-long",
                                             "more than 4096 bytes")])
        wire.lose()
        ready = self.ready()
        ready.feed(b"x" * 5000)
        self.assertFalse(ready.closed)
        self.assertEqual([m.name for m in ready.sent()], ["error"])

    def test_hello_then_more_in_one_chunk(self) -> None:
        """
        A hello followed in the same chunk by a larger message: the larger
        one is judged by the ready-state limit once the hello is accepted.
        """
        wire = self.connect()
        wire.sent()
        big = b'{"type":"get_tip","id":1,"pad":"' + b"x" * 5000 + b'"}'
        wire.proto.dataReceived(self.hello().encode() + b"\n"
                                + self.proof().encode() + b"\n"
                                + big[:4500])
        self.assertEqual(wire.proto.state, State.READY)
        wire.proto.dataReceived(big[4500:] + b"\n")
        self.assertFalse(wire.closed)
        self.assertIn("message-too-large", [
            m.reason for m in wire.sent() if isinstance(m, Error)])
