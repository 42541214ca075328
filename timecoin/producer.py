"""
Block building: what a proposer proposes.

The proposer of a round (chosen by the selection policy, driven by
L{timecoin.consensus.BlockConsensus}) builds its block from the finalized
transactions in finalization order (parents before children) within the
size limit, pays the coinbase by the shared reward rule
(L{timecoin.rewards.coinbase_outputs}, the same function the validator
calls), carries the previous block's commit certificate, and signs it.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from timecoin import params, rewards
from timecoin.block import (
    Block,
    BlockHeader,
    commit_hash_of,
    merkle_root,
    sign_block,
)
from timecoin.chain import Chain
from timecoin.keys import PrivateKey
from timecoin.mempool import Mempool
from timecoin.tx import Transaction

COINBASE_RESERVE = 100_000
"""Bytes kept free in a block for its header, coinbase and certificate."""


class BlockBuilder:
    """
    Builds and signs this node's proposals.
    """

    def __init__(self, chain: Chain, mempool: Mempool, key: PrivateKey,
                 clock: IReactorTime) -> None:
        self.chain = chain
        self.mempool = mempool
        self.key = key
        self.clock = clock

    def build_block(self, round: int = 0) -> Block:
        """
        Build and sign the next block, for C{round}, from finalized
        transactions.
        """
        chain = self.chain
        height = chain.height + 1
        txs = self.mempool.block_candidates(
            params.MAX_BLOCK_BYTES - COINBASE_RESERVE)
        fees = sum(self.mempool.entries[t.txid].fee for t in txs)
        outputs = rewards.coinbase_outputs(
            chain.snapshot_for(height), chain.network.block_reward, fees)
        coinbase = Transaction((), outputs, "coinbase", {"height": height})
        all_txs = (coinbase, *txs)
        commit = chain.tip_commit if height > 1 else None
        now_ms = int(self.clock.seconds() * 1000)
        header = BlockHeader(
            height=height, prev_hash=chain.tip.hash,
            merkle_root=merkle_root([t.txid for t in all_txs]),
            timestamp=max(now_ms, chain.tip.header.timestamp + 1),
            producer=self.key.public, round=round,
            commit_hash=commit_hash_of(commit))
        return sign_block(self.key, chain.network.name, header, all_txs,
                          commit)
