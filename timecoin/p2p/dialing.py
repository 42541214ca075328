"""
The dial rule: whom this node dials, and when.

We dial a known address unless it is connected, already has a dialer
(connecting, connected or in backoff: never a second dial), is banned,
is ourselves, or belongs to a node whose public key is *lower* than
ours: that node dials us, and we only dial it if no connection came
within C{passive_wait} seconds (e.g. it cannot reach us).  Seeds and
anchors are dialled first, then other known peers up to the outbound
cap, one per network group first.

L{DialRule} is built by the manager, which it names as the host of the
connections it dials (L{DialHost}); the dialers themselves live in the
L{timecoin.p2p.registry.PeerRegistry}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.encoding import sha256
from timecoin.p2p.dependencies import ConnectionHost
from timecoin.p2p.peers import PeerEntry, Source, is_loopback, subnet
from timecoin.p2p.protocol import PeerClientFactory, PeerProtocol
from timecoin.p2p.registry import PeerRegistry

log = Logger()

ConnectTCP = Callable[[str, int, PeerClientFactory, float], Any]
"""How the manager dials: (host, port, factory, timeout)."""


class DialHost(ConnectionHost[PeerProtocol, PeerClientFactory], Protocol):
    """
    The manager, as the dial rule sees it: the host of the connections
    it dials, with our node key.
    """

    @property
    def pubkey(self) -> bytes:
        """
        Our node key (the dial rule compares it with the peers').
        """


class DialRule:
    """
    Applies the dial rule over the peer table.

    @ivar self_keys: keys found to be ourselves (never dialled).
    @ivar proven: peers whose connection we dialled lasted
        C{stable_after}: their dialers retry at least every
        C{proven_max_delay}.
    @ivar started_at: when the P2P layer (re)started; a peer with a lower
        key is waited for C{passive_wait} from then.
    """

    def __init__(self, peers: PeerRegistry[PeerProtocol], host: DialHost,
                 nonce: bytes, connect: ConnectTCP | None = None) -> None:
        """
        @param nonce: our handshake nonce; it orders the learned
            addresses differently on each node.
        @param connect: how to dial (C{None}: dialers are made, not
            connected; tests).
        """
        self.peers = peers
        self.host = host
        self.nonce = nonce
        self._connect = connect
        self.self_keys: set[str] = set()
        self.proven: set[str] = set()
        self.started_at = peers.clock.seconds()
        self._maintain_call: Any = None

    def start(self) -> None:
        """
        The P2P layer starts: dial now.
        """
        self.started_at = self.peers.clock.seconds()
        self.maintain()

    def stop(self) -> None:
        """
        The P2P layer stops: no more dial rounds.
        """
        if self._maintain_call is not None and self._maintain_call.active():
            self._maintain_call.cancel()

    def schedule_maintain(self) -> None:
        """
        Run L{maintain} on the next reactor turn (once, however often
        asked).
        """
        if self.peers.running and (self._maintain_call is None
                             or not self._maintain_call.active()):
            self._maintain_call = self.peers.clock.callLater(0, self.maintain)

    def maintain(self) -> None:  # noqa: C901
        """
        Apply the dial rule: stop dialers of banned peers; dial the seeds
        and anchors first (freeing a dialer held by a learned address that
        is not connected if there is no room); then other known peers up to
        the outbound cap, one per network group first (diversity), tried
        addresses before untried ones.
        """
        if not self.peers.running:
            return
        self.peers.scores.prune()
        for key in list(self.peers.dialers):
            if self.peers.scores.banned(key):
                self.peers.stop_dialer(key, "banned")
        room = min(self.peers.settings.max_outbound - len(self.peers.dialers),
                   self.peers.settings.max_peers - len(self.peers.ready))
        now = self.peers.clock.seconds()
        reserved = self.reserved()
        for key in reserved:
            entry = self.peers.table.get(key)
            if entry is None or not self.should_dial(entry, now):
                continue
            if room <= 0:
                if len(self.peers.ready) >= self.peers.settings.max_peers or \
                        not self._free_dialer(reserved):
                    break
                room += 1
            self.dial(entry)
            room -= 1
        if room <= 0:
            return
        candidates = sorted(
            (e for e in self.peers.table.entries.values()
             if e.key not in reserved and self.should_dial(e, now)),
            key=lambda e: (not e.tried, e.failures, self._order(e.key)))
        groups = {self._group(key) for key in self.peers.dialers}
        chosen: list[PeerEntry] = []
        for entry in candidates:
            if len(chosen) >= room:
                break
            group = self._group(entry.key)
            if group not in groups:
                groups.add(group)
                chosen.append(entry)
        for entry in candidates:
            if len(chosen) >= room:
                break
            if entry not in chosen:
                chosen.append(entry)
        for entry in chosen:
            self.dial(entry)

    def reserved(self) -> list[str]:
        """
        The peers we always dial: the configured seeds, then the anchors
        (the last good outbound peers, kept across restarts).  With more
        seeds than C{max_outbound} they come in this node's own order
        (L{_order}), so that nodes given the same long list do not all dial
        the same first ones and leave the others to inbound connections
        alone (at 30 masternodes some had 18 peers, issue 19).
        """
        seeds = sorted(e.key for e in self.peers.table.entries.values()
                       if e.source == Source.SEED)
        if len(seeds) > self.peers.settings.max_outbound:
            seeds.sort(key=self._order)
        return seeds + [a for a in self.peers.table.anchors if a not in seeds]

    def _group(self, key: str) -> str:
        entry = self.peers.table.get(key)
        host = entry.host if entry is not None else key
        return key if is_loopback(host) else subnet(host)

    def _order(self, key: str) -> bytes:
        """
        A stable order of addresses that differs between nodes (keyed by
        our nonce), so nodes do not all pick the same learned peers.
        """
        return sha256(self.nonce + key.encode())

    def _free_dialer(self, reserved: list[str]) -> bool:
        """
        Stop one dialer of a learned address that is not connected (in
        backoff or connecting), so a seed or anchor can be dialled.
        """
        idle = sorted(key for key, f in self.peers.dialers.items()
                      if key not in reserved and f.connection is None)
        if not idle:
            return False
        self.peers.stop_dialer(idle[0], "make-room")
        return True

    def should_dial(self, entry: PeerEntry, now: float) -> bool:
        """
        Whether the dial rule lets us dial C{entry} now.
        """
        key = entry.key
        if key in self.peers.dialers or key in self.peers.ready or \
                key in self.self_keys:
            return False
        if self.peers.scores.banned(key):
            return False
        if entry.retry_at > now:
            return False
        if any(c.peer_key == key for c in self.peers.connections):
            return False
        if entry.pubkey is not None and entry.pubkey < self.host.pubkey and \
                entry.source != Source.SEED and \
                key not in self.peers.table.anchors:
            # The lower key dials; we wait for it a while.  An operator's
            # --connect and the anchors (last good outbound peers) are
            # always dialled: a restarted node with the highest key would
            # otherwise wait passive_wait for peers that may not know it
            # is back.
            since = max(entry.last_seen, self.started_at)
            return now - since >= self.peers.settings.passive_wait
        return True

    def dial(self, entry: PeerEntry) -> PeerClientFactory:
        """
        Start dialing C{entry} (it must have no dialer yet).
        """
        assert entry.key not in self.peers.dialers, entry.key
        factory = PeerClientFactory(self.host, entry.key, entry.host,
                                    entry.port, self.peers.rng)
        self.peers.dialers[entry.key] = factory
        self.peers.count("dials")
        log.info("dialing {key} at {address}", key=entry.key,
                 address=entry.address)
        if self._connect is not None:
            self._connect(entry.host, entry.port, factory,
                          self.peers.settings.connect_timeout)
        return factory

    def dial_failed(self, factory: PeerClientFactory,
                    reason: Failure) -> None:
        """
        A dial of C{factory} did not connect.
        """
        key = factory.key
        if self.peers.dialers.get(key) is not factory:
            return
        self.peers.count("dial-failed")
        if self.peers.table.failed(key):
            log.info("giving up on {key} after {n} failed dials",
                     key=key, n=self.peers.table.max_failures)
            self.peers.stop_dialer(key, "unreachable")
            self.peers.table.remove(key)
            self.schedule_maintain()
            return
        entry = self.peers.table.get(key)
        if entry is None or key in self.reserved():
            return
        # A learned address does not hold a dialer through a long backoff:
        # the dialer is freed now and the address waits (doubling per
        # failure) while others are tried.
        settings = self.peers.settings
        entry.retry_at = self.peers.clock.seconds() + min(
            settings.initial_delay * 2 ** max(0, entry.failures - 1),
            settings.learned_retry_max)
        self.peers.stop_dialer(key, "dial-failed")
        self.schedule_maintain()

    def dial_lost(self, factory: PeerClientFactory, handshaken: bool) -> None:
        """
        The connection C{factory} made ended; C{handshaken} says whether
        its handshake had completed.
        """
        if self.peers.dialers.get(factory.key) is not factory:
            return
        if factory.key in self.peers.ready:
            # Settled the other way (a simultaneous open): keep that one.
            self.peers.stop_dialer(factory.key, "connected inbound")
            return
        if not handshaken:
            self.dial_failed(factory, Failure(Exception("no handshake")))
            return
        entry = self.peers.table.get(factory.key)
        if entry is not None and entry.pubkey is not None \
                and entry.pubkey < self.host.pubkey:
            self.peers.stop_dialer(factory.key, "the peer dials us")
