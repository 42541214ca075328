"""
Memory benchmark (issue 18): the resident memory of one real node
(C{twistd timecoin}, SQLite) holding the two things that grow with use --
1,000 blocks of kept finality certificates and a full mempool of 10,000
payments -- against the 150 MB the issue allows.

1. A one-masternode devnet with fast blocks (C{--block-time}, 0.05 s) is
   funded into independent coins (the load benchmark's fan-out).
2. B{Certificates}: C{--cert-payments} payments go in at an even pace over
   at least C{--cert-blocks} blocks, so the node keeps the certificates of
   payments mined over that many blocks (C{finality.certificate_blocks},
   1,000 by default).
3. B{Full mempool}: the node is restarted with blocks an hour apart (its
   certificate index restored from the store) and given C{--mempool}
   payments (the C{mempool.max_count} default, 10,000), all final on the
   single masternode and none mined.

Prints the resident set (C{VmRSS}) and its peak (C{VmHWM}) after each
phase, and one JSON object last.  The figures include the node's Python
and libraries (about 60 MB idle).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.load_bench import (  # noqa: E402
    Devnet,
    fan_out,
    memory_kib,
    sign_payments,
)
from timecoin import devnet  # noqa: E402

LIMIT_MB = 150.0
"""What issue 18 allows a node holding both."""


def send(net: Devnet, raws: list[str], rate: float) -> int:
    """
    Submit C{raws} to node 0 at about C{rate} per second (in batches of
    50); returns how many were refused.
    """
    rpc = net.rpc(0)
    refused = 0
    started = time.monotonic()
    for start in range(0, len(raws), 50):
        due = started + start / rate
        time.sleep(max(0.0, due - time.monotonic()))
        replies = rpc.batch("sendrawtransaction",
                            [[raw] for raw in raws[start:start + 50]])
        refused += sum(1 for r in replies if r.get("error"))
    return refused


def run(options: argparse.Namespace) -> dict[str, Any]:
    """
    The benchmark; returns its figures.
    """
    workdir = Path(tempfile.mkdtemp(prefix="timecoin-memory-"))
    config = workdir / "node.toml"
    config.write_text(
        "[rpc]\nmax_undecided = 1000000\nmax_unmined = 1000000\n"
        f"[mempool]\nmax_count = {options.mempool}\n")
    root = workdir / "net"
    net = Devnet(root, 1, options.block_time, config)
    net.up()
    try:
        return measure(options, net, root)
    finally:
        net.down()
        shutil.rmtree(workdir, ignore_errors=True)


def measure(options: argparse.Namespace, net: Devnet,
            root: Path) -> dict[str, Any]:
    rng = random.Random(options.seed)
    total = options.cert_payments + options.mempool
    key, address, coins = fan_out(net, total)
    payments = sign_payments(key, address, coins, total, 1, 0.0, rng)
    raws = [p.raw for p in payments]
    idle = memory_kib(net.pid(0))
    print(f"funded: {len(coins)} coins; node RSS {idle['VmRSS'] / 1024:.1f} "
          f"MB", flush=True)

    rpc = net.rpc(0)
    first = rpc.call("getblockcount")
    pace = options.cert_payments / (options.cert_blocks * options.block_time)
    refused = send(net, raws[:options.cert_payments], pace)
    while rpc.call("getblockcount") < first + options.cert_blocks:
        time.sleep(0.5)
    certs = memory_kib(net.pid(0))
    blocks = rpc.call("getblockcount") - first
    print(f"certificates: {options.cert_payments} payments mined over "
          f"{blocks} blocks ({refused} refused); RSS "
          f"{certs['VmRSS'] / 1024:.1f} MB, peak "
          f"{certs['VmHWM'] / 1024:.1f} MB", flush=True)

    devnet.stop_node(root, 0)
    state = json.loads((root / "devnet.json").read_text())
    state["block_time"] = 3600.0
    (root / "devnet.json").write_text(json.dumps(state))
    devnet.start_node(root, 0)
    rpc = net.rpc(0)
    deadline = time.monotonic() + 60
    while True:
        try:
            rpc.call("getblockcount")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    restarted = memory_kib(net.pid(0))
    refused_pool = send(net, raws[options.cert_payments:], 2000.0)
    size = rpc.call("getmempoolinfo")["size"]
    full = memory_kib(net.pid(0))
    print(f"full mempool: {size} payments ({refused_pool} refused), none "
          f"mined; RSS {full['VmRSS'] / 1024:.1f} MB, peak "
          f"{full['VmHWM'] / 1024:.1f} MB (restarted: "
          f"{restarted['VmRSS'] / 1024:.1f} MB)", flush=True)
    peak_mb = max(certs["VmHWM"], full["VmHWM"]) / 1024
    return {
        "benchmark": "memory",
        "cert_payments": options.cert_payments,
        "cert_blocks": blocks,
        "mempool_size": size,
        "refused": refused + refused_pool,
        "rss_idle_mb": round(idle["VmRSS"] / 1024, 1),
        "rss_certificates_mb": round(certs["VmRSS"] / 1024, 1),
        "rss_restarted_mb": round(restarted["VmRSS"] / 1024, 1),
        "rss_full_mempool_mb": round(full["VmRSS"] / 1024, 1),
        "peak_mb": round(peak_mb, 1),
        "limit_mb": LIMIT_MB,
        "within_limit": peak_mb <= LIMIT_MB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Resident memory of one node with 1,000 blocks of "
                    "certificates and a full mempool (issue 18).")
    parser.add_argument("--cert-payments", type=int, default=5000)
    parser.add_argument("--cert-blocks", type=int, default=1000)
    parser.add_argument("--mempool", type=int, default=10_000)
    parser.add_argument("--block-time", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    figures = run(options)
    print(json.dumps(figures, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
