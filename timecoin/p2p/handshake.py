"""
The handshake proves the node key: each side signs the other's C{hello}
nonce with its node key.

Without it the public key in a C{hello} was whatever the sender claimed: on
loopback, where a peer's identity is C{ip:listen_port}, claiming another
node's key and listen port replaced that node's real connection, and the
claimer's offences were charged to (and banned) the real node (issue 14,
item 7).

After the two C{hello}s, each side sends one C{hello_proof}:

    {"type": "hello_proof", "signature": "<64 bytes hex>"}

signed (Ed25519, L{timecoin.keys}) by the sender's node key in the domain
L{DOMAIN} over

    network ‖ 0x00 ‖ genesis hash ‖ receiver's nonce ‖ sender's nonce ‖
    sender's pubkey ‖ receiver's pubkey

The receiver's nonce makes it fresh (it was chosen by the receiver for
this process); the two keys bind it to this pair, so a proof one node made
for another cannot be shown to a third.  A connection becomes ready only
once the peer's proof verifies against the key in its C{hello}; only then
is it registered under its identity, so a claimer never replaces or gets
charged as the node it claims to be: it is refused with
C{bad-hello-proof} (no score: the identity it claimed is not its own, and
its own is unknown).

With TLS the certificate pin (L{timecoin.p2p.tls.pin_refusal}) is checked
as before; the proof is required as well.  Without TLS the proof does not
protect the rest of the connection from a man in the middle that relays
both handshakes (nothing is encrypted or authenticated after it); it stops
a peer from claiming a key it does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from timecoin.encoding import unhex
from timecoin.keys import PrivateKey, verify
from timecoin.p2p.messages import Hello, Message, register

DOMAIN = b"timecoin p2p hello proof v1"
"""The signing domain of a C{hello_proof}."""

BAD_PROOF = "bad-hello-proof"
"""The reason code of a refused proof."""


@register
@dataclass(frozen=True)
class HelloProof(Message):
    """
    The signature of the sender's node key over the receiver's C{hello}
    nonce (see the module docstring for exactly what is signed).
    """

    name: ClassVar[str] = "hello_proof"
    max_bytes: ClassVar[int] = 256

    signature: bytes

    def fields(self) -> dict[str, Any]:
        return {"signature": self.signature.hex()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> HelloProof:
        return cls(unhex(obj.get("signature"), 64, "signature"))


def proof_message(network: str, genesis: bytes, receiver_nonce: bytes,
                  sender_nonce: bytes, sender_pubkey: bytes,
                  receiver_pubkey: bytes) -> bytes:
    """
    The bytes a C{hello_proof} signs.
    """
    return b"".join((network.encode(), b"\x00", genesis, receiver_nonce,
                     sender_nonce, sender_pubkey, receiver_pubkey))


def make_proof(key: PrivateKey, ours: Hello, theirs: Hello) -> HelloProof:
    """
    Our proof for a peer whose C{hello} is C{theirs} (ours: C{ours}).
    """
    return HelloProof(key.sign(DOMAIN, proof_message(
        ours.network, ours.genesis, theirs.nonce, ours.nonce, key.public,
        theirs.pubkey)))


def check_proof(proof: HelloProof, ours: Hello,
                theirs: Hello) -> tuple[str, str] | None:
    """
    C{None} if C{proof} is the signature of C{theirs.pubkey} over our
    nonce, else (L{BAD_PROOF}, detail).
    """
    message = proof_message(ours.network, ours.genesis, ours.nonce,
                            theirs.nonce, theirs.pubkey, ours.pubkey)
    if verify(theirs.pubkey, DOMAIN, message, proof.signature):
        return None
    return BAD_PROOF, "the signature is not by the hello's key"
