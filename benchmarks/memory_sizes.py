"""
What the node's bounded structures cost when full (issue 18): each is
filled to its default limit in process and measured with C{tracemalloc}
(bytes Python allocated for it, excluding the interpreter and libraries).

- B{transaction}: one payment (one input, payee and change) parsed from
  its JSON object as a peer or an RPC client sends it, txid and encoding
  computed: what a mempool entry, a block and the parsed-transaction cache
  hold of it.
- B{parsed_cache}: the process's cache of parsed transactions
  (L{timecoin.txcache}), C{[mempool] parsed_cache} of them.
- B{seen_cache}: one gossip deduplication cache (C{[p2p] seen_size}
  ids); a node has one each for transactions, vote batches and blocks.
- B{line_cache}: digests of gossip lines handled (C{[p2p] seen_lines}).
- B{known_set}: one connection's digests its peer holds
  (C{[p2p] known_size}).
- B{signature_cache}: verified vote-batch signatures
  (C{[finality] signature_cache}).
- B{utxo_set}: the chain's UTXO set (held in memory whole), per 100,000
  coins: the outputs of payments parsed from the wire, two per payment,
  change and payee paying the same two addresses throughout (a wallet's
  change address, a merchant).  Not a limit: it grows with the chain.
- B{certificate_index}: the index of archived finality certificates
  (txid to height) with C{[finality] max_certificates} entries, 1,000
  blocks of them.

Prints one line per structure and one JSON object last.  Usage:
C{python benchmarks/memory_sizes.py [--scale F]} (C{--scale} fills each to
that fraction of its limit and scales the figure up, for a quick look).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timecoin.address import address_of  # noqa: E402
from timecoin.encoding import decode  # noqa: E402
from timecoin.finality.records import Certificates  # noqa: E402
from timecoin.finality.settings import FinalitySettings  # noqa: E402
from timecoin.finality.votes import SignatureCache  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.mempool import MempoolSettings  # noqa: E402
from timecoin.p2p.caches import KnownSet, LineCache, SeenCache  # noqa: E402
from timecoin.p2p.settings import P2PSettings  # noqa: E402
from timecoin.params import NETWORKS  # noqa: E402
from timecoin.tx import (  # noqa: E402
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    UtxoEntry,
    sign_inputs,
)
from timecoin.txcache import MAX_CACHED, TxCache  # noqa: E402

NETWORK = "devnet"
UTXOS = 100_000
"""Coins the UTXO set's figure is given for."""
BLOCKS = 1_000
"""Blocks the certificate index spreads over (C{certificate_blocks})."""


def wire_payments(count: int) -> list[object]:
    """
    C{count} distinct signed payments as JSON objects (what a peer sends).
    """
    key = PrivateKey(b"\x01" * 32)
    prefix = NETWORKS[NETWORK].address_prefix
    payee = address_of(PrivateKey(b"\x02" * 32).public, prefix)
    change = address_of(key.public, prefix)
    objs: list[object] = []
    for i in range(count):
        tx = Transaction((TxIn(OutPoint(os.urandom(32), i % 4),
                               key.public),),
                         (TxOut(1_500_000 + i, payee),
                          TxOut(98_000_000 - i, change)))
        objs.append(decode(sign_inputs(tx, NETWORK, [key]).encode()))
    return objs


def measure(build: Callable[[], object]) -> int:
    """
    Bytes allocated by C{build} and still held by what it returns.
    """
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept
    return after - before


def parsed(objs: list[object]) -> Callable[[], object]:
    """
    Parse every object as a node does, txid and encoding computed.
    """
    def build() -> object:
        txs = [Transaction.from_obj(o) for o in objs]
        for tx in txs:
            assert tx.txid
            tx.encode()
        return txs
    return build


def cached(objs: list[object], size: int) -> Callable[[], object]:
    """
    The parsed-transaction cache after C{objs} went through it.
    """
    def build() -> object:
        cache = TxCache(size)
        for obj in objs:
            tx = cache.parse(obj)
            assert tx.txid
            tx.encode()
        return cache
    return build


def utxos(objs: list[object]) -> Callable[[], object]:
    """
    The UTXO set of the outputs of C{objs} (as the chain builds it from
    a block's parsed transactions), each decoded from its bytes here.
    """
    raws = [json.dumps(obj) for obj in objs]

    def build() -> object:
        coins: dict[OutPoint, UtxoEntry] = {}
        for raw in raws:
            tx = Transaction.from_obj(decode(raw.encode()))
            for vout, out in enumerate(tx.outputs):
                coins[OutPoint(tx.txid, vout)] = UtxoEntry(
                    out.value, out.address, 100_000)
        return coins
    return build


def seen(size: int) -> object:
    """
    A full seen-cache.
    """
    cache = SeenCache(size)
    for _ in range(size):
        cache.add(os.urandom(32))
    return cache


def known(size: int) -> object:
    """
    A full known-set.
    """
    known = KnownSet(size)
    for i in range(size):
        known.add(os.urandom(32), 1e9 + i / 1000)
    return known


class _Owner:
    """
    A line cache's owner that holds every item.
    """

    def still_seen(self, name: str, item: bytes) -> bool:
        return True

    def line_repeated(self, name: str) -> None:
        pass


class _Line:
    """
    A connection handling a line with a digest.
    """

    line_digest: bytes | None = None


def lines(size: int) -> object:
    """
    A full line cache.
    """
    cache = LineCache(size)
    owner = _Owner()
    conn = _Line()
    for _ in range(size):
        conn.line_digest = os.urandom(32)
        cache.taken(conn, "txs", owner, os.urandom(32))
    return cache


def signatures(size: int) -> object:
    """
    A full signature cache.
    """
    cache = SignatureCache(NETWORK, size, Counter())
    for _ in range(size):
        cache.remember(os.urandom(32))
    return cache


def certificates(size: int) -> object:
    """
    A full certificate index, its entries over L{BLOCKS} blocks.
    """
    index = Certificates(None, BLOCKS, size)  # type: ignore[arg-type]
    per_block = max(1, size // BLOCKS)
    for start in range(0, size, per_block):
        height = 100_000 + start // per_block
        index.restore([(height, os.urandom(32))
                       for _ in range(min(per_block, size - start))])
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fill each structure to this fraction")
    options = parser.parse_args(argv)
    p2p, finality = P2PSettings(), FinalitySettings()
    # (Older trees, measured for a comparison, had no such setting.)
    cache_size = getattr(MempoolSettings(), "parsed_cache", MAX_CACHED)

    def n(limit: int) -> int:
        return max(1, int(limit * options.scale))

    objs = wire_payments(n(cache_size))
    rows = [
        ("transaction", 1, measure(parsed(objs)) / len(objs)),
        ("parsed_cache", cache_size,
         measure(cached(objs, len(objs)))),
        ("utxo_set", UTXOS,
         measure(utxos(objs)) * UTXOS / (2 * len(objs)) * options.scale),
        ("seen_cache", p2p.seen_size,
         measure(lambda: seen(n(p2p.seen_size)))),
        ("line_cache", p2p.seen_lines,
         measure(lambda: lines(n(p2p.seen_lines)))),
        ("known_set", p2p.known_size,
         measure(lambda: known(n(p2p.known_size)))),
        ("signature_cache", finality.signature_cache,
         measure(lambda: signatures(n(finality.signature_cache)))),
        ("certificate_index", finality.max_certificates,
         measure(lambda: certificates(n(finality.max_certificates)))),
    ]
    result: dict[str, object] = {"benchmark": "memory_sizes",
                                 "scale": options.scale}
    for name, limit, size in rows:
        if name == "transaction":
            print(f"{name:18} {size:10.0f} bytes each", flush=True)
            result["transaction_bytes"] = round(size)
            continue
        full = size / options.scale
        print(f"{name:18} {limit:8,} entries {full / 1e6:7.1f} MB "
              f"({full / limit:5.0f} B each)", flush=True)
        result[f"{name}_mb"] = round(full / 1e6, 1)
        result[f"{name}_bytes_each"] = round(full / limit)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
