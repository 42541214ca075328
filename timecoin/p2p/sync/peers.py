"""
What block sync knows of each peer: the heights it claimed and the ones
it proved, its skips and what it was charged (L{SyncPeers}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from timecoin.block import Block, CommitCertificate
from timecoin.p2p.dependencies import Connection, PeerSet
from timecoin.p2p.ratelimit import TokenBucket
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync.proof import certifies, may_certify
from timecoin.p2p.sync.report import SyncReport

if TYPE_CHECKING:
    from timecoin.chain import Chain


@dataclass
class PeerSync:
    """
    What sync knows of one peer.

    @ivar height: the best height it claimed (lowered when it cannot
        serve a range it claimed): a hint of where to download from, never
        proof that we are behind.
    @ivar shown: the highest block it proved: delivered or announced with
        a commit certificate that verifies against the masternode
        snapshot (a liar cannot forge one).
    @ivar undelivered: requests in a row it let time out, or answered
        empty below its claim; while non-zero its claims count neither
        toward the sync state nor the best height, and each miss doubles
        its skip period.  Reset when it delivers blocks.
    @ivar unproven_until: a certificate it sent did not verify; no other
        is checked before this time.
    @ivar seen_at: when it last told us its height (or answered a range).
    @ivar failed_until: it is not asked for blocks before this time.
    @ivar in_flight: our C{get_blocks} requests it has not answered yet.
    @ivar bucket: paces our requests below its C{get_blocks} rate limit.
    """

    key: str
    height: int = -1
    shown: int = -1
    undelivered: int = 0
    unproven_until: float = 0.0
    seen_at: float = float("-inf")
    failed_until: float = 0.0
    in_flight: int = 0
    bucket: TokenBucket | None = None
    requests: int = 0
    blocks: int = 0
    slow: int = 0


class SyncPeers:
    """
    Sync's view of each ready peer: what it claimed and proved, whether
    we may download from it now, and what it costs to claim blocks and
    deliver none.

    @ivar peers: the view of each peer, by peer key.
    """

    def __init__(self, chain: Chain, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings, report: SyncReport) -> None:
        self.chain = chain
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.counters = report.counters
        self.peers: dict[str, PeerSync] = {}

    @property
    def heights(self) -> dict[str, int]:
        """
        The best height each peer (by key) told us.
        """
        return {key: p.height for key, p in self.peers.items()}

    def get(self, key: str) -> PeerSync | None:
        """
        The view of peer C{key}, if it told us anything.
        """
        return self.peers.get(key)

    def heard(self, conn: Connection, height: int) -> PeerSync:
        """
        C{conn} says it has blocks up to C{height}: a claim, fresh now.
        """
        peer = self.peers.get(conn.peer_key)
        if peer is None:
            peer = self.peers[conn.peer_key] = PeerSync(conn.peer_key)
        peer.height = max(peer.height, height)
        peer.seen_at = self.clock.seconds()
        return peer

    def forget(self, key: str) -> None:
        """
        Peer C{key} disconnected.
        """
        self.peers.pop(key, None)

    def usable(self, now: float) -> list[PeerSync]:
        """
        Peers we may download from now: connected, not failed lately.
        """
        ready = self.peerset.ready
        return [p for key, p in self.peers.items()
                if key in ready and p.failed_until <= now]

    def fresh(self, now: float) -> list[PeerSync]:
        """
        Usable peers whose height report is younger than
        C{sync_synced_ttl}.
        """
        ttl = self.settings.sync_synced_ttl
        return [p for p in self.usable(now) if now - p.seen_at <= ttl]

    def target_height(self) -> int:
        """
        The best height a usable peer claims (our own if none is ahead).
        """
        now = self.clock.seconds()
        return max([self.chain.height] + [p.height for p in self.usable(now)])

    def plausible_height(self, now: float) -> int:
        """
        The highest height that more than a third of the usable peers
        claim (our own if none is usable): while fewer than a third of
        them lie, an honest peer claims it.  Peers claiming more are asked
        last (L{timecoin.p2p.sync.downloader.Downloader}): asked first
        for the most blocks, height liars that never answer held every
        request of the window for their timeout, one pair after another
        (the simulator found it: a node restarted among seven liars of
        fifty masternodes never caught up, seed 21).
        """
        claims = sorted((p.height for p in self.usable(now)), reverse=True)
        if not claims:
            return self.chain.height
        return claims[len(claims) // 3]

    def shown(self, peer: PeerSync, block: Block,
              commit: CommitCertificate) -> None:
        """
        C{peer} sent C{block} with C{commit}: if the certificate verifies,
        the block's height is shown (proof, not a claim), and the peer is
        no longer counted as undelivering.
        """
        if block.height <= max(peer.shown, self.chain.height):
            # Nothing to prove above our tip: only a delivery.
            peer.undelivered = 0
            return
        now = self.clock.seconds()
        if now < peer.unproven_until:
            self.counters["sync-unproven-skipped"] += 1
            return
        if not may_certify(self.chain, commit, block.height) or \
                not certifies(self.chain, commit, block.height, block.hash):
            # Checked at most once per sync_unproven_cooldown per peer, so
            # forged certificates cannot make us verify signatures at the
            # announcement rate.
            self.counters["sync-unproven"] += 1
            peer.unproven_until = now + self.settings.sync_unproven_cooldown
            return
        peer.shown = block.height
        peer.undelivered = 0

    def undelivered(self, conn: Connection, peer: PeerSync, start: int,
                    count: int, charge: bool = True) -> None:
        """
        C{peer} claimed blocks from C{start} and delivered none of them
        (its request timed out, or it answered empty): its claims stop
        counting toward the state and the best height, it is skipped for
        C{sync_retry_after} doubled per miss in a row (at most
        C{sync_retry_max}), and charged C{sync-undelivered}.
        """
        peer.undelivered += 1
        skip = min(self.settings.sync_retry_after
                   * 2 ** (peer.undelivered - 1),
                   self.settings.sync_retry_max)
        peer.failed_until = max(peer.failed_until,
                                self.clock.seconds() + skip)
        self.counters["sync-undelivered"] += 1
        points = self.settings.sync_undelivered_points if charge else 0
        if self.peerset.offence(conn, "sync-undelivered",
                                f"claimed height {peer.height}, delivered "
                                f"none of {start}..{start + count - 1}",
                                points):
            conn.close("banned", "sync-undelivered")

    def penalize(self, key: str) -> None:
        """
        Peer C{key} sent something bad: skip it for C{sync_retry_after}.
        """
        peer = self.peers.get(key)
        if peer is not None:
            peer.failed_until = self.clock.seconds() + \
                self.settings.sync_retry_after

    def skip_ahead(self, ours: int, now: float) -> int:
        """
        Skip every usable peer that claims more than C{ours} for
        C{sync_retry_after} (a download from them stalled); returns how
        many.
        """
        ahead = [p for p in self.usable(now) if p.height > ours]
        for peer in ahead:
            peer.failed_until = now + self.settings.sync_retry_after
        return len(ahead)
