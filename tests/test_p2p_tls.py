"""
TLS for P2P: certificates whose key is the node key, made once and kept
private; pinning of the certificate key to the C{hello} pubkey; and real
loopback TCP between two TLS nodes (handshake, catch-up, a block
announcement), a node whose certificate does not match its key, and a TLS
node meeting a plain one.
"""

from __future__ import annotations

import os
import random
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from OpenSSL import SSL
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.helpers import START, key
from timecoin.config import Config
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.tls import (
    CERT_FILE,
    KEY_MISMATCH,
    NodeTLS,
    certificate_pubkey,
    load_or_create_certificate,
    looks_like_tls,
    make_certificate,
    pin_refusal,
    tls_failure,
)
from timecoin.storage.memory import MemoryStore
from timecoin.wallet import write_private
from timecoin.wiring import build


def handshake(client: NodeTLS, server: NodeTLS) -> tuple[SSL.Connection,
                                                           SSL.Connection]:
    """
    Run a TLS handshake between C{client} and C{server} in memory; returns
    the (client, server) connections.
    """
    c = client.clientConnectionForTLS(None)
    c.set_connect_state()
    s = server.serverConnectionForTLS(None)
    s.set_accept_state()
    for _ in range(10):
        for this, other in ((c, s), (s, c)):
            try:
                this.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                other.bio_write(this.bio_read(65536))
            except SSL.WantReadError:
                pass
    return c, s


class FakeTLSTransport(TLSMemoryBIOProtocol):
    """
    A TLS transport whose peer certificate is set by the test.
    """

    def __init__(self, cert: Any) -> None:
        self.cert = cert

    def getPeerCertificate(self) -> Any:
        return self.cert


class CertificateTests(unittest.TestCase):
    """
    The node certificate and the pinning rule.
    """

    def test_certificate_key_is_node_key(self) -> None:
        """
        The certificate's public key is the node's Ed25519 key, it is
        self-signed by it, and the same key always gives the same bytes.
        """
        k = key(21)
        cert = make_certificate(k)
        self.assertEqual(certificate_pubkey(cert), k.public)
        self.assertEqual(cert.issuer, cert.subject)
        public = cert.public_key()
        assert isinstance(public, Ed25519PublicKey)
        public.verify(cert.signature, cert.tbs_certificate_bytes)
        self.assertEqual(make_certificate(k), cert)
        self.assertNotEqual(certificate_pubkey(make_certificate(key(22))),
                            k.public)

    def test_made_once_and_private(self) -> None:
        """
        The certificate is written once to C{DATADIR/private/p2p_tls.pem}
        with mode 0600 and reused; a file for another key or a corrupt
        file is replaced.
        """
        datadir = Path(self.mktemp())
        cert = load_or_create_certificate(datadir, key(21))
        path = datadir / "private" / CERT_FILE
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        before = path.stat().st_mtime_ns
        self.assertEqual(load_or_create_certificate(datadir, key(21)), cert)
        self.assertEqual(path.stat().st_mtime_ns, before)
        other = load_or_create_certificate(datadir, key(22))
        self.assertEqual(certificate_pubkey(other), key(22).public)
        path.write_bytes(b"garbage")
        self.assertEqual(load_or_create_certificate(datadir, key(22)), other)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

    def test_tls13_with_node_keys(self) -> None:
        """
        Two nodes negotiate TLS 1.3 with their Ed25519 certificates, each
        sees the other's node key, and a certificate for another key is
        refused at construction.
        """
        a, b = key(21), key(22)
        ta = NodeTLS(a, make_certificate(a))
        tb = NodeTLS(b, make_certificate(b))
        c, s = handshake(ta, tb)
        self.assertEqual(c.get_protocol_version_name(), "TLSv1.3")
        self.assertEqual(s.get_protocol_version_name(), "TLSv1.3")
        server_cert = c.get_peer_certificate(as_cryptography=True)
        client_cert = s.get_peer_certificate(as_cryptography=True)
        assert server_cert is not None and client_cert is not None
        self.assertEqual(certificate_pubkey(server_cert), b.public)
        self.assertEqual(certificate_pubkey(client_cert), a.public)
        self.assertRaises(ValueError, NodeTLS, a, make_certificate(b))

    def test_pinning(self) -> None:
        """
        A peer certificate whose key is the C{hello} pubkey passes; another
        key, or no certificate when TLS is required, is
        C{tls-key-mismatch}; a plain transport passes when TLS is off.
        """
        from OpenSSL.crypto import X509
        a, b = key(21), key(22)
        transport = FakeTLSTransport(X509.from_cryptography(
            make_certificate(a)))
        self.assertIsNone(pin_refusal(transport, a.public, True))
        refusal = pin_refusal(transport, b.public, True)
        assert refusal is not None
        self.assertEqual(refusal[0], KEY_MISMATCH)
        self.assertIsNone(pin_refusal(object(), a.public, False))
        for plain, required in ((object(), True),
                                (FakeTLSTransport(None), False)):
            refusal = pin_refusal(plain, a.public, required)
            assert refusal is not None
            self.assertEqual(refusal[0], KEY_MISMATCH)

    def test_plain_and_tls_detected(self) -> None:
        """
        A TLS record where a JSON line should start is recognized, and a
        connection lost to an OpenSSL error is described as a TLS failure.
        """
        self.assertTrue(looks_like_tls(b"\x16\x03\x01\x00"))
        self.assertFalse(looks_like_tls(b'{"type":"hello"}'))
        self.assertFalse(looks_like_tls(b""))
        self.assertIsNotNone(tls_failure(Failure(SSL.Error("bad record"))))
        self.assertIsNone(tls_failure(Failure(ValueError("other"))))
        self.assertIsNone(tls_failure(None))


class LoopbackTests(unittest.TestCase):
    """
    Nodes talking TLS over real loopback TCP (the global reactor for the
    P2P layer; the nodes' consensus clock is a L{task.Clock}, so blocks
    are made only when the test says so).
    """

    def setUp(self) -> None:
        from twisted.internet import reactor
        self.reactor: Any = reactor
        self.clock = task.Clock()
        self.clock.advance(START)
        self.services: list[P2PService] = []
        self.addCleanup(self.stop_all)

    def start(self, n: int, tls: bool = True, genesis: str = "",
              connect: tuple[str, ...] = (), listen: bool = True,
              tls_key: int | None = None) -> P2PService:
        """
        A node of test key C{n} with its P2P service on the real reactor,
        listening on an ephemeral loopback port if C{listen}; C{genesis}
        "" makes it a producing devnet; C{tls_key} serves the certificate
        of another key.
        """
        datadir = Path(self.mktemp())
        write_private(datadir / "private" / "node_key",
                      key(n).seed.hex().encode() + b"\n")
        config = Config(network="devnet", datadir=str(datadir),
                        block_time=2.0, p2p=P2PSettings(bind="127.0.0.1"),
                        genesis=genesis)
        config.resolve()
        config.p2p = replace(config.p2p, port=0)
        settings = replace(
            config.p2p, port=0, tls=tls, listen=listen, connect=connect,
            initial_delay=60.0)
        built = build(config, self.clock, reactor=self.reactor,
                      store=MemoryStore(), p2p_settings=settings,
                      rng=random.Random(n))
        service = built.p2p
        if tls_key is not None:
            other = key(tls_key)
            service.tls = NodeTLS(other, make_certificate(other))
        built.startService()
        self.services.append(service)
        return service

    def address(self, service: P2PService) -> str:
        """
        The C{host:port} C{service} listens on.
        """
        assert service.port is not None
        host: Any = service.port.getHost()
        return f"127.0.0.1:{host.port}"

    def produce(self, seconds: float) -> None:
        """
        Let C{seconds} of consensus time pass in 1 s steps.
        """
        for _ in range(int(seconds)):
            self.clock.advance(1)

    @defer.inlineCallbacks
    def wait_for(self, predicate: Callable[[], bool],
                 timeout: float = 15.0) -> Any:
        """
        Wait (on the real reactor) until C{predicate()} holds.
        """
        clock: IReactorTime = self.reactor
        deadline = clock.seconds() + timeout
        while not predicate():
            if clock.seconds() > deadline:
                self.fail("timed out waiting")
            yield task.deferLater(self.reactor, 0.02, lambda: None)

    @defer.inlineCallbacks
    def stop_all(self) -> Any:
        """
        Stop every service and node and wait for every socket to close.
        """
        for service in self.services:
            yield service.stopService()
            yield service.node.stopService()
        yield self.wait_for(lambda: all(
            not s.manager.peers.connections for s in self.services))
        yield task.deferLater(self.reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def test_tls_nodes_exchange_blocks(self) -> Any:
        """
        Two TLS nodes complete the handshake over TLS 1.3 with each
        other's node key pinned, the follower catches up from height 0
        with C{get_blocks}, and a block committed afterwards reaches it as
        an announcement.
        """
        producer = self.start(20)
        self.produce(10)
        height = producer.node.chain.height
        self.assertGreaterEqual(height, 3)
        genesis = str(Path(producer.node.datadir) / "genesis.json")
        follower = self.start(21, genesis=genesis, listen=False,
                              connect=(self.address(producer),))
        yield self.wait_for(lambda: follower.node.chain.height == height)
        conn = next(iter(follower.manager.peers.ready.values()))
        transport = conn.transport
        assert isinstance(transport, TLSMemoryBIOProtocol)
        self.assertEqual(transport.getHandle().get_protocol_version_name(),
                         "TLSv1.3")
        self.assertEqual(certificate_pubkey(
            transport.getPeerCertificate().to_cryptography()),
            producer.node.key.public)
        self.assertEqual(len(producer.manager.peers.ready), 1)
        self.produce(4)
        self.assertGreater(producer.node.chain.height, height)
        yield self.wait_for(lambda: follower.node.chain.height
                            == producer.node.chain.height)
        self.assertEqual(follower.node.chain.tip.hash,
                         producer.node.chain.tip.hash)
        self.assertGreaterEqual(conn.received["block"], 1)

    @defer.inlineCallbacks
    def test_mismatched_certificate_refused(self) -> Any:
        """
        A node whose certificate carries another key than its C{hello}
        pubkey is refused with C{tls-key-mismatch} and never becomes a
        peer.
        """
        producer = self.start(20)
        genesis = str(Path(producer.node.datadir) / "genesis.json")
        impostor = self.start(21, genesis=genesis, listen=False,
                              connect=(self.address(producer),), tls_key=9)
        yield self.wait_for(lambda: producer.manager.peers.counters[
            f"closed:{KEY_MISMATCH}"] >= 1 and not impostor.manager.peers.connections)
        self.assertEqual(
            impostor.manager.peers.counters[f"error-received:{KEY_MISMATCH}"], 1)
        self.assertEqual(producer.manager.peers.ready, {})
        self.assertEqual(producer.manager.peers.counters["handshakes"], 0)
        self.assertEqual(producer.scores.score("127.0.0.1:0"), 0)

    @defer.inlineCallbacks
    def test_tls_dials_plain(self) -> Any:
        """
        A TLS node dialling a plain node: the plain side closes with
        C{tls-unexpected}, the TLS side's handshake fails with
        C{tls-failed}; nobody is scored and both nodes stay up.
        """
        plain = self.start(20, tls=False)
        genesis = str(Path(plain.node.datadir) / "genesis.json")
        tls = self.start(21, genesis=genesis, listen=False,
                         connect=(self.address(plain),))
        yield self.wait_for(lambda: plain.manager.peers.counters[
            "closed:tls-unexpected"] >= 1 and tls.manager.peers.counters[
            "closed:tls-failed"] >= 1 and not tls.manager.peers.connections)
        for service in (plain, tls):
            self.assertEqual(service.manager.peers.ready, {})
            self.assertEqual(service.manager.peers.counters["bans"], 0)
            self.assertTrue(service.running)

    @defer.inlineCallbacks
    def test_plain_dials_tls(self) -> Any:
        """
        A plain node dialling a TLS node: the TLS side's handshake fails
        on the plain C{hello} with C{tls-failed}; no connection completes.
        """
        tls = self.start(20)
        genesis = str(Path(tls.node.datadir) / "genesis.json")
        plain = self.start(21, tls=False, genesis=genesis, listen=False,
                           connect=(self.address(tls),))
        yield self.wait_for(lambda: tls.manager.peers.counters[
            "closed:tls-failed"] >= 1 and not plain.manager.peers.connections)
        for service in (plain, tls):
            self.assertEqual(service.manager.peers.ready, {})
            self.assertEqual(service.manager.peers.counters["handshakes"], 0)
