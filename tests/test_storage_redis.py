"""
L{RedisStore} against a real C{redis-server}: the L{IChainStore} contract,
key prefixes, schema and persistence checks, and surviving a Redis restart.

Each test starts its own C{redis-server} on a free loopback port, in a
temporary directory, and kills it at cleanup.  Without a C{redis-server}
binary the tests are skipped; C{make test} installs one first
(C{scripts/ensure-redis}).  These tests use the global reactor because
they talk to a real server over real sockets.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.logger import LogLevel, capturedLogs
from twisted.trial import unittest

from tests.helpers.redisserver import RedisServer, redis_server_binary
from tests.nodeprocess import free_port
from tests.storecontract import ChainStoreContractMixin, ChangeMaker
from timecoin.interfaces import IChainStore
from timecoin.storage import SCHEMA_VERSION, StoreError
from timecoin.storage.redis import RedisStore, parse_url


def start_server(case: unittest.TestCase, durable: bool = False
                 ) -> RedisServer:
    """
    A running L{RedisServer} in a fresh temporary directory of C{case},
    killed at its cleanup.
    """
    directory = os.path.abspath(case.mktemp())
    os.makedirs(directory)
    server = RedisServer(directory, durable)
    server.start()
    case.addCleanup(server.kill)
    return server


async def opened(case: unittest.TestCase, url: str, network: str = "testnet",
                 **kwargs: Any) -> RedisStore:
    """
    An opened L{RedisStore} on C{url}, closed at the cleanup of C{case}.
    """
    store = RedisStore(url, network, reactor, **kwargs)
    await store.open()
    case.addCleanup(store.close)
    return store


async def raw_connection(case: unittest.TestCase, server: RedisServer,
                         db: int = 0) -> Any:
    """
    A plain txredisapi connection to C{server}, to look at or tamper with
    what the store wrote; closed at cleanup.
    """
    import txredisapi  # type: ignore[import-untyped]
    conn = await txredisapi.Connection(
        "127.0.0.1", server.port, dbid=db, reconnect=False, charset=None,
        convertNumbers=False)
    case.addCleanup(conn.disconnect)
    return conn


async def until_reachable(store: RedisStore, attempts: int = 200,
                          interval: float = 0.05) -> None:
    """
    Wait until C{store} answers a read again after Redis came back.
    """
    for _ in range(attempts):
        try:
            await store.tip()
            return
        except StoreError:
            await task.deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"{store!r} did not reconnect")


class RedisStoreContractTests(ChainStoreContractMixin, unittest.TestCase):
    """
    L{RedisStore} meets the chain store contract.
    """

    def setUp(self) -> None:
        """
        Start a fresh C{redis-server} for each test.
        """
        self.server = start_server(self)

    def make_store(self) -> defer.Deferred[Any]:
        """
        Fire with a L{RedisStore} opened on the test's own server (so
        empty), closed at cleanup.
        """
        return defer.Deferred.fromCoroutine(opened(self, self.server.url()))


class RedisStoreTests(unittest.TestCase):
    """
    What is particular to L{RedisStore}: prefixes, schema, persistence
    warnings, connection failures and reconnection.
    """

    async def test_networks_do_not_share_data(self) -> None:
        """
        Two stores of different networks on one Redis database each see
        only their own blocks, UTXOs, meta and records, and every key they
        write starts with their C{timecoin:NETWORK:} prefix.
        """
        server = start_server(self)
        first = await opened(self, server.url(), "alpha")
        second = await opened(self, server.url(), "beta")
        maker = ChangeMaker(1)
        genesis, _ = maker.block(0, maker.random_bytes(32))
        await first.apply_block(genesis)
        await first.put_meta("network", b"alpha")
        await first.put_tx_record(b"t" * 32, b"record")

        self.assertIsNone(await second.tip())
        self.assertIsNone(await second.get_block(genesis.block_hash))
        self.assertIsNone(await second.get_block_hash(0))
        self.assertIsNone(await second.get_meta("network"))
        self.assertIsNone(await second.get_tx_location(genesis.txids[0]))
        self.assertEqual(await second.load_utxos(), [])
        self.assertEqual(await second.load_tx_records(), [])

        other, _ = maker.block(0, maker.random_bytes(32))
        await second.apply_block(other)
        self.assertEqual(await first.tip(), (0, genesis.block_hash))
        self.assertEqual(await second.tip(), (0, other.block_hash))
        self.assertEqual(dict(await first.load_utxos()),
                         dict(genesis.created))

        conn = await raw_connection(self, server)
        keys = await conn.execute_command("KEYS", "*")
        self.assertTrue(keys)
        for key in keys:
            self.assertTrue(key.startswith((b"timecoin:alpha:",
                                            b"timecoin:beta:")), key)

    async def test_databases_do_not_share_data(self) -> None:
        """
        The database number of the URL is used: the same network in two
        databases of one server gives two separate stores.
        """
        server = start_server(self)
        first = await opened(self, server.url(0))
        second = await opened(self, server.url(5))
        await first.put_meta("where", b"db0")
        self.assertIsNone(await second.get_meta("where"))
        conn = await raw_connection(self, server, db=0)
        self.assertEqual(await conn.execute_command(
            "HGET", b"timecoin:testnet:meta", b"where"), b"db0")

    async def test_unreachable_fails_quickly(self) -> None:
        """
        C{open()} on a port where nothing listens fails with L{StoreError}
        naming the address once the connect timeout has passed, and leaves
        no connection attempt running.
        """
        redis_server_binary()
        port = free_port()
        store = RedisStore(f"redis://127.0.0.1:{port}/0", "testnet", reactor,
                           connect_timeout=0.5, retry_initial_delay=0.1,
                           retry_max_delay=0.2)
        started = reactor.seconds()
        with self.assertRaises(StoreError) as caught:
            await store.open()
        self.assertIn(f"cannot reach Redis at 127.0.0.1:{port}/0",
                      str(caught.exception))
        self.assertLess(reactor.seconds() - started, 5)
        await self.assertFailure(store.tip(), StoreError)

    async def test_bad_database_fails(self) -> None:
        """
        A database number the server does not have makes C{open()} fail
        with L{StoreError}.
        """
        server = start_server(self)
        store = RedisStore(server.url(999), "testnet", reactor,
                           connect_timeout=5)
        with self.assertRaises(StoreError) as caught:
            await store.open()
        self.assertIn("DB index is out of range", str(caught.exception))

    async def test_calls_before_open_and_after_close_fail(self) -> None:
        """
        A store that is not open, or closed, fails every call with
        L{StoreError}; closing twice is harmless.
        """
        server = start_server(self)
        store = RedisStore(server.url(), "testnet", reactor)
        await self.assertFailure(store.tip(), StoreError)
        await self.assertFailure(store.put_meta("k", b"v"), StoreError)
        await store.open()
        await store.put_meta("k", b"v")
        await store.close()
        await store.close()
        await self.assertFailure(store.get_meta("k"), StoreError)
        maker = ChangeMaker(2)
        genesis, _ = maker.block(0, maker.random_bytes(32))
        await self.assertFailure(store.apply_block(genesis), StoreError)

    async def test_schema_version_written(self) -> None:
        """
        C{open()} writes the schema version under the prefix, and a second
        open of the same data accepts it.
        """
        server = start_server(self)
        await opened(self, server.url())
        conn = await raw_connection(self, server)
        self.assertEqual(
            await conn.execute_command("GET", b"timecoin:testnet:schema"),
            str(SCHEMA_VERSION).encode())
        await opened(self, server.url())

    async def test_unknown_schema_version_refused(self) -> None:
        """
        C{open()} fails with L{StoreError} on data of another schema
        version, and does not overwrite the version.
        """
        server = start_server(self)
        conn = await raw_connection(self, server)
        await conn.execute_command("SET", b"timecoin:testnet:schema", b"99")
        store = RedisStore(server.url(), "testnet", reactor)
        with self.assertRaises(StoreError) as caught:
            await store.open()
        self.assertIn("schema version", str(caught.exception))
        self.assertEqual(
            await conn.execute_command("GET", b"timecoin:testnet:schema"),
            b"99")
        await self.assertFailure(store.tip(), StoreError)

    async def test_warns_without_append_only_file(self) -> None:
        """
        C{open()} logs a warning when Redis runs without C{appendonly}.
        """
        server = start_server(self)
        with capturedLogs() as events:
            await opened(self, server.url())
        warnings = [e for e in events if e.get("log_level") == LogLevel.warn
                    and e.get("appendonly") == "no"]
        self.assertEqual(len(warnings), 1, events)

    async def test_no_warning_when_durable(self) -> None:
        """
        C{open()} logs no warning when Redis runs with C{appendonly yes}
        and C{appendfsync always}.
        """
        server = start_server(self, durable=True)
        with capturedLogs() as events:
            await opened(self, server.url())
        self.assertEqual(
            [e for e in events if e.get("log_level") == LogLevel.warn], [])

    async def test_wrong_key_type_changes_nothing(self) -> None:
        """
        When one of the store's keys holds something other than a hash,
        C{apply_block} fails with L{StoreError} before writing anything
        (Redis does not roll back a script that fails half-way).
        """
        server = start_server(self)
        store = await opened(self, server.url())
        conn = await raw_connection(self, server)
        await conn.execute_command("SET", b"timecoin:testnet:tx_records",
                                   b"not a hash")
        maker = ChangeMaker(3)
        genesis, _ = maker.block(0, maker.random_bytes(32),
                                 archived=[b"a" * 32])
        await self.assertFailure(store.apply_block(genesis), StoreError)
        self.assertIsNone(await store.tip())
        self.assertIsNone(await store.get_block(genesis.block_hash))
        self.assertEqual(await store.load_utxos(), [])

    async def test_big_block(self) -> None:
        """
        A block with 20,000 created outputs (more items than Lua's
        C{unpack} takes) is applied and reverted whole, and a small scan
        page size still loads every UTXO exactly once.
        """
        server = start_server(self)
        store = await opened(self, server.url(), scan_count=97)
        maker = ChangeMaker(4)
        genesis, revert = maker.block(0, maker.random_bytes(32),
                                      n_created=20000)
        await store.apply_block(genesis)
        maker.applied(genesis)
        utxos = await store.load_utxos()
        self.assertEqual(len(utxos), 20000)
        self.assertEqual(dict(utxos), maker.utxos)
        block1, revert1 = maker.block(1, genesis.block_hash, n_created=5,
                                      n_spent=20000)
        await store.apply_block(block1)
        self.assertEqual(dict(await store.load_utxos()),
                         dict(block1.created))
        await store.revert_block(revert1)
        self.assertEqual(dict(await store.load_utxos()), maker.utxos)

    async def test_load_utxos_during_apply(self) -> None:
        """
        A block applied while C{load_utxos} is between two pages of its
        scan makes it start over: it fires with the UTXO set after the
        block, never a mix of before and after.
        """
        server = start_server(self)
        store = await opened(self, server.url(), scan_count=50)
        maker = ChangeMaker(6)
        # More entries than Redis keeps in a compact hash (512 by default),
        # which HSCAN returns in one page whatever the COUNT.
        genesis, _ = maker.block(0, maker.random_bytes(32), n_created=1500)
        await store.apply_block(genesis)
        maker.applied(genesis)
        block1, _ = maker.block(1, genesis.block_hash, n_created=500,
                                n_spent=1000)
        # Both go out on the one connection in this order: the first page
        # of the scan is answered before the block is applied, the next
        # pages after it.
        loading = store.load_utxos()
        applying = store.apply_block(block1)
        utxos = await loading
        await applying
        maker.applied(block1)
        self.assertEqual(len(utxos), len(maker.utxos))
        self.assertEqual(dict(utxos), maker.utxos)

    async def test_survives_redis_restart(self) -> None:
        """
        With Redis killed (SIGKILL) between two applies, calls fail at once
        with L{StoreError}; once Redis is restarted on its data the same
        store reconnects by itself and shows every acknowledged write,
        once: the tip, UTXO set, index and records are as before, the last
        block cannot be applied a second time, and the next one applies.
        """
        server = start_server(self, durable=True)
        store = await opened(self, server.url(), retry_initial_delay=0.05,
                             retry_max_delay=0.2)
        maker = ChangeMaker(5)
        prev = maker.random_bytes(32)
        applied = []
        for height in range(3):
            change, _ = maker.block(height, prev, n_created=20, n_spent=7)
            await store.apply_block(change)
            maker.applied(change)
            applied.append(change)
            prev = change.block_hash
        await store.put_tx_record(b"r" * 32, b"record")
        await store.put_meta("network", b"testnet")

        server.kill()
        following, _ = maker.block(3, prev)
        started = reactor.seconds()
        await self.assertFailure(store.apply_block(following), StoreError)
        await self.assertFailure(store.tip(), StoreError)
        self.assertLess(reactor.seconds() - started, 5)

        server.start()
        await until_reachable(store)
        self.assertEqual(await store.tip(), (2, prev))
        utxos = await store.load_utxos()
        self.assertEqual(len(utxos), len(maker.utxos))
        self.assertEqual(dict(utxos), maker.utxos)
        self.assertEqual(await store.load_tx_records(),
                         [(b"r" * 32, b"record")])
        self.assertEqual(await store.get_meta("network"), b"testnet")
        for height, change in enumerate(applied):
            self.assertEqual(await store.get_block_hash(height),
                             change.block_hash)
            self.assertEqual(await store.get_tx_location(change.txids[0]),
                             (height, change.block_hash))
        await self.assertFailure(store.apply_block(applied[-1]), StoreError)
        await store.apply_block(following)
        maker.applied(following)
        self.assertEqual(await store.tip(), (3, following.block_hash))
        self.assertEqual(dict(await store.load_utxos()), maker.utxos)

    def test_interface(self) -> None:
        """
        L{RedisStore} declares L{IChainStore} without connecting.
        """
        store = RedisStore("redis://127.0.0.1:1/0", "testnet", reactor)
        self.assertTrue(IChainStore.providedBy(store))


class ParseUrlTests(unittest.SynchronousTestCase):
    """
    L{parse_url} reads C{redis://} URLs.
    """

    def test_full(self) -> None:
        """
        Host, port and database are read from the URL.
        """
        self.assertEqual(parse_url("redis://10.0.0.5:6380/3"),
                         ("10.0.0.5", 6380, 3, None, None))

    def test_defaults(self) -> None:
        """
        The port defaults to 6379 and the database to 0.
        """
        self.assertEqual(parse_url("redis://localhost"),
                         ("localhost", 6379, 0, None, None))
        self.assertEqual(parse_url("redis://localhost/"),
                         ("localhost", 6379, 0, None, None))

    def test_credentials_and_ipv6(self) -> None:
        """
        A user and a percent-encoded password are read, and a bracketed
        IPv6 host is unbracketed.
        """
        self.assertEqual(parse_url("redis://node:p%40ss@[::1]:7000/2"),
                         ("::1", 7000, 2, "node", "p@ss"))
        self.assertEqual(parse_url("redis://:secret@h/1"),
                         ("h", 6379, 1, None, "secret"))

    def test_rejected(self) -> None:
        """
        Other schemes, missing hosts, non-numeric databases and queries
        are rejected with C{ValueError}.
        """
        for url in ("http://h:1/0", "redis:///0", "redis://h/x",
                    "redis://h/0?x=1", "redis://h:99999/0", "h:6379"):
            self.assertRaises(ValueError, parse_url, url)

    def test_bad_network_name(self) -> None:
        """
        A network name that could not make a clean key prefix is refused.
        """
        for network in ("", "a:b", "a b", "x" * 65):
            self.assertRaises(ValueError, RedisStore,
                              "redis://127.0.0.1/0", network, reactor)
