"""
The embedded default L{IChainStore}: one SQLite file through the stdlib
C{sqlite3} module.

Threading and blocking: every operation runs synchronously on the calling
thread (the reactor thread, in the node) and returns an already-fired
C{Deferred} (C{defer.succeed} or C{defer.fail}).  SPEC section 7 asks that
blocking disk work stay off the reactor thread or be bounded to stay short;
this store takes the second branch: each call is exactly one SQL
transaction over the rows one block (or one record) touches, plus one
C{fsync} of the write-ahead log on commit.  The only call that grows with
the chain is L{SqliteStore.load_utxos}, which the node makes once at
startup.

Group commit: given a clock (the node passes its reactor), finality-record
writes (C{put_tx_record}, C{delete_tx_record}) are queued and committed
together, in order, in one transaction L{GROUP_COMMIT_DELAY} after the
first of them: one C{fsync} for all instead of one each (0.7 ms each on
the benchmark machine, two or three per transaction: at hundreds of
transactions per second the node waited on the disk half of the time).
Their Deferreds fire once that commit is durable, as before.  Pending
record writes are committed first by C{apply_block}, C{revert_block}, the
record reads and C{close}, so order is kept.  Without a clock every write
commits at once.

Durability: the database runs in WAL journal mode with
C{synchronous=FULL}, so a commit is on disk before C{COMMIT} returns, and
a write whose Deferred has fired survives SIGKILL and power loss.
C{apply_block} and C{revert_block} are each one C{BEGIN IMMEDIATE} ...
C{COMMIT} transaction, the tip row included; any error (a failed tip
check first of all) rolls back, so nothing is written.

Schema (version L{SQLITE_SCHEMA_VERSION}, recorded as the
C{schema_version} row of its own C{schema} table by L{SqliteStore.open};
a file of version 1 is migrated on open, L{_migrate}):

    - C{meta(key, value)}: small metadata (the schema version is apart);
    - C{tip(id = 0, height, hash)}: at most one row, the best block;
    - C{blocks(hash, raw)} and C{undo(hash, raw)}: kept across reverts;
    - C{heights(height, hash)}: the main chain;
    - C{utxos(key, value)}: 36-byte outpoint keys to packed entries;
    - C{tx_index(txid, height)}: main-chain transactions;
    - C{finality_records(id, txid, record)}: finality records (pending
      locks, and finalized ones kept as certificates), in the order first
      written (C{id}, the rowid), with a unique index on C{txid}.

Why rowid order: the records are written once (pending), rewritten once
(finalized) soon after, and deleted in about the order written (mined,
then pruned).  Keyed by txid, as version 1 was, each write landed on a
random page of the table's B-tree and every commit wrote one whole page to
the log per record; in the order written, a group's records share the
last pages and only the small txid index is written at random.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IChainStore
from timecoin.storage import (
    BlockChange,
    BlockRevert,
    StoreError,
)

log = Logger()

_T = TypeVar("_T")

SCHEMA_VERSION_KEY = "schema_version"
SQLITE_SCHEMA_VERSION = 2
"""The layout of this store's file (the store's own business,
C{IChainStore.open}): 2 keeps finality records in the order written
(C{finality_records}); 1 kept them by txid (C{tx_records}), and is
migrated on open."""
GROUP_COMMIT_DELAY = 0.02
"""Seconds queued finality-record writes wait for company before their
group commit (with a clock): at most this much is added to finality."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS schema (
        key TEXT PRIMARY KEY, value BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY, value BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tip (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        height INTEGER NOT NULL, hash BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS blocks (
        hash BLOB PRIMARY KEY, raw BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS undo (
        hash BLOB PRIMARY KEY, raw BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS heights (
        height INTEGER PRIMARY KEY, hash BLOB NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS utxos (
        key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS tx_index (
        txid BLOB PRIMARY KEY, height INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS finality_records (
        id INTEGER PRIMARY KEY, txid BLOB NOT NULL UNIQUE,
        record BLOB NOT NULL)""",
)


def _encode_version(version: int) -> bytes:
    """
    The C{meta} value recording schema C{version}: its decimal ASCII.
    """
    return str(version).encode("ascii")


@implementer(IChainStore)
class SqliteStore:
    """
    L{IChainStore} on a SQLite file at C{path}, one connection, used from
    one thread.
    """

    def __init__(self, path: str, clock: IReactorTime | None = None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._clock = clock
        self._records: list[tuple[bytes, bytes | None]] = []
        self._waiting: list[defer.Deferred[None]] = []
        self._flush_call: IDelayedCall | None = None

    # -- plumbing ----------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"store {self.path} is not open")
        return self._conn

    def _read(self, query: Callable[[sqlite3.Connection], _T]
              ) -> defer.Deferred[_T]:
        """
        Run C{query} against the connection; fire with its result, or fail
        with L{StoreError} on any database error.
        """
        try:
            return defer.succeed(query(self._connection()))
        except StoreError as e:
            return defer.fail(e)
        except sqlite3.Error as e:
            return defer.fail(StoreError(f"read failed: {e}"))

    def _write(self, body: Callable[[sqlite3.Connection], object]
               ) -> defer.Deferred[None]:
        """
        Run C{body} in one C{BEGIN IMMEDIATE} transaction and commit it;
        on any exception roll back and fail with L{StoreError}.
        """
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except StoreError as e:
            return defer.fail(e)
        except sqlite3.Error as e:
            return defer.fail(StoreError(f"cannot begin: {e}"))
        try:
            body(conn)
            conn.execute("COMMIT")
        except BaseException as e:
            self._rollback(conn)
            if isinstance(e, StoreError):
                return defer.fail(e)
            if isinstance(e, Exception):
                return defer.fail(StoreError(f"write failed: {e!r}"))
            raise
        return defer.succeed(None)

    def _rollback(self, conn: sqlite3.Connection) -> None:
        """
        Roll back the open transaction, logging (not raising) a failure.
        """
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.failure("rollback failed on {path}", path=self.path)

    @staticmethod
    def _tip(conn: sqlite3.Connection) -> tuple[int, bytes] | None:
        row = conn.execute("SELECT height, hash FROM tip WHERE id = 0").fetchone()
        return None if row is None else (row[0], row[1])

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> defer.Deferred[None]:
        """
        Open the file (creating it if missing), switch it to WAL with
        C{synchronous=FULL}, create the tables and record the schema
        version.  Fails with L{StoreError} if the file records another
        schema version or is not a SQLite database.
        """
        if self._conn is not None:
            return defer.fail(StoreError(f"store {self.path} already open"))
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = sqlite3.connect(self.path, isolation_level=None)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot use WAL on {self.path}: {mode}")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
                row = conn.execute(
                    "SELECT value FROM schema WHERE key = ?",
                    (SCHEMA_VERSION_KEY,)).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO schema (key, value) VALUES (?, ?)",
                        (SCHEMA_VERSION_KEY,
                         _encode_version(SQLITE_SCHEMA_VERSION)))
                elif bytes(row[0]) == _encode_version(1):
                    _migrate(conn, self.path)
                elif bytes(row[0]) != _encode_version(SQLITE_SCHEMA_VERSION):
                    raise StoreError(
                        f"{self.path} has schema version {bytes(row[0])!r},"
                        f" this node reads {SQLITE_SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
        except (StoreError, sqlite3.Error) as e:
            if conn is not None:
                conn.close()
            if isinstance(e, StoreError):
                return defer.fail(e)
            return defer.fail(StoreError(f"cannot open {self.path}: {e}"))
        self._conn = conn
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        """
        Close the connection; closing a closed store does nothing.
        """
        self.flush_records()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error as e:
                return defer.fail(StoreError(f"close failed: {e}"))
        return defer.succeed(None)

    # -- reads -------------------------------------------------------------

    def get_meta(self, key: str) -> defer.Deferred[bytes | None]:
        """
        Fire with the bytes under C{key} in C{meta}, or C{None}.
        """
        return self._read(lambda c: _one(c, "SELECT value FROM meta"
                                         " WHERE key = ?", key))

    def tip(self) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Fire with C{(height, hash)} of the best block, or C{None}.
        """
        return self._read(self._tip)

    def get_block(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        """
        Fire with the stored block C{block_hash}, main chain or not.
        """
        return self._read(lambda c: _one(
            c, "SELECT raw FROM blocks WHERE hash = ?", block_hash))

    def get_block_hash(self, height: int) -> defer.Deferred[bytes | None]:
        """
        Fire with the main-chain hash at C{height}, or C{None}.
        """
        return self._read(lambda c: _one(
            c, "SELECT hash FROM heights WHERE height = ?", height))

    def get_undo(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        """
        Fire with the undo data of C{block_hash}, or C{None}.
        """
        return self._read(lambda c: _one(
            c, "SELECT raw FROM undo WHERE hash = ?", block_hash))

    def get_utxo(self, key: bytes) -> defer.Deferred[bytes | None]:
        """
        Fire with the packed entry of unspent outpoint C{key}, or C{None}.
        """
        return self._read(lambda c: _one(
            c, "SELECT value FROM utxos WHERE key = ?", key))

    def load_utxos(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Fire with every C{(key, packed_entry)} of the UTXO set.
        """
        return self._read(lambda c: [
            (bytes(k), bytes(v))
            for k, v in c.execute("SELECT key, value FROM utxos")])

    def get_tx_location(
            self, txid: bytes) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Fire with C{(height, hash)} of the main-chain block holding
        C{txid}, or C{None}.
        """
        def query(c: sqlite3.Connection) -> tuple[int, bytes] | None:
            row = c.execute(
                "SELECT tx_index.height, heights.hash FROM tx_index"
                " JOIN heights ON heights.height = tx_index.height"
                " WHERE tx_index.txid = ?", (txid,)).fetchone()
            return None if row is None else (row[0], bytes(row[1]))
        return self._read(query)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Fire with every stored C{(txid, record)}.
        """
        self.flush_records()
        return self._read(lambda c: [
            (bytes(t), bytes(r))
            for t, r in c.execute(
                "SELECT txid, record FROM finality_records")])

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        """
        Fire with the finality record of C{txid}, or C{None}.
        """
        self.flush_records()
        return self._read(lambda c: _one(
            c, "SELECT record FROM finality_records WHERE txid = ?", txid))

    # -- writes ------------------------------------------------------------

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        """
        Durably store C{value} under C{key}.
        """
        return self._write(lambda c: c.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            (key, value)))

    def apply_block(self, change: BlockChange) -> defer.Deferred[None]:
        """
        Make C{change} the new tip in one transaction; fail with
        L{StoreError}, writing nothing, unless it extends the tip.
        """
        self.flush_records()
        def body(c: sqlite3.Connection) -> None:
            tip = self._tip(c)
            if tip is None:
                ok = change.height == 0
            else:
                ok = (change.height == tip[0] + 1
                      and change.prev_hash == tip[1])
            if not ok:
                raise StoreError(
                    f"block {change.height} does not extend the tip")
            c.execute("INSERT OR REPLACE INTO blocks (hash, raw)"
                      " VALUES (?, ?)", (change.block_hash, change.block))
            c.execute("INSERT OR REPLACE INTO undo (hash, raw)"
                      " VALUES (?, ?)", (change.block_hash, change.undo))
            c.execute("INSERT OR REPLACE INTO heights (height, hash)"
                      " VALUES (?, ?)", (change.height, change.block_hash))
            c.executemany("DELETE FROM utxos WHERE key = ?",
                          [(k,) for k in change.spent])
            c.executemany("INSERT OR REPLACE INTO utxos (key, value)"
                          " VALUES (?, ?)", change.created)
            c.executemany("INSERT OR REPLACE INTO tx_index (txid, height)"
                          " VALUES (?, ?)",
                          [(t, change.height) for t in change.txids])
            c.executemany("DELETE FROM finality_records WHERE txid = ?",
                          [(t,) for t in change.archived])
            _set_tip(c, change.height, change.block_hash)
        return self._write(body)

    def revert_block(self, change: BlockRevert) -> defer.Deferred[None]:
        """
        Disconnect the tip block described by C{change} in one
        transaction; fail with L{StoreError}, writing nothing, unless it
        is the tip and not the genesis block.
        """
        self.flush_records()
        def body(c: sqlite3.Connection) -> None:
            if self._tip(c) != (change.height, change.block_hash) or \
                    change.height == 0:
                raise StoreError(
                    f"block {change.height} is not a revertible tip")
            if _one(c, "SELECT hash FROM heights WHERE height = ?",
                    change.height - 1) != change.prev_hash:
                raise StoreError("prev_hash is not the parent of the tip")
            c.execute("DELETE FROM heights WHERE height = ?",
                      (change.height,))
            c.executemany("DELETE FROM utxos WHERE key = ?",
                          [(k,) for k in change.removed])
            c.executemany("INSERT OR REPLACE INTO utxos (key, value)"
                          " VALUES (?, ?)", change.restored)
            c.executemany("DELETE FROM tx_index WHERE txid = ?"
                          " AND height = ?",
                          [(t, change.height) for t in change.txids])
            _set_tip(c, change.height - 1, change.prev_hash)
        return self._write(body)

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        """
        Durably store the finality record of C{txid} (with a clock, in the
        next group commit).
        """
        return self._record(txid, record)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        """
        Delete the finality record of C{txid}, if any (with a clock, in the
        next group commit).
        """
        return self._record(txid, None)

    def _record(self, txid: bytes, record: bytes | None
                ) -> defer.Deferred[None]:
        if self._clock is None:
            return self._write(lambda c: self._record_ops(c, [(txid, record)]))
        d: defer.Deferred[None] = defer.Deferred()
        self._records.append((txid, record))
        self._waiting.append(d)
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(GROUP_COMMIT_DELAY,
                                                     self.flush_records)
        return d

    def flush_records(self) -> None:
        """
        Commit the queued record writes in one transaction, in order, and
        fire their Deferreds (all fail if the commit fails).
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        records, waiting = self._records, self._waiting
        if not records:
            return
        self._records, self._waiting = [], []
        outcome: list[Any] = []
        self._write(lambda c: self._record_ops(c, records)).addBoth(
            outcome.append)
        for d in waiting:
            if outcome[0] is None:
                d.callback(None)
            else:
                d.errback(outcome[0])

    @staticmethod
    def _record_ops(conn: sqlite3.Connection,
                    records: list[tuple[bytes, bytes | None]]) -> None:
        """
        Store (or, for a C{None} record, delete) finality records as if in
        order, inside the caller's transaction: only the last operation on
        each txid is carried out (a pending record overwritten by the finality
        record in the same group is never written), deletions and writes each
        in one C{executemany}.  A rewrite keeps the record's place (its rowid).
        """
        last: dict[bytes, bytes | None] = {}
        for txid, record in records:
            last[txid] = record
        deleted = [(t,) for t, r in last.items() if r is None]
        if deleted:
            conn.executemany("DELETE FROM finality_records WHERE txid = ?",
                             deleted)
        written = [(t, r) for t, r in last.items() if r is not None]
        if written:
            conn.executemany(
                "INSERT INTO finality_records (txid, record) VALUES (?, ?)"
                " ON CONFLICT (txid) DO UPDATE SET record = excluded.record",
                written)


def _one(conn: sqlite3.Connection, sql: str, arg: Any) -> bytes | None:
    """
    The first column of the single row C{sql} selects for C{arg}, as bytes,
    or C{None}.
    """
    row = conn.execute(sql, (arg,)).fetchone()
    return None if row is None else bytes(row[0])


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    """
    Migrate a file of schema version 1 to L{SQLITE_SCHEMA_VERSION}, inside
    the caller's transaction: its finality records move from C{tx_records}
    (keyed by txid) to C{finality_records}, unchanged.
    """
    conn.execute("INSERT INTO finality_records (txid, record)"
                 " SELECT txid, record FROM tx_records")
    conn.execute("DROP TABLE tx_records")
    conn.execute("UPDATE schema SET value = ? WHERE key = ?",
                 (_encode_version(SQLITE_SCHEMA_VERSION), SCHEMA_VERSION_KEY))
    log.info("migrated {path} to schema version {version}: finality records"
             " in the order written", path=path,
             version=SQLITE_SCHEMA_VERSION)


def _set_tip(conn: sqlite3.Connection, height: int, block_hash: bytes) -> None:
    """
    Record C{(height, block_hash)} as the tip, inside the caller's
    transaction.
    """
    conn.execute("INSERT OR REPLACE INTO tip (id, height, hash)"
                 " VALUES (0, ?, ?)", (height, block_hash))
