"""
The protocol tests' base: L{ProtocolTestBase} (one node's P2P
protocol over a C{StringTransport}, on a fake clock), L{Wire} (the
peer's side of that transport) and L{make_node}.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.helpers import START, key, result_of
from timecoin.config import Config
from timecoin.keys import PrivateKey
from timecoin.node import Node
from timecoin.p2p.consensus_relay import ConsensusRelay
from timecoin.p2p.dependencies import Direction, State
from timecoin.p2p.gossip import Gossip
from timecoin.p2p.handshake import HelloProof, make_proof
from timecoin.p2p.manager import PeerManager
from timecoin.p2p.messages import (
    PROTOCOL_VERSION,
    Hello,
    Message,
    parse_line,
)
from timecoin.p2p.peers import PeerTable
from timecoin.p2p.protocol import PeerClientFactory, PeerProtocol
from timecoin.p2p.reach import SnapshotKeys
from timecoin.p2p.registry import PeerRegistry
from timecoin.p2p.scoring import Scores
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.sync import BlockSync
from timecoin.storage.memory import MemoryStore
from timecoin.wallet import write_private
from timecoin.wiring import build

PEER_IP = "10.0.0.9"


def make_node(testcase: unittest.TestCase, clock: Clock, n: int = 1,
              genesis: str = "", policy: str = "round-robin") -> Node:
    """
    A devnet node with test key C{n}, on a memory store, chain loaded (not
    started, so it does not produce).
    """
    datadir = Path(testcase.mktemp())
    write_private(datadir / "private" / "node_key",
                  key(n).seed.hex().encode() + b"\n")
    config = Config(network="devnet", datadir=str(datadir), block_time=2.0,
                    genesis=genesis, policy=policy)
    config.resolve()
    node = build(config, clock, store=MemoryStore(), with_p2p=False).node
    result_of(node.chain.load())
    return node


class Wire:
    """
    One connection under test: the protocol, its transport, and helpers to
    feed it lines and read what it sent.
    """

    def __init__(self, proto: PeerProtocol, transport: StringTransport) -> None:
        self.proto = proto
        self.transport = transport

    def sent(self) -> list[Message]:
        """
        The messages written since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return [parse_line(line) for line in data.split(b"\n") if line]

    def sent_types(self) -> list[str]:
        """
        The types of the messages written since the last call.
        """
        return [m.name for m in self.sent()]

    def feed(self, *msgs: Message | bytes) -> None:
        """
        Deliver messages (or raw lines) to the protocol.
        """
        for msg in msgs:
            line = msg if isinstance(msg, bytes) else msg.encode()
            self.proto.dataReceived(line + b"\n")

    @property
    def closed(self) -> bool:
        """
        Whether the protocol closed the transport.
        """
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        """
        Deliver the connection loss the transport would report.
        """
        self.proto.connectionLost(Failure(ConnectionDone()))


class ProtocolTestBase(unittest.TestCase):
    """
    A node with a peer manager, gossip and sync, no service around them.
    """

    settings = P2PSettings(port=24200)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.node = make_node(self, self.clock)
        self.scores = Scores(self.clock, ban_seconds=600)
        peers: PeerRegistry[PeerProtocol] = PeerRegistry(
            self.clock, self.settings, random.Random(7),
            PeerTable(None, self.clock), self.scores,
            SnapshotKeys(self.node))
        gossip = self.gossip = Gossip(self.node, peers, self.clock,
                                      self.settings)
        sync = BlockSync(self.node, peers, gossip, self.clock, self.settings,
                         self.node.sync_status)
        self.manager = PeerManager(self.node, peers, gossip, sync,
                                   self.consensus_relay(peers))
        self.manager.start()

    def consensus_relay(self, peers: PeerRegistry[PeerProtocol]
                        ) -> ConsensusRelay | None:
        """
        The relay of consensus messages to wire, if any (none here).
        """
        return None

    def tearDown(self) -> None:
        self.manager.stop()

    def hello(self, **changes: Any) -> Hello:
        """
        A valid hello from the remote peer (test key 50), with changes.
        """
        fields: dict[str, Any] = dict(
            network="devnet", version=PROTOCOL_VERSION,
            genesis=self.node.genesis.hash,
            height=0, listen_port=24200, pubkey=key(50).public,
            policy="round-robin", nonce=b"\x01" * 8, user_agent="test/1")
        fields.update(changes)
        return Hello(**fields)

    def proof(self, hello: Hello | None = None,
              signer: PrivateKey | None = None) -> HelloProof:
        """
        The remote peer's C{hello_proof} for its C{hello} (default: the
        default one), signed by C{signer} (default: test key 50, the
        hello's key).
        """
        hello = hello or self.hello()
        return make_proof(signer or key(50), hello,
                          self.manager.local_hello())

    def handshake(self, wire: Wire, **changes: Any) -> None:
        """
        Feed the remote peer's C{hello} (with C{changes}) and its proof.
        """
        hello = self.hello(**changes)
        wire.feed(hello, self.proof(hello))

    def connect(self, direction: Direction = Direction.INBOUND,
                ip: str = PEER_IP, port: int = 50123) -> Wire:
        """
        Open a connection in C{direction}; outbound ones come from a dialer
        as the manager makes them.
        """
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", ip,
                                    port if direction == Direction.INBOUND
                                    else 24200))
        if direction == Direction.OUTBOUND:
            factory = PeerClientFactory(self.manager, ip, ip, 24200,
                                        random.Random(1))
            self.manager.peers.dialers[ip] = factory
            proto = factory.buildProtocol(None)
        else:
            proto = PeerProtocol(self.manager, Direction.INBOUND)
        proto.makeConnection(transport)
        return Wire(proto, transport)

    def ready(self, direction: Direction = Direction.INBOUND,
              **changes: Any) -> Wire:
        """
        A connection past its handshake, with the output cleared.
        """
        wire = self.connect(direction)
        self.handshake(wire, **changes)
        self.assertEqual(wire.proto.state, State.READY)
        wire.sent()
        return wire


class KeyedPeersTestBase(ProtocolTestBase):
    """
    L{ProtocolTestBase} with ready inbound peers of test keys 50, 51, ...
    at 10.0.1.50, 10.0.1.51, ... (L{peer}), and which of them were sent a
    line (L{got}).
    """

    def setUp(self) -> None:
        super().setUp()
        self.peers: dict[int, Wire] = {}

    def peer(self, n: int, version: int | None = None) -> Wire:
        """
        Connect and handshake the peer of test key C{n} (speaking protocol
        C{version}, by default ours); its hellos and anything sent to it
        so far are cleared.
        """
        wire = self.connect(Direction.INBOUND, ip=f"10.0.1.{n}")
        changes: dict[str, Any] = {"pubkey": key(n).public,
                                   "nonce": bytes([n]) * 8}
        if version is not None:
            changes["version"] = version
        hello = self.hello(**changes)
        wire.feed(hello, self.proof(hello, key(n)))
        self.assertEqual(wire.proto.state, State.READY)
        wire.sent()
        self.peers[n] = wire
        return wire

    def got(self, msg: Message | bytes) -> list[int]:
        """
        The peers that were sent C{msg} (a message or its line) since the
        last call (every peer's output is cleared).
        """
        line = msg if isinstance(msg, bytes) else msg.encode()
        out = []
        for n, wire in sorted(self.peers.items()):
            lines = wire.transport.value().split(b"\n")
            wire.transport.clear()
            if line in lines:
                out.append(n)
        return out
