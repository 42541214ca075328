"""
Tests for L{timecoin.txcache}: a transaction seen again is not parsed
again, and a different one never passes for a cached one.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers import addr, key
from tests.helpers.chain import payment
from timecoin.block import Block, BlockHeader, merkle_root, sign_block
from timecoin.config import Config
from timecoin.encoding import EncodingError
from timecoin.mempool import MempoolSettings
from timecoin.storage.memory import MemoryStore
from timecoin.tx import Transaction, TxOut
from timecoin.txcache import TxCache
from timecoin.wiring import build


def wire(tx: Transaction) -> Any:
    """
    C{tx} as a peer's JSON object: decoded from its bytes, so no object
    is shared with C{tx}.
    """
    return json.loads(tx.encode())


class TxCacheTests(unittest.TestCase):
    """
    L{TxCache.parse} and L{TxCache.remember}.
    """

    def test_second_sighting_is_the_cached_object(self) -> None:
        """
        The second parse of the same transaction returns the first parse's
        object, counted as a hit.
        """
        cache = TxCache()
        tx = payment(1)
        first = cache.parse(wire(tx))
        second = cache.parse(wire(tx))
        self.assertIs(second, first)
        self.assertEqual(first.txid, tx.txid)
        self.assertEqual((cache.hits, cache.misses), (1, 1))

    def test_remembered_transaction_is_reused(self) -> None:
        """
        A transaction remembered (parsed elsewhere) answers a later parse.
        """
        cache = TxCache()
        tx = payment(2)
        cache.remember(tx)
        self.assertIs(cache.parse(wire(tx)), tx)

    def test_different_transaction_same_signature_parsed_fresh(self) -> None:
        """
        An object with the cached one's first signature but another field
        changed is parsed on its own and keeps its own content.
        """
        cache = TxCache()
        tx = payment(3)
        cache.remember(tx)
        forged = wire(tx)
        forged["outputs"][0]["value"] = 6_000
        parsed = cache.parse(forged)
        self.assertIsNot(parsed, tx)
        self.assertEqual(parsed.outputs[0].value, 6_000)
        self.assertNotEqual(parsed.txid, tx.txid)
        self.assertEqual(cache.hits, 0)

    def test_invalid_object_raises(self) -> None:
        """
        A malformed object raises like L{Transaction.from_obj}, cached
        signature or not.
        """
        cache = TxCache()
        tx = payment(4)
        cache.remember(tx)
        broken = wire(tx)
        broken["outputs"][0]["value"] = -1
        self.assertRaises(EncodingError, cache.parse, broken)
        self.assertRaises(EncodingError, cache.parse, {"inputs": "x"})

    def test_coinbase_always_parsed(self) -> None:
        """
        A transaction without inputs has no key: parsed every time.
        """
        cache = TxCache()
        coinbase = Transaction((), (TxOut(100, addr(key(1))),), "coinbase",
                               {"height": 5})
        a = cache.parse(wire(coinbase))
        b = cache.parse(wire(coinbase))
        self.assertIsNot(a, b)
        self.assertEqual(a.txid, b.txid)
        self.assertEqual((cache.hits, cache.misses, len(cache)), (0, 2, 0))

    def test_bounded(self) -> None:
        """
        The cache keeps at most C{size} transactions, the most recently
        used.
        """
        cache = TxCache(size=3)
        txs = [payment(10 + i) for i in range(5)]
        for tx in txs:
            cache.remember(tx)
        self.assertEqual(len(cache), 3)
        self.assertIsNot(cache.parse(wire(txs[0])), txs[0])
        self.assertIs(cache.parse(wire(txs[4])), txs[4])

    def test_resize_forgets_least_recently_used(self) -> None:
        """
        L{TxCache.resize} to fewer entries forgets the least recently used
        at once and bounds later additions by the new size.
        """
        cache = TxCache(size=5)
        txs = [payment(20 + i) for i in range(5)]
        for tx in txs:
            cache.remember(tx)
        cache.resize(2)
        self.assertEqual(len(cache), 2)
        self.assertIs(cache.parse(wire(txs[4])), txs[4])
        self.assertIsNot(cache.parse(wire(txs[2])), txs[2])
        cache.remember(payment(30))
        self.assertEqual(len(cache), 2)

    def test_node_sizes_the_process_cache(self) -> None:
        """
        A node sizes the process's cache from C{[mempool] parsed_cache}.
        """
        from timecoin.txcache import CACHE
        self.addCleanup(CACHE.resize, CACHE.size)
        config = Config(network="devnet", datadir=self.mktemp(),
                        mempool=MempoolSettings(parsed_cache=7))
        config.resolve()
        build(config, Clock(), store=MemoryStore(), with_p2p=False)
        self.assertEqual(CACHE.size, 7)

    def test_block_reuses_parsed_transactions(self) -> None:
        """
        L{Block.from_obj} takes its transactions from the process cache:
        a block whose payments were parsed before holds the same objects,
        and encodes to the same bytes as the original.
        """
        from timecoin.txcache import CACHE
        txs = [payment(100 + i) for i in range(3)]
        parsed = [CACHE.parse(wire(tx)) for tx in txs]
        coinbase = Transaction((), (TxOut(100, addr(key(1))),), "coinbase",
                               {"height": 1})
        all_txs = (coinbase, *txs)
        header = BlockHeader(height=1, prev_hash=b"\x00" * 32,
                             merkle_root=merkle_root([t.txid
                                                      for t in all_txs]),
                             timestamp=1, producer=key(1).public)
        block = sign_block(key(1), "devnet", header, all_txs, None)
        again = Block.from_obj(json.loads(block.encode()))
        for mine, theirs in zip(parsed, again.txs[1:]):
            self.assertIs(theirs, mine)
        self.assertEqual(again.encode(), block.encode())
        self.assertEqual(Block.decode(block.encode()).hash, block.hash)
