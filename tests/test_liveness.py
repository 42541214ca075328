"""
Tests for signed masternode heartbeats and the liveness view.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import Harness, key
from timecoin.liveness import Heartbeat, Liveness, sign_heartbeat


class LivenessTests(unittest.TestCase):
    """
    Heartbeats feed the view; bad ones are dropped with reasons.
    """

    def setUp(self) -> None:
        self.h = Harness()
        self.live = Liveness(self.h.chain, self.h.clock, interval=30,
                             expiry=120)

    def beat(self, k=None, seq=None, height=0, network="devnet"):
        k = k or self.h.mn_key
        seq = int(self.h.clock.seconds() * 1000) if seq is None else seq
        return sign_heartbeat(k, network, seq, height)

    def test_accept_and_expire(self) -> None:
        """
        A valid heartbeat marks its masternode alive until the expiry
        passes without another.
        """
        self.assertIsNone(self.live.receive(self.beat()))
        self.assertTrue(self.live.is_alive(self.h.mn_key.public))
        self.h.clock.advance(121)
        self.assertFalse(self.live.is_alive(self.h.mn_key.public))
        view = self.live.view()[self.h.mn_key.public]
        self.assertFalse(view["alive"])
        self.assertIsNotNone(view["last_seen"])

    def test_rejections(self) -> None:
        """
        Non-masternodes, forged or other-network signatures, replays
        (stale seq) and far-future seqs are dropped with reason codes.
        """
        live = self.live
        self.assertEqual(live.receive(self.beat(k=key(9))),
                         "heartbeat-not-masternode")
        good = self.beat()
        self.assertEqual(live.receive(replace(good, signature=bytes(64))),
                         "heartbeat-bad-signature")
        self.assertEqual(live.receive(self.beat(network="testnet")),
                         "heartbeat-bad-signature")
        self.assertIsNone(live.receive(good))
        self.assertEqual(live.receive(good), "heartbeat-stale")
        future = self.beat(seq=int(self.h.clock.seconds() * 1000) + 120_000)
        self.assertEqual(live.receive(future), "heartbeat-future")
        self.assertEqual(Heartbeat.from_obj(good.to_obj()), good)

    def test_own_heartbeats(self) -> None:
        """
        A masternode casts a heartbeat at start and every interval; stop
        leaves no timer.
        """
        cast = []
        self.live.heartbeat_cast.connect(cast.append)
        self.live.start(self.h.mn_key)
        self.h.clock.advance(30)
        self.h.clock.advance(30)
        self.assertEqual(len(cast), 3)
        self.assertEqual(len({hb.seq for hb in cast}), 3)
        self.live.stop()
        self.assertEqual(self.h.clock.getDelayedCalls(), [])
