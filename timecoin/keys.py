"""
Ed25519 keys (PyNaCl) and domain-separated signing.

Every signature in the system is over ``SHA-256(domain ‖ 0x00 ‖ message)``
so that a signature made for one purpose (a transaction input, a vote, a
block) can never be replayed as another.
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from timecoin.encoding import sha256


def signing_digest(domain: bytes, message: bytes) -> bytes:
    """
    The 32 bytes actually signed for C{message} in C{domain}.
    """
    return sha256(domain + b"\x00" + message)


class PrivateKey:
    """
    An Ed25519 signing key.
    """

    def __init__(self, seed: bytes) -> None:
        self._key = SigningKey(seed)
        self.public = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> PrivateKey:
        """
        A fresh random key from the OS's CSPRNG.
        """
        return cls(bytes(SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        """
        The 32-byte seed (keep private).
        """
        return bytes(self._key)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        """
        Sign C{message} in C{domain}; returns the 64-byte signature.
        """
        return self._key.sign(signing_digest(domain, message)).signature


_verify_cache: dict[bytes, VerifyKey] = {}


def verify(pubkey: bytes, domain: bytes, message: bytes,
           signature: bytes) -> bool:
    """
    Check an Ed25519 C{signature} by C{pubkey} over C{message} in C{domain}.
    Never raises on bad input: malformed keys or signatures are C{False}.
    """
    if len(pubkey) != 32 or len(signature) != 64:
        return False
    key = _verify_cache.get(pubkey)
    if key is None:
        try:
            key = VerifyKey(pubkey)
        except Exception:
            return False
        if len(_verify_cache) > 10_000:
            _verify_cache.clear()
        _verify_cache[pubkey] = key
    try:
        key.verify(signing_digest(domain, message), signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True
