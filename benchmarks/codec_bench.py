"""
Codec micro-benchmark: microseconds per decode and per encode of the
node's hot lines, the standard-library reference against the msgspec
fast paths, measured in one process with the two alternated.

::

    python benchmarks/codec_bench.py [--repeat 7] [--seconds 0.05]

The lines: one signed payment (as C{Transaction.decode} gets it from
C{sendrawtransaction} or a store), a C{txs} line of 50 signed payments,
a C{tx_votes} line of a 50-decision batch, a C{block_vote} line, a block
of 800 payments, and the JSON-RPC bodies a client sends (one
C{sendrawtransaction}, a batch of 50).  Decoding compares
L{timecoin.encoding.decode_reference} with L{timecoin.encoding.decode}
on the text L{timecoin.p2p.messages.parse_line} passes (the block and
the payment: the bytes C{decode} gets from C{Block.decode} and
C{Transaction.decode}), and C{json.loads(body, parse_float=Decimal)}
with L{timecoin.rpc.dispatch.parse_body}; encoding compares
L{timecoin.encoding.canonical_reference} with
L{timecoin.encoding.canonical} on the objects the lines are built from.
Each figure is the best of C{--repeat} timings of at least C{--seconds}
each, old and new alternated (a shared machine only ever slows a timing
down).  The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from timecoin import params  # noqa: E402
from timecoin.address import address_of  # noqa: E402
from timecoin.block import (  # noqa: E402
    Block,
    BlockHeader,
    CommitCertificate,
    Vote,
    merkle_root,
)
from timecoin.consensus.messages import PRECOMMIT, BlockVote  # noqa: E402
from timecoin.encoding import (  # noqa: E402
    canonical,
    canonical_reference,
    decode,
    decode_reference,
    sha256,
)
from timecoin.finality.votes import sign_tx_votes  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.p2p.consensus_relay import BlockVoteMsg  # noqa: E402
from timecoin.p2p.messages import TxsMsg, TxVotesMsg  # noqa: E402
from timecoin.rpc.dispatch import _refuse_constant, parse_body  # noqa: E402
from timecoin.tx import (  # noqa: E402
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    sign_inputs,
)

PREFIX = params.NETWORKS["devnet"].address_prefix


def payments(count: int) -> list[Transaction]:
    """
    C{count} signed one-input payments with change, as the load client
    sends them.
    """
    payer = PrivateKey(sha256(b"codec bench payer"))
    payer_addr = address_of(payer.public, PREFIX)
    to = address_of(PrivateKey(sha256(b"codec bench payee")).public, PREFIX)
    txs = []
    for i in range(count):
        tx = Transaction(
            (TxIn(OutPoint(sha256(i.to_bytes(4, "big")), i % 3),
                  payer.public),),
            (TxOut(1 * params.COIN, to), TxOut(8 * params.COIN, payer_addr)))
        txs.append(sign_inputs(tx, "devnet", [payer]))
    return txs


def block_of(txs: list[Transaction]) -> Block:
    """
    A block holding C{txs} with a four-vote commit certificate.
    """
    keys = [PrivateKey(sha256(b"codec bench mn %d" % i)) for i in range(4)]
    commit = CommitCertificate(
        999, 0, sha256(b"prev"),
        tuple(sorted((Vote(k.public, sha256(k.public) * 2) for k in keys),
                     key=lambda v: v.voter)))
    header = BlockHeader(1000, sha256(b"prev"),
                         merkle_root([t.txid for t in txs]), 1_800_000_000_000,
                         keys[0].public, 0, sha256(commit.block_hash))
    return Block(header, sha256(b"sig") * 2, tuple(txs), commit)


def lines() -> dict[str, tuple[Any, Any]]:
    """
    Each hot line: (its bytes or text as decoded, the object it encodes).
    """
    txs = payments(800)
    key = PrivateKey(sha256(b"codec bench voter"))
    batch = sign_tx_votes(key, "devnet", 1000,
                          [(t.txid, "approve") for t in txs[:50]])
    vote = BlockVote(PRECOMMIT, 1000, 0, sha256(b"block"), key.public,
                     sha256(b"s") * 2)
    block = block_of(txs)
    txs_msg = TxsMsg.of(txs[:50])
    one = {"jsonrpc": "2.0", "id": 1, "method": "sendrawtransaction",
           "params": [txs[0].encode().hex()]}
    many = [{"jsonrpc": "2.0", "id": i, "method": "sendrawtransaction",
             "params": [t.encode().hex()]} for i, t in enumerate(txs[:50])]
    return {
        "one payment": (txs[0].encode(), txs[0].to_obj()),
        "txs (50 payments)": (txs_msg.encode().decode(), txs_msg.to_obj()),
        "tx_votes (50 decisions)": (TxVotesMsg(batch).encode().decode(),
                                    TxVotesMsg(batch).to_obj()),
        "block_vote": (BlockVoteMsg(vote).encode().decode(),
                       BlockVoteMsg(vote).to_obj()),
        "block (800 payments)": (block.encode(), block.to_obj()),
        "rpc sendrawtransaction": (json.dumps(one).encode(), None),
        "rpc batch of 50": (json.dumps(many).encode(), None),
    }


def best_us(function: Callable[[Any], Any], arg: Any, seconds: float) -> float:
    """
    Microseconds per call of C{function(arg)}, timed over at least
    C{seconds}.
    """
    n = 0
    began = time.perf_counter()
    while True:
        for _ in range(10):
            function(arg)
        n += 10
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return elapsed / n * 1e6


def json_loads_body(body: bytes) -> Any:
    """
    The RPC body parser before msgspec.
    """
    return json.loads(body, parse_float=Decimal,
                      parse_constant=_refuse_constant)


def main(argv: list[str] | None = None) -> int:
    """
    Time every line both ways; print a table and, last, one JSON line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.05)
    args = parser.parse_args(argv)
    cases: list[tuple[str, Callable[[Any], Any], Callable[[Any], Any],
                      Any]] = []
    for name, (line, obj) in lines().items():
        if obj is None:
            assert parse_body(line) == json_loads_body(line)
            cases.append(("decode " + name, json_loads_body, parse_body,
                          line))
            continue
        assert decode(line) == decode_reference(line)
        assert canonical(obj) == canonical_reference(obj)
        cases.append(("decode " + name, decode_reference, decode, line))
        cases.append(("encode " + name, canonical_reference, canonical, obj))
    best: dict[str, list[float]] = {name: [float("inf")] * 2
                                    for name, *_ in cases}
    for _ in range(args.repeat):
        for name, old, new, arg in cases:
            for i, function in enumerate((old, new)):
                best[name][i] = min(best[name][i],
                                    best_us(function, arg, args.seconds))
    results = {}
    print(f"{'line':40} {'old µs':>10} {'new µs':>10} {'old/new':>8}")
    for name, (old_us, new_us) in best.items():
        ratio = old_us / new_us
        print(f"{name:40} {old_us:10.2f} {new_us:10.2f} {ratio:8.2f}")
        results[name] = {"old_us": round(old_us, 2),
                         "new_us": round(new_us, 2),
                         "ratio": round(ratio, 2)}
    print(json.dumps({"repeat": args.repeat,
                      "loadavg_before": os.getloadavg()[0],
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
