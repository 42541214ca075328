"""
The ready slots: at most one completed connection per peer identity,
at most C{max_peers} of them.

A connection whose handshake is proven claims the slot of its identity
(L{ReadySlots.claim}): a banned identity is refused; a full set evicts an
inbound peer (L{timecoin.p2p.eviction.eviction_candidate}) or refuses.
A connection that ends gives its slot back at once
(L{ReadySlots.release}).

Identity and duplicates
    A peer is its identity key (its IP; C{ip:port} on loopback, see
    L{timecoin.p2p.peers.peer_key}); at most one completed connection per
    key.  When a second connection with a key completes its handshake:

    - same node key, opposite directions (a simultaneous open): both sides
      keep the connection *dialled by the node with the lower public key*
      and close the other with C{duplicate-connection}.  Both sides compare
      the same two keys, so they close the same connection; the higher
      side also stops its dialer, so nothing redials: one connection,
      never a cycle;
    - same node key, both inbound: the peer reconnected (the old one is a
      dead half-open socket): the new one replaces it;
    - same node key, both outbound: cannot happen (one dialer per key);
      the new one is refused;
    - another node key at the same IP: refused (C{duplicate-ip}).

Imports only
L{timecoin.p2p.dependencies}, L{timecoin.p2p.eviction},
L{timecoin.p2p.messages}, L{timecoin.p2p.protocol},
L{timecoin.p2p.registry} and L{timecoin.p2p.sync}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from timecoin.p2p.dependencies import Direction
from timecoin.p2p.eviction import eviction_candidate
from timecoin.p2p.messages import Hello
from timecoin.p2p.protocol import PeerProtocol
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.sync import BlockSync

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger(namespace="timecoin.p2p.manager")
"""The manager's log lines keep the namespace they always had."""


class ReadySlots:
    """
    Who holds the ready slots of the registry, and who must give one up.
    """

    def __init__(self, node: Node, peers: PeerRegistry[PeerProtocol],
                 sync: BlockSync | None) -> None:
        """
        @param node: our key (simultaneous opens) and chain (the
            masternodes never evicted).
        @param peers: the registry whose ready set the slots are.
        @param sync: told of each peer that leaves the ready set.
        """
        self.node = node
        self.peers = peers
        self.sync = sync

    def claim(self, conn: PeerProtocol,
              hello: Hello) -> tuple[str, str] | None:
        """
        Give C{conn} (its C{hello} proven, its identity known) the slot
        of its identity; C{None} when it holds it now, else the
        (reason, detail) refusal.
        """
        peers = self.peers
        key = conn.peer_key
        if peers.scores.banned(key):
            return "banned", ""
        existing = peers.ready.get(key)
        if existing is None:
            if len(peers.ready) >= peers.settings.max_peers and \
                    not self._make_room():
                return "too-many-peers", f"{len(peers.ready)} peers"
        elif existing.hello is None or existing.hello.pubkey != hello.pubkey:
            return "duplicate-ip", "another node holds this IP's connection"
        elif existing.direction == conn.direction:
            if conn.direction == Direction.OUTBOUND:
                return "duplicate-connection", "already connected"
            existing.close("replaced", "the peer reconnected")
        else:
            refusal = self._settle_duplicate(existing, conn, hello.pubkey)
            if refusal is not None:
                return refusal
        peers.ready[key] = conn
        port = conn.dial_port if conn.direction == Direction.OUTBOUND \
            else hello.listen_port
        peers.table.connected(key, conn.ip, port, hello.pubkey)
        dialer = peers.dialers.get(key)
        if conn.direction == Direction.INBOUND and dialer is not None \
                and dialer.connection is None:
            peers.stop_dialer(key, "connected inbound")
        return None

    def release(self, conn: PeerProtocol, reason: str) -> None:
        """
        Take C{conn} out of the ready set now (it is being closed), so its
        slot is free at once.
        """
        key = conn.peer_key
        peers = self.peers
        if key and peers.ready.get(key) is conn:
            del peers.ready[key]
            peers.table.touch(key)
            peers.forget(conn)
            log.info("disconnected from {peer}: {reason}", peer=conn.peer,
                     reason=reason)
            if self.sync is not None:
                self.sync.peer_gone(conn)

    def _make_room(self) -> bool:
        """
        C{max_peers} is full and a new peer completed its handshake: evict
        the inbound peer that L{eviction_candidate} names; returns whether
        one was evicted.
        """
        chain = self.node.chain
        victim = eviction_candidate(self.peers, {
            m.pubkey for m in chain.snapshot_for(chain.height + 1)})
        if victim is None:
            self.peers.count("eviction-none")
            return False
        self.peers.count("evicted")
        log.info("evicting inbound peer {peer} to make room for a new one",
                 peer=victim.peer)
        self.release(victim, "evicted")
        victim.close("evicted", "making room for another peer")
        return True

    def _settle_duplicate(self, existing: PeerProtocol, conn: PeerProtocol,
                          their_pubkey: bytes) -> tuple[str, str] | None:
        """
        A simultaneous open: keep the connection dialled by the lower key.
        """
        self.peers.count("simultaneous-open")
        we_dial = self.node.key.public < their_pubkey
        keep_direction = Direction.OUTBOUND if we_dial else Direction.INBOUND
        if not we_dial:
            self.peers.stop_dialer(conn.peer_key, "the peer dials us")
        if existing.direction == keep_direction:
            return "duplicate-connection", "kept the lower key's connection"
        existing.close("duplicate-connection",
                       "kept the lower key's connection")
        return None
