"""
Completeness of the node's Prometheus metrics: a scrape of the real
C{GET /metrics} route, parsed by prometheus_client's own parser, carries
every series issue 7 lists (with a P2P service attached, so peers, bans and
sync appear), and RPC latency is observed per method.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest

from tests.helpers.clusters import PeerCluster, keys_by_order
from tests.helpers.rpc import RPCTestBase
from timecoin.metrics import NodeMetrics
from timecoin.wiring import attach_p2p

FAMILIES = {
    "timecoin_chain_height": "gauge",
    "timecoin_peers": "gauge",
    "timecoin_mempool_transactions": "gauge",
    "timecoin_mempool_bytes": "gauge",
    "timecoin_transactions": "counter",
    "timecoin_finality_latency_seconds": "histogram",
    "timecoin_tx_votes": "counter",
    "timecoin_blocks_committed": "counter",
    "timecoin_round_timeouts": "counter",
    "timecoin_peers_banned": "gauge",
    "timecoin_bans": "counter",
    "timecoin_sync_state": "gauge",
    "timecoin_rpc_latency_seconds": "histogram",
    "timecoin_tip_age_seconds": "gauge",
    "timecoin_chain_stalled": "gauge",
    "timecoin_masternodes": "gauge",
    "timecoin_utxos": "gauge",
    "timecoin_build_info": "gauge",
}
"""Each metric family issue 7 asks for, with its Prometheus type."""


class MetricsCompletenessTests(RPCTestBase):
    """
    The scrape of a devnet node with a P2P service on a memory reactor.
    """

    def setUp(self) -> None:
        super().setUp()
        self.reactor = MemoryReactorClock()
        self.reactor.advance(self.clock.seconds())
        self.p2p = attach_p2p(self.node, self.reactor)
        self.p2p.startService()
        self.addCleanup(self.p2p.stopService)

    def scrape(self) -> dict[str, Any]:
        """
        GET /metrics and parse it with prometheus_client's parser; the
        families by name.
        """
        status, headers, body = self.http(b"", method="GET",
                                          url="http://127.0.0.1/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers.getRawHeaders("Content-Type")[0]
                        .startswith("text/plain"))
        return {f.name: f
                for f in text_string_to_metric_families(body.decode())}

    def values(self, family: Any) -> dict[tuple[str, tuple], float]:
        """
        The samples of one family, keyed by (sample name, sorted labels).
        """
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for s in family.samples}

    def test_every_family_present(self) -> None:
        """
        After a block, a payment and an RPC call, every metric family is
        in the scrape with its type and at least one sample.
        """
        self.block()
        self.rpc("sendtoaddress", self.external_address(), 1)
        self.rpc("getblockcount")
        families = self.scrape()
        for name, kind in FAMILIES.items():
            self.assertIn(name, families)
            self.assertEqual(families[name].type, kind, name)
            self.assertTrue(families[name].samples, name)
        self.assertEqual(self.values(families["timecoin_chain_height"])[
            ("timecoin_chain_height", ())], 1)
        self.assertEqual(self.values(families["timecoin_blocks_committed"])[
            ("timecoin_blocks_committed_total", ())], 1)
        self.assertEqual(self.values(families["timecoin_transactions"])[
            ("timecoin_transactions_total", (("outcome", "finalized"),))], 1)
        latency = self.values(families["timecoin_finality_latency_seconds"])
        self.assertEqual(latency[
            ("timecoin_finality_latency_seconds_count", ())], 1)
        votes = self.values(families["timecoin_tx_votes"])
        self.assertIn(("timecoin_tx_votes_total", (("result", "invalid"),)),
                      votes)
        timeouts = self.values(families["timecoin_round_timeouts"])
        self.assertEqual(
            {dict(labels)["step"] for _, labels in timeouts},
            {"propose", "prevote", "precommit", "round"})

    def test_peers_by_direction_and_bans(self) -> None:
        """
        Peers are split inbound/outbound (none here); a ban shows as one
        banned identity.
        """
        families = self.scrape()
        self.assertEqual(self.values(families["timecoin_peers"]), {
            ("timecoin_peers", (("direction", "inbound"),)): 0,
            ("timecoin_peers", (("direction", "outbound"),)): 0})
        self.assertEqual(self.values(families["timecoin_peers_banned"]),
                         {("timecoin_peers_banned", ()): 0})
        self.rpc("setban", "10.1.2.3", "add", 600)
        self.assertEqual(self.values(self.scrape()["timecoin_peers_banned"]),
                         {("timecoin_peers_banned", ()): 1})

    def test_sync_state_one_hot(self) -> None:
        """
        Exactly one sync state is 1, and it is the sync machine's.
        """
        states = self.values(self.scrape()["timecoin_sync_state"])
        on = [dict(labels)["state"] for (_, labels), v in states.items()
              if v == 1]
        self.assertEqual(on, [self.p2p.sync.state])
        self.assertEqual({dict(labels)["state"] for _, labels in states},
                         set(self.p2p.sync.STATES))

    def test_rpc_latency_by_method(self) -> None:
        """
        Each call of a known method is counted under its name; unknown
        methods add no series.
        """
        self.rpc("getblockcount")
        self.rpc("getblockcount")
        self.rpc("uptime")
        self.rpc_error("nosuchmethod")
        latency = self.values(self.scrape()["timecoin_rpc_latency_seconds"])
        count = "timecoin_rpc_latency_seconds_count"
        self.assertEqual(latency[(count, (("method", "getblockcount"),))], 2)
        self.assertEqual(latency[(count, (("method", "uptime"),))], 1)
        self.assertEqual({dict(labels)["method"] for _, labels in latency},
                         {"getblockcount", "uptime"})


class PeerDirectionTests(unittest.TestCase):
    """
    Peers by direction over real P2P connections on a fake network.
    """

    def test_dialer_outbound_listener_inbound(self) -> None:
        """
        Once a node dials another, the dialer reports one outbound peer
        and the listener one inbound.
        """
        cluster = PeerCluster(self)
        low, high = keys_by_order(2)
        a = cluster.start("10.0.0.1", low)
        b = cluster.start("10.0.0.2", high, connect=("10.0.0.1:24200",))
        cluster.net.flush()
        self.assertEqual(cluster.links(), [("10.0.0.2", "10.0.0.1")])
        peers = {}
        for name, service in (("a", a), ("b", b)):
            text = NodeMetrics(service.node).render().decode()
            family = {f.name: f for f in
                      text_string_to_metric_families(text)}["timecoin_peers"]
            peers[name] = {s.labels["direction"]: s.value
                           for s in family.samples}
        self.assertEqual(peers, {"a": {"inbound": 1, "outbound": 0},
                                 "b": {"inbound": 0, "outbound": 1}})


class OperatingDocTests(RPCTestBase):
    """
    The metrics table of C{docs/operating.md} names the real series.
    """

    def test_documented_series_exist(self) -> None:
        """
        The operator guide's table lists exactly the metric families of a
        scrape of a node with P2P and an RPC call behind it (less the
        C{_created} timestamps prometheus_client adds to histograms, and
        the C{process_*} series documented in prose).
        """
        text = (Path(__file__).parent.parent / "docs" / "operating.md"
                ).read_text()
        section = text.split("### Prometheus", 1)[1].split("\n### ", 1)[0]
        documented = set()
        for row in section.splitlines():
            if re.match(r"\| `[a-z_]+", row):
                for name in re.findall(r"`([a-z_]+)", row.split(" | ")[0]):
                    documented.add("timecoin_" + name.removesuffix("_total"))
        self.assertGreater(len(documented), 15)
        attach_p2p(self.node, MemoryReactorClock())
        self.rpc("getblockcount")
        status, _, body = self.http(b"", method="GET",
                                    url="http://127.0.0.1/metrics")
        self.assertEqual(status, 200)
        families = {f.name for f in
                    text_string_to_metric_families(body.decode())
                    if not f.name.endswith("_created")
                    and f.name.startswith("timecoin_")}
        self.assertEqual(documented, families)
