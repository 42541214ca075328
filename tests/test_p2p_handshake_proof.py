"""
The handshake proves the node key (issue 14, item 7).

Before, on loopback a peer's identity was whatever its C{hello} claimed:
claiming another node's key and listen port replaced that node's real
connection, and the claimer's offences were charged to (and banned) that
node.  Now each side signs the other's nonce (C{hello_proof},
L{timecoin.p2p.handshake}) and a connection is registered under an
identity only once that proof verifies.

One connection at a time on a C{StringTransport} and a fake clock
(L{tests.test_p2p_protocol.ProtocolTestBase}).
"""

from __future__ import annotations

from typing import Any

from tests.helpers import key
from tests.helpers.p2p import ProtocolTestBase, Wire
from timecoin.p2p.dependencies import Direction, State
from timecoin.p2p.handshake import HelloProof, check_proof, make_proof
from timecoin.p2p.messages import Error

LOOPBACK = "127.0.0.1"
REAL_PORT = 24201
"""The listen port of the real node (test key 50) on loopback."""
REAL_KEY = f"{LOOPBACK}:{REAL_PORT}"


class HandshakeProofTests(ProtocolTestBase):
    """
    A claimed identity is refused unless the claimer holds the key.
    """

    def real_node(self) -> Wire:
        """
        The real node (test key 50, listening on REAL_PORT) connected from
        loopback and ready.
        """
        wire = self.connect(Direction.INBOUND, LOOPBACK, 50001)
        self.handshake(wire, listen_port=REAL_PORT)
        self.assertIs(self.manager.peers.ready[REAL_KEY], wire.proto)
        wire.sent()
        return wire

    def claimer(self, port: int = 50002, **changes: Any) -> Wire:
        """
        Another loopback connection whose hello claims the real node's key
        and listen port (a fresh nonce).
        """
        wire = self.connect(Direction.INBOUND, LOOPBACK, port)
        wire.sent()
        wire.feed(self.hello(listen_port=REAL_PORT, nonce=b"\x07" * 8,
                             **changes))
        return wire

    def test_claimed_key_refused_real_node_kept(self) -> None:
        """
        A hello claiming the real node's key and port, followed by a proof
        signed with the claimer's own key, is refused (bad-hello-proof,
        no score); the real node's connection stays registered and open,
        and its identity has no score.  (Before: the claimer's hello
        replaced the real connection, "the peer reconnected".)
        """
        real = self.real_node()
        wire = self.claimer()
        self.assertEqual(wire.proto.state, State.HELLO)
        self.assertIs(self.manager.peers.ready[REAL_KEY], real.proto)
        hello = self.hello(listen_port=REAL_PORT, nonce=b"\x07" * 8)
        wire.feed(self.proof(hello, signer=key(66)))
        errors = [m for m in wire.sent() if isinstance(m, Error)]
        self.assertEqual([e.reason for e in errors], ["bad-hello-proof"])
        self.assertTrue(wire.closed)
        wire.lose()
        self.assertIs(self.manager.peers.ready[REAL_KEY], real.proto)
        self.assertFalse(real.closed)
        self.assertEqual(real.proto.state, State.READY)
        self.assertEqual(self.scores.score(REAL_KEY), 0)
        self.assertEqual(self.manager.peers.counters["bad-hello-proof"], 1)

    def test_claimer_offences_not_charged_to_real_node(self) -> None:
        """
        A claimer that sends garbage instead of a proof is charged under
        its own address, never under the identity it claimed: the real
        node is neither scored nor banned, and stays connected.  (Before:
        the points landed on C{127.0.0.1:<real port>} and banned it.)
        """
        real = self.real_node()
        for port in range(50010, 50016):
            wire = self.claimer(port)
            wire.feed(b"garbage")
            self.assertTrue(wire.closed)
            wire.lose()
        self.assertEqual(self.scores.score(REAL_KEY), 0)
        self.assertFalse(self.scores.banned(REAL_KEY))
        self.assertIs(self.manager.peers.ready[REAL_KEY], real.proto)
        self.assertFalse(real.closed)

    def test_silent_claimer_times_out(self) -> None:
        """
        A claimer that cannot sign and sends nothing more is ended by the
        handshake timeout; the real node is untouched.
        """
        real = self.real_node()
        wire = self.claimer()
        self.clock.advance(self.settings.handshake_timeout)
        self.assertEqual(wire.proto.close_reason, "handshake-timeout")
        wire.lose()
        self.assertIs(self.manager.peers.ready[REAL_KEY], real.proto)

    def test_real_node_reconnect_still_replaces(self) -> None:
        """
        The real node itself reconnecting (a new connection with a valid
        proof) still replaces its dead old connection.
        """
        old = self.real_node()
        new = self.connect(Direction.INBOUND, LOOPBACK, 50003)
        self.handshake(new, listen_port=REAL_PORT, nonce=b"\x08" * 8)
        self.assertIs(self.manager.peers.ready[REAL_KEY], new.proto)
        self.assertEqual(old.proto.close_reason, "replaced")

    def test_relayed_proof_refused(self) -> None:
        """
        A proof the real node made for someone else (another receiver key
        or another nonce) does not verify here: proofs are bound to the
        receiver's nonce and key.
        """
        self.real_node()
        claimed = self.hello(listen_port=REAL_PORT, nonce=b"\x07" * 8)
        other = self.manager.local_hello()
        elsewhere = make_proof(key(50), claimed, type(other)(
            other.network, other.version, other.genesis, other.height,
            other.listen_port, key(77).public, other.policy, other.nonce,
            other.user_agent))
        stale = make_proof(key(50), claimed, type(other)(
            other.network, other.version, other.genesis, other.height,
            other.listen_port, other.pubkey, other.policy, b"\x09" * 8,
            other.user_agent))
        for proof in (elsewhere, stale):
            with self.subTest(proof=proof.signature.hex()[:8]):
                self.assertIsNotNone(check_proof(proof, other, claimed))
                wire = self.claimer()
                wire.feed(proof)
                self.assertEqual(wire.proto.close_reason, "bad-hello-proof")
                wire.lose()
        good = make_proof(key(50), claimed, other)
        self.assertIsNone(check_proof(good, other, claimed))

    def test_proof_before_hello_refused(self) -> None:
        """
        A hello_proof before any hello is expected-hello; a second hello
        during the handshake is expected-hello too.
        """
        wire = self.connect(Direction.INBOUND, LOOPBACK, 50004)
        wire.sent()
        wire.feed(HelloProof(b"\x00" * 64))
        self.assertEqual(wire.proto.close_reason, "expected-hello")
        wire.lose()
        again = self.connect(Direction.INBOUND, LOOPBACK, 50005)
        again.feed(self.hello(), self.hello())
        self.assertEqual(again.proto.close_reason, "expected-hello")
