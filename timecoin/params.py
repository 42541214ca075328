"""
Network parameters and consensus limits.

Every limit is a named constant with the seeds' value; ``config`` lets an
operator override the node-local ones (mempool, RPC) but never the consensus
ones, which must be the same on every node of a network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

COIN = 100_000_000
"""Units per TIME."""

MAX_MONEY = 21_000_000_000 * COIN
"""Upper bound on any single amount or sum, far above any real supply."""

MAX_BLOCK_BYTES = 2_000_000
MAX_TX_BYTES = 1_000_000
MIN_FEE = 1_000
FEE_RATE_DIVISOR = 1_000
"""The proportional fee is 1/1000 (0.1 %) of the amount sent, rounded up."""
DUST_LIMIT = 546
MAX_REORG_DEPTH = 1_000
ALERT_REORG_DEPTH = 100
MAX_TX_INPUTS = 10_000
MAX_TX_OUTPUTS = 10_000
MAX_FUTURE_BLOCK_MS = 30_000
"""A block may be stamped at most this far ahead of the local clock."""

TIER_COLLATERAL = {
    "free": 0,
    "bronze": 1_000 * COIN,
    "silver": 10_000 * COIN,
    "gold": 100_000 * COIN,
}
TIER_WEIGHT = {"free": 1, "bronze": 10, "silver": 100, "gold": 1_000}


@dataclass(frozen=True)
class Network:
    """
    Constants of one network.

    @ivar genesis_hash: the expected genesis block hash (hex), or C{None}
        where every devnet generates its own genesis.
    """

    name: str
    address_prefix: str
    p2p_port: int
    rpc_port: int
    block_time: float
    block_reward: int
    genesis_hash: str | None
    service_window: int = 20
    """Proof of service: the latest commit certificates looked at (W)."""
    service_max_missed: int = 10
    """A masternode missing from more than this many of them is set aside
    (more than half of W)."""
    service_min_away: int = 20
    """Blocks a masternode set aside stays out before it may come back."""
    committee_size: int = 0
    """Block consensus by a committee of this many active masternodes per
    epoch, drawn by the selection policy (0: every active masternode)."""
    committee_epoch: int = 10
    """Blocks per committee epoch."""


NETWORKS = {
    "mainnet": Network(
        "mainnet", "TIME1", 24000, 24001, 600.0, 100 * COIN,
        "c8d242b1b0a1db0afb4d7758d9f0093384035a4b79f9d62ed1dd3b750abcd69c",
        36, 18, 36),
    "testnet": Network(
        "testnet", "TIME0", 24100, 24101, 600.0, 100 * COIN,
        "44e2b75bf716307e496fc8194ca1557b847ea2afc59d1d9b3d6efd537ef90bce",
        36, 18, 36),
    "devnet": Network("devnet", "TIME0", 24200, 24201, 2.0, 100 * COIN,
                      None),
}


def min_fee(amount_sent: int) -> int:
    """
    The smallest fee for a transaction sending C{amount_sent} units to
    others: 1,000 units plus 0.1 % of the amount, rounded up.
    """
    return MIN_FEE + -(-amount_sent // FEE_RATE_DIVISOR)


_AMOUNT_TEXT = re.compile(
    r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
"""A plain decimal number: ASCII digits, optional fraction and exponent
(no spaces, underscores or other scripts' digits, which C{Decimal} takes)."""
_UNIT = Decimal("0.00000001")


def parse_amount(value: object) -> int:
    """
    Parse a TIME amount (number or decimal string, at most 8 decimals) into
    units, exactly: no rounding, whatever the digits or the exponent.

    @raise ValueError: on a negative, malformed, over-precise or too large
        amount.
    """
    if isinstance(value, bool):
        raise ValueError("amount must be a number")
    text = str(value)
    if not _AMOUNT_TEXT.fullmatch(text):
        raise ValueError(f"invalid amount {text[:40]!r}")
    try:
        dec = Decimal(text)
    except InvalidOperation as e:
        raise ValueError(f"invalid amount {text[:40]!r}") from e
    if dec < 0:
        raise ValueError(f"invalid amount {text[:40]!r}")
    # Comparisons are exact; the quantize below stays within the context's
    # precision once the amount is bounded.
    if dec > MAX_MONEY // COIN:
        raise ValueError("amount too large")
    whole = dec.quantize(_UNIT)
    if whole != dec:
        raise ValueError("amount has more than 8 decimal places")
    return int(whole * COIN)


def format_amount(units: int) -> Decimal:
    """
    Units as a TIME decimal with 8 places, as RPC shows amounts.
    """
    return (Decimal(units) / COIN).quantize(Decimal("0.00000001"))
