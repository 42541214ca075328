"""
Finality-record benchmark: the CPU a node spends per payment on its
finality records in a real SQLite store with group commit, the canonical
JSON records (what nodes wrote before the compact form) against the
compact ones, alternated in one run.

::

    python benchmarks/records_bench.py [--payments 2000] [--reps 5] [--log]

The workload is built once from the real model: C{--payments} signed
payments, each approved by C{--voters} masternodes in signed batches of
C{--batch} decisions (so each vote carries a Merkle branch of the depth a
batch of that size gives).  For each variant a fresh store in a temporary
directory (WAL, C{synchronous=FULL}) with a C{task.Clock} runs what a
node does, in groups of C{--group} payments (one group commit each, as
the 20 ms group commit gathers at a few hundred payments a second), each
variant with fresh copies of the votes (a node encodes each vote once,
into its one record): the
pending records of this group's payments, the finalized records (with
the votes) of the previous group's, and the deletion of the records of
the group C{--keep} groups back (certificates pruned); each group is
committed with one C{fsync}.  The time counted is the process's CPU
time (C{time.process_time}) from encoding the records to the commit, per
payment; the wall time, which includes waiting for the disk, is printed
too.  With C{--prefill N} each store first holds N older certificates
(finalized records; a node keeps up to 100,000), written untimed: the
size of the table the writes land in.  With C{--log}, the compact
records are also appended to a plain file, one C{write} and C{fsync} per
group: the floor an append-only record log could reach (a measurement,
not a store; it does not depend on C{--prefill}).  The last line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import defer, task  # noqa: E402

from timecoin.address import address_of  # noqa: E402
from timecoin.encoding import sha256  # noqa: E402
from timecoin.finality.records import (  # noqa: E402
    finalized_json,
    finalized_record,
    pending_json,
    pending_record,
)
from timecoin.finality.votes import APPROVE, sign_tx_votes  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.mempool import Entry  # noqa: E402
from timecoin.storage.sqlite import GROUP_COMMIT_DELAY, SqliteStore  # noqa: E402
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut  # noqa: E402

Encoder = Callable[[Entry], bytes]


class KeyedByTxid(SqliteStore):
    """
    The store's finality records as schema version 1 kept them, before
    this benchmark's session: a C{WITHOUT ROWID} table keyed by txid,
    written with C{INSERT OR REPLACE}.
    """

    def open(self) -> defer.Deferred[None]:
        """
        Open the store and add the version-1 records table.
        """
        d = super().open()
        assert self._conn is not None
        self._conn.execute("CREATE TABLE tx_records (txid BLOB PRIMARY KEY,"
                           " record BLOB NOT NULL) WITHOUT ROWID")
        return d

    @staticmethod
    def _record_ops(conn: sqlite3.Connection,
                    records: list[tuple[bytes, bytes | None]]) -> None:
        last = dict(records)
        deleted = [(t,) for t, r in last.items() if r is None]
        if deleted:
            conn.executemany("DELETE FROM tx_records WHERE txid = ?", deleted)
        written = [(t, r) for t, r in last.items() if r is not None]
        if written:
            conn.executemany("INSERT OR REPLACE INTO tx_records (txid, record)"
                             " VALUES (?, ?)", written)


VARIANTS: dict[str, tuple[Encoder, Encoder, type[SqliteStore]]] = {
    "before": (pending_json, finalized_json, KeyedByTxid),
    "compact": (pending_record, finalized_record, KeyedByTxid),
    "ordered": (pending_json, finalized_json, SqliteStore),
    "after": (pending_record, finalized_record, SqliteStore),
}
"""Record encoders and store layout: before this session (canonical
JSON, keyed by txid), each change alone (compact records; the records in
the order written), and both."""


def workload(payments: int, voters: int, batch: int) -> list[Entry]:
    """
    C{payments} mempool entries of signed payments, each with the
    approvals of C{voters} masternodes taken from signed batches.
    """
    payer = PrivateKey(sha256(b"records bench payer"))
    to = address_of(payer.public, "TIME0")
    entries = []
    for i in range(payments):
        tx = Transaction(
            (TxIn(OutPoint(sha256(b"coin %d" % i), 0), payer.public,
                  b""),), (TxOut(10**8, to), TxOut(5 * 10**8, to)))
        signature = payer.sign(b"bench", tx.txid)
        tx = Transaction((TxIn(tx.inputs[0].prevout, payer.public,
                               signature),), tx.outputs)
        entries.append(Entry(tx, 1000, i + 1, 0.0))
    keys = [PrivateKey(sha256(b"records bench mn %d" % m))
            for m in range(voters)]
    for start in range(0, payments, batch):
        chunk = entries[start:start + batch]
        for key in keys:
            signed = sign_tx_votes(key, "benchnet", 7,
                                   [(e.tx.txid, APPROVE) for e in chunk])
            for vote in signed.votes():
                entry = next(e for e in chunk if e.tx.txid == vote.txid)
                entry.votes[vote.voter] = vote
    return entries


def measure(entries: list[Entry],
            variant: tuple[Encoder, Encoder, type[SqliteStore]],
            group: int, keep: int, tmp: str,
            prefill: int = 0) -> dict[str, float]:
    """
    Run the record writes of C{entries} through a fresh SQLite store in
    C{tmp}, holding C{prefill} older certificates first (untimed); return
    CPU and wall microseconds per payment.
    """
    pending, finalized, layout = variant
    # Fresh votes, as each arrives in the node: a vote's encoding is
    # computed for its one record, not found kept from an earlier run.
    entries = [replace(e, votes={k: replace(v) for k, v in e.votes.items()})
               for e in entries]
    clock = task.Clock()
    path = str(Path(tmp) / f"records-{time.perf_counter_ns()}.sqlite")
    store = layout(path, clock)
    store.open()
    filler = [finalized(e) for e in entries[:64]]
    for i in range(prefill):
        store.put_tx_record(sha256(b"old certificate %d" % i),
                            filler[i % len(filler)])
    store.flush_records()
    groups = [entries[i:i + group] for i in range(0, len(entries), group)]
    failures: list[object] = []
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(len(groups) + 1):
        for entry in groups[n] if n < len(groups) else ():
            store.put_tx_record(entry.tx.txid, pending(entry)).addErrback(
                failures.append)
        for entry in groups[n - 1] if n else ():
            store.put_tx_record(entry.tx.txid, finalized(entry)).addErrback(
                failures.append)
        for entry in groups[n - keep] if n >= keep else ():
            store.delete_tx_record(entry.tx.txid).addErrback(
                failures.append)
        clock.advance(GROUP_COMMIT_DELAY)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    store.close()
    if failures:
        raise AssertionError(f"{len(failures)} record writes failed")
    return {"cpu_us": 1e6 * cpu / len(entries),
            "wall_us": 1e6 * wall / len(entries)}


def measure_log(entries: list[Entry],
                variant: tuple[Encoder, Encoder, type[SqliteStore]],
                group: int, keep: int, tmp: str) -> dict[str, float]:
    """
    The same writes appended to a plain file instead, one C{write} and
    one C{fsync} per group (each record framed by its txid, its length,
    and an empty record for a deletion): the floor an append-only record
    log (``docs/performance.md``, "What would lift it") could reach, with
    nothing of a store around it (no index, no replay, no compaction).
    """
    pending, finalized, _ = variant
    entries = [replace(e, votes={k: replace(v) for k, v in e.votes.items()})
               for e in entries]
    path = Path(tmp) / f"records-{time.perf_counter_ns()}.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    groups = [entries[i:i + group] for i in range(0, len(entries), group)]
    frame = struct.Struct(">32sI").pack
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        for n in range(len(groups) + 1):
            parts = []
            for entry in groups[n] if n < len(groups) else ():
                raw = pending(entry)
                parts += (frame(entry.tx.txid, len(raw)), raw)
            for entry in groups[n - 1] if n else ():
                raw = finalized(entry)
                parts += (frame(entry.tx.txid, len(raw)), raw)
            for entry in groups[n - keep] if n >= keep else ():
                parts.append(frame(entry.tx.txid, 0))
            os.write(fd, b"".join(parts))
            os.fsync(fd)
    finally:
        os.close(fd)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us": 1e6 * cpu / len(entries),
            "wall_us": 1e6 * wall / len(entries)}


def measure_encoding(entries: list[Entry],
                     variant: tuple[Encoder, Encoder, type[SqliteStore]]
                     ) -> float:
    """
    The CPU microseconds per payment of encoding its pending and its
    finalized record alone (fresh votes), without the store.
    """
    pending, finalized, _ = variant
    entries = [replace(e, votes={k: replace(v) for k, v in e.votes.items()})
               for e in entries]
    cpu = time.process_time()
    for entry in entries:
        pending(entry)
        finalized(entry)
    return 1e6 * (time.process_time() - cpu) / len(entries)


def paired(runs: dict[str, list[dict[str, float]]], a: str, b: str) -> float:
    """
    The median over repetitions of C{a}'s CPU over C{b}'s in the same
    repetition (run back to back, so the machine's drift cancels).
    """
    return round(statistics.median(
        x["cpu_us"] / y["cpu_us"] for x, y in zip(runs[a], runs[b])), 2)


def run(options: argparse.Namespace) -> dict[str, Any]:
    """
    Build the workload, measure both variants alternated, print and
    return the figures.
    """
    entries = workload(options.payments, options.voters, options.batch)
    sizes = {name: (statistics.mean(len(p(e)) for e in entries),
                    statistics.mean(len(f(e)) for e in entries))
             for name, (p, f, _) in VARIANTS.items()}
    for name, (p_size, f_size) in sizes.items():
        print(f"{name:>8}: pending {p_size:.0f} B, finalized {f_size:.0f} B"
              " per record", flush=True)
    names = list(VARIANTS) + (["log"] if options.log else [])
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    encoding: dict[str, list[float]] = {"json": [], "compact": []}
    with tempfile.TemporaryDirectory(prefix="timecoin-records-") as tmp:
        for rep in range(options.reps):
            for name in ("json", "compact"):
                encoding[name].append(measure_encoding(
                    entries, VARIANTS["before" if name == "json"
                                      else "after"]))
            for name in names if rep % 2 == 0 else names[::-1]:
                if name == "log":
                    runs[name].append(measure_log(
                        entries, VARIANTS["after"], options.group,
                        options.keep, tmp))
                else:
                    runs[name].append(measure(
                        entries, VARIANTS[name], options.group,
                        options.keep, tmp, options.prefill))
    figures: dict[str, Any] = {}
    for name, results in runs.items():
        cpu = [r["cpu_us"] for r in results]
        wall = [r["wall_us"] for r in results]
        figures[name] = {
            "cpu_us_per_payment": round(statistics.median(cpu), 1),
            "wall_us_per_payment": round(statistics.median(wall), 1),
            "cpu_us_all": [round(c, 1) for c in cpu],
            "pending_bytes": round(sizes.get(name, sizes["compact"])[0]),
            "finalized_bytes": round(sizes.get(name, sizes["compact"])[1])}
        print(f"{name:>8}: {figures[name]['cpu_us_per_payment']} µs CPU per "
              f"payment (median of {options.reps}: {figures[name]['cpu_us_all']}),"
              f" {figures[name]['wall_us_per_payment']} µs wall", flush=True)
    ratios = {f"{name}_over_before": paired(runs, name, "before")
              for name in names if name != "before"}
    ratios["after_over_ordered"] = paired(runs, "after", "ordered")
    for key, ratio in ratios.items():
        print(f"{key.replace('_over_', '/')}: {ratio}x CPU per payment "
              "(median of the repetitions' ratios)", flush=True)
    figures["encode_us"] = {name: round(statistics.median(us), 1)
                            for name, us in encoding.items()}
    print(f"encoding alone (pending + finalized): json "
          f"{figures['encode_us']['json']} µs, compact "
          f"{figures['encode_us']['compact']} µs per payment", flush=True)
    smaller = (figures["compact"]["finalized_bytes"]
               / figures["before"]["finalized_bytes"])
    print(f"compact/json: {smaller:.2f}x bytes per finalized record",
          flush=True)
    return {"payments": options.payments, "voters": options.voters,
            "batch": options.batch, "group": options.group,
            "reps": options.reps, "prefill": options.prefill, **figures,
            "cpu_ratios": ratios}


def main(argv: list[str] | None = None) -> None:
    """
    Parse the options, run, print the summary JSON last.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--voters", type=int, default=4)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--keep", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--prefill", type=int, default=0,
                        help="older certificates in the store before the "
                        "timed writes (a node keeps up to 100,000)")
    parser.add_argument("--log", action="store_true",
                        help="also time compact records appended to a "
                        "plain file, one fsync per group")
    options = parser.parse_args(argv)
    print(json.dumps(run(options)), flush=True)


if __name__ == "__main__":
    main()
