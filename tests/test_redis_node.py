"""
A real node process on Redis whose redis-server goes away and comes back
while the node runs: the node keeps running, reconnects, and goes on
producing with nothing lost or doubled.
"""

from __future__ import annotations

import time
from pathlib import Path

from twisted.trial import unittest

from tests.helpers.redisserver import RedisServer
from tests.nodeprocess import NodeProcess


class RedisOutageTests(unittest.TestCase):
    """
    Redis restarts under a running node.
    """

    def test_redis_restart_while_running(self) -> None:
        """
        With redis-server killed (SIGKILL, appendfsync always) and started
        again on the same port, the node process stays up, resumes
        producing, never reports a lower height, and verifychain finds the
        stored UTXO set equal to a replay of the stored blocks.
        """
        base = Path(self.mktemp()).resolve()
        (base / "redis").mkdir(parents=True)
        redis = RedisServer(str(base / "redis"), durable=True)
        redis.start()
        self.addCleanup(redis.kill)
        node = NodeProcess(base / "node", "--storage", "redis",
                           "--redis-url", redis.url(3), block_time=0.3)
        self.addCleanup(node.kill)
        node.start()
        node.wait_for(lambda: node.call("getblockcount") >= 3, 15)
        to = node.call("getnewaddress")
        node.call("sendtoaddress", to, 2)
        before = node.call("getblockcount")
        redis.kill()
        time.sleep(1.5)
        self.assertIsNone(node.proc.poll(), "node died with Redis")
        redis.start()
        node.wait_for(lambda: node.call("getblockcount") >= before + 5, 30)
        heights = []
        for _ in range(10):
            heights.append(node.call("getblockcount"))
            time.sleep(0.1)
        self.assertEqual(heights, sorted(heights))
        self.assertGreaterEqual(heights[0], before)
        result = node.call("verifychain")
        self.assertTrue(result["ok"], result)
        info = node.call("gettxoutsetinfo")
        self.assertEqual(info["total_amount"],
                         1_000_000 + 100 * info["height"])
