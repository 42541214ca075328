"""
Tests for the P2P wire messages: the exact bytes of every message (golden
encodings), parsing back, every parse failure's reason code, and the size
caps that size the line receiver.
"""

from __future__ import annotations

from pathlib import Path

from twisted.trial import unittest

from timecoin import params
from timecoin.block import MAX_CERT_VOTES, Block, BlockHeader, CommitCertificate, Vote
from timecoin.consensus import BlockVote, Proposal
from timecoin.encoding import canonical
from timecoin.finality import TxVote, TxVoteBatch
from timecoin.liveness import Heartbeat
from timecoin.p2p.aggregation import VoteBundleMsg
from timecoin.p2p.consensus_relay import BlockVoteMsg, ProposalMsg
from timecoin.p2p.fetch import GetTxs
from timecoin.p2p.handshake import HelloProof
from timecoin.p2p.messages import (
    MAX_BLOCK_ENTRY_BYTES,
    MAX_COMMIT_BYTES,
    MAX_LINE_BYTES,
    MESSAGES,
    BlockMsg,
    Blocks,
    Error,
    GetBlocks,
    GetPeers,
    GetTip,
    GetTxVotes,
    HeartbeatMsg,
    Hello,
    Message,
    MessageError,
    Peers,
    Ping,
    Pong,
    Tip,
    TxMsg,
    TxsMsg,
    TxVoteMsg,
    TxVotesMsg,
    blocks_reply,
    parse_line,
)
from timecoin.p2p.reach import ReachMsg
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut

ROOT = Path(__file__).resolve().parent.parent


def filled(byte: int, n: int) -> bytes:
    """
    C{n} copies of C{byte}.
    """
    return bytes([byte]) * n


def sample_block() -> tuple[Block, CommitCertificate]:
    """
    A small fixed block (not valid on any chain) and a one-vote
    certificate for it.
    """
    block = Block(BlockHeader(1, filled(0x77, 32), filled(0x88, 32), 1000,
                              filled(0x99, 32)), filled(0xAA, 64), (), None)
    commit = CommitCertificate(1, 0, block.hash,
                               (Vote(filled(0xBB, 32), filled(0xCC, 64)),))
    return block, commit


BLOCK_JSON = (
    '{"commit":null,"header":{"commit_hash":"' + "00" * 32 + '","height":1,'
    '"merkle_root":"' + "88" * 32 + '","prev_hash":"' + "77" * 32 + '",'
    '"producer":"' + "99" * 32 + '","round":0,"timestamp":1000,"version":1},'
    '"signature":"' + "aa" * 64 + '","txs":[]}')
COMMIT_JSON = (
    '{"block_hash":"8a9fdf4796388d755dd63dbef8ba1df02602f89d41e329ad7aa7a530'
    '9adae9b7","height":1,"round":0,"votes":[{"signature":"' + "cc" * 64
    + '","voter":"' + "bb" * 32 + '"}]}')


def golden() -> list[tuple[Message, str]]:
    """
    One instance of every message type and its exact line.
    """
    block, commit = sample_block()
    tx = Transaction((TxIn(OutPoint(filled(0x11, 32), 0), filled(0x22, 32),
                           filled(0x33, 64)),), (TxOut(5000, "TIME0addr"),))
    vote = TxVote(filled(0x44, 32), "approve", 7, filled(0x55, 32),
                  filled(0x66, 64))
    return [
        (Hello("devnet", 1, filled(0xAB, 32), 5, 24200, filled(0xCD, 32),
               "round-robin", bytes(range(8)), "timecoin/0.1.0"),
         '{"genesis":"' + "ab" * 32 + '","height":5,"listen_port":24200,'
         '"network":"devnet","nonce":"0001020304050607","policy":"round-robin",'
         '"pubkey":"' + "cd" * 32 + '","type":"hello",'
         '"user_agent":"timecoin/0.1.0","version":1}'),
        (Error("wrong-genesis", "ours is ab"),
         '{"detail":"ours is ab","reason":"wrong-genesis","type":"error"}'),
        (Ping(42), '{"nonce":42,"type":"ping"}'),
        (ReachMsg(True), '{"every":true,"type":"reach"}'),
        (Pong(42), '{"nonce":42,"type":"pong"}'),
        (GetPeers(3), '{"id":3,"type":"get_peers"}'),
        (Peers(3, ("10.0.0.1:24200", "[::1]:24200")),
         '{"id":3,"peers":["10.0.0.1:24200","[::1]:24200"],"type":"peers"}'),
        (GetBlocks(1, 100, 4),
         '{"count":100,"id":4,"start":1,"type":"get_blocks"}'),
        (Blocks(4, ((block, commit),)),
         '{"blocks":[{"block":' + BLOCK_JSON + ',"commit":' + COMMIT_JSON
         + '}],"id":4,"type":"blocks"}'),
        (GetTip(5), '{"id":5,"type":"get_tip"}'),
        (Tip(5, 9, filled(0xEE, 32)),
         '{"hash":"' + "ee" * 32 + '","height":9,"id":5,"type":"tip"}'),
        (TxMsg(tx),
         '{"tx":{"data":{},"inputs":[{"pubkey":"' + "22" * 32
         + '","signature":"' + "33" * 64 + '","txid":"' + "11" * 32
         + '","vout":0}],"kind":"transfer","lock_time":0,"outputs":'
         '[{"address":"TIME0addr","value":5000}],"version":1},"type":"tx"}'),
        (TxsMsg.of([tx]),
         '{"txs":[["' + tx.txid.hex() + '",{"data":{},"inputs":[{"pubkey":"'
         + "22" * 32 + '","signature":"' + "33" * 64 + '","txid":"'
         + "11" * 32 + '","vout":0}],"kind":"transfer","lock_time":0,'
         '"outputs":[{"address":"TIME0addr","value":5000}],"version":1}]],'
         '"type":"txs"}'),
        (TxVoteMsg(vote),
         '{"type":"tx_vote","vote":{"decision":"approve","height":7,'
         '"signature":"' + "66" * 64 + '","txid":"' + "44" * 32
         + '","voter":"' + "55" * 32 + '"}}'),
        (TxVotesMsg(TxVoteBatch(filled(0x55, 32), 7,
                                ((filled(0x44, 32), "approve"),
                                 (filled(0x47, 32), "reject")),
                                filled(0x66, 64))),
         '{"batch":{"decisions":[["' + "44" * 32 + '","approve"],["'
         + "47" * 32 + '","reject"]],"height":7,"signature":"' + "66" * 64
         + '","voter":"' + "55" * 32 + '"},"type":"tx_votes"}'),
        (GetTxVotes((filled(0x44, 32), filled(0x47, 32))),
         '{"txids":["' + "44" * 32 + '","' + "47" * 32
         + '"],"type":"get_tx_votes"}'),
        (GetTxs((filled(0x44, 32),)),
         '{"txids":["' + "44" * 32 + '"],"type":"get_txs"}'),
        (BlockMsg(block, commit),
         '{"block":' + BLOCK_JSON + ',"commit":' + COMMIT_JSON
         + ',"type":"block"}'),
        (HeartbeatMsg(Heartbeat(filled(0x12, 32), 1_700_000_000_000, 9,
                                filled(0x34, 64))),
         '{"heartbeat":{"height":9,"pubkey":"' + "12" * 32
         + '","seq":1700000000000,"signature":"' + "34" * 64
         + '"},"type":"heartbeat"}'),
        (ProposalMsg(Proposal(block, 2, 1, filled(0x99, 32),
                              filled(0x5A, 64))),
         '{"proposal":{"block":' + BLOCK_JSON + ',"proposer":"' + "99" * 32
         + '","round":2,"signature":"' + "5a" * 64 + '","valid_round":1},'
         '"type":"proposal"}'),
        (BlockVoteMsg(BlockVote("precommit", 1, 2, block.hash,
                                filled(0xBB, 32), filled(0xCC, 64))),
         '{"type":"block_vote","vote":{"block_hash":"' + block.hash.hex()
         + '","height":1,"phase":"precommit","round":2,"signature":"'
         + "cc" * 64 + '","voter":"' + "bb" * 32 + '"}}'),
        (HelloProof(filled(0xEE, 64)),
         '{"signature":"' + "ee" * 64 + '","type":"hello_proof"}'),
        (VoteBundleMsg(
            (BlockVote("prevote", 1, 0, block.hash, filled(0xBB, 32),
                       filled(0xCC, 64)),),
            (TxVoteBatch(filled(0x55, 32), 7,
                         ((filled(0x44, 32), "approve"),), filled(0x66, 64)),)),
         '{"batches":[{"decisions":[["' + "44" * 32 + '","approve"]],'
         '"height":7,"signature":"' + "66" * 64 + '","voter":"' + "55" * 32
         + '"}],"forward":false,"type":"vote_bundle","votes":[{"block_hash":"'
         + block.hash.hex() + '","height":1,"phase":"prevote","round":0,'
         '"signature":"' + "cc" * 64 + '","voter":"' + "bb" * 32 + '"}]}'),
    ]


class QueryFlagTests(unittest.TestCase):
    """
    C{get_tx_votes} with C{final} (protocol 3).
    """

    def test_final_flag(self) -> None:
        """
        The flag is on the wire only when set (a protocol-2 query keeps its
        bytes), parses back, and must be a boolean.
        """
        query = GetTxVotes((filled(0x44, 32),), True)
        line = query.encode()
        self.assertEqual(line, b'{"final":true,"txids":["' + b"44" * 32
                         + b'"],"type":"get_tx_votes"}')
        self.assertEqual(parse_line(line), query)
        self.assertEqual(parse_line(line.replace(b"true", b"false")),
                         GetTxVotes((filled(0x44, 32),)))
        with self.assertRaises(MessageError) as caught:
            parse_line(line.replace(b"true", b"1"))
        self.assertEqual(caught.exception.reason, "bad-message")


class GoldenTests(unittest.TestCase):
    """
    Every message encodes to fixed bytes and parses back to itself.
    """

    def test_every_type_has_a_golden(self) -> None:
        """
        The golden list covers every registered message type once.
        """
        self.assertEqual(sorted(m.name for m, _ in golden()),
                         sorted(MESSAGES))

    def test_encodings(self) -> None:
        """
        Each message's line is exactly the golden bytes, is the canonical
        JSON of its object (also for the spliced block encodings), and
        parses back to an equal message.
        """
        for msg, line in golden():
            with self.subTest(msg.name):
                encoded = msg.encode()
                self.assertEqual(encoded, line.encode(), msg.name)
                self.assertEqual(encoded, canonical(msg.to_obj()), msg.name)
                self.assertEqual(parse_line(encoded), msg, msg.name)

    def test_non_canonical_input_accepted(self) -> None:
        """
        We accept any valid JSON (spaces, key order, CRLF), and ignore
        fields we do not know.
        """
        msg = parse_line(b'{ "type" : "ping", "nonce": 7, "future": [1] }\r')
        self.assertEqual(msg, Ping(7))

    def test_documented(self) -> None:
        """
        docs/protocol.md has a section for every message type.
        """
        text = (ROOT / "docs" / "protocol.md").read_text()
        for name in MESSAGES:
            self.assertIn(f"### `{name}`", text, name)


class ParseErrorTests(unittest.TestCase):
    """
    Bad lines fail with a stable reason code.
    """

    def assertReason(self, line: bytes, reason: str) -> MessageError:
        """
        Parsing C{line} fails with C{reason}; returns the error.
        """
        e = self.assertRaises(MessageError, parse_line, line)
        self.assertEqual(e.reason, reason, str(e))
        return e

    def test_framing_level(self) -> None:
        """
        Non-UTF-8, non-JSON, floats, non-objects, a missing or non-string
        type, and an unknown type each have their reason.
        """
        self.assertReason(b'{"type":"ping","nonce":1}\xff', "not-utf8")
        self.assertReason(b"hello there", "bad-json")
        self.assertReason(b'{"type":"ping","nonce":1.5}', "bad-json")
        self.assertReason(b'{"type":"ping","nonce":NaN}', "bad-json")
        self.assertReason(b"[1,2]", "not-an-object")
        self.assertReason(b'{"nonce":1}', "no-type")
        self.assertReason(b'{"type":5}', "no-type")
        e = self.assertReason(b'{"type":"version"}', "unknown-type")
        self.assertEqual(e.detail, "version")

    def test_fields(self) -> None:
        """
        Missing fields, wrong types, bad hex, out-of-range values and
        over-long lists are C{bad-message}.
        """
        for line in [b'{"type":"ping"}',
                     b'{"type":"ping","nonce":-1}',
                     b'{"type":"ping","nonce":"1"}',
                     b'{"type":"ping","nonce":true}',
                     b'{"type":"get_blocks","id":1,"start":1,"count":101}',
                     b'{"type":"get_blocks","id":1,"start":0,"count":1}',
                     b'{"type":"get_tip","id":4294967296}',
                     b'{"type":"tip","id":1,"height":1,"hash":"zz"}',
                     b'{"type":"tip","id":1,"height":1,"hash":"AB"}',
                     b'{"type":"peers","id":1,"peers":' + str(
                         ["1.2.3.4:1"] * 251).replace("'", '"').encode()
                     + b"}",
                     b'{"type":"tx","tx":{"kind":"transfer"}}',
                     b'{"type":"tx_vote","vote":{"decision":"maybe"}}',
                     b'{"type":"tx_votes","batch":{"voter":"' + b"55" * 32
                     + b'","height":1,"signature":"' + b"66" * 64
                     + b'","decisions":[["' + b"47" * 32 + b'","approve"],["'
                     + b"44" * 32 + b'","approve"]]}}',
                     b'{"type":"tx_votes","batch":{"voter":"' + b"55" * 32
                     + b'","height":1,"signature":"' + b"66" * 64
                     + b'","decisions":[]}}',
                     b'{"type":"get_tx_votes","txids":["00"]}',
                     b'{"type":"block","block":{},"commit":null}',
                     b'{"type":"txs","txs":[["00",{}]]}',
                     b'{"type":"txs","txs":[5]}',
                     b'{"type":"txs","txs":[["' + b"44" * 32 + b'",5]]}',
                     b'{"type":"txs","txs":[["' + b"44" * 32 + b'",{}]'
                     + (b',["' + b"44" * 32 + b'",{}]') * 1024 + b"]}",
                     b'{"type":"txs"}',
                     b'{"type":"blocks","id":1,"blocks":[5]}']:
            with self.subTest(line[:40]):
                self.assertReason(line, "bad-message")

    def test_hello_fields(self) -> None:
        """
        A hello with a short genesis, a port out of range or a long user
        agent is refused.
        """
        good = golden()[0][0].to_obj()
        for field, value in [("genesis", "ab" * 31), ("listen_port", 70000),
                             ("user_agent", "x" * 129), ("nonce", "00"),
                             ("network", 1)]:
            obj = dict(good, **{field: value})
            with self.subTest(field):
                self.assertReason(canonical(obj), "bad-message")

    def test_per_type_cap(self) -> None:
        """
        A line longer than its type's cap is C{message-too-large}, even
        when well formed.
        """
        line = b'{"type":"ping","nonce":1,"pad":"' + b"x" * 200 + b'"}'
        e = self.assertReason(line, "message-too-large")
        self.assertIn("ping", e.detail)


class SizeTests(unittest.TestCase):
    """
    The size caps fit the largest legal messages.
    """

    def maximal_entry(self, seq: int) -> tuple[Block, CommitCertificate]:
        """
        A block as large as the block size limit allows and a certificate
        with the most votes a certificate may hold.
        """
        header = BlockHeader(seq, filled(0x77, 32), filled(0x88, 32), 1000,
                             filled(0x99, 32))
        empty = Block(header, filled(0xAA, 64), (Transaction(
            (), (TxOut(1, "TIME0addr"),), "coinbase", {"pad": ""}),), None)
        pad = "x" * (params.MAX_BLOCK_BYTES - empty.size)
        block = Block(header, filled(0xAA, 64), (Transaction(
            (), (TxOut(1, "TIME0addr"),), "coinbase", {"pad": pad}),), None)
        self.assertEqual(block.size, params.MAX_BLOCK_BYTES)
        votes = tuple(Vote(i.to_bytes(32, "big"), filled(0xFF, 64))
                      for i in range(MAX_CERT_VOTES))
        commit = CommitCertificate(2**63 - 1, 1_000_000, block.hash, votes)
        self.assertLessEqual(len(canonical(commit.to_obj())), MAX_COMMIT_BYTES)
        return block, commit

    def test_caps_are_consistent(self) -> None:
        """
        The longest type cap is the line receiver's C{MAX_LINE_BYTES}; a
        maximal block announcement fits its cap; a C{blocks} reply of
        maximal blocks holds as many as fit (at least one) and stays within
        C{MAX_LINE_BYTES}.
        """
        self.assertEqual(max(c.max_bytes for c in MESSAGES.values()),
                         MAX_LINE_BYTES)
        first = self.maximal_entry(1)
        announce = BlockMsg(*first).encode()
        self.assertLessEqual(len(announce), BlockMsg.max_bytes)
        self.assertLessEqual(len(announce), MAX_BLOCK_ENTRY_BYTES + 64)
        self.assertEqual(parse_line(announce).name, "block")
        reply = blocks_reply(7, [first, self.maximal_entry(2)])
        self.assertEqual(len(reply.blocks), 1)
        line = reply.encode()
        self.assertLessEqual(len(line), MAX_LINE_BYTES)
        parsed = parse_line(line)
        assert isinstance(parsed, Blocks)
        self.assertEqual(parsed.blocks[0][0].hash, first[0].hash)

    def test_small_blocks_fill_reply(self) -> None:
        """
        Small blocks fill a reply up to the 100-block count limit.
        """
        block, commit = sample_block()
        reply = blocks_reply(1, [(block, commit)] * 150)
        self.assertEqual(len(reply.blocks), 100)

    def test_oversized_block_refused(self) -> None:
        """
        A block over the block size limit is refused when its announcement
        is unpacked (its header alone is parsed at once).
        """
        block, commit = self.maximal_entry(1)
        tx = block.txs[0]
        bigger = Block(block.header, block.signature, (Transaction(
            (), tx.outputs, "coinbase", {"pad": tx.data["pad"] + "x"}),),
            None)
        announced = parse_line(BlockMsg(bigger, commit).encode())
        assert isinstance(announced, BlockMsg)
        self.assertEqual(announced.header.hash, bigger.hash)
        e = self.assertRaises(MessageError, announced.unpack)
        self.assertEqual(e.reason, "bad-message")


class ProposalEncodingTests(unittest.TestCase):
    """
    A proposal's line is spliced around its block's cached encoding.
    """

    def test_spliced_equals_canonical(self) -> None:
        """
        For a block of many payments, and either kind of valid round, the
        spliced line is the canonical encoding and parses back.
        """
        from tests.helpers import addr, key
        from tests.helpers.chain import payment
        from timecoin.block import BlockHeader, merkle_root, sign_block
        from timecoin.consensus import sign_proposal
        from timecoin.p2p.consensus_relay import ProposalMsg
        from timecoin.tx import Transaction, TxOut
        txs = [payment(i) for i in range(1, 30)]
        coinbase = Transaction((), (TxOut(100, addr(key(1))),), "coinbase",
                               {"height": 7})
        all_txs = (coinbase, *txs)
        header = BlockHeader(height=7, prev_hash=b"\x05" * 32,
                             merkle_root=merkle_root([t.txid for t in all_txs]),
                             timestamp=9, producer=key(1).public, round=2)
        block = sign_block(key(1), "devnet", header, all_txs, None)
        for valid_round in (-1, 1):
            msg = ProposalMsg(sign_proposal(key(1), "devnet", block, 2,
                                            valid_round))
            line = msg.encode()
            self.assertEqual(line, canonical(msg.to_obj()))
            parsed = parse_line(line)
            assert isinstance(parsed, ProposalMsg)
            self.assertEqual(parsed.proposal.block.hash, block.hash)
            self.assertEqual(parsed.proposal.valid_round, valid_round)
