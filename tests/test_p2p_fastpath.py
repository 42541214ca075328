"""
Tests for the P2P fast paths: the shared float-refusing JSON decoder,
repeated gossip lines dropped before parsing, batched transaction gossip
(C{txs}: duplicates skipped unparsed, txid claims checked, a per
transaction rate limit), committed-block announcements of held blocks
dropped on their header, and dispatch by message type.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import addr, key, result_of
from tests.helpers.clusters import IPS, MasternodeCluster, fan_out, node_of, service_of
from timecoin import encoding, params
from timecoin import tx as tx_module
from timecoin.block import Block
from timecoin.encoding import EncodingError, decode, sha256
from timecoin.finality import APPROVE, sign_tx_votes
from timecoin.p2p import messages as messages_module
from timecoin.p2p.caches import LineCache, SeenCache
from timecoin.p2p.dependencies import HandlerTable
from timecoin.p2p.gossip import Gossip
from timecoin.p2p.manager import PeerManager
from timecoin.p2p.messages import (
    BlockMsg,
    GetTxVotes,
    TxsMsg,
    TxVotesMsg,
    parse_line,
    txs_entry,
    txs_line,
)
from timecoin.p2p.peers import PeerTable
from timecoin.p2p.ratelimit import RateLimiter
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import DEFAULT_RATE_LIMITS, P2PSettings
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs


def payment(i: int) -> Transaction:
    """
    A signed one-input payment spending an unknown coin C{i} (refused as
    missing inputs, so it starts no traffic of its own).
    """
    return sign_inputs(Transaction(
        (TxIn(OutPoint(i.to_bytes(32, "big"), 0), key(0).public),),
        (TxOut(params.COIN, addr(key(7))),)), "devnet", [key(0)])


class DecodeTests(unittest.TestCase):
    """
    L{encoding.decode} uses one module-level decoder, with the behaviour
    and errors of C{json.loads} with float-refusing hooks.
    """

    def test_same_results_and_errors(self) -> None:
        """
        Text and bytes (UTF-8 and UTF-16) decode as C{json.loads} does;
        floats, NaN, Infinity, a BOM in text, bad JSON and bad UTF-8 raise
        L{EncodingError}; no decoder is built per call.
        """
        for good in ['{"a":[1,"x",null,true]}', b'{"a":1}',
                     '{"a":1}'.encode("utf-16"), b'\xef\xbb\xbf{"a":2}']:
            with self.subTest(good):
                self.assertEqual(decode(good), json.loads(good))
        for bad in ['{"a":1.5}', '{"a":NaN}', "[Infinity]", "[-Infinity]",
                    '\ufeff{"a":1}', "{", b'{"a":"\xff"}', "", "1e5"]:
            with self.subTest(bad):
                self.assertRaises(EncodingError, decode, bad)
        built = []
        real = json.JSONDecoder.__init__

        def counting(self: Any, *args: Any, **kwargs: Any) -> None:
            built.append(1)
            real(self, *args, **kwargs)

        self.patch(json.JSONDecoder, "__init__", counting)
        decode('{"a":1}')
        self.assertEqual(built, [])
        self.assertIs(encoding._DECODER.parse_float, encoding._reject_float)


class SeenCacheTests(unittest.TestCase):
    """
    L{SeenCache}: bounded, oldest first out, a discarded id new again.
    """

    def test_oldest_forgotten_first(self) -> None:
        """
        Past C{size} ids the first added is forgotten; an id added again
        while held is not new and keeps its place.
        """
        seen = SeenCache(3)
        self.assertEqual([seen.add(k) for k in (b"a", b"b", b"a", b"c")],
                         [True, True, False, True])
        self.assertTrue(seen.add(b"d"))
        self.assertEqual([k in seen for k in (b"a", b"b", b"c", b"d")],
                         [False, True, True, True])
        self.assertEqual(len(seen), 3)

    def test_discarded_is_new_again_and_bounded(self) -> None:
        """
        A discarded id is new again; discards and re-adds never let the
        cache hold more than C{size} ids.
        """
        seen = SeenCache(2)
        seen.add(b"a")
        seen.discard(b"a")
        self.assertNotIn(b"a", seen)
        self.assertTrue(seen.add(b"a"))
        for i in range(50):
            seen.add(bytes([i]))
            seen.discard(bytes([i]))
            seen.add(bytes([i]))
        self.assertLessEqual(len(seen), 2)
        self.assertIn(bytes([49]), seen)


class LineCacheTests(unittest.TestCase):
    """
    A line digest answers only while its item is still in its owner's
    seen-cache, and the cache is bounded.
    """

    class Owner:
        """
        A line owner over one L{SeenCache}.
        """

        def __init__(self) -> None:
            self.seen = SeenCache(10)
            self.repeats = 0

        def still_seen(self, name: str, item: bytes) -> bool:
            return item in self.seen

        def line_repeated(self, name: str) -> None:
            self.repeats += 1

    class Conn:
        """
        A connection handling the line with C{line_digest}.
        """

        def __init__(self, digest: bytes | None) -> None:
            self.line_digest = digest

    def test_follows_the_seen_cache(self) -> None:
        """
        A line is found while its item is seen; once the item is gone (a
        replaced or evicted cache) the line is forgotten; a handler outside
        a line (no digest) records nothing; at most C{size} lines.
        """
        owner = self.Owner()
        lines = LineCache(3)
        owner.seen.add(b"item")
        lines.taken(self.Conn(b"d1"), "tx_votes", owner, b"item")
        lines.taken(self.Conn(None), "tx_votes", owner, b"item")
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines.lookup(b"d1"), ("tx_votes", owner))
        self.assertIsNone(lines.lookup(b"d2"))
        owner.seen = SeenCache(10)
        self.assertIsNone(lines.lookup(b"d1"))
        self.assertEqual(len(lines), 0)
        owner.seen.add(b"item")
        for i in range(5):
            lines.taken(self.Conn(bytes([i])), "heartbeat", owner, b"item")
        self.assertEqual(len(lines), 3)
        self.assertIsNone(lines.lookup(bytes([0])))


class ClusterTestCase(unittest.TestCase):
    """
    Four masternodes on a fake network and clock.
    """

    def setUp(self) -> None:
        self.cluster = MasternodeCluster(self)
        self.cluster.start_all()
        self.cluster.advance(1)
        self.sender = service_of(self.cluster, 0).manager.peers.ready[IPS[1]]
        self.receiver = service_of(self.cluster, 1)

    def count_parses(self) -> list[int]:
        """
        Count L{Transaction.from_obj} calls.
        """
        calls = [0]
        real = Transaction.from_obj.__func__  # type: ignore[attr-defined]

        def counting(cls: type[Transaction], obj: Any) -> Transaction:
            calls[0] += 1
            return real(cls, obj)  # type: ignore[no-any-return]

        self.patch(tx_module.Transaction, "from_obj", classmethod(counting))
        return calls


class RepeatedLineTests(ClusterTestCase):
    """
    A repeated vote batch line is dropped before parsing and counted; one
    refused before its item was seen is parsed again.
    """

    def test_repeated_batch_dropped_before_parsing(self) -> None:
        """
        The same C{tx_votes} line sent three times is parsed once: the
        repeats count as received, rate-limited and duplicate votes, and
        as C{line-duplicate}; a forged copy (other signature bytes) is
        parsed and scored.
        """
        a = payment(1)
        batch = sign_tx_votes(key(0), "devnet", 0, [(a.txid, APPROVE)])
        parses = [0]
        real = messages_module.parse_line

        def counting(line: bytes) -> Any:
            parses[0] += 1
            return real(line)

        from timecoin.p2p import intake as intake_module
        self.patch(intake_module, "parse_line", counting)
        manager = self.receiver.manager
        conn = manager.peers.ready[IPS[0]]
        received = conn.received["tx_votes"]
        repeats = manager.peers.counters["line-duplicate"]
        duplicates = self.receiver.gossip.counters["vote-duplicate"]
        for _ in range(3):
            self.sender.send(TxVotesMsg(batch))
        self.cluster.net.flush()
        self.assertEqual(parses[0], 1)
        self.assertEqual(manager.peers.counters["line-duplicate"] - repeats, 2)
        self.assertEqual(
            self.receiver.gossip.counters["vote-duplicate"] - duplicates, 2)
        self.assertEqual(conn.received["tx_votes"] - received, 3)
        line = TxVotesMsg(batch).encode()
        forged = line.replace(batch.signature.hex().encode(),
                              b"00" * 64)
        self.sender.send_line("tx_votes", forged)
        self.cluster.net.flush()
        self.assertEqual(parses[0], 2)
        self.assertEqual(manager.peers.counters["line-duplicate"] - repeats, 2)
        self.assertAlmostEqual(self.receiver.scores.score(IPS[0]), 20)

    def test_unparsable_line_not_remembered(self) -> None:
        """
        A line refused before its item was taken (it does not parse) is
        parsed, and scored, each time it comes.
        """
        manager = self.receiver.manager
        line = b'{"type":"tx_votes","batch":{"voter":"00"}}'
        repeats = manager.peers.counters["line-duplicate"]
        for _ in range(2):
            self.sender.send_line("tx_votes", line)
        self.cluster.net.flush()
        self.assertEqual(manager.peers.counters["bad-message"], 2)
        self.assertEqual(manager.peers.counters["line-duplicate"], repeats)
        self.assertIsNone(manager.lines.lookup(sha256(line)))


class TxsTests(ClusterTestCase):
    """
    Batched transaction gossip.
    """

    def test_duplicates_skipped_unparsed(self) -> None:
        """
        Entries whose txid the receiver has seen are skipped without
        building their transaction; the others are built once each.
        """
        node = node_of(self.cluster, 0)
        fan = fan_out(node, 3)
        result_of(node.submit(fan))
        self.cluster.advance(1)
        receiver = self.receiver.gossip
        self.assertIn(fan.txid, receiver.seen_txs)
        parses = self.count_parses()
        duplicates = receiver.counters["tx-duplicate"]
        refused = self.refused(receiver)
        fresh = [payment(i) for i in range(2, 5)]
        self.sender.send(TxsMsg.of([fan, *fresh, fan]))
        self.cluster.net.flush()
        self.assertEqual(parses[0], 3)
        self.assertEqual(receiver.counters["tx-duplicate"] - duplicates, 2)
        self.assertEqual(self.refused(receiver) - refused, 3)

    def refused(self, gossip: Gossip) -> int:
        """
        Transactions C{gossip} submitted and saw refused.
        """
        return sum(v for k, v in gossip.counters.items()
                   if k.startswith("tx-refused:"))

    def test_false_claim_scored(self) -> None:
        """
        An entry whose transaction's txid is not the claimed one is
        skipped and costs the sender C{invalid-tx} once per message; the
        other entries are still taken.
        """
        a, b, c = payment(10), payment(11), payment(12)
        line = txs_line([b'["' + b.txid.hex().encode() + b'",'
                         + a.encode() + b"]",
                         b'["' + c.txid.hex().encode() + b'",'
                         + a.encode() + b"]",
                         txs_entry(c)])
        parses = self.count_parses()
        self.sender.send_line("txs", line)
        self.cluster.net.flush()
        self.assertEqual(parses[0], 3)
        gossip = self.receiver.gossip
        self.assertEqual(gossip.counters["tx-refused:txid-mismatch"], 2)
        self.assertEqual(self.receiver.manager.peers.counters["invalid-tx"], 1)
        self.assertAlmostEqual(self.receiver.scores.score(IPS[0]), 20)
        self.assertNotIn(a.txid, gossip.seen_txs)
        self.assertEqual(sum(v for k, v in gossip.counters.items()
                             if k.startswith("tx-refused:")
                             and k != "tx-refused:txid-mismatch"), 1)

    def test_payments_finalize_in_batches(self) -> None:
        """
        Payments submitted on one node reach and finalize on all four in
        C{txs} lines (no single C{tx}), fewer lines than transactions,
        and with fewer duplicate copies than when each node echoed each
        transaction to every peer.
        """
        node = node_of(self.cluster, 0)
        n = 40
        fan = fan_out(node, n)
        result_of(node.submit(fan))
        self.cluster.advance(1)
        payments = [sign_inputs(Transaction(
            (TxIn(OutPoint(fan.txid, i), key(0).public),),
            (TxOut(5 * params.COIN - 2_000, addr(key(0))),)), "devnet",
            [key(0)]) for i in range(n)]
        for tx in payments:
            result_of(node.submit(tx))
        self.cluster.advance(2)
        for i in range(4):
            mempool = node_of(self.cluster, i).mempool
            with self.subTest(i):
                self.assertTrue(all(
                    mempool.state_of(t.txid) == "finalized"
                    or result_of(node_of(self.cluster, i).store
                                 .get_tx_location(t.txid)) is not None
                    for t in payments))
        services = [service_of(self.cluster, i) for i in range(4)]
        sent_tx = sum(c.sent["tx"] for s in services
                      for c in s.manager.peers.ready.values())
        lines = sum(s.gossip.counters["txs-sent"] for s in services)
        carried = sum(s.gossip.counters["txs-sent-txs"] for s in services)
        self.assertEqual(sent_tx, 0)
        self.assertLess(lines, carried)
        duplicates = sum(s.gossip.counters["tx-duplicate"] for s in services)
        print(f"\nduplicate transactions received per payment, all nodes: "
              f"{duplicates / (n + 1):.2f}")
        # Before: each peer echoed each transaction to all (origin
        # included): 9 duplicates per transaction in a 4-node mesh.
        self.assertLessEqual(duplicates, 6 * (n + 1))

    def test_rate_limit_counts_transactions(self) -> None:
        """
        The C{txs} limit takes one token per transaction: a line of more
        transactions than the bucket holds is dropped (rate-limited)
        although few lines were sent.
        """
        clock = Clock()
        limiter = RateLimiter(clock, DEFAULT_RATE_LIMITS)
        rate, burst = DEFAULT_RATE_LIMITS["txs"]
        self.assertGreaterEqual(rate, 3000)
        self.assertTrue(limiter.allow("txs", int(burst) - 10))
        self.assertFalse(limiter.allow("txs", 11))
        self.assertTrue(limiter.allow("txs", 10))
        clock.advance(1)
        self.assertTrue(limiter.allow("txs", int(rate)))
        manager = self.receiver.manager
        conn = manager.peers.ready[IPS[0]]
        conn.limiter = RateLimiter(conn.clock, {"txs": (10.0, 20.0)})
        big = TxsMsg.of([payment(i) for i in range(100, 121)])
        self.sender.send(big)
        self.cluster.net.flush()
        self.assertEqual(manager.peers.counters["rate-limited"], 1)
        self.assertEqual(conn.received["txs"], 0)
        self.sender.send(TxsMsg.of([payment(i) for i in range(200, 220)]))
        self.cluster.net.flush()
        self.assertEqual(conn.received["txs"], 1)


class BatchingUnitTests(unittest.TestCase):
    """
    The C{txs} queue of one L{Gossip}, with fake peers and a clock.
    """

    class Peer:
        """
        A ready connection recording the lines sent to it.
        """

        def __init__(self) -> None:
            self.lines: list[bytes] = []
            self.ready_serial = 0

        def send_line(self, name: str, line: bytes) -> bool:
            assert name == "txs"
            self.lines.append(line)
            return True

    class Manager:
        """
        The part of the peer manager gossip uses here.
        """

        def __init__(self, peers: dict[str, Any]) -> None:
            self.ready = peers
            self.ready_serial = 0

        def dense(self) -> bool:
            return False

    def make(self, **settings: Any) -> tuple[Gossip, Clock, list[Any]]:
        clock = Clock()
        peers = [self.Peer() for _ in range(3)]
        manager = self.Manager({str(i): p for i, p in enumerate(peers)})
        gossip = Gossip(None, manager, clock,  # type: ignore[arg-type]
                        P2PSettings(**settings))
        return gossip, clock, peers

    def test_delay_count_bytes_and_source(self) -> None:
        """
        Queued transactions go out after C{tx_batch_delay} in one line per
        peer, without the peer each came from; C{tx_batch_count} flushes
        at once; lines stay within C{tx_batch_bytes} and the cap; a
        stopped gossip leaves no timer.
        """
        gossip, clock, peers = self.make(tx_batch_count=5,
                                         tx_batch_delay=0.01)
        txs = [payment(i) for i in range(7)]
        gossip.outbox.enqueue(txs[0], peers[0])  # type: ignore[arg-type]
        gossip.outbox.enqueue(txs[1], None)
        self.assertEqual([p.lines for p in peers], [[], [], []])
        clock.advance(0.01)
        got = [[parse_line(line) for line in p.lines] for p in peers]
        self.assertEqual(got[0], [TxsMsg.of([txs[1]])])
        self.assertEqual(got[1], [TxsMsg.of(txs[:2])])
        for i in range(2, 7):
            gossip.outbox.enqueue(txs[i], None)
        self.assertEqual(len(peers[2].lines), 2)
        self.assertEqual(parse_line(peers[2].lines[1]), TxsMsg.of(txs[2:7]))
        gossip.outbox.enqueue(txs[0], None)
        gossip.stop()
        self.assertEqual(clock.getDelayedCalls(), [])
        size = len(txs_entry(txs[0]))
        gossip, clock, peers = self.make(tx_batch_bytes=2 * size + 30,
                                         tx_batch_delay=0.01)
        for tx in txs:
            gossip.outbox.enqueue(tx, None)
        clock.advance(0.01)
        lines = peers[0].lines
        self.assertGreaterEqual(len(lines), 4)
        self.assertTrue(all(len(line) <= 2 * size + 30 for line in lines))
        self.assertEqual([t for line in lines
                          for t, _ in parse_line(line).txs],  # type: ignore
                         [t.txid for t in txs])


class KnownBlockTests(unittest.TestCase):
    """
    A committed-block announcement of a block we hold is dropped on its
    header, without building its transactions.
    """

    def test_known_block_not_parsed(self) -> None:
        """
        Announcing our tip again (and a block below it) builds no
        transaction and no certificate; a block whose rest does not parse
        costs C{bad-message}.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        cluster.advance(1)
        node = node_of(cluster, 0)
        fan = fan_out(node, 3)
        result_of(node.submit(fan))
        cluster.advance(6)
        receiver = service_of(cluster, 1)
        chain = receiver.node.chain
        self.assertGreaterEqual(chain.height, 2)
        tip = result_of(receiver.node.committed_block(chain.height))
        below = result_of(receiver.node.committed_block(chain.height - 1))
        built = [0]
        real = Block.from_obj.__func__  # type: ignore[attr-defined]

        def counting(cls: type[Block], obj: Any) -> Block:
            built[0] += 1
            return real(cls, obj)  # type: ignore[no-any-return]

        self.patch(Block, "from_obj", classmethod(counting))
        sender = service_of(cluster, 0).manager.peers.ready[IPS[1]]
        sync = receiver.sync
        receiver.gossip.seen_blocks = SeenCache(10)
        known = sync.counters["block-known"]
        sender.send(BlockMsg(*tip))
        sender.send(BlockMsg(*below))
        cluster.net.flush()
        self.assertEqual(built[0], 0)
        self.assertEqual(sync.counters["block-known"] - known, 2)
        self.assertEqual(receiver.manager.peers.counters["bad-message"], 0)
        block, commit = tip
        ahead = BlockMsg(block, commit).to_obj()
        ahead["block"]["header"]["height"] = chain.height + 5
        ahead["block"]["txs"] = [5]
        sender.send_line("block", encoding.canonical(ahead))
        cluster.net.flush()
        self.assertEqual(receiver.manager.peers.counters["bad-message"], 1)
        self.assertEqual(sync.counters["block-bad-message"], 1)


class DispatchTests(unittest.TestCase):
    """
    The manager routes messages by type to the wired handlers.
    """

    def registry(self, clock: Clock) -> PeerRegistry[Any]:
        """
        An empty peer set on C{clock}.
        """
        return PeerRegistry(clock, P2PSettings(), random.Random(0),
                            PeerTable(None, clock), Scores(clock))

    def test_routes_follow_wiring(self) -> None:
        """
        A message type without a wired handler is counted unhandled;
        wiring gossip (in the manager's constructor) routes it, to the
        handler gossip has when the message arrives.
        """
        clock = Clock()
        manager = PeerManager(None, self.registry(clock))  # type: ignore
        msg = TxsMsg.of([payment(1)])
        manager.message_received(None, msg)  # type: ignore[arg-type]
        self.assertEqual(manager.peers.counters["unhandled:txs"], 1)
        got: list[Any] = []
        peers = self.registry(clock)
        gossip = Gossip(None, peers, clock,  # type: ignore[arg-type]
                        P2PSettings())
        manager = PeerManager(None, peers, gossip)  # type: ignore[arg-type]
        gossip.txs_received = (  # type: ignore[method-assign]
            lambda conn, m: got.append(("txs_received", m)))
        manager.message_received(None, msg)  # type: ignore[arg-type]
        self.assertEqual(got, [("txs_received", msg)])

    def test_type_handled_twice(self) -> None:
        """
        Two handlers for one message type are refused when the table is
        built, and so is a handler for a type the connection handles
        itself.
        """
        clock = Clock()
        gossip = Gossip(None, self.registry(clock), clock,  # type: ignore
                        P2PSettings())
        with self.assertRaises(ValueError):
            HandlerTable(gossip.handlers(), {"txs": gossip.tx_received})
        with self.assertRaises(ValueError):
            HandlerTable(gossip.handlers(), reserved={"tx"})


class AdmissionSliceTests(ClusterTestCase):
    """
    Transactions from peers are admitted at most C{admit_slice} per
    reactor turn; the rest wait in order, so other messages are handled
    between slices.
    """

    def admissions(self, gossip: Gossip) -> list[bytes]:
        """
        Record the transactions C{gossip} hands to finality, in order.
        """
        seen: list[bytes] = []
        real = gossip.admission._submit

        def recording(conn: Any, tx: Transaction) -> None:
            seen.append(tx.txid)
            real(conn, tx)

        self.patch(gossip.admission, "_submit", recording)
        return seen

    def test_big_batch_admitted_in_slices_in_order(self) -> None:
        """
        A C{txs} batch of 2.5 slices: one slice is admitted as it
        arrives, the next one per reactor turn, in the batch's order; a
        copy of a waiting transaction is a duplicate, not queued twice.
        """
        gossip = self.receiver.gossip
        conn = self.receiver.manager.peers.ready[IPS[0]]
        self.patch(gossip.admission, "settings", replace(gossip.settings,
                                               admit_slice=4))
        admitted = self.admissions(gossip)
        batch = [payment(100 + i) for i in range(10)]
        gossip.txs_received(conn, TxsMsg.of(batch))
        self.assertEqual(admitted, [t.txid for t in batch[:4]])
        duplicates = gossip.counters["tx-duplicate"]
        gossip.txs_received(conn, TxsMsg.of([batch[7]]))
        self.assertEqual(gossip.counters["tx-duplicate"], duplicates + 1)
        self.assertEqual(len(admitted), 4)
        # Each reactor turn runs one slice (task.Clock would run the
        # re-scheduled turns in one advance, so turns are taken by hand).
        gossip.admission._admit_some()
        self.assertEqual(admitted, [t.txid for t in batch[:8]])
        self.assertEqual(gossip.counters["tx-admission-deferred"], 1)
        gossip.admission._admit_some()
        self.assertEqual(admitted, [t.txid for t in batch])
        self.cluster.clock.advance(0)
        self.assertEqual(len(admitted), 10)

    def test_queue_bounded(self) -> None:
        """
        Beyond C{admit_queue} waiting transactions, new ones are dropped
        and counted.
        """
        gossip = self.receiver.gossip
        conn = self.receiver.manager.peers.ready[IPS[0]]
        self.patch(gossip.admission, "settings", replace(
            gossip.settings, admit_slice=2, admit_queue=3))
        admitted = self.admissions(gossip)
        gossip.txs_received(conn, TxsMsg.of([payment(200 + i)
                                             for i in range(7)]))
        self.assertEqual(len(admitted), 2)
        self.assertEqual(gossip.counters["tx-dropped:admission-queue-full"],
                         2)
        self.cluster.clock.advance(0)
        self.assertEqual(len(admitted), 5)

    def test_waiting_counts_as_undecided(self) -> None:
        """
        Transactions from peers waiting for admission count in the
        node's undecided backlog, which RPC admission control bounds.
        """
        gossip = self.receiver.gossip
        node = node_of(self.cluster, 1)
        self.assertIs(node.p2p, self.receiver)
        conn = self.receiver.manager.peers.ready[IPS[0]]
        self.patch(gossip.admission, "settings", replace(gossip.settings,
                                               admit_slice=2))
        before = node.admission.undecided()
        gossip.txs_received(conn, TxsMsg.of([payment(300 + i)
                                             for i in range(6)]))
        self.assertEqual(gossip.admission.waiting, 4)
        self.assertEqual(node.admission.undecided(), before + 4)
        self.cluster.clock.advance(0)
        self.assertEqual(gossip.admission.waiting, 0)


class ConnectQueryTests(ClusterTestCase):
    """
    A peer that connects is asked for its votes on what is open here.
    """

    def test_new_peer_asked_about_open_transactions(self) -> None:
        """
        Undecided and recently rejected transactions are asked about,
        decided ones are not; only the new peer is asked.
        """
        node = node_of(self.cluster, 0)
        service = service_of(self.cluster, 0)
        fan = fan_out(node, 3)
        result_of(node.submit(fan))
        self.assertEqual(node.mempool.state_of(fan.txid), "pending")
        self.assertIn(fan.txid, node.finality.open_txids(10)[0])
        conn = service.manager.peers.ready[IPS[1]]
        sent: list[Any] = []
        self.patch(conn, "send", lambda msg: sent.append(msg) or True)
        service.gossip.peer_ready(conn)
        asked = [t for msg in sent if isinstance(msg, GetTxVotes)
                 for t in msg.txids]
        self.assertEqual(asked, [fan.txid])
        self.cluster.advance(1)
        self.assertEqual(node.mempool.state_of(fan.txid), "finalized")
        self.assertNotIn(fan.txid, node.finality.open_txids(10)[0])
        sent.clear()
        service.gossip.peer_ready(conn)
        self.assertEqual([m for m in sent if isinstance(m, GetTxVotes)], [])

    def test_rejected_ones_asked_for_final_approvals(self) -> None:
        """
        The undecided ones are asked for every vote, the recently
        rejected ones for the approvals of a peer holding them final.
        """
        service = service_of(self.cluster, 0)
        undecided, rejected = b"\x01" * 32, b"\x02" * 32
        self.patch(node_of(self.cluster, 0).finality, "open_txids",
                   lambda limit: ([undecided], [rejected]))
        conn = service.manager.peers.ready[IPS[1]]
        sent: list[Any] = []
        self.patch(conn, "send", lambda msg: sent.append(msg) or True)
        service.gossip.peer_ready(conn)
        self.assertEqual([m for m in sent if isinstance(m, GetTxVotes)],
                         [GetTxVotes((undecided,), False),
                          GetTxVotes((rejected,), True)])

    def test_dense_mesh_asks_only_about_rejected_ones(self) -> None:
        """
        With more than C{relay_fanout} other ready peers a new peer is
        asked only for the approvals it holds final on the recently
        rejected transactions (votes on undecided ones come in bundles and
        by relay, and the periodic queries ask about what stalls; a
        rejected one may have been finalized on the other side of a
        partition that just healed); with C{relay_fanout} others or fewer
        it is asked about both, as a node coming back from isolation asks
        its first peers.
        """
        service = service_of(self.cluster, 0)
        gossip = service.gossip
        undecided, rejected = b"\x01" * 32, b"\x02" * 32
        self.patch(node_of(self.cluster, 0).finality, "open_txids",
                   lambda limit: ([undecided], [rejected]))
        conn = service.manager.peers.ready[IPS[1]]
        self.assertEqual(len(service.manager.peers.ready), 3)
        sent: list[Any] = []
        self.patch(conn, "send", lambda msg: sent.append(msg) or True)
        self.patch(gossip, "settings", replace(gossip.settings,
                                               relay_fanout=1))
        gossip.peer_ready(conn)
        self.assertEqual([m for m in sent if isinstance(m, GetTxVotes)],
                         [GetTxVotes((rejected,), True)])
        self.assertEqual(
            gossip.counters["votes-query-on-connect-skipped:dense"], 1)
        sent.clear()
        self.patch(gossip, "settings", replace(gossip.settings,
                                               relay_fanout=2))
        gossip.peer_ready(conn)
        self.assertEqual([m for m in sent if isinstance(m, GetTxVotes)],
                         [GetTxVotes((undecided,), False),
                          GetTxVotes((rejected,), True)])

    def test_reconnected_peer_gets_asked(self) -> None:
        """
        The manager hands every completed handshake to gossip.
        """
        service = service_of(self.cluster, 0)
        seen: list[Any] = []
        self.patch(service.gossip, "peer_ready", seen.append)
        conn = service.manager.peers.ready[IPS[1]]
        conn.transport.loseConnection()
        self.cluster.advance(10)
        self.assertTrue(any(c.peer_key == IPS[1] for c in seen))
