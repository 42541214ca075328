"""
Tests for the ``twistd timecoin`` plugin: option parsing and the service
tree makeService builds (without starting it).
"""

from __future__ import annotations

import gc
from pathlib import Path

from twisted.application.internet import TCPServer
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial import unittest

from timecoin import tap
from timecoin.node import Node
from timecoin.p2p.service import P2PService
from timecoin.wiring import NodeServices


class OptionsTests(unittest.TestCase):
    """
    Command-line options override the config file.
    """

    def test_overrides(self) -> None:
        """
        Options land in the parsed config, with network defaults filled and
        --connect split.
        """
        options = tap.Options()
        options.parseOptions(["--network", "testnet", "--rpc-port", "5001",
                              "--connect", "127.0.0.2:1,127.0.0.3:2",
                              "--block-time", "0.25"])
        config = options["parsed"]
        self.assertEqual((config.network, config.rpc.port, config.p2p.port),
                         ("testnet", 5001, 24100))
        self.assertEqual(config.p2p.connect, ("127.0.0.2:1", "127.0.0.3:2"))
        self.assertEqual(config.block_time, 0.25)

    def test_bad_config_is_usage_error(self) -> None:
        """
        An unknown config key or network is a usage error naming it.
        """
        path = Path(self.mktemp())
        path.write_text("bogus = true\n")
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                              ["--config", str(path)])
        self.assertIn("bogus", str(e))
        self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                          ["--network", "moon"])

    def test_plugin_registered(self) -> None:
        """
        twistd finds a service maker named timecoin pointing at this module.
        """
        import twisted.plugins
        makers = {p.tapname: p for p in getPlugins(IPlugin, twisted.plugins)
                  if hasattr(p, "tapname")}
        self.assertEqual(makers["timecoin"].module, "timecoin.tap")


class MakeServiceTests(unittest.TestCase):
    """
    The service tree.
    """

    def setUp(self) -> None:
        # makeService tunes the process's collector: give the test
        # process its own thresholds back.
        self.addCleanup(gc.set_threshold, *gc.get_threshold())

    def test_tree(self) -> None:
        """
        makeService returns one MultiService holding the node (built by
        L{timecoin.wiring.build}: the node, then its P2P service) and the
        RPC server on the configured loopback port.
        """
        options = tap.Options()
        options.parseOptions(["--datadir", self.mktemp(), "--rpc-port",
                              "5999", "--storage", "memory"])
        top = tap.makeService(options)
        children = list(top)
        self.assertIsInstance(children[0], NodeServices)
        node, p2p = list(children[0])
        self.assertIsInstance(node, Node)
        self.assertIsInstance(p2p, P2PService)
        self.assertIs(node.p2p, p2p)
        rpc = [c for c in children if isinstance(c, TCPServer)][0]
        self.assertEqual(rpc.args[0], 5999)
        self.assertEqual(rpc.kwargs["interface"], "127.0.0.1")

    def test_collector_thresholds(self) -> None:
        """
        makeService applies C{gc_full_every} (the collector's third
        threshold, default 1000) and keeps the other two thresholds.
        """
        gc.set_threshold(700, 10, 10)
        path = Path(self.mktemp())
        path.write_text("gc_full_every = 250\n")
        options = tap.Options()
        options.parseOptions(["--datadir", self.mktemp(), "--storage",
                              "memory", "--config", str(path)])
        tap.makeService(options)
        self.assertEqual(gc.get_threshold(), (700, 10, 250))
        options = tap.Options()
        options.parseOptions(["--datadir", self.mktemp(), "--storage",
                              "memory"])
        tap.makeService(options)
        self.assertEqual(gc.get_threshold(), (700, 10, 1000))

    def test_collector_setting_checked(self) -> None:
        """
        A C{gc_full_every} below 1 is a usage error naming it.
        """
        path = Path(self.mktemp())
        path.write_text("gc_full_every = 0\n")
        e = self.assertRaises(usage.UsageError, tap.Options().parseOptions,
                              ["--config", str(path)])
        self.assertIn("gc_full_every", str(e))

    def test_unknown_policy_stops_startup(self) -> None:
        """
        An unknown selection policy fails at once with a clear message.
        """
        options = tap.Options()
        options.parseOptions(["--datadir", self.mktemp(), "--policy",
                              "nope", "--storage", "memory"])
        e = self.assertRaises(SystemExit, tap.makeService, options)
        self.assertIn("unknown selection policy 'nope'", str(e))
