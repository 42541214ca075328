"""
Tests for the RPC side of networking and monitoring: the P2P methods
(getpeerinfo, getnetworkinfo, getconnectioncount, setban, listbanned,
clearbanned), GET /metrics and GET /health.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.testing import MemoryReactorClock

from tests.helpers.rpc import CallFailed, RPCTestBase
from timecoin.wiring import attach_p2p, build


class NetworkRPCTests(RPCTestBase):
    """
    P2P methods on a node whose P2P service runs on a memory reactor.
    """

    def setUp(self) -> None:
        super().setUp()
        self.reactor = MemoryReactorClock()
        self.reactor.advance(self.clock.seconds())
        self.p2p = attach_p2p(self.node, self.reactor)
        self.p2p.startService()
        self.addCleanup(self.p2p.stopService)

    def test_no_peers(self) -> None:
        """
        A lone node reports no peers and listens on its P2P port.
        """
        self.assertEqual(self.rpc("getpeerinfo"), [])
        self.assertEqual(self.rpc("getconnectioncount"), 0)
        info = self.rpc("getnetworkinfo")
        self.assertEqual(info["connections"], 0)
        self.assertEqual(self.reactor.tcpServers[0][0],
                         self.config.p2p.port)

    def test_ban_cycle(self) -> None:
        """
        setban adds a ban listbanned shows; remove and clearbanned lift it;
        an unknown command is -8.
        """
        self.rpc("setban", "10.1.2.3", "add", 600)
        banned = self.rpc("listbanned")
        self.assertEqual([b["address"] for b in banned], ["10.1.2.3"])
        self.assertGreater(banned[0]["banned_until"], self.clock.seconds())
        self.rpc("setban", "10.1.2.3", "remove")
        self.assertEqual(self.rpc("listbanned"), [])
        self.rpc("setban", "10.1.2.4")
        self.rpc("clearbanned")
        self.assertEqual(self.rpc("listbanned"), [])
        self.assertEqual(self.rpc_error("setban", "10.1.2.4", "nuke").code,
                         -8)


class NoP2PTests(RPCTestBase):
    """
    Without a P2P service the network methods say so.
    """

    def test_disabled(self) -> None:
        """
        getpeerinfo on a node without P2P is error -31.
        """
        error = self.rpc_error("getpeerinfo")
        self.assertIsInstance(error, CallFailed)
        self.assertEqual(error.code, -31)


class MonitoringTests(RPCTestBase):
    """
    GET /metrics and GET /health.
    """

    def get(self, path: str) -> tuple[int, Any, bytes]:
        return self.http(b"", method="GET",
                         url=f"http://127.0.0.1/{path}")

    def test_metrics(self) -> None:
        """
        /metrics serves the Prometheus text format with the chain height,
        and follows the chain.
        """
        self.block()
        status, headers, body = self.get("metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.getRawHeaders("Content-Type")[0]
                        .startswith("text/plain"))
        self.assertIn(b"timecoin_chain_height 1.0", body)

    def test_health(self) -> None:
        """
        The devnet's only masternode is healthy alone once started.
        """
        status, _, body = self.get("health")
        self.assertEqual(status, 200)
        reply = json.loads(body)
        self.assertEqual(reply["status"], "ready")
        self.assertEqual(reply["height"], 0)

    def test_follower_without_peers_unhealthy(self) -> None:
        """
        A node that is not the only masternode and has no peers is not
        ready: 503.
        """
        from pathlib import Path

        from treq.testing import StubTreq

        from timecoin.rpc.site import build_rpc_site
        from timecoin.storage.memory import MemoryStore
        config = self.make_config(
            genesis=str(Path(self.config.datadir) / "genesis.json"))
        follower = build(config, self.clock, store=MemoryStore(),
                         with_p2p=False).node
        follower.startService()
        self.addCleanup(follower.stopService)
        stub = StubTreq(build_rpc_site(follower, config).resource)
        status, _, body = self.http(b"", auth=None, method="GET",
                                    url="http://127.0.0.1/health", stub=stub)
        self.assertEqual(status, 503)
        self.assertEqual(json.loads(body)["status"], "not-ready")
