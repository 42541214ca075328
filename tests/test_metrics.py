"""
Tests for the node's Prometheus metrics.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import START, result_of
from timecoin.config import Config
from timecoin.metrics import NodeMetrics
from timecoin.storage.memory import MemoryStore
from timecoin.wiring import build


def samples(metrics: NodeMetrics) -> dict[tuple[str, tuple], float]:
    """
    Every sample of a scrape, keyed by (name, sorted labels).
    """
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class MetricsTests(unittest.TestCase):
    """
    The scrape follows the node's state.
    """

    def test_scrape_tracks_state(self) -> None:
        """
        Height, mempool, finalized count and the latency histogram move as
        blocks are made and a payment finalizes; each node has its own
        registry.
        """
        clock = Clock()
        clock.advance(START)
        config = Config(network="devnet", datadir=self.mktemp(),
                        block_time=2.0)
        config.resolve()
        node = build(config, clock, store=MemoryStore(), with_p2p=False).node
        metrics = NodeMetrics(node)
        other = NodeMetrics(node)
        node.startService()
        self.addCleanup(node.stopService)
        first = samples(metrics)
        self.assertEqual(first[("timecoin_chain_height", ())], 0)
        clock.advance(2.0)
        result_of(node.send_to_address(node.new_address(), 10**8))
        now = samples(metrics)
        self.assertEqual(now[("timecoin_chain_height", ())], 1)
        self.assertEqual(now[("timecoin_mempool_transactions", ())], 1)
        self.assertGreater(now[("timecoin_mempool_bytes", ())], 0)
        self.assertEqual(now[("timecoin_transactions_total",
                              (("outcome", "finalized"),))], 1)
        self.assertEqual(now[("timecoin_finality_latency_seconds_count",
                              ())], 1)
        self.assertEqual(samples(other)[(
            "timecoin_finality_latency_seconds_count", ())], 1)
        clock.advance(2.0)
        self.assertEqual(samples(metrics)[("timecoin_mempool_transactions",
                                           ())], 0)
