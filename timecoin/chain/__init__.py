"""
Chain state: the best chain, its UTXO set and masternode state, and the
full validation of blocks before they are connected.

What lives where (split by object):

  - L{timecoin.chain.bestchain}: L{Chain}, the coordinator: loading from
    the store, connect and revert, the tip and the UTXO set, C{utxo_hash};
    every other module reaches chain state through it.
  - L{timecoin.chain.validation}: L{BlockValidator}, the block rules in
    order, computing the L{timecoin.storage.BlockChange} a block writes.
  - L{timecoin.chain.masternode_state}: L{MasternodeState}, the
    registrations, statuses and collaterals at the tip, the active
    snapshot, admission of registrations and activations.
  - L{timecoin.chain.history}: L{MasternodeHistory}, the snapshots per
    height, committees and their seeds, proof-of-service signers and
    status changes.
  - L{timecoin.chain.utxo}: the view of the UTXO set a block in
    validation sees, the state pairs and their hash.
  - L{timecoin.chain.transfer}: the rule of a transfer (L{check_transfer}).
  - L{timecoin.chain.undo}: the undo record stored with each block
    (L{BlockUndo}, L{undo_commit}).
  - L{timecoin.chain.errors}: L{BlockInvalid}, L{TxInvalid}.

Imports: C{errors} imports nothing of the package; C{transfer} and
C{undo} only C{errors} at most, C{utxo} none; C{masternode_state} those;
C{history} C{masternode_state} and C{undo}; C{validation} all of them;
C{bestchain} all.  From outside, only the pure core, C{finalized},
C{signal} and C{storage}: never the mempool, finality, consensus, P2P, RPC or the node.
"""

from timecoin.chain.bestchain import Chain
from timecoin.chain.errors import BlockInvalid, TxInvalid
from timecoin.chain.transfer import (
    UtxoLookup,
    check_transfer,
    sent_amount,
    verified_key,
)
from timecoin.chain.undo import BlockUndo, undo_commit

__all__ = [
    "BlockInvalid",
    "BlockUndo",
    "Chain",
    "TxInvalid",
    "UtxoLookup",
    "check_transfer",
    "sent_amount",
    "undo_commit",
    "verified_key",
]
