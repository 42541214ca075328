"""
Tests of the operator additions to the RPC server: Bitcoin's C{rpcauth}
lines, the allowed client addresses, the raw-transaction methods
(C{createrawtransaction}, C{signrawtransactionwithwallet},
C{decoderawtransaction}) and the masternode methods (C{masternodelist},
C{masternodestatus}, C{getconsensusinfo}).
"""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from tests.helpers.rpc import HEX64, RPCTestBase, basic
from timecoin import params
from timecoin.config import ConfigError, build_config, load_config
from timecoin.rpc.auth import (
    FORBIDDEN,
    AllowList,
    RPCAuthError,
    RPCAuthLine,
    main,
    make_line,
    password_hmac,
)
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.tx import Transaction, input_signature_ok
from timecoin.wiring import build

BITCOIN_LINE = ("rt:93648e835a54c573682c2eb19f882535$"
                "7681e9c5b74bdd85e78166031d2058e1069b3ed7ed967c93fc63abba06f31144")
"""An rpcauth line of Bitcoin Core's own tests (test/functional/
rpc_users.py), with the password below."""
BITCOIN_PASSWORD = "cA773lm788buwYe4g4WT+05pKyNruVKjQ25x3n0DQcM="


class RPCAuthLineTests(unittest.TestCase):
    """
    L{RPCAuthLine}, L{make_line} and C{python -m timecoin.rpc.auth}.
    """

    def test_bitcoin_vector(self) -> None:
        """
        A line made by Bitcoin Core's share/rpcauth accepts its password
        and nothing else: HMAC-SHA256 keyed with the salt text.
        """
        line = RPCAuthLine.parse(BITCOIN_LINE)
        self.assertEqual(line.user, "rt")
        self.assertTrue(line.check("rt", BITCOIN_PASSWORD))
        self.assertFalse(line.check("rt", BITCOIN_PASSWORD + "x"))
        self.assertFalse(line.check("rx", BITCOIN_PASSWORD))
        self.assertEqual(password_hmac("93648e835a54c573682c2eb19f882535",
                                       BITCOIN_PASSWORD), line.digest)

    def test_bitcoin_conf_prefix(self) -> None:
        """
        A line copied from bitcoin.conf with its C{rpcauth=} prefix parses
        the same.
        """
        self.assertEqual(RPCAuthLine.parse("rpcauth=" + BITCOIN_LINE),
                         RPCAuthLine.parse(BITCOIN_LINE))

    def test_malformed(self) -> None:
        """
        Lines without a user, salt, dollar or a 64-hex HMAC are refused.
        """
        for text in ("", "rt", "rt:salt", ":s$" + "0" * 64, "rt:$" + "0" * 64,
                     "rt:s$abc", "rt:s$" + "g" * 64):
            self.assertRaises(RPCAuthError, RPCAuthLine.parse, text)

    def test_make_line(self) -> None:
        """
        make_line with a given password makes a line accepting it; without
        one, a fresh random password of at least 32 characters; each call
        a fresh salt.
        """
        line, password = make_line("alice", "s3cret")
        self.assertEqual(password, "s3cret")
        self.assertTrue(RPCAuthLine.parse(line.line()).check("alice",
                                                             "s3cret"))
        other, random_password = make_line("alice")
        self.assertGreaterEqual(len(random_password), 32)
        self.assertNotEqual(other.salt, line.salt)
        self.assertTrue(other.check("alice", random_password))
        self.assertRaises(RPCAuthError, make_line, "a:b")

    def test_main(self) -> None:
        """
        C{python -m timecoin.rpc.auth USER} prints an C{auth = [...]} line
        for the TOML config and a password that the line accepts.
        """
        out = io.StringIO()
        self.assertEqual(main(["bob"], out), 0)
        lines = out.getvalue().splitlines()
        auth = next(x for x in lines if x.startswith("auth = "))
        entry = json.loads(auth[len("auth = "):])[0]
        password = lines[lines.index("Your password:") + 1]
        self.assertTrue(RPCAuthLine.parse(entry).check("bob", password))
        self.assertEqual(main([], io.StringIO()), 2)


class ConfigTests(unittest.TestCase):
    """
    The C{[rpc] auth} and C{allow_ip} settings.
    """

    def write(self, text: str) -> str:
        """
        A config file holding C{text}.
        """
        path = Path(self.mktemp())
        path.write_text(text)
        return str(path)

    def test_loaded(self) -> None:
        """
        Both settings load from the [rpc] section.
        """
        config = load_config(self.write(
            f'[rpc]\nauth = ["{BITCOIN_LINE}"]\n'
            'allow_ip = ["10.0.0.0/8", "fd00::1"]\n'),
            {"datadir": self.mktemp()})
        self.assertEqual(config.rpc.auth, (BITCOIN_LINE,))
        self.assertEqual(config.rpc.allow_ip, ("10.0.0.0/8", "fd00::1"))

    def test_invalid(self) -> None:
        """
        A malformed auth line or allowed address stops start-up with a
        ConfigError naming the [rpc] section.
        """
        for text in ('[rpc]\nauth = ["nobody"]\n',
                     '[rpc]\nallow_ip = ["10.0.0.0/33"]\n',
                     '[rpc]\nallow_ip = ["example.com"]\n'):
            error = self.assertRaises(ConfigError, load_config,
                                      self.write(text), {})
            self.assertIn("[rpc]", str(error))


class AllowListTests(unittest.TestCase):
    """
    L{AllowList}: loopback always, configured networks besides.
    """

    def test_loopback_always(self) -> None:
        """
        IPv4 and IPv6 loopback (also IPv4-mapped) are allowed with an empty
        list; another address is not.
        """
        allowed = AllowList()
        for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            self.assertTrue(allowed.allows(host), host)
        for host in ("10.1.2.3", "192.168.1.1", "fd00::1",
                     "::ffff:10.1.2.3"):
            self.assertFalse(allowed.allows(host), host)

    def test_networks(self) -> None:
        """
        Addresses inside a configured CIDR or equal to a configured address
        are allowed.
        """
        allowed = AllowList(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
        for host in ("10.1.2.3", "192.168.1.7", "fd00::1",
                     "::ffff:10.9.9.9"):
            self.assertTrue(allowed.allows(host), host)
        for host in ("11.0.0.1", "192.168.1.8", "fe80::1"):
            self.assertFalse(allowed.allows(host), host)


class SiteAccessTests(unittest.TestCase):
    """
    The RPC site over a real HTTP channel: rpcauth users, and 403 for
    clients outside loopback and C{allow_ip}.
    """

    def make_site(self, **settings: Any) -> tuple[Any, str]:
        """
        A started devnet node's RPC site with C{settings} (by flat name,
        C{rpc_auth}); and the cookie as a Basic header value.
        """
        config = build_config({}, dict(network="devnet",
                                       datadir=self.mktemp(),
                                       block_time=2.0, **settings))
        config.resolve()
        from twisted.internet.task import Clock
        node = build(config, Clock(), store=MemoryStore(), with_p2p=False).node
        node.startService()
        self.addCleanup(node.stopService)
        site = build_rpc_site(node, config)
        cookie = (Path(config.datadir) / ".cookie").read_text()
        return site, basic(*cookie.split(":", 1))

    def request(self, site: Any, client: Any, method: bytes, path: bytes,
                auth: str | None, body: bytes = b"") -> tuple[int, bytes]:
        """
        One HTTP/1.1 request from C{client}; the status and body.
        """
        channel = site.buildProtocol(client)
        transport = StringTransport(peerAddress=client)
        channel.makeConnection(transport)
        headers = b"Host: node\r\nConnection: close\r\n"
        if auth:
            headers += b"Authorization: " + auth.encode() + b"\r\n"
        headers += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        channel.dataReceived(method + b" " + path + b" HTTP/1.1\r\n"
                             + headers + b"\r\n" + body)
        raw = transport.value()
        channel.connectionLost(None)
        head, _, content = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        if b"Transfer-Encoding: chunked" in head:
            content = _unchunk(content)
        return status, content

    def test_rpcauth_user(self) -> None:
        """
        A user of an [rpc] auth line gets in with its password; a wrong
        password gets 401; the cookie keeps working.
        """
        site, cookie = self.make_site(rpc_auth=[BITCOIN_LINE])
        local = IPv4Address("TCP", "127.0.0.1", 5000)
        call = b'{"method":"getblockcount","id":1}'
        status, body = self.request(site, local, b"POST", b"/",
                                    basic("rt", BITCOIN_PASSWORD), call)
        self.assertEqual((status, json.loads(body)["result"]), (200, 0))
        status, _ = self.request(site, local, b"POST", b"/",
                                 basic("rt", "nope"), call)
        self.assertEqual(status, 401)
        status, _ = self.request(site, local, b"POST", b"/", cookie, call)
        self.assertEqual(status, 200)

    def test_forbidden_address(self) -> None:
        """
        A client outside loopback and allow_ip gets 403 with a JSON error
        on every path (RPC, status page, metrics, health), even with good
        credentials; loopback over IPv4 and IPv6 is served.
        """
        site, cookie = self.make_site()
        outside = IPv4Address("TCP", "10.1.2.3", 5000)
        call = b'{"method":"getblockcount","id":1}'
        for method, path in ((b"POST", b"/"), (b"GET", b"/"),
                             (b"GET", b"/metrics"), (b"GET", b"/health"),
                             (b"GET", b"/status.json"), (b"GET", b"/nope")):
            status, body = self.request(site, outside, method, path, cookie,
                                        call if method == b"POST" else b"")
            self.assertEqual(status, 403, path)
            self.assertEqual(json.loads(body)["error"]["code"], FORBIDDEN)
        for local in (IPv4Address("TCP", "127.0.0.1", 5000),
                      IPv6Address("TCP", "::1", 5000)):
            status, _ = self.request(site, local, b"POST", b"/", cookie, call)
            self.assertEqual(status, 200, local)

    def test_allowed_network(self) -> None:
        """
        With allow_ip = ["10.0.0.0/8"], a 10.x client is served (and still
        needs credentials) while 192.168.1.1 gets 403.
        """
        site, cookie = self.make_site(rpc_allow_ip=["10.0.0.0/8"])
        call = b'{"method":"getblockcount","id":1}'
        inside = IPv4Address("TCP", "10.1.2.3", 5000)
        status, _ = self.request(site, inside, b"POST", b"/", cookie, call)
        self.assertEqual(status, 200)
        status, _ = self.request(site, inside, b"POST", b"/", None, call)
        self.assertEqual(status, 401)
        status, _ = self.request(site, IPv4Address("TCP", "192.168.1.1", 9),
                                 b"POST", b"/", cookie, call)
        self.assertEqual(status, 403)


def _unchunk(data: bytes) -> bytes:
    """
    The body of a chunked HTTP/1.1 response.
    """
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2:]
    return out


class RawTransactionTests(RPCTestBase):
    """
    createrawtransaction, signrawtransactionwithwallet,
    decoderawtransaction: the Bitcoin raw-transaction workflow.
    """

    def coin(self) -> dict[str, Any]:
        """
        The wallet's one spendable output (the devnet funds).
        """
        coins = self.rpc("listunspent")
        self.assertEqual(len(coins), 1)
        return coins[0]

    def test_create_sign_send(self) -> None:
        """
        A transaction created from a listunspent coin is unsigned
        (complete false before signing), carries the wallet key's pubkey,
        decodes to the given outputs in order, signs complete, and is
        finalized when sent; the fee is inputs minus outputs.
        """
        coin = self.coin()
        to = self.external_address()
        change = coin["address"]  # change to the spent address is not "sent"
        outputs = {to: Decimal("10"), change: Decimal("999989.9")}
        raw = self.rpc("createrawtransaction",
                       [{"txid": coin["txid"], "vout": coin["vout"]}],
                       outputs)
        tx = Transaction.decode(bytes.fromhex(raw))
        self.assertEqual(tx.inputs[0].signature, b"")
        self.assertEqual(tx.inputs[0].pubkey, self.node.wallet.key_for(
            coin["address"]).public)
        decoded = self.rpc("decoderawtransaction", raw)
        self.assertEqual(decoded["txid"], tx.txid.hex())
        self.assertEqual([(o["address"], o["value"]) for o in decoded["vout"]],
                         [(to, Decimal("10.00000000")),
                          (change, Decimal("999989.90000000"))])
        self.assertEqual(decoded["vin"][0]["signature"], "")
        signed = self.rpc("signrawtransactionwithwallet", raw)
        self.assertEqual(signed["complete"], True)
        self.assertNotIn("errors", signed)
        signed_tx = Transaction.decode(bytes.fromhex(signed["hex"]))
        self.assertEqual(signed_tx.txid, tx.txid)
        self.assertTrue(input_signature_ok(signed_tx, "devnet", 0))
        self.assertEqual(self.rpc("signrawtransactionwithwallet",
                                  signed["hex"]), signed)
        txid = self.rpc("sendrawtransaction", signed["hex"])
        self.assertEqual(txid, tx.txid.hex())
        info = self.rpc("gettransaction", txid)
        self.assertEqual(info["state"], "finalized")
        self.assertEqual(info["fee"], Decimal("0.10000000"))

    def test_outputs_array_and_locktime(self) -> None:
        """
        Outputs may be an array of one-address objects (kept in order), a
        locktime is encoded, and amounts may be strings.
        """
        coin = self.coin()
        a, b = self.external_address(), self.external_address()
        raw = self.rpc("createrawtransaction",
                       [{"txid": coin["txid"], "vout": coin["vout"]}],
                       [{b: "2"}, {a: 1}], 77)
        decoded = self.rpc("decoderawtransaction", raw)
        self.assertEqual([o["address"] for o in decoded["vout"]], [b, a])
        self.assertEqual(decoded["locktime"], 77)

    def test_spend_finalized_unmined_output(self) -> None:
        """
        An output of a finalized transaction not yet in a block is spent
        by its wallet pubkey too.
        """
        mine = self.rpc("getnewaddress")
        txid = self.rpc("sendtoaddress", mine, 5)
        vout = next(o["n"] for o in self.rpc("getrawtransaction", txid,
                                             True)["vout"]
                    if o["address"] == mine)
        raw = self.rpc("createrawtransaction", [{"txid": txid, "vout": vout}],
                       {self.external_address(): "4.9"})
        signed = self.rpc("signrawtransactionwithwallet", raw)
        self.assertTrue(signed["complete"])
        sent = self.rpc("sendrawtransaction", signed["hex"])
        self.assertEqual(self.rpc("gettransaction", sent)["state"],
                         "finalized")

    def test_create_errors(self) -> None:
        """
        Unknown or foreign outpoints, missing vout, a bad txid and a
        duplicated input are -8; a bad address -5; a bad amount -3;
        inputs not an array -32602.
        """
        coin = self.coin()
        good = {"txid": coin["txid"], "vout": coin["vout"]}
        to = {self.external_address(): 1}
        cases: list[tuple[Any, Any, int]] = [
            ([{"txid": coin["txid"], "vout": 9}], to, -8),
            ([{"txid": "00" * 32, "vout": 0}], to, -8),
            ([{"txid": coin["txid"]}], to, -8),
            ([{"txid": "zz", "vout": 0}], to, -8),
            ([good, good], to, -8),
            ([good], {"TIME0nope": 1}, -5),
            ([good], {self.external_address("TIME1"): 1}, -5),
            ([good], {self.external_address(): 0}, -3),
            ([good], {self.external_address(): "x"}, -3),
            ([good], [{"a": 1, "b": 2}], -32602),
            (good, to, -32602),
        ]
        for inputs, outputs, code in cases:
            error = self.rpc_error("createrawtransaction", inputs, outputs)
            self.assertEqual(error.code, code, (inputs, outputs))

    def test_foreign_input_incomplete(self) -> None:
        """
        An input whose pubkey is not the wallet's stays unsigned:
        complete is false and errors names its outpoint.
        """
        from timecoin.keys import PrivateKey
        from timecoin.tx import OutPoint, TxIn, TxOut

        coin = self.coin()
        foreign = TxIn(OutPoint(b"\x11" * 32, 3), PrivateKey.generate().public)
        mine = Transaction.decode(bytes.fromhex(self.rpc(
            "createrawtransaction",
            [{"txid": coin["txid"], "vout": coin["vout"]}],
            {self.external_address(): 1})))
        tx = Transaction((mine.inputs[0], foreign),
                         (TxOut(params.COIN, self.external_address()),))
        result = self.rpc("signrawtransactionwithwallet", tx.encode().hex())
        self.assertFalse(result["complete"])
        self.assertEqual([(e["txid"], e["vout"]) for e in result["errors"]],
                         [("11" * 32, 3)])
        signed = Transaction.decode(bytes.fromhex(result["hex"]))
        self.assertTrue(input_signature_ok(signed, "devnet", 0))
        self.assertEqual(signed.inputs[1].signature, b"")

    def test_decode_errors(self) -> None:
        """
        Hex that is not a canonical transaction is -22 for both
        decoderawtransaction and signrawtransactionwithwallet.
        """
        for method in ("decoderawtransaction", "signrawtransactionwithwallet"):
            for text in ("zz", "00", "7b7d"):
                self.assertEqual(self.rpc_error(method, text).code, -22)


class MasternodeMethodTests(RPCTestBase):
    """
    masternodelist, masternodestatus, getconsensusinfo on the devnet's
    only masternode, and on a node that is not one.
    """

    def test_masternodelist(self) -> None:
        """
        The devnet snapshot is this node alone: free tier, weight 1, alive
        (its own heartbeat), with its P2P address and reward address.
        """
        rows = self.rpc("masternodelist")
        self.assertEqual(len(rows), 1)
        row = rows[0]
        self.assertEqual(row["pubkey"], self.node.key.public.hex())
        self.assertEqual((row["tier"], row["weight"], row["alive"],
                          row["is_self"]), ("free", 1, True, True))
        self.assertEqual(row["p2p_address"],
                         f"127.0.0.1:{self.config.p2p.port}")
        self.assertEqual(row["reward_address"],
                         self.node.wallet.addresses()[0])
        self.assertEqual(row["last_seen"], self.clock.seconds())
        self.assertEqual(row["reported_height"], 0)

    def test_masternodestatus(self) -> None:
        """
        This node is an active masternode, the next producer, and after
        two blocks reports two blocks produced and the last one's height,
        hash and round.
        """
        status = self.rpc("masternodestatus")
        self.assertEqual((status["is_masternode"], status["status"],
                          status["alive"], status["next_producer"]),
                         (True, "active", True, True))
        self.assertEqual(status["pubkey"], self.node.key.public.hex())
        self.assertEqual((status["tier"], status["weight"]), ("free", 1))
        self.assertIsNone(status["last_block"])
        self.block()
        self.block()
        status = self.rpc("masternodestatus")
        self.assertEqual(status["blocks_produced"], 2)
        last = status["last_block"]
        self.assertEqual((last["height"], last["hash"], last["round"]),
                         (2, self.rpc("getblockhash", 2), 0))
        self.assertEqual(last["producer"], self.node.key.public.hex())

    def test_getconsensusinfo(self) -> None:
        """
        Count quorum over one weight unit needs 1; round-robin; the
        next producer is this node; heights follow the chain.
        """
        info = self.rpc("getconsensusinfo")
        self.assertEqual(
            {k: info[k] for k in ("height", "quorum", "threshold",
                                  "total_weight", "policy", "snapshot_size",
                                  "next_producers")},
            {"height": 1, "quorum": "count", "threshold": 1,
             "total_weight": 1, "policy": "round-robin", "snapshot_size": 1,
             "next_producers": [self.node.key.public.hex()]})
        self.assertEqual(info["block_time"], 2.0)
        self.block()
        self.assertEqual(self.rpc("getconsensusinfo")["height"], 2)

    def test_not_a_masternode(self) -> None:
        """
        A node sharing the devnet genesis with another key is not a
        masternode: status not-a-masternode, no last block, not the next
        producer; masternodelist still shows the genesis masternode, not
        alive from its view (no heartbeat heard).
        """
        from treq.testing import StubTreq

        config = self.make_config(
            genesis=str(Path(self.config.datadir) / "genesis.json"))
        follower = build(config, self.clock, store=MemoryStore(),
                         with_p2p=False).node
        follower.startService()
        self.addCleanup(follower.stopService)
        self.stub = StubTreq(build_rpc_site(follower, config).resource)
        self.auth = basic(*(Path(config.datadir) / ".cookie").read_text()
                          .split(":", 1))
        status = self.rpc("masternodestatus")
        self.assertEqual((status["is_masternode"], status["status"],
                          status["next_producer"], status["last_block"]),
                         (False, "not-a-masternode", False, None))
        self.assertNotIn("tier", status)
        rows = self.rpc("masternodelist")
        self.assertEqual([(r["pubkey"], r["alive"], r["is_self"])
                          for r in rows],
                         [(self.node.key.public.hex(), False, False)])

    def test_documented(self) -> None:
        """
        help serves each new method's usage line.
        """
        for name in ("createrawtransaction", "signrawtransactionwithwallet",
                     "decoderawtransaction", "masternodelist",
                     "masternodestatus", "getconsensusinfo"):
            self.assertTrue(self.rpc("help", name).startswith(name))
        self.assertRegex(self.rpc("getbestblockhash"), HEX64)
