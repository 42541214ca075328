"""
The transactions this node holds finalized that no block has mined yet:
the one object through which finality gives the chain its block rules.

A L{FinalizedSet} is given to the chain at construction
(L{timecoin.node.Node} builds it) and shared with the finality engine
built on that chain: the engine adds a transaction when it finalizes it,
the chain drops the ones a block mines, and
L{timecoin.chain.Chain.validate_block} asks it two things of every block:

  - whether a transaction double-spends one finalized here (the block is
    then invalid, C{conflicts-finalized});
  - whether a mined transaction's finality record stays (it is held
    finalized here: its durable record is its certificate) or is deleted
    by the block's own write.

A chain built without finality has an empty set of its own: no block
conflicts with it and no record is kept.

Imports only L{timecoin.tx}.
"""

from __future__ import annotations

from timecoin.tx import OutPoint, Transaction

__all__ = ["FinalizedSet"]


class FinalizedSet:
    """
    Finalized, not yet mined transactions and the inputs they spend.
    """

    def __init__(self) -> None:
        self._inputs: dict[bytes, tuple[OutPoint, ...]] = {}
        self._spenders: dict[OutPoint, bytes] = {}

    def __contains__(self, txid: object) -> bool:
        """
        Whether C{txid} is held finalized (so a block mining it keeps its
        finality record as the certificate).
        """
        return txid in self._inputs

    def __len__(self) -> int:
        return len(self._inputs)

    def add(self, tx: Transaction) -> None:
        """
        Hold C{tx} finalized: its inputs are spent for good.
        """
        inputs = tuple(txin.prevout for txin in tx.inputs)
        self._inputs[tx.txid] = inputs
        for outpoint in inputs:
            self._spenders[outpoint] = tx.txid

    def discard(self, txid: bytes) -> None:
        """
        Forget C{txid} (a block mined it), if it is held.
        """
        inputs = self._inputs.pop(txid, ())
        for outpoint in inputs:
            if self._spenders.get(outpoint) == txid:
                del self._spenders[outpoint]

    def conflict(self, tx: Transaction) -> bytes | None:
        """
        The txid of a finalized transaction that C{tx} double-spends, or
        C{None}.
        """
        for txin in tx.inputs:
            holder = self._spenders.get(txin.prevout)
            if holder is not None and holder != tx.txid:
                return holder
        return None
