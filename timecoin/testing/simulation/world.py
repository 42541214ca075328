"""
The simulated world every run shares: when it starts, its network and
port, the deterministic keys of masternodes, wallets and the bank, the
coins the genesis pays them, and small helpers (an independent random
stream, a short hash for messages).

Imports nothing from the rest of the simulator.
"""

from __future__ import annotations

import random

from timecoin import params
from timecoin.address import address_of
from timecoin.encoding import sha256
from timecoin.keys import PrivateKey

__all__ = ["BANK_COIN", "COINS_PER_WALLET", "COIN_VALUE", "COLLATERAL",
           "FEE_COIN", "FEE_COINS", "NETWORK", "PORT", "START", "WALLETS",
           "address", "bank_key", "fork", "masternode_key", "short",
           "wallet_key"]

START = 1_800_000_000.0
"""The simulated wall-clock time every run starts at."""
PORT = 24200
NETWORK = params.NETWORKS["devnet"]
WALLETS = 5
"""Workload keys; the genesis funds each with L{COINS_PER_WALLET}."""
COINS_PER_WALLET = 8
COIN_VALUE = 100 * params.COIN
COLLATERAL = params.TIER_COLLATERAL["bronze"]
FEE_COIN = 10 * params.COIN
FEE_COINS = 3
BANK_COIN = COLLATERAL + 2 * FEE_COIN
"""Lifecycle runs: the genesis pays each joiner's bank coin (collateral
and fee coin) and each genesis masternode L{FEE_COINS} coins for the fees
of its activations."""


def short(h: bytes) -> str:
    """
    The first 16 hex digits of a hash, for messages.
    """
    return h.hex()[:16]


def masternode_key(i: int) -> PrivateKey:
    """
    The deterministic key of simulated masternode C{i}.
    """
    return PrivateKey(sha256(b"timecoin sim masternode %d" % i))


def bank_key() -> PrivateKey:
    """
    The key of the genesis coins that fund the joiners.
    """
    return PrivateKey(sha256(b"timecoin sim bank"))


def wallet_key(i: int) -> PrivateKey:
    """
    The deterministic key of workload wallet C{i}.
    """
    return PrivateKey(sha256(b"timecoin sim wallet %d" % i))


def address(key: PrivateKey) -> str:
    """
    The simulated network's address of C{key}.
    """
    return address_of(key.public, NETWORK.address_prefix)


def fork(rng: random.Random) -> random.Random:
    """
    An independent stream seeded from C{rng}.
    """
    return rng.__class__(rng.getrandbits(64))
