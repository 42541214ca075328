"""
Admission control and the C{sendrawtransaction} hot path of the RPC
server: a busy node refuses new transactions at once with -26
C{node-busy} (before decoding them), counts and shows the refusals, and
accepts again once its backlog drains; methods that do not wait answer
without a Deferred; the reply encoder writes what L{encode_json} writes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.trial import unittest

from tests.helpers import addr, key
from tests.helpers.rpc import LIMIT, BusyNodeBase, RPCTestBase
from timecoin import params
from timecoin.admission import NODE_BUSY
from timecoin.chain import TxInvalid
from timecoin.config import Config, ConfigError, load_config
from timecoin.rpc.auth import BasicAuth
from timecoin.rpc.codec import dumps, encode_json
from timecoin.rpc.errors import (
    INVALID_PARAMS,
    RPC_DESERIALIZATION_ERROR,
    RPC_VERIFY_ALREADY_IN_CHAIN,
    RPC_VERIFY_REJECTED,
)
from timecoin.rpc.server import RPCServer


class BusyTests(BusyNodeBase):
    """
    Admission control on a node whose backlog fills.
    """

    def test_refused_before_decoding(self) -> None:
        """
        While L{LIMIT} transactions are undecided, sendrawtransaction
        refuses a valid payment and even undecodable hex with -26
        node-busy, and sendtoaddress refuses before looking at the wallet
        (which holds nothing here); nothing new enters the mempool.
        """
        self.assertEqual(self.rpc_error("sendrawtransaction", "zz").code,
                         RPC_DESERIALIZATION_ERROR)
        self.fill()
        self.assertBusy(self.rpc_error("sendrawtransaction", "zz"))
        self.assertBusy(self.rpc_error("sendrawtransaction",
                                       self.payment(LIMIT)))
        self.assertBusy(self.rpc_error("sendtoaddress", addr(key(3)), 1))
        self.assertEqual(len(self.node.mempool), LIMIT)
        self.assertEqual(self.node.admission.busy_refusals, 3)

    def test_counted_and_shown(self) -> None:
        """
        getmempoolinfo shows the backlog, the bound, whether the node is
        busy and the refusals under the reason node-busy; /metrics counts
        them as mempool refusals with that reason.
        """
        info = self.rpc("getmempoolinfo")
        self.assertEqual((info["undecided"], info["maxundecided"],
                          info["busy"]), (0, LIMIT, False))
        self.fill()
        self.rpc_error("sendrawtransaction", self.payment(LIMIT))
        self.rpc_error("sendrawtransaction", self.payment(LIMIT))
        info = self.rpc("getmempoolinfo")
        self.assertEqual((info["undecided"], info["busy"]), (LIMIT, True))
        self.assertEqual(info["rejections"], {NODE_BUSY: 2})
        status, _, body = self.http(b"", method="GET",
                                    url="http://127.0.0.1:24201/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b'timecoin_mempool_refusals_total{reason="node-busy"} '
                      b'2.0', body)

    def test_recovers(self) -> None:
        """
        Once the backlog drains (here its votes time out) the node
        accepts again, and undecodable hex is a decode error again.
        """
        self.fill()
        self.assertBusy(self.rpc_error("sendrawtransaction",
                                       self.payment(LIMIT)))
        self.clock.advance(self.config.vote_timeout + 1)
        self.assertEqual(self.node.admission.undecided(), 0)
        self.assertEqual(len(self.rpc("sendrawtransaction",
                                      self.payment(LIMIT))), 64)
        self.assertEqual(self.rpc_error("sendrawtransaction", "zz").code,
                         RPC_DESERIALIZATION_ERROR)
        self.assertFalse(self.rpc("getmempoolinfo")["busy"])

    def test_batch_fills_then_refuses(self) -> None:
        """
        In one batch the first payments fill the backlog to the bound and
        the rest are refused, each reply in its place.
        """
        status, replies = self.post([
            {"jsonrpc": "2.0", "id": n, "method": "sendrawtransaction",
             "params": [self.payment(n)]} for n in range(LIMIT + 2)])
        self.assertEqual(status, 200)
        self.assertEqual([r["id"] for r in replies], list(range(LIMIT + 2)))
        self.assertEqual(["result" in r for r in replies],
                         [True] * LIMIT + [False] * 2)
        for reply in replies[LIMIT:]:
            self.assertEqual(reply["error"]["code"], RPC_VERIFY_REJECTED)
            self.assertTrue(reply["error"]["message"].startswith(NODE_BUSY))

    def test_logged_once(self) -> None:
        """
        Turning busy is logged once, with the reason code, not each
        refusal; accepting again is logged too.
        """
        self.fill()
        with capturedLogs() as events:
            for _ in range(5):
                self.rpc_error("sendrawtransaction", self.payment(LIMIT))
            self.clock.advance(self.config.vote_timeout + 1)
            self.rpc("sendrawtransaction", self.payment(LIMIT))
        mine = [e for e in events if e.get("reason") == NODE_BUSY]
        self.assertEqual([e["log_level"] for e in mine],
                         [LogLevel.warn, LogLevel.info])
        self.assertEqual(mine[1]["refused"], 5)

    def test_disabled(self) -> None:
        """
        With rpc_max_undecided 0 there is no bound.
        """
        self.config.rpc = replace(self.config.rpc, max_undecided=0)
        self.fill()
        self.rpc("sendrawtransaction", self.payment(LIMIT))
        self.assertEqual(self.node.admission.undecided(), LIMIT + 1)
        self.assertFalse(self.rpc("getmempoolinfo")["busy"])


class UnminedTests(RPCTestBase):
    """
    Admission control over finalized transactions waiting for a block
    (C{rpc_max_unmined}), on a devnet node that finalizes alone.
    """

    def make_config(self, **overrides: Any) -> Config:
        overrides.setdefault("rpc_max_unmined", LIMIT)
        return super().make_config(**overrides)

    def pay(self) -> str:
        return self.rpc("sendtoaddress", self.external_address(), 1)

    def test_refused_until_a_block(self) -> None:
        """
        With L{LIMIT} payments finalized and unmined, sendtoaddress and
        sendrawtransaction refuse node-busy saying so, getmempoolinfo
        shows why; after a block mines them the node accepts again.
        """
        for _ in range(LIMIT):
            self.pay()
        self.assertEqual(self.node.mempool.finalized_count, LIMIT)
        error = self.rpc_error("sendtoaddress", self.external_address(), 1)
        self.assertEqual(error.code, RPC_VERIFY_REJECTED)
        self.assertTrue(error.message.startswith(NODE_BUSY + ": "))
        self.assertIn(f"{LIMIT} finalized transactions waiting for a block",
                      error.message)
        self.assertEqual(self.rpc_error("sendrawtransaction", "zz").code,
                         RPC_VERIFY_REJECTED)
        info = self.rpc("getmempoolinfo")
        self.assertEqual((info["finalized"], info["maxunmined"],
                          info["busy"]), (LIMIT, LIMIT, True))
        self.assertIn("waiting for a block", info["busyreason"])
        self.block()
        self.assertEqual(self.node.mempool.finalized_count, 0)
        info = self.rpc("getmempoolinfo")
        self.assertFalse(info["busy"])
        self.assertNotIn("busyreason", info)
        self.assertEqual(len(self.pay()), 64)

    def test_disabled(self) -> None:
        """
        With rpc_max_unmined 0 finalized payments never make the node
        busy.
        """
        self.config.rpc = replace(self.config.rpc, max_unmined=0)
        for _ in range(LIMIT + 2):
            self.pay()
        self.assertEqual(self.node.mempool.finalized_count, LIMIT + 2)
        self.assertFalse(self.rpc("getmempoolinfo")["busy"])


class StoreReadTests(RPCTestBase):
    """
    sendrawtransaction reads the store only for a transaction that may be
    in a block.
    """

    def setUp(self) -> None:
        super().setUp()
        self.reads: list[bytes] = []
        lookup = self.node.store.get_tx_location

        def counting(txid: bytes) -> Any:
            self.reads.append(txid)
            return lookup(txid)

        self.node.store.get_tx_location = counting  # type: ignore[method-assign]

    def test_reads(self) -> None:
        """
        A new payment with unspent inputs and a resubmitted one still in
        the mempool cost no store read; a mined one does, and gets -27.
        """
        node = self.node
        tx = node.wallet.build_payment(node.spendable(),
                                       self.external_address(), params.COIN,
                                       "devnet")
        raw = tx.encode().hex()
        txid = self.rpc("sendrawtransaction", raw)
        self.assertEqual(txid, tx.txid.hex())
        self.assertEqual(self.rpc("sendrawtransaction", raw), txid)
        self.assertEqual(self.reads, [])
        self.block()
        self.assertEqual(self.rpc_error("sendrawtransaction", raw).code,
                         RPC_VERIFY_ALREADY_IN_CHAIN)
        self.assertEqual(self.reads, [bytes.fromhex(txid)])


class DispatchTests(unittest.TestCase):
    """
    L{RPCServer} answers synchronous methods at once and waits for the
    others, keeping a batch's order.
    """

    def setUp(self) -> None:
        self.waiting: defer.Deferred[Any] = defer.Deferred()

        def now(x: int = 1) -> int:
            """
            now ( x )
            """
            return x

        def later() -> defer.Deferred[Any]:
            """
            later
            """
            return self.waiting

        def fired() -> defer.Deferred[Any]:
            """
            fired
            """
            return defer.fail(TxInvalid("double-spend", "detail"))

        self.server = RPCServer({"now": now, "later": later,
                                 "fired": fired}, BasicAuth([]), 10_000)

    def body(self, obj: Any) -> bytes:
        return json.dumps(obj).encode()

    def test_synchronous(self) -> None:
        """
        A batch of methods that do not wait is answered before the call
        returns, failed Deferreds included (a fired failure becomes its
        error code, and no unhandled error is left behind).
        """
        d = self.server.handle_body(self.body([
            {"jsonrpc": "2.0", "id": 1, "method": "now", "params": [3]},
            {"jsonrpc": "2.0", "id": 2, "method": "fired"}]))
        status, body = self.successResultOf(d)
        replies = json.loads(body)
        self.assertEqual(replies[0]["result"], 3)
        self.assertEqual(replies[1]["error"],
                         {"code": RPC_VERIFY_REJECTED,
                          "message": "double-spend: detail"})

    def test_waits_in_order(self) -> None:
        """
        A method that waits holds the rest of its batch back; once it
        answers, every reply comes in order.
        """
        d = self.server.handle_body(self.body([
            {"jsonrpc": "2.0", "id": n, "method": m}
            for n, m in enumerate(["now", "later", "now"])]))
        self.assertNoResult(d)
        self.waiting.callback(5)
        _, body = self.successResultOf(d)
        self.assertEqual([r["result"] for r in json.loads(body)], [1, 5, 1])

    def test_waiting_failure(self) -> None:
        """
        A method whose Deferred fails later with a refusal answers -26.
        """
        d = self.server.handle_body(self.body(
            {"jsonrpc": "2.0", "id": 1, "method": "later"}))
        self.waiting.errback(TxInvalid(NODE_BUSY, "x"))
        _, body = self.successResultOf(d)
        self.assertEqual(json.loads(body)["error"]["code"],
                         RPC_VERIFY_REJECTED)

    def test_params_checked(self) -> None:
        """
        The cached signature still refuses params that do not fit, and
        named params bind.
        """
        for params_ in ([1, 2], {"y": 1}):
            _, body = self.successResultOf(self.server.handle_body(
                self.body({"jsonrpc": "2.0", "id": 1, "method": "now",
                           "params": params_})))
            self.assertEqual(json.loads(body)["error"]["code"],
                             INVALID_PARAMS)
        _, body = self.successResultOf(self.server.handle_body(self.body(
            {"jsonrpc": "2.0", "id": 1, "method": "now",
             "params": {"x": 4}})))
        self.assertEqual(json.loads(body)["result"], 4)


class EncodingTests(unittest.TestCase):
    """
    L{dumps}: the fast encoder writes exactly what L{encode_json} writes.
    """

    def test_same_bytes(self) -> None:
        """
        Plain replies and replies holding Decimals (amounts, echoed ids)
        encode as L{encode_json} does, with a newline.
        """
        for obj in ([{"jsonrpc": "2.0", "result": "ab" * 32, "id": 1}],
                    {"result": None, "error": {"code": -26, "message":
                                               "é\u2028\x00"}, "id": None},
                    {"a": [1, 2.5, True, None, {}, []], "b": "x"},
                    {"amount": Decimal("1.50000000"), "id": Decimal("1e3")},
                    [Decimal("0E-8"), {"n": Decimal("-2.00000000")}]):
            self.assertEqual(dumps(obj),
                             encode_json(obj).encode("utf-8") + b"\n")

    def test_nan_refused(self) -> None:
        """
        NaN cannot be encoded either way.
        """
        self.assertRaises(ValueError, dumps, {"x": float("nan")})


class ConfigTests(unittest.TestCase):
    """
    The C{[rpc] max_undecided} and C{max_unmined} settings.
    """

    def test_setting(self) -> None:
        """
        It defaults to 1,000, loads from C{[rpc] max_undecided}, and a
        negative value stops start-up naming it.
        """
        self.assertEqual(Config().rpc.max_undecided, 1_000)
        path = Path(self.mktemp())
        path.write_text("[rpc]\nmax_undecided = 0\n")
        config = load_config(str(path), {"datadir": self.mktemp()})
        self.assertEqual(config.rpc.max_undecided, 0)
        path.write_text("[rpc]\nmax_undecided = -1\n")
        error = self.assertRaises(ConfigError, load_config, str(path),
                                  {"datadir": self.mktemp()})
        self.assertIn("[rpc] max_undecided", str(error))

    def test_unmined_setting(self) -> None:
        """
        C{[rpc] max_unmined} defaults to 2,000, loads, and a negative
        value stops start-up naming it.
        """
        self.assertEqual(Config().rpc.max_unmined, 2_000)
        path = Path(self.mktemp())
        path.write_text("[rpc]\nmax_unmined = 0\n")
        config = load_config(str(path), {"datadir": self.mktemp()})
        self.assertEqual(config.rpc.max_unmined, 0)
        path.write_text("[rpc]\nmax_unmined = -1\n")
        error = self.assertRaises(ConfigError, load_config, str(path),
                                  {"datadir": self.mktemp()})
        self.assertIn("[rpc] max_unmined", str(error))
