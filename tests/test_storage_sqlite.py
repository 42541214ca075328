"""
L{SqliteStore}: the L{IChainStore} contract on a real file, persistence
across reopening, schema checks, and crash safety under SIGKILL.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests import crashwriter
from tests.storecontract import ChainStoreContractMixin
from timecoin.storage import StoreError
from timecoin.storage.sqlite import (
    GROUP_COMMIT_DELAY,
    SQLITE_SCHEMA_VERSION,
    SqliteStore,
)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SqliteStoreContractTests(ChainStoreContractMixin, unittest.TestCase):
    """
    L{SqliteStore} meets the chain store contract.
    """

    def make_store(self) -> defer.Deferred[Any]:
        """
        Fire with a L{SqliteStore} opened on a new file, closed at
        cleanup.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        store = SqliteStore(os.path.join(directory, "chain.sqlite"))
        self.addCleanup(store.close)
        return store.open().addCallback(lambda _: store)


class SqliteStoreFileTests(unittest.TestCase):
    """
    What L{SqliteStore} keeps in its file.
    """

    def path(self) -> str:
        """
        A path for a new database file in a fresh directory.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        return os.path.join(directory, "chain.sqlite")

    async def opened(self, path: str) -> SqliteStore:
        """
        An opened store on C{path}, closed at cleanup.
        """
        store = SqliteStore(path)
        self.addCleanup(store.close)
        await store.open()
        return store

    async def test_reopen(self) -> None:
        """
        Closing and reopening the file shows the same tip, heights, UTXO
        set, meta and records.
        """
        path = self.path()
        store = await self.opened(path)
        for height in range(4):
            await store.apply_block(crashwriter.change(height))
        await store.put_meta("network", b"testnet")
        await store.put_tx_record(b"t" * 32, b"record")
        utxos = set(await store.load_utxos())
        await store.close()

        store = await self.opened(path)
        self.assertEqual(await store.tip(), (3, crashwriter.block_hash(3)))
        self.assertEqual(await store.get_block_hash(2),
                         crashwriter.block_hash(2))
        self.assertEqual(set(await store.load_utxos()), utxos)
        self.assertEqual(dict(utxos), crashwriter.expected_utxos(3))
        self.assertEqual(await store.get_meta("network"), b"testnet")
        self.assertEqual(list(await store.load_tx_records()),
                         [(b"t" * 32, b"record")])
        self.assertEqual(await store.get_tx_location(crashwriter.txid(1)),
                         (1, crashwriter.block_hash(1)))

    async def test_durability_settings(self) -> None:
        """
        The file is in WAL journal mode and the store's connection syncs
        with C{synchronous=FULL}, and the schema version is recorded.
        """
        path = self.path()
        store = await self.opened(path)
        conn = store._conn
        assert conn is not None
        self.assertEqual(conn.execute("PRAGMA synchronous").fetchone()[0], 2)
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        self.assertEqual(
            other.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        self.assertEqual(
            other.execute("SELECT value FROM schema WHERE key = ?",
                          ("schema_version",)).fetchone()[0],
            str(SQLITE_SCHEMA_VERSION).encode("ascii"))

    async def test_unknown_schema_version(self) -> None:
        """
        Opening a file that records another schema version fails with
        L{StoreError} and leaves the store closed.
        """
        path = self.path()
        store = await self.opened(path)
        await store.close()
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("UPDATE schema SET value = ? WHERE key = ?",
                         (str(SQLITE_SCHEMA_VERSION + 1).encode("ascii"),
                          "schema_version"))
        conn.close()
        store = SqliteStore(path)
        await self.assertFailure(store.open(), StoreError)
        await self.assertFailure(store.tip(), StoreError)

    async def test_version_1_migrated(self) -> None:
        """
        A file of schema version 1 (finality records keyed by txid in
        C{tx_records}) opens: its records move, unchanged, to
        C{finality_records}, the old table is dropped and the file records
        the current version; the records read, rewrite and delete as any.
        """
        path = self.path()
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("CREATE TABLE schema (key TEXT PRIMARY KEY,"
                         " value BLOB NOT NULL)")
            conn.execute("INSERT INTO schema VALUES ('schema_version', ?)",
                         (b"1",))
            conn.execute("CREATE TABLE tx_records (txid BLOB PRIMARY KEY,"
                         " record BLOB NOT NULL) WITHOUT ROWID")
            conn.executemany("INSERT INTO tx_records VALUES (?, ?)",
                             [(b"b" * 32, b"old b"), (b"a" * 32, b"old a")])
        conn.close()
        store = await self.opened(path)
        self.assertEqual(sorted(await store.load_tx_records()),
                         [(b"a" * 32, b"old a"), (b"b" * 32, b"old b")])
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        self.assertEqual(
            other.execute("SELECT value FROM schema WHERE key = ?",
                          ("schema_version",)).fetchone()[0],
            str(SQLITE_SCHEMA_VERSION).encode("ascii"))
        self.assertIsNone(other.execute(
            "SELECT name FROM sqlite_master WHERE name = 'tx_records'"
        ).fetchone())
        await store.put_tx_record(b"a" * 32, b"new a")
        await store.delete_tx_record(b"b" * 32)
        self.assertEqual(await store.get_tx_record(b"a" * 32), b"new a")
        self.assertEqual(list(await store.load_tx_records()),
                         [(b"a" * 32, b"new a")])

    async def test_not_a_database(self) -> None:
        """
        Opening a file that is not a SQLite database fails with
        L{StoreError}.
        """
        path = self.path()
        _write_file(path, b"this is not a database, just some bytes" * 100)
        await self.assertFailure(SqliteStore(path).open(), StoreError)

    async def test_closed_store_fails(self) -> None:
        """
        Every call on a store that is not open fails with L{StoreError};
        closing twice is harmless.
        """
        store = await self.opened(self.path())
        await store.close()
        await store.close()
        await self.assertFailure(store.tip(), StoreError)
        await self.assertFailure(store.put_meta("k", b"v"), StoreError)
        await self.assertFailure(
            store.apply_block(crashwriter.change(0)), StoreError)


class SqliteGroupCommitTests(unittest.TestCase):
    """
    With a clock, finality-record writes commit together a short delay
    after the first, in order, before any block write, read of records or
    close.
    """

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.file = os.path.join(directory, "chain.sqlite")
        self.clock = Clock()
        self.store = SqliteStore(self.file, self.clock)
        self.addCleanup(self.store.close)
        self.successResultOf(self.store.open())

    def on_disk(self) -> dict[bytes, bytes]:
        """
        The records in the file, read through another connection.
        """
        with sqlite3.connect(self.file) as conn:
            return {bytes(t): bytes(r) for t, r in conn.execute(
                "SELECT txid, record FROM finality_records")}

    def test_one_commit_per_turn(self) -> None:
        """
        Puts and deletes wait (their Deferreds unfired, nothing on disk)
        until the group-commit delay passes; then all land in order and
        all fire.
        """
        writes = [self.store.put_tx_record(b"a" * 32, b"1"),
                  self.store.put_tx_record(b"b" * 32, b"2"),
                  self.store.delete_tx_record(b"a" * 32),
                  self.store.put_tx_record(b"b" * 32, b"3")]
        for d in writes:
            self.assertNoResult(d)
        self.assertEqual(self.on_disk(), {})
        self.clock.advance(GROUP_COMMIT_DELAY / 2)
        self.assertNoResult(writes[0])
        self.clock.advance(GROUP_COMMIT_DELAY / 2)
        for d in writes:
            self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.on_disk(), {b"b" * 32: b"3"})

    def test_records_kept_in_the_order_written(self) -> None:
        """
        Records are stored in the order first written (rowid order, not
        txid order), and a rewrite keeps the record's place.
        """
        self.store.put_tx_record(b"z" * 32, b"pending z")
        self.store.put_tx_record(b"a" * 32, b"pending a")
        self.clock.advance(GROUP_COMMIT_DELAY)
        self.store.put_tx_record(b"z" * 32, b"finalized z")
        self.store.put_tx_record(b"m" * 32, b"pending m")
        self.clock.advance(GROUP_COMMIT_DELAY)
        with sqlite3.connect(self.file) as conn:
            rows = [(bytes(t), bytes(r)) for t, r in conn.execute(
                "SELECT txid, record FROM finality_records ORDER BY id")]
        self.assertEqual(rows, [(b"z" * 32, b"finalized z"),
                                (b"a" * 32, b"pending a"),
                                (b"m" * 32, b"pending m")])

    def test_block_and_reads_flush_first(self) -> None:
        """
        A block write, a read of the records and close commit the queued
        record writes first.
        """
        put = self.store.put_tx_record(b"a" * 32, b"1")
        self.successResultOf(self.store.apply_block(crashwriter.change(0)))
        self.successResultOf(put)
        self.assertEqual(self.on_disk(), {b"a" * 32: b"1"})
        put = self.store.put_tx_record(b"b" * 32, b"2")
        self.assertEqual(
            sorted(self.successResultOf(self.store.load_tx_records())),
            [(b"a" * 32, b"1"), (b"b" * 32, b"2")])
        self.successResultOf(put)
        put = self.store.delete_tx_record(b"a" * 32)
        self.successResultOf(self.store.close())
        self.successResultOf(put)
        self.assertEqual(self.on_disk(), {b"b" * 32: b"2"})


class SqliteCrashTests(unittest.TestCase):
    """
    A writer killed with SIGKILL at random moments loses nothing it
    acknowledged and never leaves a half-applied block.
    """

    seed = 7301
    rounds = 5
    timeout_seconds = 15.0

    def spawn(self, path: str) -> subprocess.Popen[str]:
        """
        Start the L{crashwriter} child on C{path}; it is killed at cleanup
        if still running, and by a watchdog if it outlives the timeout.
        """
        env = dict(os.environ)
        env["PYTHONPATH"] = REPO_ROOT
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crashwriter", path, "1000000"],
            cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(self.timeout_seconds, proc.kill)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        self.addCleanup(_reap, proc)
        return proc

    def run_and_kill(self, path: str, rng: random.Random, round_number: int,
                     stored_tip: int, last_acked: int) -> int:
        """
        Start a writer on C{path}, check it resumes after C{stored_tip},
        read a seeded random number of consecutive acks after
        C{last_acked}, let it run a seeded random moment longer, SIGKILL
        it, and return the last height it acknowledged.
        """
        proc = self.spawn(path)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != f"resumed {stored_tip + 1}\n":
            self.fail(f"round {round_number}: {line!r} {_stderr(proc)}")
        for _ in range(rng.randint(1, 40)):
            line = proc.stdout.readline()
            if line != f"acked {last_acked + 1}\n":
                self.fail(f"round {round_number}: {line!r} {_stderr(proc)}")
            last_acked += 1
        # Let it run on for a random part of a few more commits.
        time.sleep(rng.random() * 0.01)
        proc.send_signal(signal.SIGKILL)
        self.assertEqual(proc.wait(timeout=self.timeout_seconds),
                         -signal.SIGKILL, f"round {round_number}")
        # Acks the child printed before dying are promises too.
        for line in proc.stdout:
            if line.startswith("acked "):
                last_acked = int(line.split()[1])
        return last_acked

    async def check_store(self, path: str, last_acked: int) -> int:
        """
        Reopen the store at C{path} and check it holds a whole prefix of
        the chain reaching at least C{last_acked}; return its tip height.
        """
        store = SqliteStore(path)
        await store.open()
        try:
            tip = await store.tip()
            if tip is None:
                self.fail("no tip after a crash")
            height, tip_hash = tip
            self.assertGreaterEqual(height, last_acked)
            self.assertEqual(tip_hash, crashwriter.block_hash(height))
            for h in (0, height // 2, height):
                self.assertEqual(await store.get_block_hash(h),
                                 crashwriter.block_hash(h))
            self.assertIsNone(await store.get_block_hash(height + 1))
            self.assertEqual(
                await store.get_tx_location(crashwriter.txid(height)),
                (height, crashwriter.block_hash(height)))
            self.assertIsNone(
                await store.get_tx_location(crashwriter.txid(height + 1)))
            utxos = await store.load_utxos()
            expected = crashwriter.expected_utxos(height)
            self.assertEqual(len(utxos), len(expected))
            self.assertEqual(dict(utxos), expected)
            spent = {k for h in range(height + 1)
                     for k in crashwriter.spent(h)}
            self.assertFalse(spent & {k for k, _ in utxos})
            return height
        finally:
            await store.close()

    async def test_sigkill(self) -> None:
        """
        After each of several SIGKILLs at seeded random moments, the
        reopened store's tip is at or above the last acknowledged height
        and its UTXO set is exactly that of blocks 0..tip; each restart
        resumes from the stored tip.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        path = os.path.join(directory, "chain.sqlite")
        rng = random.Random(self.seed)
        last_acked = -1
        stored_tip = -1
        for round_number in range(self.rounds):
            last_acked = self.run_and_kill(
                path, rng, round_number, stored_tip, last_acked)
            stored_tip = await self.check_store(path, last_acked)
            last_acked = stored_tip


def _reap(proc: subprocess.Popen[str]) -> None:
    """
    Kill C{proc} if it still runs, wait for it and close its pipes.
    """
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _write_file(path: str, data: bytes) -> None:
    """
    Write C{data} to a new file at C{path}.
    """
    with open(path, "wb") as f:
        f.write(data)


def _stderr(proc: subprocess.Popen[str]) -> str:
    """
    The child's stderr once it has exited (killing it first), for failure
    messages.
    """
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    return proc.stderr.read() if proc.stderr is not None else ""
