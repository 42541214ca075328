"""
Block sync: how a node reaches the network's height and stays there, and
whether it has caught up (C{docs/sync.md}).  One object per job:

- L{timecoin.p2p.sync.engine}: C{BlockSync}, the coordinator the P2P
  service builds; it owns the parts below, returns the handlers of
  C{get_blocks} and C{block}, and answers for the node's
  L{timecoin.syncstatus.SyncStatus} while it runs.
- L{timecoin.p2p.sync.peers}: C{SyncPeers}, what each peer claimed and
  proved (C{PeerSync}), its skips and charges.
- L{timecoin.p2p.sync.proof}: what a peer's commit certificate proves.
- L{timecoin.p2p.sync.window}: the download window (C{Batch},
  C{DownloadWindow}); L{timecoin.p2p.sync.downloader}: C{Downloader}, the
  requests (peer choice, pacing, timeouts, retries) and connecting what
  arrived in height order.
- L{timecoin.p2p.sync.connect}: C{BlockConnector}, one block at a time
  under one lock.
- L{timecoin.p2p.sync.state}: C{SyncState}, the idle / catching-up /
  synced state machine.
- L{timecoin.p2p.sync.conflicts}: C{ChainGuard}, refused blocks,
  conflicting committed chains, the one reorganization.
- L{timecoin.p2p.sync.announce}: C{Announcements}, tip polls and announced
  blocks.
- L{timecoin.p2p.sync.serve}: C{BlockServer}, answering C{get_blocks}.
- L{timecoin.p2p.sync.report}: C{SyncReport}, counters and rate-limited
  warnings shared by the parts.

What may import what: the parts import C{timecoin.p2p.dependencies},
C{messages}, C{ratelimit}, C{settings} and the core (C{block}, C{chain},
C{params}; C{node} and C{gossip} for types only), never C{protocol},
C{registry} or C{manager}; among themselves each imports only the parts
listed before it in the order C{report}, C{proof}, C{peers}, C{window},
C{connect}, C{downloader}, C{state}, C{conflicts}, C{announce},
C{serve}, C{engine}; none imports this package.  The one backward call
(the downloader tells the state machine and the guard what happened)
goes through callables the engine passes in.
"""

from timecoin.p2p.sync.engine import BlockSync
from timecoin.p2p.sync.peers import PeerSync
from timecoin.p2p.sync.state import CATCHING_UP, IDLE, STATES, SYNCED
from timecoin.p2p.sync.window import Batch

__all__ = ["CATCHING_UP", "IDLE", "STATES", "SYNCED", "Batch", "BlockSync",
           "PeerSync"]
