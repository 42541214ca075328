"""
Tests of the C{bitcoin-cli}-style options of C{timecoin-cli}: C{-named},
C{-stdin}, C{-rpcwait} and C{-getinfo}, as functions and against a real
RPC site listening on loopback.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from tests.nodeprocess import free_port
from timecoin import cli
from timecoin.config import Config
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.wiring import build


class NamedTests(unittest.TestCase):
    """
    L{cli.parse_named} and named requests.
    """

    def test_parse(self) -> None:
        """
        NAME=VALUE pairs become a params object; values parse as JSON
        unless their name is always a string (a digits-only hash stays a
        string); a value may itself contain '='.
        """
        self.assertEqual(cli.parse_named(
            ["height=5", "verbose=true", "blockhash=0123", "note=a=b",
             "addresses=[\"x\"]"]),
            {"height": 5, "verbose": True, "blockhash": "0123",
             "note": "a=b", "addresses": ["x"]})

    def test_errors(self) -> None:
        """
        An argument without '=' or with an empty name, and a name given
        twice, are errors.
        """
        for args in (["height"], ["=5"], ["a=1", "a=2"]):
            self.assertRaises(cli.CLIError, cli.parse_named, args)

    def test_request(self) -> None:
        """
        build_request with named=True sends an object as params.
        """
        body = json.loads(cli.build_request("getblock", ["blockhash=ab",
                                                         "verbosity=2"],
                                            named=True))
        self.assertEqual(body["params"], {"blockhash": "ab", "verbosity": 2})

    def test_options(self) -> None:
        """
        The single-dash spellings of bitcoin-cli parse, before METHOD;
        METHOD is optional only for -getinfo.
        """
        options = cli.make_parser().parse_args(
            ["-named", "-stdin", "-rpcwait", "-rpcwaittimeout=5",
             "getblockhash", "height=0"])
        self.assertEqual((options.named, options.stdin, options.rpcwait,
                          options.rpcwaittimeout, options.method,
                          options.args),
                         (True, True, True, 5.0, "getblockhash",
                          ["height=0"]))
        err = io.StringIO()
        self.assertEqual(cli.main([], stdout=io.StringIO(), stderr=err), 2)
        self.assertIn("METHOD is required", err.getvalue())
        self.assertEqual(cli.main(["-getinfo", "uptime"], stderr=err), 2)


class GetinfoFormatTests(unittest.TestCase):
    """
    L{cli.format_getinfo}.
    """

    def test_summary(self) -> None:
        """
        The summary has one line per subject, with the failure of one call
        (P2P disabled) on its own line.
        """
        text = cli.format_getinfo([
            ({"chain": "devnet", "blocks": 7, "bestblockhash": "ab"}, None),
            (None, {"code": -31, "message": "P2P networking is disabled"}),
            ({"size": 2, "bytes": 900, "pending": 1, "finalized": 1}, None),
            (12, None),
            ({"is_masternode": True, "status": "active", "tier": "free",
              "alive": True, "last_block": {"height": 7, "round": 1}}, None),
            (3725, None),
        ])
        self.assertEqual(text.splitlines(), [
            "Chain: devnet", "Blocks: 7", "Best block: ab",
            "Uptime: 1 h 2 min",
            "Peers: unavailable (error -31: P2P networking is disabled)",
            "Mempool: 2 transactions, 900 bytes (1 pending, 1 finalized)",
            "Masternode: yes, active, tier free, alive",
            "Last block produced: 7 (round 1)",
            "Balance: 12 TIME"])


class LiveTests(unittest.TestCase):
    """
    The options against a real RPC site on loopback.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor as _reactor

        self.reactor: Any = _reactor
        self.config = Config(network="devnet", datadir=self.mktemp(),
                             block_time=2.0)
        self.config.resolve()
        self.node = build(self.config, Clock(), store=MemoryStore(),
                          with_p2p=False).node
        self.addCleanup(self.node.stopService)

    def listen(self) -> int:
        """
        Start listening with the node's RPC site; return the port.
        """
        site = build_rpc_site(self.node, self.config)
        port = self.reactor.listenTCP(self.port, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @property
    def port(self) -> int:
        """
        A port that was free a moment ago (picked once per test).
        """
        if not hasattr(self, "_port"):
            self._port: int = free_port()
        return self._port

    def run_cli(self, *argv: str,
                stdin: str = "") -> defer.Deferred[tuple[int, str, str]]:
        """
        Run C{cli.main} in a thread with the node's data dir and port;
        fire with the status, stdout and stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        args = ["--datadir", self.config.datadir, "--rpc-port",
                str(self.port), *argv]
        d = deferToThread(cli.main, args, stdout=out, stderr=err,
                          stdin=io.StringIO(stdin))
        return d.addCallback(lambda status: (status, out.getvalue(),
                                             err.getvalue()))

    @defer.inlineCallbacks
    def test_named_and_stdin(self) -> Any:
        """
        -named sends NAME=VALUE params; -stdin appends one argument per
        line of standard input (a txid read from stdin stays a string).
        """
        self.node.startService()
        self.listen()
        status, out, err = yield self.run_cli("-named", "getblockhash",
                                              "height=0")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.strip(), self.node.chain.genesis.hash.hex())
        status, out, err = yield self.run_cli(
            "-stdin", "getblock", stdin=self.node.chain.genesis.hash.hex()
            + "\n0\n")
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out.strip(), self.node.chain.genesis.encode().hex())
        status, out, err = yield self.run_cli("-named", "-stdin",
                                              "getblockhash",
                                              stdin="height=99\n")
        self.assertEqual(status, 8)
        self.assertIn("error code: -8", err)

    @defer.inlineCallbacks
    def test_getinfo(self) -> Any:
        """
        -getinfo prints the summary from one batch: chain, blocks, peers
        unavailable (no P2P here), mempool, masternode, balance.
        """
        self.node.startService()
        self.listen()
        status, out, err = yield self.run_cli("-getinfo")
        self.assertEqual((status, err), (0, ""))
        lines = out.splitlines()
        self.assertIn("Chain: devnet", lines)
        self.assertIn("Blocks: 0", lines)
        self.assertIn("Peers: unavailable (error -31: P2P networking is "
                      "disabled)", lines)
        self.assertIn("Mempool: 0 transactions, 0 bytes (0 pending, "
                      "0 finalized)", lines)
        self.assertIn("Masternode: yes, active, tier free, alive", lines)
        self.assertIn("Balance: 1000000.00000000 TIME", lines)

    @defer.inlineCallbacks
    def test_rpcwait(self) -> Any:
        """
        With -rpcwait the CLI waits while nothing listens and there is no
        cookie, then while the node answers "still starting" (-28), and
        prints the answer once the node is up.
        """
        d = self.run_cli("-rpcwait", "-rpcwaittimeout", "30",
                         "getblockcount")
        yield deferLater(self.reactor, 0.5, lambda: None)
        self.assertFalse(d.called)
        self.listen()
        yield deferLater(self.reactor, 0.5, lambda: None)
        self.assertFalse(d.called)
        self.node.startService()
        status, out, err = yield d
        self.assertEqual((status, out, err), (0, "0\n", ""))

    @defer.inlineCallbacks
    def test_rpcwait_timeout(self) -> Any:
        """
        -rpcwaittimeout gives up with exit 1 and says so; without -rpcwait
        a missing node fails at once.
        """
        status, out, err = yield self.run_cli("-rpcwait", "-rpcwaittimeout",
                                              "0.5", "getblockcount")
        self.assertEqual(status, 1)
        self.assertIn("gave up waiting for the node after 0.5 s", err)
        status, _, err = yield self.run_cli("getblockcount")
        self.assertEqual(status, 1)
        self.assertIn("cookie", err)
        self.assertFalse((Path(self.config.datadir) / ".cookie").exists())
