"""
The P2P layer as a Twisted service.

L{P2PService} listens on C{[p2p] bind:port}, dials the seeds of the
config and the peers it learns, runs the periodic tasks (dial rule, tip
polls, relay of local transactions, saving the peer table) and hooks the
node's events (votes cast, blocks committed, heartbeats signed) to
gossip.  It starts once the node is ready (chain loaded); stopping it
stops every dialer, closes every connection and saves
C{DATADIR/peers.json}.  With C{[p2p] tls} every connection runs inside TLS
pinned to the node keys (L{timecoin.p2p.tls}).
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from timecoin.node import Node
from timecoin.p2p.consensus_relay import ConsensusRelay
from timecoin.p2p.dependencies import Direction
from timecoin.p2p.gossip import Gossip
from timecoin.p2p.manager import PeerManager
from timecoin.p2p.peers import PeerTable, Source, is_ip, parse_address, peer_key
from timecoin.p2p.protocol import (
    PeerClientFactory,
    PeerProtocol,
    PeerServerFactory,
)
from timecoin.p2p.reach import SnapshotKeys
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync import BlockSync
from timecoin.p2p.tls import NodeTLS
from timecoin.signal import Signal

log = Logger()


def table_secret(seed: bytes) -> bytes:
    """
    The peer table's bucket secret for a node key C{seed}: secret to
    whoever lacks the key, the same at every start (a table loaded from
    C{peers.json} keeps the one it was saved with), and a function of the
    node alone, so a simulated run replays exactly (it was drawn from the
    OS, so which learned addresses a node dialled varied between runs of
    one seed).
    """
    return hashlib.sha256(b"timecoin peer table\x00" + seed).digest()[:16]


class P2PService(Service):
    """
    Runs the P2P layer of C{node}.

    @param reactor: provides C{IReactorTCP} and C{IReactorTime} (in tests,
        L{timecoin.p2p.testing.FakeNetwork.reactor}).
    @param settings: default: from the node's config.
    @param rng: seeded randomness (nonces, jitter); default: seeded from
        the OS.
    """

    def __init__(self, node: Node, reactor: Any,
                 settings: P2PSettings | None = None,
                 rng: random.Random | None = None) -> None:
        self.node = node
        self.reactor = reactor
        settings = settings or node.config.p2p
        if not settings.port:
            settings = replace(settings, port=node.config.p2p.port)
        self.settings = settings
        self.rng = rng if rng is not None else random.Random(os.urandom(16))
        self.table = PeerTable(Path(node.datadir) / "peers.json", reactor,
                               settings.table_size, settings.max_failures,
                               settings.addr_buckets,
                               settings.addr_bucket_size,
                               settings.addr_buckets_per_source,
                               settings.anchors,
                               table_secret(node.key.seed))
        self.scores = Scores(reactor, settings.ban_threshold,
                             settings.ban_seconds, settings.score_half_life)
        # The registry first, the relays against it, then the manager
        # given the relays (their handlers merge into its one table).
        peers: PeerRegistry[PeerProtocol] = PeerRegistry(
            reactor, settings, self.rng, self.table, self.scores,
            SnapshotKeys(node))
        self.gossip = Gossip(node, peers, reactor, settings)
        self.sync = BlockSync(node, peers, self.gossip, reactor, settings,
                              node.sync_status)
        self.consensus = ConsensusRelay(node, peers, settings.seen_size,
                                        self.gossip.aggregation)
        self.manager = PeerManager(node, peers, self.gossip, self.sync,
                                   self.consensus, self._connect)
        self.tls: NodeTLS | None = NodeTLS.for_node(node.datadir, node.key) \
            if settings.tls else None
        """TLS with the node's pinned certificate, if C{[p2p] tls}."""
        self.port: IListeningPort | None = None
        self._loops: list[task.LoopingCall] = []
        self._hooks: list[tuple[Signal[Any], Callable[..., None]]] = []
        self._started = False

    # Service -------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.node.ready.called:
            self._start()
        else:
            self.node.ready.addCallback(self._node_ready)

    def _node_ready(self, result: Any) -> Any:
        if self.running:
            try:
                self._start()
            except Exception:
                log.failure("P2P failed to start")
        return result

    def _start(self) -> None:
        settings = self.settings
        self.table.load()
        for host in {"127.0.0.1", "::1", settings.bind}:
            if is_ip(host):
                self.manager.dialing.self_keys.add(peer_key(host, settings.port))
        for seed in settings.connect:
            self.add_seed(seed)
        if settings.listen:
            server: Any = PeerServerFactory(self.manager)
            if self.tls is not None:
                server = self.tls.wrap_server(server, self.reactor)
            self.port = self.reactor.listenTCP(
                settings.port, server, interface=settings.bind)
            log.info("P2P listening on {bind}:{port} (TLS {tls})",
                     bind=settings.bind, port=settings.port,
                     tls="on" if self.tls is not None else "off")
        self._hook(self.node.finality.vote_cast, self.gossip.vote_cast)
        self._hook(self.node.consensus.committed,
                   self.gossip.block_committed)
        self._hook(self.node.finality.tx_accepted, self.gossip.tx_accepted)
        self._hook(self.node.consensus.outbox, self.consensus.cast)
        self._hook(self.node.liveness.heartbeat_cast,
                   self.gossip.heartbeats.cast)
        self._loop(self.manager.dialing.maintain, settings.maintain_interval)
        self._loop(self.sync.poll, settings.tip_interval)
        self._loop(self.gossip.expire_orphans, settings.relay_interval)
        # The snapshot changes with blocks (timecoin.p2p.reach).
        self._loop(self.gossip.reach.update, settings.relay_interval)
        self._loop(self.table.save, settings.save_interval)
        self._started = True
        self.manager.start()
        self.sync.start()

    def add_seed(self, address: str) -> None:
        """
        Add a C{host:port} seed; host names are resolved first (the table
        holds IPs only).
        """
        try:
            host, port = parse_address(address, ip_only=False)
        except ValueError as e:
            log.warn("ignoring seed {seed}: {error}", seed=address,
                     error=str(e))
            return
        if is_ip(host):
            self.table.add(host, port, Source.SEED)
            return
        resolve = getattr(self.reactor, "resolve", None)
        if resolve is None:
            log.warn("cannot resolve seed {seed}", seed=address)
            return
        d = resolve(host)

        def resolved(ip: str) -> None:
            self.table.add(ip, port, Source.SEED)
            self.manager.dialing.maintain()

        def failed(failure: Any) -> None:
            log.warn("cannot resolve seed {seed}: {error}", seed=address,
                     error=failure.getErrorMessage())

        d.addCallbacks(resolved, failed)

    def stopService(self) -> Any:
        super().stopService()
        if not self._started:
            return None
        self._started = False
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        for hooks, callback in self._hooks:
            hooks.disconnect(callback)
        self._hooks = []
        self.sync.stop()
        self.manager.stop()
        try:
            self.table.save()
        except OSError:
            log.failure("could not save the peer table")
        if self.port is not None:
            d = defer.maybeDeferred(self.port.stopListening)
            self.port = None
            return d
        return None

    def _hook(self, hooks: Signal[Any], callback: Callable[..., None]) -> None:
        hooks.connect(callback)
        self._hooks.append((hooks, callback))

    def _loop(self, function: Callable[[], None], interval: float) -> None:
        def safe() -> None:
            try:
                function()
            except Exception:
                log.failure("P2P periodic task {name} failed",
                            name=getattr(function, "__name__", "?"))

        loop = task.LoopingCall(safe)
        loop.clock = self.reactor
        loop.start(interval, now=False)
        self._loops.append(loop)

    def _connect(self, host: str, port: int, factory: PeerClientFactory,
                 timeout: float) -> Any:
        client: Any = factory
        if self.tls is not None:
            client = self.tls.wrap_client(factory, self.reactor)
        return self.reactor.connectTCP(host, port, client, timeout=timeout)

    # Bans (RPC setban / listbanned / clearbanned) ------------------------

    def set_ban(self, key: str, seconds: float | None = None) -> None:
        """
        Ban the identity C{key} (an IP; C{ip:port} on loopback) for
        C{seconds} (default C{ban_seconds}) and drop its connections.
        """
        self.scores.ban(key, seconds)
        self.manager.peers.stop_dialer(key, "banned")
        for conn in list(self.manager.peers.connections):
            if key in (conn.peer_key, conn.ip):
                conn.close("banned", "banned by the operator")

    def clear_ban(self, key: str | None = None) -> None:
        """
        Lift the ban (and score) of C{key}, or of everyone.
        """
        for banned in [key] if key is not None else list(self.scores.bans()):
            self.scores.unban(banned)

    def banned(self) -> dict[str, float]:
        """
        Current bans: identity → time the ban ends.
        """
        return self.scores.bans()

    # Queries (RPC) -------------------------------------------------------

    @property
    def waiting(self) -> int:
        """
        Transactions from peers waiting for admission (the gossip's queue).
        """
        return self.gossip.admission.waiting

    def peer_info(self) -> list[dict[str, Any]]:
        """
        RPC C{getpeerinfo}: one dict per connection.
        """
        return self.manager.peer_info()

    def network_info(self) -> dict[str, Any]:
        """
        RPC C{getnetworkinfo}: connection counts, listen address, bans and
        counters.
        """
        manager = self.manager
        inbound = sum(1 for c in manager.peers.ready.values()
                      if c.direction == Direction.INBOUND)
        return {
            "connections": len(manager.peers.ready),
            "connections_in": inbound,
            "connections_out": len(manager.peers.ready) - inbound,
            "dialing": sorted(manager.peers.dialers),
            "listening": self.port is not None,
            "bind": self.settings.bind, "port": self.settings.port,
            "known_peers": len(self.table),
            "banned": self.scores.bans(),
            "counters": dict(manager.peers.counters),
            "gossip": dict(self.gossip.counters),
            "aggregation": dict(self.gossip.aggregation.counters),
            "sync": dict(self.sync.counters),
        }
