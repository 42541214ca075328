"""
Hierarchical deterministic keys: SLIP-0010 for Ed25519.

One random seed gives every wallet key, so one backup of the seed
restores every address.  SLIP-0010 (https://github.com/satoshilabs/slips/
blob/master/slip-0010.md) for Ed25519 allows only hardened derivation:

    master      I = HMAC-SHA512(key=b"ed25519 seed", data=seed)
    child i'    I = HMAC-SHA512(key=chain_code,
                                data=0x00 || private_key || ser32(i + 2^31))
    private key = I[:32], chain code = I[32:]

The private key is the 32-byte Ed25519 seed PyNaCl signs with.  Without
the private key of the parent no child public key can be computed, so a
locked wallet hands out addresses from a keypool of public keys derived
while it was unlocked (see C{docs/wallet.md}).

The wallet's receiving keys are at C{m/0'/0'/i'} (L{WALLET_PATH}), the
path Bitcoin Core's first HD wallets used, all hardened.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from timecoin.address import payload_of
from timecoin.keys import PrivateKey

HARDENED = 0x8000_0000
CURVE_KEY = b"ed25519 seed"
WALLET_PATH = (0, 0)
"""The hardened indexes above the receiving keys: C{m/0'/0'/i'}."""


def master_key(seed: bytes) -> tuple[bytes, bytes]:
    """
    The master C{(private_key, chain_code)} of C{seed} (16 to 64 bytes).
    """
    if not 16 <= len(seed) <= 64:
        raise ValueError("an HD seed has 16 to 64 bytes")
    digest = hmac.new(CURVE_KEY, seed, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def child_key(private: bytes, chain_code: bytes,
              index: int) -> tuple[bytes, bytes]:
    """
    The hardened child C{index} (below 2^31; the hardened bit is added)
    of a key: C{(private_key, chain_code)}.
    """
    if not 0 <= index < HARDENED:
        raise ValueError("child index out of range")
    data = b"\x00" + private + (index | HARDENED).to_bytes(4, "big")
    digest = hmac.new(chain_code, data, hashlib.sha512).digest()
    return digest[:32], digest[32:]


def derive(seed: bytes, path: Sequence[int]) -> tuple[bytes, bytes]:
    """
    The C{(private_key, chain_code)} at C{path} (hardened indexes, the
    hardened bit left out) below the master key of C{seed}.
    """
    private, chain_code = master_key(seed)
    for index in path:
        private, chain_code = child_key(private, chain_code, index)
    return private, chain_code


def seed_id(seed: bytes) -> str:
    """
    The public id of a seed (C{getwalletinfo}'s C{hdseedid}): the address
    payload (SHA-256, 20 bytes) of the master public key, in hex.  It
    tells two seeds apart without revealing either.
    """
    return payload_of(PrivateKey(master_key(seed)[0]).public).hex()


class HDChain:
    """
    The receiving keys of one seed, C{m/0'/0'/i'}, with the parent of
    the chain derived once.
    """

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.id = seed_id(seed)
        self._parent = derive(seed, WALLET_PATH)

    def key(self, index: int) -> PrivateKey:
        """
        The receiving key number C{index}.
        """
        return PrivateKey(child_key(*self._parent, index)[0])
