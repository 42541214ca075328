"""
Chain verification by replay: re-validate every stored block from genesis
on a fresh in-memory chain and compare the resulting UTXO set with the one
the store holds.  Backs the crash-safety tests and (later) RPC
``verifychain``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from timecoin.block import Block
from timecoin.chain import Chain, undo_commit
from timecoin.encoding import sha256
from timecoin.interfaces import IChainStore
from timecoin.storage.memory import MemoryStore


@dataclass(frozen=True)
class VerifyResult:
    """
    The outcome of a replay.

    @ivar height: the stored tip height.
    @ivar replayed_hash: the utxo_hash after replaying blocks 0..height.
    @ivar stored_hash: the utxo_hash of the UTXO set the store holds.
    """

    height: int
    replayed_hash: bytes
    stored_hash: bytes

    @property
    def ok(self) -> bool:
        return self.replayed_hash == self.stored_hash


@defer.inlineCallbacks
def replay(store: IChainStore, template: Chain) -> Any:
    """
    Replay the blocks of C{store} (opened) through a fresh chain configured
    like C{template}, with full validation; fire with a L{VerifyResult}.

    @raise timecoin.chain.BlockInvalid: if a stored block does not validate.
    """
    fresh = Chain(template.network, MemoryStore(), template.genesis,
                  template.policy, template.quorum, lambda: 2**62)
    yield fresh.load()
    tip = yield store.tip()
    height = tip[0]
    for h in range(1, height + 1):
        block_hash = yield store.get_block_hash(h)
        raw = yield store.get_block(block_hash)
        undo = yield store.get_undo(block_hash)
        yield fresh.connect_block(Block.decode(raw),
                                  undo_commit(undo))
    pairs = yield store.load_utxos()
    stored = sha256(b"".join(k + v for k, v in sorted(pairs)))
    return VerifyResult(height, fresh.utxo_hash(), stored)
