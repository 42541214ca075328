"""
Block sync: L{BlockSync}, the coordinator of the parts that bring this
node to the network's height and keep it there.

States (L{BlockSync.state}, kept by L{SyncState}), recomputed from facts
on every event, every tick (1 s) and every read, so no flag can stay set:

- C{idle}: no peer we can sync from has told us its height recently
  (none connected, all failed, or none heard from within
  C{sync_synced_ttl}).
- C{catching-up}: a usable peer I{showed} a block more than C{sync_lag}
  above our tip (with a commit certificate that verifies: proof), or a
  usable peer claims more while we have no evidence of being current (see
  L{SyncState._judge}).  If no block is connected for
  C{sync_stall_timeout} seconds the download is reset, the peers ahead are
  skipped for C{sync_retry_after}, and the state falls back to idle or
  synced.
- C{synced}: a usable peer told us its height within C{sync_synced_ttl}
  and neither proof nor a counting claim says we are behind.

A claimed height is a hint for the downloader, never proof: a peer that
does not deliver what it claims is charged C{sync-undelivered}, its claims
stop counting, and its skip doubles per miss, so no peer (nor a few, with
fresh identities) can keep a node out of consensus by lying about height.

Heights come from C{hello}, C{tip} replies (every C{tip_interval}) and
block announcements.  When a peer is ahead, the missing range is cut into
batches of at most C{sync_batch} (≤ 100) blocks, requested with
C{get_blocks} from several peers in parallel: at most C{sync_window}
requests in flight, at most C{sync_peer_requests} per peer, paced below
the peer's C{get_blocks} rate limit, and never beyond C{sync_window ×
sync_batch} blocks past our tip (the download window: out-of-order replies
wait in memory only within it, and no new request starts while
C{sync_buffer_bytes} are buffered).  Blocks are validated and connected
strictly in height order, each with its commit certificate
(L{timecoin.chain.Chain.connect_block}).

A request not answered within C{sync_request_timeout} marks its peer slow:
every batch it holds is asked of another peer at once and the peer is not
asked again for C{sync_retry_after} (no score: slow is not malicious).  A
reply with the wrong heights is C{bad-response}; an invalid block or
certificate is C{invalid-block} (a ban); in both cases the rest of the
range is fetched elsewhere.  An empty reply lowers what we believe that
peer has.

Committed blocks are final (a block is only connected with a certificate
of 2/3 of the masternode weight), so a peer whose chain differs from ours
at a height we hold is never followed: when it proves its block with a
valid certificate we log a critical error with both hashes (more than a
third of the weight signed two blocks) and ban it (C{conflicting-block});
we keep ours.  The one reorganization the chain allows is replacing a tip
connected *without* its own certificate by a committed block at that
height (depth 1, see C{docs/sync.md}).

L{BlockSync.is_synced} is what block consensus and transaction voting
consult (through the node's L{SyncStatus}, which it answers for while it
runs): a node takes part only once synced, or when its own weight alone
is a quorum (a one-masternode devnet) and no peer is ahead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime

from timecoin.block import Block, CommitCertificate
from timecoin.chain import BlockInvalid
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync.announce import Announcements
from timecoin.p2p.sync.conflicts import ChainGuard
from timecoin.p2p.sync.connect import BlockConnector
from timecoin.p2p.sync.downloader import SYNC_TICK, Downloader
from timecoin.p2p.sync.peers import PeerSync, SyncPeers
from timecoin.p2p.sync.report import SyncReport
from timecoin.p2p.sync.serve import BlockServer
from timecoin.p2p.sync.state import STATES, SyncState
from timecoin.p2p.sync.window import Batch
from timecoin.syncstatus import Judge, SyncStatus

if TYPE_CHECKING:
    from timecoin.node import Node
    from timecoin.p2p.gossip import Gossip


class BlockSync:
    """
    Follows the peers' heights, downloads and connects missing blocks, and
    says whether this node has caught up.

    It builds its parts and owns them: C{report} (counters, warnings),
    C{known} (each peer's sync view), C{connector} (connecting under one
    lock), C{downloader} (requests and the window), C{machine} (the
    state), C{guard} (refusals and conflicts), C{announcements} (tips and
    announced blocks) and C{server} (answering C{get_blocks}).

    @ivar counters: every event counted by reason code.
    """

    STATES = STATES

    def __init__(self, node: Node, peerset: PeerSet, gossip: Gossip,
                 clock: IReactorTime, settings: P2PSettings,
                 status: SyncStatus) -> None:
        """
        @param status: the node's sync status, which this sync answers for
            while it runs (from L{start} to L{stop}).
        """
        self.node = node
        self.clock = clock
        self.status = status
        self.report = SyncReport(clock)
        self.counters = self.report.counters
        chain = node.chain
        self.known = SyncPeers(chain, peerset, clock, settings, self.report)
        self.connector = BlockConnector(node)
        self.downloader = Downloader(
            chain, peerset, self.known, self.connector, clock, settings,
            self.report, refused=self._refused,
            evaluate=lambda: self.machine.evaluate(),
            progressed=lambda: self.machine.progressed())
        self.machine = SyncState(node, peerset, self.known, self.downloader,
                                 clock, settings, self.report)
        self.guard = ChainGuard(node, self.connector, self.known,
                                self.downloader, clock, self.report)
        self.announcements = Announcements(
            chain, peerset, gossip, self.known, self.connector, self.guard,
            self.downloader, self.machine, self.report)
        self.server = BlockServer(node, self.counters)
        self._tick: task.LoopingCall | None = None
        self._judge_before: Judge | None = None

    def _refused(self, conn: Connection | None, block: Block,
                 commit: CommitCertificate,
                 error: BlockInvalid) -> defer.Deferred[Any]:
        # The downloader is built before the guard that judges refusals.
        return self.guard.refused(conn, block, commit, error)

    # Lifecycle -----------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages sync handles, by type.
        """
        return {"get_blocks": self.server.serve_blocks,
                "block": self.announcements.block_announced}

    def start(self) -> None:
        """
        Start the state machine's tick and make block consensus and
        transaction voting wait until this node is synced (this sync
        answers for the node's L{SyncStatus}).
        """
        self.machine.start()
        self._judge_before = self.status.judge_by(self.is_synced)
        self.node.chain.block_connected.connect(self.machine.block_connected)
        self._tick = task.LoopingCall(self.tick)
        self._tick.clock = self.clock
        self._tick.start(SYNC_TICK, now=False)

    def stop(self) -> None:
        """
        Stop the tick, forget every download, and give the node's
        L{SyncStatus} back to what judged it before L{start}.
        """
        if self._tick is not None and self._tick.running:
            self._tick.stop()
        self._tick = None
        self.downloader.stop()
        if self.machine.running:
            self.status.judge_by(self._judge_before)
            self._judge_before = None
            self.node.chain.block_connected.disconnect(
                self.machine.block_connected)
            self.machine.stop()

    def tick(self) -> None:
        """
        Re-evaluate the state, sample the rate, log progress, and retry
        downloads whose peers became available again.
        """
        now = self.clock.seconds()
        self.machine.sample(now)
        self.downloader.pump()
        state = self.machine.evaluate()
        self.machine.synced_edge()
        self.machine.log_progress(state, now)

    # What the manager and the service tell sync -------------------------

    def peer_tip(self, conn: Connection, height: int) -> None:
        """
        C{conn} has blocks up to C{height} (its C{hello}): compare, and
        catch up if it is ahead.
        """
        self.known.heard(conn, height)
        self.downloader.pump()
        self.machine.evaluate()

    def peer_gone(self, conn: Connection) -> None:
        """
        C{conn} disconnected: forget it (its requests fail on their own).
        """
        self.known.forget(conn.peer_key)
        self.machine.evaluate()

    def poll(self) -> None:
        """
        Ask every ready peer for its tip (runs every C{tip_interval}).
        """
        self.announcements.poll()

    # What the node, RPC, metrics and tests read --------------------------

    @property
    def state(self) -> str:
        """
        The current state: C{idle}, C{catching-up} or C{synced}.
        """
        return self.machine.state

    def is_synced(self) -> bool:
        """
        Whether this node may take part in consensus and vote
        (L{SyncState.is_synced}).
        """
        return self.machine.is_synced()

    def best_height(self) -> int:
        """
        RPC C{headers} (L{SyncState.best_height}).
        """
        return self.machine.best_height()

    def in_flight(self) -> int:
        """
        C{get_blocks} requests in flight (not given up on).
        """
        return self.downloader.window.in_flight()

    def blocks_per_s(self) -> float:
        """
        Blocks connected by sync per second over the last ten seconds.
        """
        return self.machine.blocks_per_s()

    @property
    def peers(self) -> dict[str, PeerSync]:
        """
        Sync's view of each ready peer, by peer key.
        """
        return self.known.peers

    @property
    def heights(self) -> dict[str, int]:
        """
        The best height each peer (by key) told us.
        """
        return self.known.heights

    @property
    def batches(self) -> dict[int, Batch]:
        """
        Ranges being downloaded or waiting to be connected, by first
        height.
        """
        return self.downloader.window.batches

    @property
    def max_buffered(self) -> int:
        """
        The most blocks ever waiting to be connected at once.
        """
        return self.downloader.window.max_buffered

    def info(self) -> dict[str, Any]:
        """
        The sync state for RPC and metrics.
        """
        now = self.clock.seconds()
        window = self.downloader.window
        return {
            "state": self.state,
            "since": self.machine.since,
            "height": self.node.chain.height,
            "headers": self.best_height(),
            "peers": len(self.known.usable(now)),
            "in_flight": window.in_flight(),
            "blocks_per_s": round(self.blocks_per_s(), 1),
            "buffered_blocks": window.buffered_blocks(),
            "buffered_bytes": window.buffered_bytes,
            "synced_blocks": self.counters["sync-blocks"],
            "conflicts": self.counters["conflicting-block"],
        }
