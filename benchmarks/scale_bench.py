"""
Scale benchmark (issue 19): what one masternode receives and spends as the
network grows, measured in the deterministic simulator
(L{timecoin.testing.simulation}: every node is a complete node speaking
the real line protocol over an in-memory network).

For each network size it runs one seed with no faults and no Byzantine
masternodes, the same payment rate (C{--tx-rate}) and the same simulated
time, and prints per node:

- lines and bytes received per committed block and per finalized payment;
- copies received per distinct gossip message (all gossip, and per type);
- CPU per simulated second: the process CPU of the run divided by the
  nodes and the simulated seconds (it includes the simulator's own
  network and clock, a few percent);
- finality latency at the node (acceptance to finality, p50 and p99).

Blocks and payments committed are printed too: a size whose run commits
fewer blocks is not comparable.  One JSON object per size, and a summary
object last; C{--png PATH} plots the figures (needs matplotlib: C{make
bench-scale} installs it).  The runs are deterministic but for the CPU
figure, which is a ratio measured in one process: compare sizes of one
run, not runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from timecoin.testing.simulation import SimConfig, run_seed  # noqa: E402


def measure(nodes: int, seed: int, seconds: float, tx_rate: float,
            committee: int) -> dict[str, Any]:
    """
    Run one fault-free simulation of C{nodes} masternodes and return its
    per-node figures.
    """
    config = SimConfig(seed=seed, nodes=nodes, byzantine=0, faults=False,
                       duration=seconds / 2, calm=seconds / 2,
                       tx_rate=tx_rate, committee=committee)
    began = time.process_time()
    result = run_seed(config)
    cpu = time.process_time() - began
    stats = result.stats
    copies = stats["copies"]
    blocks = stats["committed"]
    payments = stats["finalized_txs"]
    lines_block = copies.get("lines-per-node-per-block", 0.0)
    bytes_block = copies.get("bytes-per-node-per-block", 0)
    per_payment = blocks / payments if payments else 0.0
    return {
        "nodes": nodes,
        "committee": committee or nodes,
        "ok": result.ok,
        "violations": [str(v) for v in result.violations[:3]],
        "blocks": blocks,
        "payments": payments,
        "lines_per_node_per_block": lines_block,
        "lines_per_node_per_block_over_n": round(lines_block / nodes, 2),
        "bytes_per_node_per_block": bytes_block,
        "lines_per_node_per_payment": round(lines_block * per_payment, 1),
        "bytes_per_node_per_payment": round(bytes_block * per_payment),
        "copies_per_message": copies.get("all-gossip"),
        "copies_by_type": {k: v for k, v in copies.items()
                           if isinstance(v, float) and k != "all-gossip"
                           and "-per-" not in k},
        "gossip_lines_per_node_per_block":
            copies.get("gossip-lines-per-node-per-block", {}),
        "cpu_ms_per_node_per_sim_second": round(
            1000 * cpu / nodes / seconds, 2),
        "finality_latency": stats.get("finality-latency", {}),
        "wall_seconds": round(result.wall, 1),
    }


MEANS = ("blocks", "payments", "lines_per_node_per_block",
         "lines_per_node_per_block_over_n", "bytes_per_node_per_block",
         "lines_per_node_per_payment", "bytes_per_node_per_payment",
         "copies_per_message", "cpu_ms_per_node_per_sim_second",
         "wall_seconds")
"""The figures a row of several seeds averages."""


def mean_row(rows: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """
    The runs C{rows} of one size, one per seed of C{seeds}, as one row:
    the mean of each figure of L{MEANS} and of the latency percentiles,
    the largest latency, and whether every run kept every invariant.
    """
    count = len(rows)
    row: dict[str, Any] = {"nodes": rows[0]["nodes"],
                           "committee": rows[0]["committee"], "seeds": seeds,
                           "ok": all(r["ok"] for r in rows),
                           "violations": [v for r in rows
                                          for v in r["violations"]][:3]}
    for name in MEANS:
        row[name] = round(sum(r[name] or 0 for r in rows) / count, 2)
    latencies = [r["finality_latency"] for r in rows if r["finality_latency"]]
    row["finality_latency"] = {
        "p50": round(sum(x["p50"] for x in latencies) / len(latencies), 2),
        "p99": round(sum(x["p99"] for x in latencies) / len(latencies), 2),
        "max": max(x["max"] for x in latencies)} if latencies else {}
    return row


def plot(rows: list[dict[str, Any]], path: str) -> None:
    """
    Plot lines per node per block, copies per message, CPU per node and
    finality latency against the network size, into the PNG C{path}.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [r["nodes"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    panels = [
        (axes[0][0], "lines received per node per block", "measured",
         [r["lines_per_node_per_block"] for r in rows],
         [4 * n for n in sizes], "issue 19 target: 4N"),
        (axes[0][1], "copies per distinct message", "measured",
         [r["copies_per_message"] or 0 for r in rows],
         [2 for _ in sizes], "target: 2"),
        (axes[1][0], "CPU ms per node per simulated second", "measured",
         [r["cpu_ms_per_node_per_sim_second"] for r in rows], None, ""),
        (axes[1][1], "finality latency p50 / p99 (s)", "p50",
         [r["finality_latency"].get("p50", 0) for r in rows],
         [r["finality_latency"].get("p99", 0) for r in rows], "p99"),
    ]
    for ax, title, name, values, reference, label in panels:
        ax.plot(sizes, values, marker="o", label=name)
        if reference is not None:
            ax.plot(sizes, reference, linestyle="--", label=label)
        ax.set_title(title)
        ax.set_xlabel("masternodes")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("timecoin: one masternode's traffic and CPU as the network "
                 "grows (simulator, no faults)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,20,30",
                        help="network sizes, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="run this many seeds from --seed per size and "
                        "average them (one seed's traffic depends on its "
                        "double spends and connection churn)")
    parser.add_argument("--seconds", type=float, default=80.0,
                        help="simulated seconds per size")
    parser.add_argument("--tx-rate", type=float, default=3.0,
                        help="payments offered per simulated second")
    parser.add_argument("--committee", type=int, default=0,
                        help="block consensus by a committee of this many "
                        "(0: every masternode)")
    parser.add_argument("--png", default=None,
                        help="write a plot of the figures to this PNG")
    args = parser.parse_args(argv)
    rows = []
    seeds = list(range(args.seed, args.seed + args.seeds))
    for size in (int(s) for s in args.sizes.split(",")):
        runs = []
        for seed in seeds:
            run = measure(size, seed, args.seconds, args.tx_rate,
                          args.committee)
            runs.append(run)
            print(json.dumps(dict(run, seed=seed)), flush=True)
        row = runs[0] if len(runs) == 1 else mean_row(runs, seeds)
        if len(runs) > 1:
            print(json.dumps(row), flush=True)
        rows.append(row)
    base = rows[0]
    summary = {
        "sizes": [r["nodes"] for r in rows],
        "lines_per_node_per_block": [r["lines_per_node_per_block"]
                                     for r in rows],
        "copies_per_message": [r["copies_per_message"] for r in rows],
        "cpu_ratio_to_smallest": [
            round(r["cpu_ms_per_node_per_sim_second"]
                  / base["cpu_ms_per_node_per_sim_second"], 2)
            for r in rows],
        "all_ok": all(r["ok"] for r in rows),
    }
    print(json.dumps(summary))
    if args.png:
        plot(rows, args.png)
    return 0 if summary["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
