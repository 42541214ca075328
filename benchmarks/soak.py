"""
The soak run: four masternodes as real hosts (network namespaces on a
bridge, L{timecoin.testing.netns}) under a steady payment load for a long
while, then the figures an operator would ask about, as one JSON line:

- reconnects between live peers (a peer's connection made again after the
  first mesh formed; 0 expected on a healthy network),
- payments sent, and final on every node,
- RSS of each node at start and end,
- warnings logged by each node (and the distinct messages),
- heights and whether every node has one utxo_hash.

Run: ``make soak`` (30 minutes) or ``python benchmarks/soak.py --minutes
5``.  Needs root (network namespaces); the namespaces are deleted at the
end, also after an error.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timecoin.testing import netns  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2.0,
                        help="payments per second")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--block-time", type=float, default=2.0)
    args = parser.parse_args(argv)
    why = netns.available()
    if why:
        print(f"soak: skipped: {why}", file=sys.stderr)
        return 2
    netns.sweep()
    lab = netns.Lab(args.nodes)
    base = Path(tempfile.mkdtemp(prefix="timecoin-soak-"))
    lab.create()
    nodes: list[netns.NsNode] = []
    try:
        nodes = netns.masternode_network(lab, base, args.nodes,
                                         args.block_time)
        for node in nodes:
            node.start()
        result = soak(nodes, args.minutes * 60, args.rate)
        result["datadir"] = str(base)
        print(json.dumps(result))
        return 0
    finally:
        for node in nodes:
            node.close()
        lab.destroy()


def soak(nodes: list[netns.NsNode], seconds: float,  # noqa: C901
         rate: float) -> dict[str, object]:
    """
    Drive the network for C{seconds}; return the figures.
    """
    first = nodes[0]
    deadline = time.monotonic() + 60
    while not all(len(n.peers()) == len(nodes) - 1 for n in nodes):
        if time.monotonic() > deadline:
            raise SystemExit("no full mesh within 60 s")
        time.sleep(0.5)
    seen = {n.host: {p["addr"]: p["connected_since"] for p in n.peers()}
            for n in nodes}
    rss_start = {n.host: netns.rss_kib(n.proc.pid) if n.proc else None
                 for n in nodes}
    to = [n.call("getnewaddress") for n in nodes[1:]]
    txids: list[str] = []
    refused = 0
    reconnects = 0
    start = time.monotonic()
    next_pay = start
    next_look = start + 10
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_pay:
            try:
                txids.append(first.call("sendtoaddress",
                                        to[len(txids) % len(to)], 0.001))
            except RuntimeError:
                refused += 1
            next_pay += 1.0 / rate
        if now >= next_look:
            next_look += 10
            for n in nodes:
                for p in n.peers():
                    known = seen[n.host].get(p["addr"])
                    if known is not None and known != p["connected_since"]:
                        reconnects += 1
                    seen[n.host][p["addr"]] = p["connected_since"]
        time.sleep(max(0.0, min(next_pay, next_look) - time.monotonic()))
    time.sleep(15)
    final_everywhere = 0
    for txid in txids:
        if all(n.call("gettransaction", txid)["state"] == "finalized"
               for n in nodes):
            final_everywhere += 1
    warnings: dict[int, list[str]] = {}
    for n in nodes:
        lines = [line for line in n.log().splitlines() if "#warn]" in line
                 or "#error]" in line or "#critical]" in line]
        warnings[n.host] = sorted({re.sub(r"^\S+ ", "", line)[:160]
                                   for line in lines})
    heights = [n.call("getblockcount") for n in nodes]
    return {
        "minutes": round(seconds / 60, 1), "nodes": len(nodes),
        "payments": len(txids), "refused": refused,
        "final_on_every_node": final_everywhere,
        "reconnects": reconnects,
        "rss_kib_start": rss_start,
        "rss_kib_end": {n.host: netns.rss_kib(n.proc.pid) if n.proc
                        else None for n in nodes},
        "warnings": {h: len(w) for h, w in warnings.items()},
        "warning_messages": warnings,
        "heights": heights,
        "one_utxo_hash": len({n.call("gettxoutsetinfo")["utxo_hash"]
                              for n in nodes}) == 1,
    }


if __name__ == "__main__":
    raise SystemExit(main())
