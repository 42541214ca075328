"""
Whom the block downloader asks first (L{timecoin.p2p.sync.downloader}):
peers whose height claims more than a third of the peers reach, before
peers claiming more.

The fifty-masternode simulator found why (seed 21): a node restarted at
height 10 among 24 peers, seven of them Byzantine claiming a million
blocks and answering no C{get_blocks}.  A liar's claim covers the most of
each range, so liars were asked first: two of them took the whole window
(four requests each) until their timeout, then the next two, and the node
never caught up while the network went on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync.downloader import Downloader
from timecoin.p2p.sync.peers import SyncPeers
from timecoin.p2p.sync.report import SyncReport

LIE = 1_000_000


class Conn:
    """
    A ready peer connection that records the requests sent to it and
    never answers.
    """

    def __init__(self, key: str) -> None:
        self.peer_key = self.peer = key
        self.asked: list[Any] = []

    def request(self, msg: Any) -> defer.Deferred[Any]:
        self.asked.append(msg)
        return defer.Deferred()


class Chain:
    height = 10


class PeerSet:
    running = True

    def __init__(self, conns: dict[str, Conn]) -> None:
        self.ready = conns


class ChoiceTests(unittest.TestCase):
    """
    A node at height 10; honest peers claim 27, liars a million.
    """

    def downloader(self, honest: int, liars: int
                   ) -> tuple[Downloader, dict[str, Conn]]:
        clock = Clock()
        keys = [f"10.0.0.{i}" for i in range(1, honest + 1)] + \
            [f"10.0.9.{i}" for i in range(1, liars + 1)]
        conns = {key: Conn(key) for key in keys}
        settings = P2PSettings(port=24200)
        report = SyncReport(clock)
        chain, peerset = Chain(), PeerSet(conns)
        peers = SyncPeers(chain, peerset, clock,  # type: ignore[arg-type]
                          settings, report)
        for conn in conns.values():
            peers.heard(conn,  # type: ignore[arg-type]
                        LIE if conn.peer_key.startswith("10.0.9.") else 27)
        down = Downloader(chain, peerset, peers,  # type: ignore[arg-type]
                          None, clock, settings,  # type: ignore[arg-type]
                          report, refused=None,  # type: ignore[arg-type]
                          evaluate=lambda: None, progressed=lambda: None)
        self.addCleanup(down.stop)
        return down, conns

    def first_range_asked_of(self, conns: dict[str, Conn]) -> list[str]:
        return [key for key, conn in conns.items()
                if any(m.start == 11 for m in conn.asked)]

    def test_liars_asked_after_plausible_claims(self) -> None:
        """
        Seventeen honest peers and seven liars (fewer than a third): the
        range the node needs next goes to an honest peer.
        """
        down, conns = self.downloader(17, 7)
        self.assertEqual(down.peers.plausible_height(0), 27)
        down.pump()
        asked = self.first_range_asked_of(conns)
        self.assertEqual(len(asked), 1)
        self.assertTrue(asked[0].startswith("10.0.0."), asked)

    def test_most_claim_more_then_highest_first(self) -> None:
        """
        Where more than a third claim the higher height it is plausible,
        and the peer covering most of the range is asked first, as
        before: a lone honest peer that is behind does not hold it up.
        """
        down, conns = self.downloader(2, 7)
        self.assertEqual(down.peers.plausible_height(0), LIE)
        down.pump()
        asked = self.first_range_asked_of(conns)
        self.assertEqual(len(asked), 1)
        self.assertTrue(asked[0].startswith("10.0.9."), asked)
