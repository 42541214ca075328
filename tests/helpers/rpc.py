"""
The RPC tests' base: L{RPCTestBase} (a started devnet node with its
RPC site, called over HTTP in process with C{StubTreq}), L{BusyNodeBase}
(a node whose transactions stay undecided, for admission control), and
the constants and helpers their tests share.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import addr, key
from timecoin import params
from timecoin.address import address_of
from timecoin.admission import NODE_BUSY
from timecoin.config import Config, build_config
from timecoin.genesis import make_genesis, write_genesis
from timecoin.keys import PrivateKey
from timecoin.masternodes import Masternode
from timecoin.rpc.codec import encode_json
from timecoin.rpc.errors import (
    RPC_VERIFY_REJECTED,
)
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from timecoin.wiring import build

URL = "http://127.0.0.1:24201/"


START = 1_700_000_000.0


HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CallFailed(Exception):
    """
    An RPC call answered an error; C{code} and C{message} are its.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def basic(user: str, password: str) -> str:
    """
    An HTTP Basic C{Authorization} header value.
    """
    token = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(token).decode("ascii")


class RPCTestBase(unittest.TestCase):
    """
    A started devnet node with its RPC site, and helpers to call it.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.stopped: list[bool] = []
        self.config = self.make_config()
        self.node = build(self.config, self.clock, store=MemoryStore(),
                          stop_process=lambda: self.stopped.append(True),
                          with_p2p=False).node
        self.node.startService()
        self.addCleanup(self.node.stopService)
        self.site = build_rpc_site(self.node, self.config)
        self.stub: Any = StubTreq(self.site.resource)
        cookie = (Path(self.config.datadir) / ".cookie").read_text()
        self.auth = "Basic " + base64.b64encode(cookie.encode()).decode()

    def make_config(self, **overrides: Any) -> Config:
        """
        A resolved devnet config in a fresh data dir; C{overrides} by flat
        name (C{rpc_user}).
        """
        config = build_config({}, dict(network="devnet",
                                       datadir=self.mktemp(),
                                       block_time=2.0, **overrides))
        config.resolve()
        return config

    def http(self, body: bytes | str, auth: str | None = "cookie",
             method: str = "POST", url: str = URL,
             stub: Any = None) -> tuple[int, Any, bytes]:
        """
        Send one HTTP request; return status, headers and body.
        """
        stub = stub or self.stub
        headers = {"Content-Type": "application/json"}
        if auth == "cookie":
            headers["Authorization"] = self.auth
        elif auth is not None:
            headers["Authorization"] = auth
        data = body.encode() if isinstance(body, str) else body
        d = stub.request(method, url, data=data or None, headers=headers)
        stub.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(stub.content(response))
        return response.code, response.headers, content

    def post(self, obj: Any, **kwargs: Any) -> tuple[int, Any]:
        """
        POST C{obj} as JSON; return the status and the decoded reply
        (numbers with fractions as exact Decimals).
        """
        status, headers, body = self.http(encode_json(obj), **kwargs)
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["application/json"])
        return status, json.loads(body, parse_float=Decimal)

    def rpc(self, method: str, *params: Any) -> Any:
        """
        Call C{method} (JSON-RPC 2.0) and return its result.

        @raise CallFailed: on an error reply.
        """
        status, reply = self.post({"jsonrpc": "2.0", "id": 7,
                                   "method": method, "params": list(params)})
        self.assertEqual(status, 200)
        if "error" in reply:
            raise CallFailed(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]

    def rpc_error(self, method: str, *params: Any) -> CallFailed:
        """
        Call C{method}, which must fail; return the error.
        """
        return self.assertRaises(CallFailed, self.rpc, method, *params)

    def block(self) -> None:
        """
        Let one block time pass, so the devnet node produces a block.
        """
        height = self.node.chain.height
        self.clock.advance(2.1)
        self.assertEqual(self.node.chain.height, height + 1)

    def external_address(self, prefix: str = "TIME0") -> str:
        """
        An address no wallet of the node holds.
        """
        return address_of(PrivateKey.generate().public, prefix)


LIMIT = 2
"""The bound of the busy tests."""


class BusyNodeBase(RPCTestBase):
    """
    A node that is not a masternode (its genesis names another one), so
    transactions stay undecided until their vote timeout, with
    C{rpc_max_undecided} of L{LIMIT}; payments to fill its backlog.
    """

    def make_config(self, **overrides: Any) -> Config:
        """
        A devnet config whose genesis pays C{key(1)} and registers
        C{key(0)} as the only masternode.
        """
        self.payer = key(1)
        self.genesis = make_genesis(
            "devnet", int(START * 1000),
            [TxOut(10 * params.COIN, addr(self.payer))] * 8,
            [Masternode(key(0).public, "127.0.0.1:24200", addr(key(0)),
                        "free")])
        path = Path(self.mktemp())
        path.mkdir()
        write_genesis(path / "genesis.json", self.genesis)
        overrides.setdefault("rpc_max_undecided", LIMIT)
        return super().make_config(genesis=str(path / "genesis.json"),
                                   **overrides)

    def payment(self, vout: int) -> str:
        """
        The hex of a signed payment spending genesis output C{vout}.
        """
        amount = params.COIN
        tx = Transaction(
            (TxIn(OutPoint(self.genesis.txs[0].txid, vout),
                  self.payer.public),),
            (TxOut(amount, addr(key(2))),
             TxOut(9 * params.COIN - params.min_fee(amount),
                   addr(self.payer))))
        return sign_inputs(tx, "devnet", [self.payer]).encode().hex()

    def fill(self) -> list[str]:
        """
        Submit L{LIMIT} payments, which stay undecided: the node is busy.
        """
        txids = [self.rpc("sendrawtransaction", self.payment(n))
                 for n in range(LIMIT)]
        self.assertEqual(self.node.admission.undecided(), LIMIT)
        return txids

    def assertBusy(self, error: CallFailed) -> None:
        """
        C{error} is admission control's refusal.
        """
        self.assertEqual(error.code, RPC_VERIFY_REJECTED)
        self.assertTrue(error.message.startswith(NODE_BUSY + ": "),
                        error.message)
