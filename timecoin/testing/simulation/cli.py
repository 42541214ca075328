"""
The command line, C{python -m timecoin.testing.simulation}: runs many
seeds over worker processes, prints each failure with the command that
replays it, and ends with one summary line.

Imports L{config}, L{invariants} and L{runner} from the rest of the
simulator.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from timecoin.testing.simulation.config import LIFECYCLE, SimConfig
from timecoin.testing.simulation.invariants import Violation
from timecoin.testing.simulation.runner import SimResult, repro, run_seed

__all__ = ["LIFECYCLE_EVENTS", "Tally", "base_config", "main", "parser"]


LIFECYCLE_EVENTS = ("joiner-registered", "joiner-active", "stopped-to-return",
                    "returned", "restarted-never-set-aside",
                    "stopped-for-good", "unplanned-set-aside",
                    "step-crash-hit", "step-crash-missed",
                    "liveness-not-promised")
"""Counters a lifecycle sweep totals in its last line."""


def _worker(config: SimConfig) -> SimResult:
    """
    Run one seed in a worker; a crash of the simulator is a failure too.
    """
    try:
        return run_seed(config)
    except Exception as e:
        import traceback
        return SimResult(config.seed, [Violation(
            "crash", 0.0, f"{type(e).__name__}: {e}\n"
            + traceback.format_exc())], {}, [], "")


def _quiet_logs() -> None:
    from twisted.logger import globalLogBeginner
    globalLogBeginner.beginLoggingTo([], discardBuffer=True,
                                     redirectStandardIO=False)


def parser() -> argparse.ArgumentParser:
    """
    The command line's options.
    """
    parser = argparse.ArgumentParser(
        prog="python -m timecoin.testing.simulation",
        description="Seeded whole-network simulations with fault "
                    "injection and invariant checks.")
    parser.add_argument("--seeds", type=int, default=100,
                        help="how many seeds to run (from --start)")
    parser.add_argument("--start", type=int, default=0,
                        help="first seed")
    parser.add_argument("--seed", type=int, default=None,
                        help="run this one seed only")
    parser.add_argument("--nodes", type=int, default=4,
                        help="genesis masternodes")
    parser.add_argument("--byzantine", type=int, default=0)
    parser.add_argument("--lifecycle", action="store_true",
                        help="masternodes register, stop for good and come "
                             "back; in-step crashes (defaults of the "
                             "lifecycle runs: 3 joiners, 70 s of faults, "
                             "proof of service over 10 blocks)")
    parser.add_argument("--joiners", type=int, default=None,
                        help="hosts outside the genesis that register")
    parser.add_argument("--step-crashes", type=int, default=None,
                        help="at most this many crashes inside a "
                             "consensus step")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--calm", type=float, default=None)
    parser.add_argument("--liveness-bound", type=float, default=None)
    parser.add_argument("--tx-rate", type=float, default=None)
    parser.add_argument("--double-spends", type=float,
                        default=SimConfig.double_spends)
    parser.add_argument("--max-skew", type=float, default=None)
    parser.add_argument("--committee", type=int, default=None,
                        help="block consensus by a committee of this many "
                             "per epoch of 10 blocks")
    parser.add_argument("--no-faults", action="store_true",
                        help="only Byzantine behaviour, no network faults")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--verbose", action="store_true",
                        help="print the plan, timeline and stats of each "
                             "seed")
    return parser


def base_config(args: argparse.Namespace) -> SimConfig:
    """
    The configuration every seed of the command runs with: the preset
    (L{LIFECYCLE} with C{--lifecycle}) with the options given.
    """
    preset = LIFECYCLE if args.lifecycle else SimConfig()
    chosen = {name: getattr(args, name)
              for name in ("joiners", "step_crashes", "duration", "calm",
                           "tx_rate", "liveness_bound", "max_skew",
                           "committee")
              if getattr(args, name) is not None}
    return replace(preset, nodes=args.nodes, byzantine=args.byzantine,
                   double_spends=args.double_spends,
                   faults=not args.no_faults,
                   **chosen)


class Tally:
    """
    A sweep's results as they come in: each printed as it arrives (its
    failure with the command that replays it; with C{verbose}, its plan,
    timeline and statistics), their totals, and the summary lines.
    """

    def __init__(self, base: SimConfig, jobs: int, verbose: bool) -> None:
        self.base = base
        self.jobs = jobs
        self.verbose = verbose
        self.began = time.perf_counter()
        self.failed: list[SimResult] = []
        self.totals: Counter[str] = Counter()

    def add(self, result: SimResult) -> None:
        """
        One seed's result arrived.
        """
        totals, failed = self.totals, self.failed
        totals["seeds"] += 1
        if totals["seeds"] % 50 == 0 and self.jobs > 50:
            print(f"... {totals['seeds']}/{self.jobs} seeds, "
                  f"{len(failed)} failed, "
                  f"{time.perf_counter() - self.began:.0f}s",
                  file=sys.stderr, flush=True)
        totals["blocks"] += result.stats.get("committed", 0)
        totals["finalized"] += result.stats.get("finalized_txs", 0)
        totals["double_spends"] += result.stats.get(
            "workload", {}).get("double-spends", 0)
        events = result.stats.get("events", {})
        for name in LIFECYCLE_EVENTS:
            totals[name] += events.get(name, 0)
        totals["beyond-model"] += "beyond-model" in result.stats
        totals["noted"] += bool(result.stats.get("noted"))
        if result.stats.get("noted") and self.verbose:
            print(f"seed {result.seed} noted: "
                  + "; ".join(result.stats["noted"][:3]))
        if self.verbose:
            print(f"seed {result.seed}: {len(result.violations)} "
                  f"violations, {result.wall:.1f}s")
            for line in result.plan:
                print("   ", line)
            print("    stats:", json.dumps(result.stats, sort_keys=True))
        if not result.ok:
            failed.append(result)
            config = replace(self.base, seed=result.seed)
            print(f"FAIL seed {result.seed}: "
                  f"{len(result.violations)} violation(s); reproduce "
                  f"with: {repro(config)}")
            for violation in result.violations[:10]:
                print(f"    {violation}")
            sys.stdout.flush()

    def summary(self, args: argparse.Namespace) -> None:
        """
        Print the summary line (and, for lifecycle or step-crash runs,
        the event totals).
        """
        totals, failed = self.totals, self.failed
        wall = time.perf_counter() - self.began
        failing = " ".join(str(r.seed) for r in sorted(failed,
                                                       key=lambda r: r.seed))
        print(f"{totals['seeds']} seeds, {len(failed)} failed "
              f"(nodes={args.nodes} byzantine={args.byzantine}"
              f"{' lifecycle' if args.lifecycle else ''}"
              f"{' no-faults' if args.no_faults else ''}); "
              f"{totals['blocks']} blocks committed, {totals['finalized']} "
              f"txs finalized, {totals['double_spends']} double spends "
              f"attempted; {wall:.0f}s"
              + (f"; failing seeds: {failing}" if failed else ""))
        if args.lifecycle or args.step_crashes:
            print("events: " + ", ".join(
                f"{name} {totals[name]}"
                for name in (*LIFECYCLE_EVENTS, "beyond-model", "noted")))


def main(argv: list[str] | None = None) -> int:
    """
    Run many seeds; print failures (with their reproducing command) and a
    summary line.  Exit status 1 if any seed failed.
    """
    args = parser().parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0" and argv is None:
        # Set and dict iteration over str/bytes must not vary between
        # runs, or a seed would not replay.
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, "-m",
                                  "timecoin.testing.simulation",
                                  *sys.argv[1:]])
    if 3 * args.byzantine >= args.nodes:
        print(f"warning: {args.byzantine} Byzantine of {args.nodes} is not "
              "less than a third; safety is not promised", file=sys.stderr)
    base = base_config(args)
    seeds = [args.seed] if args.seed is not None else \
        list(range(args.start, args.start + args.seeds))
    jobs = [replace(base, seed=s) for s in seeds]
    _quiet_logs()
    tally = Tally(base, len(jobs), args.verbose)
    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing
        pool = multiprocessing.get_context("fork").Pool(args.jobs)
        results: Iterable[SimResult] = pool.imap_unordered(_worker, jobs)
    else:
        pool = None
        results = map(_worker, jobs)
    try:
        for result in results:
            tally.add(result)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    tally.summary(args)
    return 1 if tally.failed else 0
