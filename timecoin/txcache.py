"""
Recently parsed transactions, so that one seen again is not parsed again.

A payment reaches a node several times: by RPC or from a peer, inside the
proposal that carries it, inside committed blocks announced or served by
peers.  Parsing one (shape checks, object construction, the txid hash and
the canonical encoding) costs about as much as its signature check, so
each sighting after the first is looked up here instead: L{parse_tx}
keys a bounded cache by the first input's signature as written in the
JSON object (a coinbase, which has no inputs, is always parsed), and
returns the cached L{Transaction} only if its L{Transaction.to_obj}
equals the object, so the result is the transaction a fresh parse would
give.  The cached object keeps its txid and encoding, computed once.

Equality is Python's: an object that writes C{true} where the cached one
has C{1} matches it too.  That is harmless -- the transaction used is the
canonical one, with the same txid and encoding -- and canonical *bytes*
are still checked where they matter (L{Transaction.decode},
L{timecoin.block.Block.decode}).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from timecoin.tx import Transaction

MAX_CACHED = 5_000
"""Transactions remembered by default, most recently used kept (the node
sets its own from C{[mempool] parsed_cache}).  A payment is looked up
here for a few seconds after it is admitted: in the proposal of the next
block, in that block committed and announced by peers.  5,000 holds what
the next blocks carry while clients are held to C{[rpc] max_unmined}
(2,000 finalized payments waiting for a block) and C{max_undecided}
(1,000), with room: at 1,000 payments a second a node missed as often
with 5,000 as with the 15,000 before (36 to 39 of about 45,000 lookups),
and peaked 25 to 30 MB lower (C{docs/performance.md}).  A miss costs a
parse, never a wrong answer.  A transaction cached costs about 1.3 KB
(C{benchmarks/memory_sizes.py}); one the mempool holds costs the cache
nothing more."""


class TxCache:
    """
    A bounded map from first-input signature (hex, as on the wire) to the
    parsed transaction.

    @ivar hits: lookups answered from the cache.
    @ivar misses: lookups that parsed.
    """

    def __init__(self, size: int = MAX_CACHED) -> None:
        self.size = size
        self._txs: OrderedDict[str, Transaction] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._txs)

    @staticmethod
    def _key(obj: Any) -> str | None:
        try:
            key = obj["inputs"][0]["signature"]
        except (TypeError, KeyError, IndexError):
            return None
        return key if isinstance(key, str) else None

    def parse(self, obj: Any) -> Transaction:
        """
        The transaction of JSON object C{obj}: the cached one when it is
        the same, else a fresh L{Transaction.from_obj} (remembered).

        @raise timecoin.encoding.EncodingError: as L{Transaction.from_obj}.
        """
        key = self._key(obj)
        if key is not None:
            cached = self._txs.get(key)
            if cached is not None and cached.to_obj() == obj:
                self.hits += 1
                self._txs.move_to_end(key)
                return cached
        self.misses += 1
        tx = Transaction.from_obj(obj)
        if key is not None:
            self._store(key, tx)
        return tx

    def remember(self, tx: Transaction) -> None:
        """
        Keep C{tx} (parsed or built elsewhere) for later lookups.
        """
        if tx.inputs:
            self._store(tx.inputs[0].signature.hex(), tx)

    def resize(self, size: int) -> None:
        """
        Keep at most C{size} transactions from now on (the least recently
        used are forgotten at once).
        """
        self.size = size
        self._trim()

    def _store(self, key: str, tx: Transaction) -> None:
        self._txs[key] = tx
        self._txs.move_to_end(key)
        self._trim()

    def _trim(self) -> None:
        while len(self._txs) > self.size:
            self._txs.popitem(last=False)


CACHE = TxCache()
"""The process's cache.  Transactions are immutable and their txid and
encoding deterministic, so nodes sharing a process (tests, the
simulator) may share it."""


def parse_tx(obj: Any) -> Transaction:
    """
    L{TxCache.parse} on the process's cache.
    """
    return CACHE.parse(obj)
