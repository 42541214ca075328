"""
Network parameters and consensus limits.

Every limit is a named constant with the seeds' value; ``config`` lets an
operator override the node-local ones (mempool, RPC) but never the consensus
ones, which must be the same on every node of a network.
"""

from __future__ import annotations

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


NETWORKS = {
    "mainnet": Network(
        "mainnet", "TIME1", 24000, 24001, 600.0, 100 * COIN,
        "c8d242b1b0a1db0afb4d7758d9f0093384035a4b79f9d62ed1dd3b750abcd69c"),
    "testnet": Network(
        "testnet", "TIME0", 24100, 24101, 600.0, 100 * COIN,
        "44e2b75bf716307e496fc8194ca1557b847ea2afc59d1d9b3d6efd537ef90bce"),
    "devnet": Network("devnet", "TIME0", 24200, 24201, 2.0, 100 * COIN,
                      None),
}


def min_fee(amount_sent: int) -> int:
    """
    The smallest fee for a transaction sending C{amount_sent} units to
    others: 1,000 units plus 0.1 % of the amount, rounded up.
    """
    return MIN_FEE + -(-amount_sent // FEE_RATE_DIVISOR)


def parse_amount(value: object) -> int:
    """
    Parse a TIME amount (number or decimal string, at most 8 decimals) into
    units.

    @raise ValueError: on a negative, malformed or over-precise amount.
    """
    if isinstance(value, bool):
        raise ValueError("amount must be a number")
    try:
        dec = Decimal(str(value))
    except InvalidOperation as e:
        raise ValueError(f"invalid amount {value!r}") from e
    if not dec.is_finite() or dec < 0:
        raise ValueError(f"invalid amount {value!r}")
    units = dec * COIN
    if units != units.to_integral_value():
        raise ValueError("amount has more than 8 decimal places")
    result = int(units)
    if result > MAX_MONEY:
        raise ValueError("amount too large")
    return result


def format_amount(units: int) -> Decimal:
    """
    Units as a TIME decimal with 8 places, as RPC shows amounts.
    """
    return (Decimal(units) / COIN).quantize(Decimal("0.00000001"))
