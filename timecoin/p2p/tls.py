"""
Optional TLS for P2P connections, pinned to the node key.

With C{p2p_tls = true} every connection, inbound and outbound, runs the
line protocol inside TLS 1.3 (Twisted's L{TLSMemoryBIOFactory} wrapping the
same L{timecoin.p2p.protocol.PeerProtocol} factories, so the fake network
of the tests works too).  There are no certificate authorities:

- each node serves a self-signed X.509 certificate whose key I{is} its
  Ed25519 node key, made once and kept in C{DATADIR/private/p2p_tls.pem}
  (mode 0600; it holds the certificate only, the key stays in
  C{private/node_key}; a certificate for another key is replaced);
- both sides present certificates (the server requires one from the
  client) and accept any at the TLS layer: the TLS 1.3 handshake proves
  that the peer holds the certificate's private key;
- when the peer's C{hello} arrives the protocol checks that the
  certificate's public key equals C{hello.pubkey} (pinning) and refuses
  the connection with C{error {reason: "tls-key-mismatch"}} otherwise, so a
  peer cannot claim a node key it does not hold.

Both sides must agree: a TLS node and a plain node cannot talk.  The plain
side sees a TLS record where it expects a JSON line and closes with
C{tls-unexpected}; the TLS side's handshake fails on the plain JSON (or the
close) and the connection ends with C{tls-failed}; each is logged and
counted, and no score is charged (a misconfiguration, not an attack).
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from timecoin.keys import PrivateKey
from timecoin.wallet import write_private

log = Logger()

CERT_FILE = "p2p_tls.pem"
"""The certificate's file name in C{DATADIR/private}."""
KEY_MISMATCH = "tls-key-mismatch"
"""The reason code of a peer whose certificate key is not its node key."""
TLS_RECORD_STARTS = frozenset({0x14, 0x15, 0x16, 0x17})
"""First bytes of TLS records (change cipher spec, alert, handshake, data);
a JSON line never starts with one."""
NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59,
                              tzinfo=datetime.UTC)
"""The validity period: nobody checks it (the key is pinned), so it is
fixed, and the certificate of a key is always the same bytes."""


def make_certificate(key: PrivateKey) -> x509.Certificate:
    """
    A self-signed certificate whose public key is the node key C{key}.
    Deterministic: Ed25519 signatures are, and every field derives from
    the key.
    """
    private = Ed25519PrivateKey.from_private_bytes(key.seed)
    name = x509.Name([x509.NameAttribute(
        NameOID.COMMON_NAME, f"timecoin node {key.public.hex()[:32]}")])
    serial = int.from_bytes(hashlib.sha256(key.public).digest()[:16],
                            "big") >> 1
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(private.public_key())
            .serial_number(serial)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                           critical=True)
            .sign(private, None))


def certificate_pubkey(cert: x509.Certificate) -> bytes | None:
    """
    The raw Ed25519 public key of C{cert}, or C{None} for another kind of
    key.
    """
    public = cert.public_key()
    if not isinstance(public, Ed25519PublicKey):
        return None
    return public.public_bytes(serialization.Encoding.Raw,
                               serialization.PublicFormat.Raw)


def load_or_create_certificate(datadir: str | Path,
                               key: PrivateKey) -> x509.Certificate:
    """
    The node's certificate from C{DATADIR/private/p2p_tls.pem}, made (mode
    0600) on first use, and made again if the file is unreadable or holds
    a certificate for another key.
    """
    path = Path(datadir) / "private" / CERT_FILE
    if path.exists():
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError:
            log.warn("{path} is not a PEM certificate; making a new one",
                     path=str(path))
        else:
            if certificate_pubkey(cert) == key.public:
                return cert
            log.warn("{path} is for another key; making a new one",
                     path=str(path))
    cert = make_certificate(key)
    write_private(path, cert.public_bytes(serialization.Encoding.PEM))
    log.info("wrote the P2P TLS certificate {path}", path=str(path))
    return cert


def _accept_any(connection: SSL.Connection, cert: Any, errno: int,
                depth: int, ok: int) -> bool:
    """
    Accept any peer certificate at the TLS layer (self-signed, no CA): the
    protocol pins its key to the peer's C{hello} instead.
    """
    return True


@implementer(IOpenSSLClientConnectionCreator, IOpenSSLServerConnectionCreator)
class NodeTLS:
    """
    TLS 1.3 connections, both directions, serving C{cert} (whose key is
    C{key}) and requiring a certificate from the peer.
    """

    def __init__(self, key: PrivateKey, cert: x509.Certificate) -> None:
        if certificate_pubkey(cert) != key.public:
            raise ValueError("the certificate is not for this node key")
        self.pubkey = key.public
        self.cert = cert
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_TICKET)
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
        ctx.use_certificate(cert)
        ctx.use_privatekey(Ed25519PrivateKey.from_private_bytes(key.seed))
        ctx.check_privatekey()
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       _accept_any)
        self._context = ctx

    @classmethod
    def for_node(cls, datadir: str | Path, key: PrivateKey) -> NodeTLS:
        """
        The TLS of the node with data dir C{datadir} and node key C{key}.
        """
        return cls(key, load_or_create_certificate(datadir, key))

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A TLS connection for a connection we dialled.
        """
        return SSL.Connection(self._context, None)

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A TLS connection for an inbound connection.
        """
        return SSL.Connection(self._context, None)

    def wrap_client(self, factory: IProtocolFactory,
                    clock: IReactorTime) -> TLSMemoryBIOFactory:
        """
        C{factory}'s outbound connections inside TLS (pass the result to
        C{connectTCP}; the wrapper forwards the client factory events).
        """
        return TLSMemoryBIOFactory(self, True, factory, clock)

    def wrap_server(self, factory: IProtocolFactory,
                    clock: IReactorTime) -> TLSMemoryBIOFactory:
        """
        C{factory}'s inbound connections inside TLS (pass the result to
        C{listenTCP}).
        """
        return TLSMemoryBIOFactory(self, False, factory, clock)


def peer_certificate_key(transport: Any) -> bytes | None:
    """
    The Ed25519 key of the peer's certificate on C{transport}, or C{None}
    if the transport is not TLS or the peer sent no (Ed25519) certificate.
    """
    if not isinstance(transport, TLSMemoryBIOProtocol):
        return None
    try:
        cert = transport.getPeerCertificate()
    except SSL.Error:
        return None
    if cert is None:
        return None
    return certificate_pubkey(cert.to_cryptography())


def pin_refusal(transport: Any, pubkey: bytes,
                required: bool) -> tuple[str, str] | None:
    """
    Check the peer's certificate key against C{pubkey} (its C{hello}'s node
    key): C{None} if they match (or if TLS is not C{required} and the
    transport is plain), else (C{tls-key-mismatch}, detail).
    """
    if not required and not isinstance(transport, TLSMemoryBIOProtocol):
        return None
    cert_key = peer_certificate_key(transport)
    if cert_key is None:
        return KEY_MISMATCH, "no Ed25519 peer certificate"
    if cert_key != pubkey:
        return KEY_MISMATCH, (f"certificate key {cert_key.hex()[:16]}... is "
                              f"not the hello pubkey {pubkey.hex()[:16]}...")
    return None


def looks_like_tls(data: bytes) -> bool:
    """
    Whether C{data}, the first bytes of a plain connection, start a TLS
    record (the peer runs TLS and we do not).
    """
    return bool(data) and data[0] in TLS_RECORD_STARTS


def tls_failure(reason: Failure | None) -> str | None:
    """
    A description of C{reason} if a connection ended because of a TLS
    error (a failed handshake, a plain peer), else C{None}.
    """
    if reason is None or not reason.check(SSL.Error):
        return None
    return str(reason.value)[:200]
