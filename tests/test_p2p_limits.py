"""
Limits before work and bounded buffers on one P2P connection (issue 14,
items 2, 5 and 6), on C{StringTransport}s and a fake clock.

Each test is an attack from the penetration test: a peer that never reads
what it asked for, a dropped peer that stays in the peer set, deeply
nested JSON, oversized lines decoded before their cap, a banned peer's
transactions still verified, forged orphan votes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.trial import unittest

from tests.helpers import addr, key
from tests.helpers.p2p import PEER_IP, ProtocolTestBase, Wire
from timecoin import encoding, params
from timecoin.encoding import MAX_DEPTH, EncodingError, decode
from timecoin.finality import APPROVE, sign_tx_vote
from timecoin.p2p import messages as messages_module
from timecoin.p2p.dependencies import Direction, State
from timecoin.p2p.messages import (
    Error,
    GetBlocks,
    GetPeers,
    GetTip,
    MessageError,
    Peers,
    Ping,
    TxsMsg,
    TxVoteMsg,
    parse_line,
    sniff_type,
)
from timecoin.p2p.output import output_buffered
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.settings import P2PSettings
from timecoin.tx import Transaction, TxIn


class StalledTransport(StringTransport):
    """
    A transport whose peer reads only when the test says: everything
    written stays buffered (C{output_buffered}) until L{drain}, which
    tells the registered producer, as Twisted's TCP transport does once
    its buffer is written out.  Aborts are recorded.
    """

    aborted = False
    reading = True

    def output_buffered(self) -> int:
        """
        Bytes written and not yet read by the peer.
        """
        return len(self.value())

    def drain(self) -> bytes:
        """
        The peer reads everything, and keeps reading what the resumed
        producer writes, until nothing more comes.
        """
        read = b""
        while self.value():
            read += self.value()
            self.clear()
            if self.producer is not None:
                self.producer.resumeProducing()
        return read

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    def pauseProducing(self) -> None:
        self.reading = False
        super().pauseProducing()

    def resumeProducing(self) -> None:
        self.reading = True
        super().resumeProducing()


class LimitsBase(ProtocolTestBase):
    """
    L{ProtocolTestBase} with small output bounds and stalled transports.
    """

    settings = P2PSettings(port=24200, output_soft_bytes=2000,
                           output_hard_bytes=20_000, held_requests=3,
                           close_grace=2.0)

    def connect(self, direction: Direction = Direction.INBOUND,
                ip: str = PEER_IP, port: int = 50123) -> Wire:
        transport = StalledTransport(
            peerAddress=IPv4Address("TCP", ip,
                                    port if direction == Direction.INBOUND
                                    else 24200))
        proto = PeerProtocol(self.manager, direction)
        proto.makeConnection(transport)
        return Wire(proto, transport)

    def stall(self, wire: Wire, size: int) -> None:
        """
        Leave C{size} unread bytes in C{wire}'s output, as a peer that
        stopped reading would.
        """
        wire.transport.write(b" " * (size - 1) + b"\n")

    def drained(self, wire: Wire) -> list[Any]:
        """
        The messages the peer reads when it finally drains its socket.
        """
        data = wire.transport.drain()  # type: ignore[attr-defined]
        return [parse_line(line) for line in data.split(b"\n")
                if line.strip()]


class BoundedOutputTests(LimitsBase):
    """
    Per-connection output is bounded: a peer that does not read what it
    asked for is not served more, is not read past a few held requests,
    and is dropped past the hard bound.
    """

    def test_requests_held_above_soft_bound(self) -> None:
        """
        While more than output_soft_bytes wait unread, a peer's requests
        are held, not served; once it drains they are answered in order.
        Other messages are still handled (a ping is answered).
        """
        wire = self.ready()
        self.stall(wire, 2500)
        wire.feed(GetPeers(id=5), GetTip(id=6), Ping(77))
        self.assertEqual(len(wire.proto.output.held), 2)
        self.assertEqual(self.manager.peers.counters["request-held"], 2)
        read = self.drained(wire)
        names = [m.name for m in read]
        self.assertEqual(names, ["pong", "peers", "tip"])
        self.assertEqual([read[1].id, read[2].id], [5, 6])
        self.assertEqual(len(wire.proto.output.held), 0)

    def test_reading_paused_past_held_requests(self) -> None:
        """
        Past held_requests held, further requests are dropped (counted)
        and the peer's socket is no longer read; when it drains, the held
        ones are served and reading resumes.
        """
        wire = self.ready()
        transport: StalledTransport = wire.transport  # type: ignore
        self.stall(wire, 2500)
        wire.feed(*[GetTip(id=i) for i in range(5)])
        self.assertEqual(len(wire.proto.output.held), 3)
        self.assertEqual(
            self.manager.peers.counters["request-dropped:output-full"], 2)
        self.assertFalse(transport.reading)
        self.assertEqual(self.manager.peers.counters["reading-paused"], 1)
        read = self.drained(wire)
        self.assertEqual([m.id for m in read], [0, 1, 2])
        self.assertTrue(transport.reading)

    def test_held_requests_served_on_ping_tick(self) -> None:
        """
        A transport that never signals the drain: held requests are
        served on the next ping tick once the buffer is under the bound.
        """
        wire = self.ready()
        self.stall(wire, 2500)
        wire.feed(GetTip(id=9))
        wire.transport.clear()
        self.clock.advance(self.settings.ping_interval)
        self.assertIn("tip", [m.name for m in self.drained(wire)])

    def test_held_requests_served_on_next_request(self) -> None:
        """
        A transport that never signals the drain: held requests are
        served, in order, when the peer's next request finds the buffer
        under the bound.
        """
        wire = self.ready()
        self.stall(wire, 2500)
        wire.feed(GetTip(id=1))
        wire.transport.clear()
        wire.feed(GetTip(id=2))
        self.assertEqual([m.id for m in wire.sent()], [1, 2])

    def test_hard_bound_drops_peer_at_once(self) -> None:
        """
        A peer with more than output_hard_bytes unread is dropped
        (output-overflow, no score): it leaves the ready set before its
        socket reports the loss, the socket is aborted, not flushed, and
        nothing more is written to it.
        """
        wire = self.ready()
        key_ = wire.proto.peer_key
        self.assertIn(key_, self.manager.peers.ready)
        for _ in range(30):
            wire.proto.send(Peers(1, tuple(f"10.1.{i}.1:24200"
                                           for i in range(60))))
        self.clock.advance(0)
        transport: StalledTransport = wire.transport  # type: ignore
        self.assertTrue(transport.aborted)
        self.assertNotIn(key_, self.manager.peers.ready)
        self.assertNotIn(wire.proto, self.manager.peers.connections)
        self.assertEqual(wire.proto.state, State.CLOSED)
        self.assertEqual(self.manager.peers.counters["closed:output-overflow"], 1)
        self.assertEqual(self.scores.score(PEER_IP), 0.0)
        self.assertLess(transport.output_buffered(),
                        self.settings.output_hard_bytes + 4000)
        self.assertFalse(wire.proto.send(Ping(1)))
        self.assertNotIn(b'"error"', transport.value())

    def test_stalled_peer_aborted_when_banned(self) -> None:
        """
        A ban of a peer that does not read aborts its socket at once and
        removes it from the peer set at once (the error it would never
        read is not queued).
        """
        wire = self.ready()
        key_ = wire.proto.peer_key
        self.stall(wire, 2500)
        wire.proto.misbehaved("invalid-block", "test")
        transport: StalledTransport = wire.transport  # type: ignore
        self.assertTrue(transport.aborted)
        self.assertNotIn(key_, self.manager.peers.ready)
        self.assertNotIn(b'"error"', transport.value())


class DropTests(LimitsBase):
    """
    Wherever a peer is dropped it leaves the peer set at once, and its
    socket is aborted if it does not close on its own.
    """

    def test_ping_timeout_leaves_ready_at_once(self) -> None:
        """
        A ping-timed-out peer on a stalled link (the socket never reports
        the loss) is out of the ready set and the connections the moment
        it is dropped, its pending requests fail, and its socket is
        aborted after close_grace.
        """
        for direction in (Direction.INBOUND, Direction.OUTBOUND):
            with self.subTest(direction):
                wire = self.ready(direction)
                key_ = wire.proto.peer_key
                d = wire.proto.request(GetBlocks(start=1, count=10))
                failures: list[Any] = []
                d.addErrback(failures.append)
                transport: StalledTransport = wire.transport  # type: ignore
                self.clock.advance(30)
                self.clock.advance(30)
                self.assertIn(key_, self.manager.peers.ready)
                self.clock.advance(30)
                self.assertNotIn(key_, self.manager.peers.ready)
                self.assertNotIn(wire.proto, self.manager.peers.connections)
                self.assertEqual(len(failures), 1)
                self.assertFalse(transport.aborted)
                self.clock.advance(self.settings.close_grace)
                self.assertTrue(transport.aborted)
                self.assertEqual(
                    [m.reason for m in self.drained(wire)
                     if isinstance(m, Error)], ["ping-timeout"])

    def test_connection_lost_after_close_is_harmless(self) -> None:
        """
        The socket's own loss report after a close does not remove the
        peer twice (a new connection of the same peer stays ready) and
        cancels the pending abort.
        """
        first = self.ready()
        key_ = first.proto.peer_key
        first.proto.close("test", "bye")
        second = self.ready()
        self.assertIs(self.manager.peers.ready[key_], second.proto)
        first.lose()
        self.assertIs(self.manager.peers.ready[key_], second.proto)
        self.clock.advance(self.settings.close_grace)
        self.assertFalse(first.transport.aborted)  # type: ignore


class MeasureTests(unittest.TestCase):
    """
    L{output_buffered} reads Twisted's own TCP buffers.
    """

    def test_file_descriptor_buffers(self) -> None:
        """
        For a TCP transport (a C{FileDescriptor}) the unsent bytes are the
        unsent part of its send buffer plus its pending list; an unknown
        transport counts as empty.
        """
        fd = FileDescriptor(reactor=object())  # type: ignore[arg-type]
        fd.dataBuffer = b"x" * 100
        fd.offset = 30
        fd._tempDataBuffer = [b"y" * 50]
        fd._tempDataLen = 50
        self.assertEqual(output_buffered(fd), 120)
        self.assertEqual(output_buffered(object()), 0)

    def test_tls_adds_its_cleartext_backlog(self) -> None:
        """
        Under TLS the cleartext still waiting for the handshake counts
        too, on top of the TCP transport's buffers.
        """
        fd = FileDescriptor(reactor=object())  # type: ignore[arg-type]
        fd.dataBuffer = b"x" * 10
        fd.offset = 0
        fd._tempDataLen = 0
        tls = TLSMemoryBIOProtocol(None, Protocol())
        tls.transport = fd
        tls._appSendBuffer = [b"a" * 7, b"b" * 3]
        self.assertEqual(output_buffered(tls), 20)


class NestingTests(LimitsBase):
    """
    Deeply nested JSON is refused by the decoder and scored like any bad
    line, without a traceback.
    """

    def setUp(self) -> None:
        super().setUp()
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_decoder_bounds_depth(self) -> None:
        """
        decode accepts MAX_DEPTH levels and refuses one more, or a line
        nested a hundred thousand deep, with an EncodingError (never a
        RecursionError); brackets and escaped quotes inside strings do not
        count as nesting.
        """
        value = decode(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)
        for _ in range(MAX_DEPTH - 1):
            value = value[0]
        self.assertEqual(value, [])
        for deep in (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
                     b"[" * 100_000 + b"]" * 100_000,
                     b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
                     b"[" * 100_000):
            with self.subTest(len(deep)):
                with self.assertRaises(EncodingError) as caught:
                    decode(deep)
                self.assertIn("nested deeper", str(caught.exception))
        inside = b'["' + b"[" * 500 + b'\\"\\\\", "]]]{{{"]'
        self.assertEqual(decode(inside), ["[" * 500 + '"\\', "]]]{{{"])
        self.assertEqual(decode(b"[1,2]"), [1, 2])
        with self.assertRaises(EncodingError) as caught:
            decode(b"[1,2")
        self.assertNotIn("nested", str(caught.exception))

    def test_nested_line_scored_in_hello(self) -> None:
        """
        A deeply nested first line is a bad-json offence that ends the
        connection; nothing escapes the protocol and no traceback is
        logged.
        """
        wire = self.connect()
        wire.feed(b"[" * 1020)
        self.assertTrue(wire.closed)
        self.assertEqual(self.manager.peers.counters["bad-json"], 1)
        self.assertEqual(self.scores.score(PEER_IP), 20)
        self.assertFalse([e for e in self.events if "log_failure" in e])

    def test_nested_lines_ban_ready_peer(self) -> None:
        """
        In the ready state each deeply nested line costs bad-json, so the
        sender is banned within five lines; one log line per reason, not
        one traceback per line (the offence and the ban).
        """
        wire = self.ready()
        for _ in range(5):
            wire.feed(b'{"type":"tx","tx":' + b"[" * 50_000 + b"]" * 50_000
                      + b"}")
        self.assertEqual(self.manager.peers.counters["bad-json"], 5)
        self.assertTrue(self.scores.banned(PEER_IP))
        self.assertEqual(wire.proto.state, State.CLOSED)
        self.assertFalse([e for e in self.events if "log_failure" in e])
        offences = [e for e in self.events
                    if e.get("reason") == "bad-json"]
        self.assertEqual(len(offences), 2)


    def test_banned_sender_one_line_per_connection(self) -> None:
        """
        Once the sender is banned, each further connection of it sending
        nested JSON (on loopback, where a ban does not refuse the
        connection) is counted and closed, without being banned again;
        one log line a minute for all of them.
        """
        self.scores.ban("127.0.0.1")
        for port in (40001, 40002, 40003):
            wire = self.connect(ip="127.0.0.1", port=port)
            wire.feed(b"[" * 1020)
            self.assertEqual(wire.proto.state, State.CLOSED)
        self.assertEqual(self.manager.peers.counters["bad-json"], 3)
        self.assertEqual(self.manager.peers.counters["closed:banned"], 3)
        self.assertEqual(self.manager.peers.counters["bans"], 0)
        lines = [e for e in self.events
                 if e.get("log_namespace", "").startswith("timecoin.p2p")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["reason"], "bad-json")


    def test_handler_traceback_rate_limited(self) -> None:
        """
        A handler that fails on a peer's input logs its traceback once a
        minute per message type, however many connections trigger it;
        every failure is counted.
        """
        def broken(conn: Any, msg: Any) -> None:
            raise ValueError("crafted input")

        self.patch(self.manager, "message_received", broken)
        for port in (40001, 40002, 40003):
            wire = self.connect(port=port)
            self.handshake(wire, listen_port=port)
            wire.feed(GetTip(id=1))
        self.assertEqual(self.manager.peers.counters["handler-error"], 3)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)


class LimitsBeforeWorkTests(LimitsBase):
    """
    Size caps and rate limits are checked before a line is decoded.
    """

    def count_decodes(self) -> list[int]:
        """
        Count (by length) the lines parse_line hands to the decoder.
        """
        calls: list[int] = []
        real = encoding.decode

        def counting(data: Any, *args: Any) -> Any:
            calls.append(len(data))
            return real(data, *args)

        self.patch(messages_module, "decode", counting)
        return calls

    def test_cap_checked_before_decoding(self) -> None:
        """
        A line longer than its declared type's cap is refused with
        message-too-large without being decoded, and so is a long line
        whose type cannot be told without decoding (none, or two literal
        type members).
        """
        calls = self.count_decodes()
        big = b'{"type":"tx","tx":"' + b"a" * (params.MAX_TX_BYTES * 2) \
            + b'"}'
        decoy = b'{"x":{"type":"blocks"},"type":"tx","tx":"' \
            + b"a" * 2_000_000 + b'"}'
        hidden = b'{"\\u0074ype":"tx","tx":"' + b"a" * 2_000_000 + b'"}'
        for line in (big, decoy, hidden):
            with self.subTest(line[:30]):
                with self.assertRaises(MessageError) as caught:
                    parse_line(line)
                self.assertEqual(caught.exception.reason,
                                 "message-too-large")
        self.assertEqual(calls, [])
        self.assertEqual(sniff_type(b'{"id":1,"type" : "get_tip"}'),
                         "get_tip")
        self.assertIsNone(sniff_type(decoy))

    def test_declared_type_must_be_real(self) -> None:
        """
        A line whose one literal type member is nested (the real type
        hidden by an escape) is refused as bad-message after decoding
        within the declared type's cap.
        """
        line = b'{"\\u0074ype":"ping","nonce":1,"x":{"type":"get_tip"}}'
        with self.assertRaises(MessageError) as caught:
            parse_line(line)
        self.assertEqual(caught.exception.reason, "bad-message")

    def test_unsolicited_response_not_decoded(self) -> None:
        """
        A large blocks line that no request of ours awaits is an
        unsolicited response, refused before decoding.
        """
        wire = self.ready()
        calls = self.count_decodes()
        wire.feed(b'{"blocks":[' + b'"x",' * 200_000 + b'"x"],"id":3,'
                  b'"type":"blocks"}')
        self.assertEqual(calls, [])
        self.assertEqual(self.manager.peers.counters["unsolicited-response"], 1)

    def test_rate_limited_line_not_decoded(self) -> None:
        """
        A line of a type whose rate limit has no token left is refused
        before it is decoded.
        """
        wire = self.ready()
        rate, burst = self.settings.rate_limits["get_blocks"]
        for i in range(int(burst)):
            wire.feed(GetBlocks(start=1, count=1, id=i))
        calls = self.count_decodes()
        wire.feed(GetBlocks(start=1, count=1, id=99))
        self.assertEqual(calls, [])
        self.assertEqual(self.manager.peers.counters["rate-limited"], 1)


class QueuedWorkTests(LimitsBase):
    """
    A banned or dropped peer's queued work is dropped, not verified.
    """

    def forged(self, n: int) -> list[Transaction]:
        """
        C{n} distinct payments of the node's own coins with broken
        signatures (bad-signature, a malicious reason).
        """
        node = self.node
        out = []
        for i in range(n):
            tx = node.wallet.build_payment(node.spendable(), addr(key(5)),
                                           (i + 1) * params.COIN, "devnet")
            out.append(Transaction(tuple(
                TxIn(x.prevout, x.pubkey, b"\x01" * 64) for x in tx.inputs),
                tx.outputs))
        return out

    def test_banned_sender_rest_of_txs_not_verified(self) -> None:
        """
        A peer banned by the first forged transaction of a txs line has
        the rest of the line dropped (tx-dropped:peer-gone, counted per
        transaction in the gossip counters and once as a logged drop),
        none of them verified.
        """
        wire = self.ready()
        self.scores.add(PEER_IP, 85)
        gossip = self.manager.gossip
        assert gossip is not None
        wire.feed(TxsMsg.of(self.forged(20)))
        self.assertTrue(self.scores.banned(PEER_IP))
        self.assertEqual(gossip.counters["tx-refused:bad-signature"], 1)
        self.assertEqual(gossip.counters["tx-dropped:peer-gone"], 19)
        # One drop event, counted and logged with its reason.
        self.assertEqual(self.manager.peers.counters["tx-dropped:peer-gone"], 1)

    def test_admission_queue_of_closed_peer_dropped(self) -> None:
        """
        Transactions queued for admission from a peer that disconnects
        before their turn are dropped, not verified.
        """
        self.settings = replace(self.settings, admit_slice=2)
        gossip = self.manager.gossip
        assert gossip is not None
        gossip.admission.settings = self.settings
        wire = self.ready()
        wire.feed(TxsMsg.of(self.forged(10)))
        self.assertEqual(gossip.admission.waiting, 8)
        wire.proto.close("test")
        self.clock.advance(0)
        self.assertEqual(gossip.admission.waiting, 0)
        self.assertEqual(gossip.counters["tx-dropped:peer-gone"], 8)
        self.assertEqual(gossip.counters["tx-refused:bad-signature"], 2)

    def test_forged_orphan_vote_not_kept(self) -> None:
        """
        A vote on an unseen transaction with a forged signature (claiming
        a masternode's key) is refused as vote-bad-signature and scored,
        not kept in the orphan pool; a genuine one is kept.
        """
        wire = self.ready()
        gossip = self.manager.gossip
        assert gossip is not None
        height = self.node.chain.height
        genuine = sign_tx_vote(self.node.key, "devnet", b"\x07" * 32,
                               APPROVE, height)
        forged = replace(sign_tx_vote(self.node.key, "devnet", b"\x08" * 32,
                                      APPROVE, height),
                         signature=bytes(64))
        wire.feed(TxVoteMsg(forged))
        self.assertEqual(gossip.counters["orphan-kept"], 0)
        self.assertEqual(self.manager.peers.counters["invalid-vote"], 1)
        wire.feed(TxVoteMsg(genuine))
        self.assertEqual(gossip.counters["orphan-kept"], 1)
        self.assertEqual(list(gossip.orphans.votes), [b"\x07" * 32])
