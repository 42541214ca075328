"""
Who we are connected to, whom we dial, and what a message means.

Handshakes
    The manager checks each C{hello} (network, genesis, version, policy,
    not ourselves) and C{hello_proof}; the caps on connections still in
    handshake are L{timecoin.p2p.gate.ConnectionGate}'s, and who holds the
    ready slots (one per identity: duplicates, simultaneous opens,
    eviction) is L{timecoin.p2p.slots.ReadySlots}'s.

Dial rule
    Whom we dial and when is L{timecoin.p2p.dialing.DialRule}'s job (the
    manager builds it and hands it the dial events).

Message dispatch
    The manager's own ready-state handlers (C{get_peers}, C{get_tip}) and
    those the relays return from C{handlers()} are merged once, when the
    manager is built, into one L{HandlerTable}; the connection accepts in
    its ready state exactly those types plus its own (ping, pong, error,
    responses: L{timecoin.p2p.intake.STATES}).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin import __version__
from timecoin.p2p.caches import LineCache
from timecoin.p2p.consensus_relay import ConsensusRelay
from timecoin.p2p.dependencies import (
    Connection,
    Direction,
    Handler,
    HandlerTable,
    State,
)
from timecoin.p2p.dialing import ConnectTCP, DialRule
from timecoin.p2p.exchange import PeerExchange
from timecoin.p2p.gate import ConnectionGate
from timecoin.p2p.gossip import Gossip
from timecoin.p2p.handshake import HelloProof, check_proof, make_proof
from timecoin.p2p.intake import STATES
from timecoin.p2p.messages import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Error,
    GetPeers,
    GetTip,
    Hello,
    Message,
    Tip,
)
from timecoin.p2p.peers import peer_key
from timecoin.p2p.protocol import PeerClientFactory, PeerProtocol
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.slots import ReadySlots
from timecoin.p2p.sync import BlockSync

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

USEFUL = {"block": "blocks", "proposal": "blocks", "block_vote": "votes",
          "tx_vote": "votes", "tx_votes": "votes", "tx": "txs",
          "txs": "txs"}
"""Message types whose first copy protects its sender from eviction, and
the kind of delivery each counts as."""


class PeerManager:
    """
    The handshake acceptance, dial rule and message dispatch of one node;
    the connections themselves are in its L{PeerRegistry} (C{peers}), the
    caps on handshakes in its L{ConnectionGate} (C{gate}), the ready
    slots in its L{ReadySlots} (C{slots}).

    Its collaborators come in the constructor: the relays (each returns
    its message handlers; they are merged once, with the manager's own,
    into L{handlers}) and the registry they were built with.  The open
    and ready connections, dialers, peer table and counters are read from
    the registry (C{manager.peers}); keys found to be ourselves from the
    dial rule (C{manager.dialing.self_keys}).

    @ivar handlers: the one table of ready-state message handlers.
    """

    def __init__(self, node: Node, peers: PeerRegistry[PeerProtocol],
                 gossip: Gossip | None = None,
                 sync: BlockSync | None = None,
                 consensus: ConsensusRelay | None = None,
                 connect: ConnectTCP | None = None) -> None:
        self.node = node
        self.peers = peers
        self.gossip = gossip
        """Transaction, vote, heartbeat and block gossip."""
        self.sync = sync
        """Block sync."""
        self.consensus = consensus
        """The relay of block-consensus messages."""
        self.nonce = peers.rng.randbytes(8)
        self.dialing = DialRule(peers, self, self.nonce, connect)
        """The dial rule: whom we dial, and when."""
        self.exchange = PeerExchange(peers, self.dialing)
        """Peer exchange: addresses asked of and served to peers."""
        self.gate = ConnectionGate(node, peers)
        """The caps on connections in handshake."""
        self.slots = ReadySlots(node, peers, sync)
        """Who holds the ready slots."""
        self._told_duplicate_ip = False
        self.handlers = HandlerTable(
            self.own_handlers(),
            *(relay.handlers() for relay in (gossip, sync, consensus)
              if relay is not None),
            reserved=set(STATES[State.HELLO]) | set(STATES[State.READY]))

    def own_handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages the manager itself answers.
        """
        return {"get_peers": self._serve_peers, "get_tip": self._serve_tip}

    # What the connections read (ConnectionHost); the rest of the
    # registry is read as C{manager.peers} --------------------------------

    @property
    def clock(self) -> IReactorTime:
        """
        The clock every timer runs on.
        """
        return self.peers.clock

    @property
    def settings(self) -> P2PSettings:
        """
        The P2P settings.
        """
        return self.peers.settings

    @property
    def rng(self) -> random.Random:
        """
        Seeded randomness (nonces, jitter, relay sampling).
        """
        return self.peers.rng

    @property
    def scores(self) -> Scores:
        """
        Misbehaviour scores and bans.
        """
        return self.peers.scores

    @property
    def lines(self) -> LineCache:
        """
        Digests of gossip lines already handled.
        """
        return self.peers.lines

    def count(self, reason: str, n: int = 1) -> None:
        """
        Count one occurrence of C{reason}.
        """
        self.peers.count(reason, n)

    def offence(self, conn: Connection, reason: str, detail: str,
                points: int) -> bool:
        """
        Count, log and score an offence of C{conn}; returns whether its
        identity is now banned (L{PeerRegistry.offence}).
        """
        return self.peers.offence(conn, reason, detail, points)

    @property
    def proven(self) -> set[str]:
        """
        Peers whose connection we dialled proved stable.
        """
        return self.dialing.proven

    def dial_failed(self, factory: PeerClientFactory,
                    reason: Failure) -> None:
        """
        A dial of C{factory} did not connect (L{DialRule.dial_failed}).
        """
        self.dialing.dial_failed(factory, reason)

    def dial_lost(self, factory: PeerClientFactory, handshaken: bool) -> None:
        """
        The connection C{factory} made ended (L{DialRule.dial_lost}).
        """
        self.dialing.dial_lost(factory, handshaken)

    @property
    def pubkey(self) -> bytes:
        """
        Our node key (the dial rule compares it with the peers').
        """
        return self.node.key.public

    def start(self) -> None:
        """
        Accept connections and start dialing.
        """
        self.peers.running = True
        self.dialing.start()

    def stop(self) -> None:
        """
        Stop every dialer and close every connection (C{shutdown}).
        """
        self.peers.running = False
        self.dialing.stop()
        if self.gossip is not None:
            self.gossip.stop()
        for key in list(self.peers.dialers):
            self.peers.stop_dialer(key, "shutdown")
        for conn in list(self.peers.connections):
            conn.close("shutdown")

    def local_hello(self) -> Hello:
        """
        Our C{hello}.
        """
        node = self.node
        return Hello(network=node.network.name, version=PROTOCOL_VERSION,
                     genesis=node.genesis.hash, height=node.chain.height,
                     listen_port=self.settings.port if self.settings.listen
                     else 0,
                     pubkey=self.pubkey, policy=node.config.policy,
                     nonce=self.nonce, user_agent=f"timecoin/{__version__}")

    # Connection lifecycle ------------------------------------------------

    def connection_made(self, conn: PeerProtocol) -> str | None:
        """
        A TCP connection opened; returns a reason to refuse it at once.
        """
        self.peers.connections.add(conn)
        if not self.peers.running:
            return "shutdown"
        return self.gate.refusal(conn)

    def hello_received(self, conn: PeerProtocol,
                       hello: Hello) -> tuple[str, str] | None:
        """
        Decide on a peer's C{hello}: C{None} accepts it (and sends our
        C{hello_proof}; the connection is registered once the peer's proof
        arrives, L{proof_received}), else (reason, detail) refuses it.
        """
        node = self.node
        if hello.network != node.network.name:
            return "wrong-network", f"this is {node.network.name}"
        if hello.genesis != node.genesis.hash:
            return "wrong-genesis", f"our genesis is {node.genesis.hash.hex()}"
        if min(hello.version, PROTOCOL_VERSION) < MIN_PROTOCOL_VERSION:
            return "unsupported-version", \
                f"we speak {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}"
        if hello.policy != node.config.policy:
            return "policy-mismatch", f"we run {node.config.policy}"
        if hello.nonce == self.nonce or hello.pubkey == self.pubkey:
            self._found_self(conn)
            return "self-connection", ""
        conn.send(make_proof(node.key, self.local_hello(), hello))
        return None

    def proof_received(self, conn: PeerProtocol,
                       proof: HelloProof) -> tuple[str, str] | None:
        """
        Decide on a peer's C{hello_proof} (its C{hello} was accepted): the
        signature must be by its hello's key over our nonce
        (L{timecoin.p2p.handshake}); only then is the connection registered
        under its identity.  C{None} accepts it, else (reason, detail).
        """
        hello = conn.hello
        assert hello is not None
        refusal = check_proof(proof, self.local_hello(), hello)
        if refusal is not None:
            return refusal
        if conn.direction == Direction.INBOUND:
            conn.peer_key = peer_key(conn.ip, hello.listen_port)
        return self.slots.claim(conn, hello)

    def _found_self(self, conn: PeerProtocol) -> None:
        if conn.direction == Direction.OUTBOUND and conn.dialer is not None:
            key = conn.dialer.key
            log.info("{key} is this node; not dialing it again", key=key)
            self.dialing.self_keys.add(key)
            self.peers.stop_dialer(key, "self")
            self.peers.table.remove(key)

    def peer_ready(self, conn: PeerProtocol) -> None:
        """
        A handshake completed: ask for peers, compare heights.
        """
        assert conn.hello is not None
        log.info("connected to {peer} ({direction}), height {height}, "
                 "{agent}", peer=conn.peer, direction=conn.direction,
                 height=conn.hello.height, agent=conn.hello.user_agent)
        self.count("handshakes")
        if conn.direction == Direction.OUTBOUND:
            self.peers.table.good_outbound(conn.peer_key)
        self.peers.ready_serial += 1
        conn.ready_serial = self.peers.ready_serial
        self.exchange.ask(conn)
        if self.sync is not None:
            self.sync.peer_tip(conn, conn.hello.height)
        if self.gossip is not None:
            self.gossip.peer_ready(conn)

    def connection_lost(self, conn: PeerProtocol) -> None:
        """
        A connection ended, in any state.
        """
        self.peers.connections.discard(conn)
        self.slots.release(conn, conn.close_reason or "connection lost")
        self.peers.forget(conn)
        if self.gossip is not None:
            # We may no longer reach every masternode (timecoin.p2p.reach).
            self.gossip.reach.update()
        self.dialing.schedule_maintain()

    def closing(self, conn: PeerProtocol, reason: str, detail: str) -> None:
        """
        We are closing C{conn} for C{reason}: log and count it.
        """
        self.count(f"closed:{reason}")
        self.peers.log(conn, "closing connection to {peer}: {reason} {detail}",
                  reason, detail)

    def error_received(self, conn: PeerProtocol, msg: Error) -> None:
        """
        The peer sent an C{error}: log and count it.
        """
        self.count(f"error-received:{msg.reason}")
        self.peers.log(conn, "{peer} sent error {reason} {detail}", msg.reason,
                  msg.detail)
        if msg.reason == "duplicate-ip" and not self._told_duplicate_ip:
            self._told_duplicate_ip = True
            log.warn(
                "cannot connect to {peer}: another node at this node's IP "
                "address already holds its connection there.  Peers are "
                "identified by IP address (one connection per IP): run each "
                "node on an address of its own (on loopback, devnet only, "
                "nodes are told apart by port).  This node retries with a "
                "growing delay; this is said once.", peer=conn.peer,
                reason="duplicate-ip")
        if msg.reason == "self-connection":
            self._found_self(conn)

    # Messages ------------------------------------------------------------

    def message_received(self, conn: PeerProtocol, msg: Message) -> None:
        """
        Dispatch a message of the ready state that is not connection-level,
        by its type.
        """
        if msg.name not in self.handlers:
            self.count(f"unhandled:{msg.name}")
            return
        kind = USEFUL.get(msg.name)
        if kind is not None:
            # Repeats of a line already handled never get here
            # (PeerProtocol.lineReceived): this is new to us.
            self.peers.delivered(conn, kind)
        self.handlers.dispatch(conn, msg)

    def _serve_peers(self, conn: Connection, msg: GetPeers) -> None:
        self.exchange.serve(conn, msg)

    def _serve_tip(self, conn: Connection, msg: GetTip) -> None:
        chain = self.node.chain
        conn.send(Tip(msg.id, chain.height, chain.tip.hash))

    # Queries -------------------------------------------------------------

    def peer_info(self) -> list[dict[str, Any]]:
        """
        One dict per open connection (RPC C{getpeerinfo}).
        """
        return [c.info() for c in sorted(self.peers.connections,
                                         key=lambda c: (c.peer, c.direction))]
