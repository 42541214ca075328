"""
A verifiable random function: ECVRF-EDWARDS25519-SHA512-TAI of RFC 9381
(suite 0x03), on libsodium's edwards25519 group operations (PyNaCl's
bindings).

What it is for: the seed of finality committees must be one nobody can
choose (``docs/consensus.md``, "What blocks it").  A hash of chain data can
be ground by whoever writes that data (the output's creator grinds its
txid, a block producer its block); an Ed25519 signature cannot serve
either, because a signer may produce many valid signatures of one message
and pick.  A VRF output is unique: for a key and an input there is exactly
one C{beta} that verifies, and only the key's holder can compute it, so a
masternode's VRF over an agreed input (an epoch's seed) is a lottery
ticket it can prove and cannot choose.  Not used by consensus yet: this
is the first piece of committee finality (issue 19).

Keys are RFC 8032 keys: the 32-byte secret C{sk} (the seed of an Ed25519
key) and its public key.  A masternode's signing key could serve, since
every signature of the node is over a SHA-256 digest of a domain-separated
message, which is never a curve point's encoding that the VRF hashes with
the same nonce key; a key derived for the VRF alone is the more
conservative choice, and the one the committee design will decide.

Checked against the three test vectors of RFC 9381, Appendix B.3
(C{tests/test_vrf.py}).
"""

from __future__ import annotations

import hashlib

from nacl import bindings
from nacl.exceptions import CryptoError

SUITE = b"\x03"
"""The suite string of ECVRF-EDWARDS25519-SHA512-TAI."""

PROOF_BYTES = 80
"""A proof: Gamma (32 bytes), c (16), s (32)."""

_Q = 2 ** 252 + 27742317777372353535851937790883648493
"""The order of the prime subgroup of edwards25519."""

_IDENTITY = (1).to_bytes(32, "little")
_C_BYTES = 16


class InvalidProof(ValueError):
    """
    A proof (or public key) that does not verify.
    """


def _scalar(n: int) -> bytes:
    return n.to_bytes(32, "little")


def _secret_scalar(sk: bytes) -> bytes:
    """
    RFC 8032's secret scalar of C{sk}: the clamped first half of its
    SHA-512.
    """
    h = bytearray(hashlib.sha512(sk).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def _is_point(encoded: bytes) -> bool:
    """
    Whether C{encoded} decodes to a point of the curve (any subgroup).
    """
    try:
        bindings.crypto_core_ed25519_add(encoded, _IDENTITY)
    except CryptoError:
        return False
    return True


def _times_cofactor(point: bytes) -> bytes:
    for _ in range(3):
        point = bindings.crypto_core_ed25519_add(point, point)
    return point


def _hash_to_curve(public: bytes, alpha: bytes) -> bytes:
    """
    RFC 9381's encode_to_curve_try_and_increment, with the public key as
    its salt.
    """
    for ctr in range(256):
        candidate = hashlib.sha512(
            SUITE + b"\x01" + public + alpha + bytes([ctr]) +
            b"\x00").digest()[:32]
        if _is_point(candidate):
            return _times_cofactor(candidate)
    raise InvalidProof("no point found for this input")  # 2^-256


def _challenge(*points: bytes) -> bytes:
    return hashlib.sha512(SUITE + b"\x02" + b"".join(points) +
                          b"\x00").digest()[:_C_BYTES]


def public_key(sk: bytes) -> bytes:
    """
    The public key of the 32-byte secret C{sk} (its Ed25519 public key).
    """
    return bindings.crypto_scalarmult_ed25519_base_noclamp(
        _secret_scalar(sk))


def prove(sk: bytes, alpha: bytes) -> bytes:
    """
    The proof (L{PROOF_BYTES} bytes) of C{sk}'s VRF output on C{alpha}.
    """
    x = _secret_scalar(sk)
    public = bindings.crypto_scalarmult_ed25519_base_noclamp(x)
    h = _hash_to_curve(public, alpha)
    gamma = bindings.crypto_scalarmult_ed25519_noclamp(x, h)
    k = _scalar(int.from_bytes(hashlib.sha512(
        hashlib.sha512(sk).digest()[32:] + h).digest(), "little") % _Q)
    c = _challenge(public, h, gamma,
                   bindings.crypto_scalarmult_ed25519_base_noclamp(k),
                   bindings.crypto_scalarmult_ed25519_noclamp(k, h))
    s = (int.from_bytes(k, "little") +
         int.from_bytes(c, "little") * int.from_bytes(x, "little")) % _Q
    return gamma + c + _scalar(s)


def proof_to_hash(proof: bytes) -> bytes:
    """
    The 64-byte output (C{beta}) of a proof; meaningful only once the
    proof is verified (L{verify} returns it).
    """
    return hashlib.sha512(SUITE + b"\x03" + _times_cofactor(proof[:32]) +
                          b"\x00").digest()


def verify(public: bytes, alpha: bytes, proof: bytes) -> bytes:
    """
    The output of C{proof} if it is C{public}'s proof on C{alpha}; raises
    L{InvalidProof} otherwise.

    Stricter than RFC 9381 where only a dishonest prover differs: the
    public key and Gamma must be points of the prime-order subgroup (an
    honest key's and an honest proof's are), which libsodium's scalar
    multiplication requires.
    """
    if len(public) != 32 or len(proof) != PROOF_BYTES:
        raise InvalidProof("wrong length")
    gamma, c, s = proof[:32], proof[32:48], proof[48:]
    if int.from_bytes(s, "little") >= _Q:
        raise InvalidProof("s out of range")
    if not bindings.crypto_core_ed25519_is_valid_point(public):
        raise InvalidProof("public key is no valid point")
    if not bindings.crypto_core_ed25519_is_valid_point(gamma):
        raise InvalidProof("gamma is no valid point")
    h = _hash_to_curve(public, alpha)
    c32 = c + bytes(32 - _C_BYTES)
    try:
        u = bindings.crypto_core_ed25519_sub(
            bindings.crypto_scalarmult_ed25519_base_noclamp(s),
            bindings.crypto_scalarmult_ed25519_noclamp(c32, public))
        v = bindings.crypto_core_ed25519_sub(
            bindings.crypto_scalarmult_ed25519_noclamp(s, h),
            bindings.crypto_scalarmult_ed25519_noclamp(c32, gamma))
    except CryptoError as e:
        # A zero scalar (s or c): libsodium refuses the identity.
        raise InvalidProof(f"degenerate proof: {e}") from None
    if _challenge(public, h, gamma, u, v) != c:
        raise InvalidProof("challenge does not match")
    return proof_to_hash(proof)
