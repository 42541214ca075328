"""
Tests of the shared cluster fixture (L{timecoin.testing.cluster}): nodes
connect and produce on the fake network, the wait-until helpers stop when
their condition holds or their time is up, and a crashed node restarts on
its own data dir and store.
"""

from __future__ import annotations

from twisted.trial import unittest

from tests.helpers.clusters import IPS, MasternodeCluster


class ClusterTests(unittest.TestCase):
    """
    Four masternodes on one L{MasternodeCluster}.
    """

    def test_connect_produce_crash_restart(self) -> None:
        """
        Started, the four connect to each other and all reach height 3;
        a crashed node vanishes from its peers' connections and keeps its
        data dir and store; restarted, it is at least at the height it
        crashed at and reconnects.
        """
        cluster = MasternodeCluster(self)
        cluster.start_all()
        self.assertTrue(cluster.advance_until(cluster.all_connected, 10))
        self.assertTrue(cluster.advance_until(lambda: cluster.at_height(3),
                                              30))
        store = cluster.stores[IPS[3]]
        datadir = cluster.datadirs[IPS[3]]
        height = cluster.services[IPS[3]].node.chain.height
        cluster.stop(3)
        self.assertEqual(len(cluster.services), 3)
        self.assertNotIn(IPS[3], {ip for link in cluster.links()
                                  for ip in link})
        for ip in IPS[:3]:
            self.assertNotIn(IPS[3], cluster.ready_keys(ip))
        node = cluster.start(3).node
        self.assertIs(node.store, store)
        self.assertEqual(cluster.datadirs[IPS[3]], datadir)
        self.assertGreaterEqual(node.chain.height, height)
        self.assertTrue(cluster.advance_until(cluster.all_connected, 20))
        cluster.assert_agree()

    def test_advance_until_times_out(self) -> None:
        """
        A condition that never holds: C{advance_until} gives up after its
        timeout of fake time and says so.
        """
        cluster = MasternodeCluster(self)
        start = cluster.clock.seconds()
        self.assertFalse(cluster.advance_until(lambda: False, 5, step=0.5))
        self.assertAlmostEqual(cluster.clock.seconds() - start, 5, places=6)
