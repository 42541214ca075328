"""
Tests of C{timecoin-cli} (L{timecoin.cli}): argument parsing, JSON
encoding, output formatting and credential lookup as plain functions, and
one end-to-end run against a real listening RPC site.
"""

from __future__ import annotations

import io
import json
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from timecoin import cli
from timecoin.config import Config
from timecoin.rpc import codec
from timecoin.rpc.auth import write_cookie
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.wiring import build


def options(*argv: str) -> Any:
    """
    The parsed options of C{timecoin-cli ARGV}.
    """
    return cli.make_parser().parse_args(list(argv))


class EncodeJSONTests(unittest.TestCase):
    """
    L{codec.encode_json}, the JSON writer of the CLI and the RPC server.
    """

    SAMPLES: list[Any] = [
        None, True, 0, -7, 2**70, 1.5, "", "héllo \"q\"\n", [], {},
        [1, [2, []], {}], {"a": {"b": [1, 2, {"c": None}]}, "z": []},
    ]

    def test_matches_json_compact(self) -> None:
        """
        Without Decimals, compact output is what C{json.dumps} writes with
        compact separators.
        """
        for sample in self.SAMPLES:
            self.assertEqual(codec.encode_json(sample),
                             json.dumps(sample, separators=(",", ":")))

    def test_matches_json_indent(self) -> None:
        """
        Without Decimals, indented output is what C{json.dumps(indent=2)}
        writes.
        """
        for sample in self.SAMPLES:
            self.assertEqual(codec.encode_json(sample, indent=2),
                             json.dumps(sample, indent=2))

    def test_decimals(self) -> None:
        """
        Decimals are plain JSON numbers keeping every digit: 8-decimal
        amounts stay 8 decimals, zero too, never in exponent form.
        """
        self.assertEqual(codec.encode_json({"a": Decimal("1.50000000")}),
                         '{"a":1.50000000}')
        self.assertEqual(codec.encode_json(Decimal("0E-8")), "0.00000000")
        self.assertEqual(codec.encode_json([Decimal("21000000000.00000000")]),
                         "[21000000000.00000000]")
        self.assertEqual(json.loads(codec.encode_json(Decimal("1E+3"))), 1000)

    def test_huge_exponent(self) -> None:
        """
        A Decimal with an absurd exponent stays in exponent form (short,
        still a valid JSON number) instead of expanding to its digits.
        """
        text = codec.encode_json(Decimal("1E+999999999"))
        self.assertEqual(text, "1E+999999999")
        self.assertEqual(json.loads(text, parse_float=Decimal),
                         Decimal("1E+999999999"))

    def test_refusals(self) -> None:
        """
        NaN and infinities, non-JSON types and non-string keys are
        refused.
        """
        self.assertRaises(ValueError, codec.encode_json, Decimal("NaN"))
        self.assertRaises(ValueError, codec.encode_json, float("inf"))
        self.assertRaises(TypeError, codec.encode_json, b"bytes")
        self.assertRaises(TypeError, codec.encode_json, {1: 2})


class ArgumentTests(unittest.TestCase):
    """
    Command-line arguments as RPC params.
    """

    def test_json_when_it_parses(self) -> None:
        """
        Arguments that parse as JSON are sent as their value (fractions as
        exact Decimals); the others as strings.
        """
        self.assertEqual(cli.parse_arg("getblockhash", 0, "5"), 5)
        self.assertEqual(cli.parse_arg("x", 0, "1.10"), Decimal("1.10"))
        self.assertIs(cli.parse_arg("x", 0, "true"), True)
        self.assertIsNone(cli.parse_arg("x", 0, "null"))
        self.assertEqual(cli.parse_arg("x", 0, '{"a": [1]}'), {"a": [1]})
        self.assertEqual(cli.parse_arg("x", 0, "hello"), "hello")
        self.assertEqual(cli.parse_arg("x", 0, "TIME0abc"), "TIME0abc")
        self.assertEqual(cli.parse_arg("x", 0, "NaN"), "NaN")

    def test_string_args(self) -> None:
        """
        Hash, txid, address and hex arguments stay strings even when made
        only of digits; later arguments of the same method still parse.
        """
        digits = "1" * 64
        self.assertEqual(cli.parse_arg("getblock", 0, digits), digits)
        self.assertEqual(cli.parse_arg("getblock", 1, "2"), 2)
        self.assertEqual(cli.parse_arg("sendtoaddress", 0, "123"), "123")
        self.assertEqual(cli.parse_arg("sendtoaddress", 1, "0.5"),
                         Decimal("0.5"))

    def test_build_request(self) -> None:
        """
        The request is JSON-RPC 2.0 with positional params, and amounts
        keep their exact text.
        """
        body = cli.build_request("sendtoaddress", ["TIME0xyz", "0.1"])
        self.assertIn(b'"params":["TIME0xyz",0.1]', body)
        obj = json.loads(body)
        self.assertEqual((obj["jsonrpc"], obj["method"], obj["id"]),
                         ("2.0", "sendtoaddress", 1))

    def test_parser(self) -> None:
        """
        Options come before METHOD; everything after it is an argument,
        negative numbers included; defaults are devnet and the cookie.
        """
        parsed = options("getblockhash", "-1")
        self.assertEqual((parsed.method, parsed.args), ("getblockhash", ["-1"]))
        self.assertEqual(parsed.network, "devnet")
        parsed = options("--network", "testnet", "--rpc-port", "9",
                         "help", "getblock")
        self.assertEqual((parsed.network, parsed.rpc_port, parsed.args),
                         ("testnet", 9, ["getblock"]))


class OutputTests(unittest.TestCase):
    """
    What the CLI prints.
    """

    def test_result(self) -> None:
        """
        Strings are printed raw, null not at all, everything else as
        2-space indented JSON with amounts' 8 decimals.
        """
        self.assertEqual(cli.format_result("ab12"), "ab12")
        self.assertIsNone(cli.format_result(None))
        self.assertEqual(cli.format_result(3), "3")
        self.assertEqual(cli.format_result({"amount": Decimal("1.00000000")}),
                         '{\n  "amount": 1.00000000\n}')

    def test_error(self) -> None:
        """
        An RPC error prints as bitcoin-cli does: code, then message.
        """
        self.assertEqual(
            cli.format_error({"code": -5, "message": "Block not found"}),
            "error code: -5\nerror message:\nBlock not found")

    def test_parse_reply(self) -> None:
        """
        Replies split into result and error, 1.0 or 2.0 shaped; bodies
        that are not JSON-RPC responses are a L{cli.CLIError}.
        """
        self.assertEqual(cli.parse_reply(b'{"result": 1.50000000, '
                                         b'"error": null, "id": 1}', 200),
                         (Decimal("1.50000000"), None))
        self.assertEqual(cli.parse_reply(
            b'{"jsonrpc": "2.0", "error": {"code": -1}, "id": 1}', 200),
            (None, {"code": -1}))
        self.assertRaises(cli.CLIError, cli.parse_reply, b"<html>", 500)
        self.assertRaises(cli.CLIError, cli.parse_reply, b"[1]", 200)


class TargetTests(unittest.TestCase):
    """
    Where the CLI connects and with which credentials.
    """

    def test_cookie(self) -> None:
        """
        By default the CLI reads C{DATADIR/.cookie} and the network's
        default RPC port.
        """
        datadir = Path(self.mktemp())
        _, secret = write_cookie(datadir)
        target = cli.resolve_target(options("--datadir", str(datadir),
                                            "--network", "testnet", "x"))
        self.assertEqual((target.user, target.password),
                         ("__cookie__", secret))
        self.assertEqual(target.url, "http://127.0.0.1:24101/")

    def test_missing_cookie(self) -> None:
        """
        Without a cookie file or credentials, the error names the file.
        """
        datadir = self.mktemp()
        error = self.assertRaises(cli.CLIError, cli.resolve_target,
                                  options("--datadir", datadir, "x"))
        self.assertIn(str(Path(datadir) / ".cookie"), str(error))

    def test_user_password(self) -> None:
        """
        --rpcuser with --rpcpassword win over the cookie; one without the
        other is an error.
        """
        target = cli.resolve_target(options(
            "--rpcuser", "u", "--rpcpassword", "p", "--rpc-port", "7", "x"))
        self.assertEqual((target.user, target.password, target.port),
                         ("u", "p", 7))
        self.assertEqual(target.authorization, "Basic dTpw")
        self.assertRaises(cli.CLIError, cli.resolve_target,
                          options("--rpcuser", "u", "x"))

    def test_config_file(self) -> None:
        """
        --config supplies the RPC port and credentials of the node's
        config file.
        """
        path = Path(self.mktemp())
        path.write_text('[rpc]\nport = 25001\nuser = "bob"\n'
                        'password = "pw"\n')
        target = cli.resolve_target(options("--config", str(path), "x"))
        self.assertEqual((target.port, target.user, target.password),
                         (25001, "bob", "pw"))

    def test_ipv6_url(self) -> None:
        """
        An IPv6 host is bracketed in the URL.
        """
        target = cli.Target("::1", 24201, "u", "p")
        self.assertEqual(target.url, "http://[::1]:24201/")

    def test_node_down(self) -> None:
        """
        When nothing listens on the port, the CLI exits 1 saying it
        cannot connect and asking whether the node runs.
        """
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        err = io.StringIO()
        status = cli.main(["--rpcuser", "u", "--rpcpassword", "p",
                           "--rpc-port", str(port), "getblockcount"],
                          stdout=io.StringIO(), stderr=err)
        self.assertEqual(status, 1)
        self.assertIn(f"cannot connect to the node at 127.0.0.1:{port}: is "
                      f"it running?", err.getvalue())


class LiveTests(unittest.TestCase):
    """
    C{timecoin-cli} against a real RPC site listening on loopback.
    """

    def run_cli(self, *argv: str) -> defer.Deferred[tuple[int, str, str]]:
        """
        Run C{cli.main(argv)} in a thread (the reactor keeps serving);
        fire with its exit status, stdout and stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        d = deferToThread(cli.main, list(argv), stdout=out, stderr=err)
        return d.addCallback(lambda status: (status, out.getvalue(),
                                             err.getvalue()))

    @defer.inlineCallbacks
    def test_calls(self) -> Any:
        """
        With the cookie from --datadir the CLI prints a number, a raw
        string and indented JSON, exits 0; an RPC error exits with the
        code's absolute value (bitcoin-cli's) and the code and message on
        stderr; wrong credentials exit 1 saying so.
        The cookie is removed when the site stops listening.
        """
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        config = Config(network="devnet", datadir=self.mktemp(),
                        block_time=2.0)
        config.resolve()
        node = build(config, Clock(), store=MemoryStore(), with_p2p=False).node
        node.startService()
        self.addCleanup(node.stopService)
        site = build_rpc_site(node, config)
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = ["--datadir", config.datadir, "--rpc-port",
                str(port.getHost().port)]

        status, out, err = yield self.run_cli(*base, "getblockcount")
        self.assertEqual((status, out, err), (0, "0\n", ""))
        status, out, _ = yield self.run_cli(*base, "getbestblockhash")
        self.assertEqual(out, node.chain.tip.hash.hex() + "\n")
        status, out, _ = yield self.run_cli(*base, "getmempoolinfo")
        self.assertIn('  "total_fee": 0.00000000,\n', out)
        status, out, err = yield self.run_cli(*base, "getblockhash", "99")
        self.assertEqual((status, out), (8, ""))
        self.assertIn("error code: -8\nerror message:\n", err)
        status, out, err = yield self.run_cli(
            *base, "--rpcuser", "x", "--rpcpassword", "y", "uptime")
        self.assertEqual(status, 1)
        self.assertIn("refused the credentials", err)

        cookie = Path(config.datadir) / ".cookie"
        self.assertTrue(cookie.exists())
        yield port.stopListening()
        self.assertFalse(cookie.exists())
