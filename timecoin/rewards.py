"""
Block rewards: one pure function shared by the producer and the validator
(the Rust reference node's recurring bug was these two disagreeing).

The coinbase of block h pays (block reward + fees of the block's
transactions) split over the snapshot for h by tier weight, to each
masternode's reward address, in snapshot order; the units lost to integer
division go to the first masternode of the snapshot.  Shares that round to
zero are left out; outputs to the same address are merged.
"""

from __future__ import annotations

from timecoin import params
from timecoin.masternodes import Snapshot
from timecoin.tx import TxOut


def coinbase_outputs(snapshot: Snapshot, block_reward: int,
                     fees: int) -> tuple[TxOut, ...]:
    """
    The exact coinbase outputs of a block.
    """
    total = block_reward + fees
    if not snapshot or total == 0:
        return ()
    weights = [params.TIER_WEIGHT[m.tier] for m in snapshot]
    weight_sum = sum(weights)
    shares = [total * w // weight_sum for w in weights]
    shares[0] += total - sum(shares)
    paid: dict[str, int] = {}
    for masternode, share in zip(snapshot, shares):
        if share:
            paid[masternode.reward_address] = paid.get(
                masternode.reward_address, 0) + share
    return tuple(TxOut(value, address) for address, value in paid.items())
