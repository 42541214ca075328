"""
bitcoin-cli habits of C{timecoin-cli} (issue 16 item 5): single-dash
C{-name=value} flags, C{-version}, exit status = |RPC error code|, and no
traceback when standard output is closed early.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from timecoin import __version__, cli
from timecoin.config import Config
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.wiring import build

ROOT = Path(__file__).resolve().parent.parent


class FlagTests(unittest.TestCase):
    """
    The flag forms bitcoin-cli users type, parsed.
    """

    def test_single_dash_equals(self) -> None:
        """
        C{-datadir=D -rpcport=N -rpcconnect=H -conf=F -rpcuser=U
        -rpcpassword=P -rpcclienttimeout=S -testnet} set the same options
        as their double-dash forms, and the METHOD and its arguments
        follow.
        """
        options = cli.make_parser().parse_args([
            "-datadir=/d", "-rpcport=1234", "-rpcconnect=10.0.0.1",
            "-conf=/c.toml", "-rpcuser=u", "-rpcpassword=p",
            "-rpcclienttimeout=5", "-testnet", "getblockhash", "0"])
        self.assertEqual((options.datadir, options.rpc_port,
                          options.rpc_host, options.config, options.rpcuser,
                          options.rpcpassword, options.rpc_timeout,
                          options.network, options.method, options.args),
                         ("/d", 1234, "10.0.0.1", "/c.toml", "u", "p", 5.0,
                          "testnet", "getblockhash", ["0"]))
        spaced = cli.make_parser().parse_args(["-datadir", "/d", "-rpcport",
                                               "9", "getblockcount"])
        self.assertEqual((spaced.datadir, spaced.rpc_port), ("/d", 9))

    def test_chain_names(self) -> None:
        """
        C{-chain=main} and C{-chain=test} are mainnet and testnet; an
        unknown chain is a usage error (exit 2).
        """
        parse = cli.make_parser().parse_args
        self.assertEqual(parse(["-chain=main", "x"]).network, "mainnet")
        self.assertEqual(parse(["-chain=test", "x"]).network, "testnet")
        self.assertEqual(parse(["-chain=devnet", "x"]).network, "devnet")
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        e = self.assertRaises(SystemExit, parse, ["-chain=regtest", "x"])
        self.assertEqual(e.code, 2)

    def test_rpcconnect_host_port(self) -> None:
        """
        C{-rpcconnect=HOST:PORT} sets both; C{-rpcport} wins over the
        port given there; C{[::1]:N} is an IPv6 host and port.
        """
        def target(*argv: str) -> cli.Target:
            options = cli.make_parser().parse_args(
                [*argv, "-rpcuser=u", "-rpcpassword=p", "x"])
            return cli.resolve_target(options)

        t = target("-rpcconnect=10.1.2.3:5555")
        self.assertEqual((t.host, t.port), ("10.1.2.3", 5555))
        t = target("-rpcconnect=10.1.2.3:5555", "-rpcport=6")
        self.assertEqual((t.host, t.port), ("10.1.2.3", 6))
        t = target("-rpcconnect=[::1]:7")
        self.assertEqual((t.host, t.port, t.url), ("::1", 7,
                                                   "http://[::1]:7/"))

    def test_version(self) -> None:
        """
        C{-version} prints timecoin-cli's version and exits 0.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        e = self.assertRaises(SystemExit, cli.main, ["-version"])
        self.assertEqual(e.code, 0)
        self.assertIn(__version__, out.getvalue())
        self.assertIn("timecoin-cli", out.getvalue())

    def test_error_status(self) -> None:
        """
        The exit status of an RPC error is its code's absolute value
        (bitcoin-cli's); an error without a usable code is 1.
        """
        self.assertEqual(cli.error_status({"code": -8}), 8)
        self.assertEqual(cli.error_status({"code": -32601}), 32601)
        self.assertEqual(cli.error_status({"code": 0}), 1)
        self.assertEqual(cli.error_status("odd"), 1)

    def test_broken_pipe_in_process(self) -> None:
        """
        When writing the result raises BrokenPipeError, main returns 141
        instead of raising.
        """
        class Closed(io.StringIO):
            def write(self, text: str) -> int:
                raise BrokenPipeError(32, "Broken pipe")

        self.patch(cli, "call_waiting", lambda options, body: (
            b'{"result": "x", "error": null, "id": 1}', 200))
        self.assertEqual(cli.main(["getbestblockhash"], stdout=Closed(),
                                  stderr=io.StringIO()), 141)


class LiveHabitTests(unittest.TestCase):
    """
    C{timecoin-cli} with bitcoin-cli flags against a real RPC site on
    loopback.
    """

    def setUp(self) -> None:
        from twisted.internet import reactor as _reactor

        reactor: Any = _reactor
        self.config = Config(network="devnet", datadir=self.mktemp(),
                             block_time=2.0)
        self.config.resolve()
        self.node = build(self.config, Clock(), store=MemoryStore(),
                          with_p2p=False).node
        self.node.startService()
        self.addCleanup(self.node.stopService)
        port = reactor.listenTCP(0, build_rpc_site(self.node, self.config),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.flags = [f"-datadir={self.config.datadir}",
                      f"-rpcport={port.getHost().port}",
                      "-rpcconnect=127.0.0.1"]

    def run_cli(self, *argv: str) -> defer.Deferred[tuple[int, str, str]]:
        """
        C{cli.main(argv)} in a thread; fires with status, stdout, stderr.
        """
        out, err = io.StringIO(), io.StringIO()
        d = deferToThread(cli.main, list(argv), stdout=out, stderr=err)
        return d.addCallback(lambda status: (status, out.getvalue(),
                                             err.getvalue()))

    @defer.inlineCallbacks
    def test_datadir_rpcport_getblockcount(self) -> Any:
        """
        C{timecoin-cli -datadir=DIR -rpcport=N getblockcount} prints the
        height and exits 0; an unknown method exits 32601 (|-32601|) and
        a bad height 8 (|-8|), each with its code on stderr.
        """
        status, out, err = yield self.run_cli(*self.flags, "getblockcount")
        self.assertEqual((status, out, err), (0, "0\n", ""))
        status, _, err = yield self.run_cli(*self.flags, "nosuchmethod")
        self.assertEqual(status, 32601)
        self.assertIn("error code: -32601", err)
        status, _, err = yield self.run_cli(*self.flags, "getblockhash", "9")
        self.assertEqual(status, 8)

    @defer.inlineCallbacks
    def test_closed_stdout_no_traceback(self) -> Any:
        """
        The real command whose standard output is a pipe nobody reads any
        more (as when piped into head) exits 141 with nothing on stderr:
        no BrokenPipeError traceback.
        """
        read, write = os.pipe()
        os.close(read)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        try:
            done = yield deferToThread(
                subprocess.run, [sys.executable, "-m", "timecoin.cli",
                                 *self.flags, "help"],
                stdout=write, stderr=subprocess.PIPE, env=env, timeout=60)
        finally:
            os.close(write)
        self.assertEqual((done.returncode, done.stderr), (141, b""))
