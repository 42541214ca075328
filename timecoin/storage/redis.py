"""
A L{timecoin.interfaces.IChainStore} kept in a Redis server, spoken to
with txredisapi.

Layout: every key starts with C{timecoin:NETWORK:}, so one Redis database
can hold the data of several nodes (one per network name).  Under that
prefix:

    - C{schema}: the schema version (a string), written by L{RedisStore.open};
    - C{meta}: a hash, field = meta key (UTF-8), value = bytes;
    - C{blocks}, C{undo}: hashes, field = block hash, value = raw bytes;
    - C{heights}: a hash, field = decimal height, value = block hash;
    - C{utxos}: a hash, field = 36-byte outpoint key, value = packed entry;
    - C{tx_index}: a hash, field = txid, value = decimal height;
    - C{tx_records}: a hash, field = txid, value = finality record;
    - C{tip}: a hash with fields C{height}, C{hash} and C{seq} (a counter
      bumped by every block write, so readers can tell the chain moved).

Atomicity: C{apply_block} and C{revert_block} are each one Lua script
(sent with EVALSHA, falling back to EVAL), which checks the tip, the
argument counts and every key's type before its first write.  Redis runs
a script in isolation but does not roll back one that fails half-way; with
every check done up front, the one refusal left, out of memory, can only
hit a script's first write, so a block is written entirely or not at all.
With the append-only file, Redis logs a script's effects wrapped in
MULTI/EXEC and drops a trailing half-written transaction when it loads a
truncated file.  The scripts touch several keys, so this needs one Redis
server (replicas are fine), not Redis Cluster.

Durability depends on the server's persistence config, not on this
module: a masternode's Redis must run with C{appendonly yes} and
C{appendfsync always}, so that a reply (and thus the Deferred of a write)
comes only after the write is fsynced.  L{RedisStore.open} logs a warning
when the server says otherwise.

Connection: one reconnecting connection.  While Redis is unreachable every
call fails at once with L{StoreError}; once Redis is back, later calls
succeed.  A write whose reply is lost with the connection also fails with
L{StoreError}, though Redis may have applied it (all of it): read C{tip()}
again to know.  Applying it a second time fails the tip check, so nothing
is ever applied twice.

txredisapi is imported in L{RedisStore.open}, not here: importing it
installs the default reactor, which must not happen when this module is
merely imported (by C{twistd}'s plugin scan, say).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.error import ConnectError, ConnectionLost
from twisted.logger import Logger
from zope.interface import implementer

from timecoin.interfaces import IChainStore
from timecoin.storage import SCHEMA_VERSION, BlockChange, BlockRevert, StoreError

log = Logger()

DEFAULT_PORT = 6379

#: Seconds L{RedisStore.open} waits for a first connection.
CONNECT_TIMEOUT = 10.0
#: Seconds a command waits for its reply before the connection is dropped.
REPLY_TIMEOUT = 30.0
#: Seconds before the first reconnection attempt after Redis went away.
RETRY_INITIAL_DELAY = 0.5
#: Longest pause between two reconnection attempts, in seconds.
RETRY_MAX_DELAY = 5.0
#: Hash entries fetched per HSCAN round trip by L{RedisStore.load_utxos}.
SCAN_COUNT = 1000
#: Full scans L{RedisStore.load_utxos} tries while blocks are being written.
SCAN_ATTEMPTS = 5

_NETWORK = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")

# Error replies raised by the scripts; the prefix tells them apart.
_TIP = "TIMECOIN-TIP"
_TYPE = "TIMECOIN-TYPE"

# KEYS of both block scripts: tip, blocks, undo, heights, utxos, tx_index,
# tx_records.  The first lines refuse to run on a key of the wrong type, so
# that no write can fail half-way.
_CHECK_TYPES = """
for i = 1, #KEYS do
  local kind = redis.call('TYPE', KEYS[i])['ok']
  if kind ~= 'hash' and kind ~= 'none' then
    return redis.error_reply('""" + _TYPE + """ key ' .. i .. ' is a ' .. kind)
  end
end
"""

# ARGV: height, block hash, prev hash, block, undo, then the counts of
# spent keys, created pairs, txids and archived txids, then those items in
# that order.  Loops rather than unpack(): a block may have more items than
# Lua's stack allows.
_APPLY = _CHECK_TYPES + """
local height = tonumber(ARGV[1])
local tip_height = redis.call('HGET', KEYS[1], 'height')
if tip_height then
  if height ~= tonumber(tip_height) + 1
      or ARGV[3] ~= redis.call('HGET', KEYS[1], 'hash') then
    return redis.error_reply('""" + _TIP + """ does not extend the tip')
  end
elseif height ~= 0 then
  return redis.error_reply('""" + _TIP + """ the store is empty')
end
local n_spent, n_created = tonumber(ARGV[6]), tonumber(ARGV[7])
local n_txids, n_archived = tonumber(ARGV[8]), tonumber(ARGV[9])
if 9 + n_spent + 2 * n_created + n_txids + n_archived ~= #ARGV then
  return redis.error_reply('""" + _TYPE + """ argument count mismatch')
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
local i = 10
for _ = 1, n_spent do
  redis.call('HDEL', KEYS[5], ARGV[i])
  i = i + 1
end
for _ = 1, n_created do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, n_txids do
  redis.call('HSET', KEYS[6], ARGV[i], ARGV[1])
  i = i + 1
end
for _ = 1, n_archived do
  redis.call('HDEL', KEYS[7], ARGV[i])
  i = i + 1
end
redis.call('HSET', KEYS[1], 'height', ARGV[1], 'hash', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'seq', 1)
return 1
"""

# ARGV: height, block hash, height - 1, prev hash, then the counts of
# removed keys, restored pairs and txids, then those items in that order.
_REVERT = _CHECK_TYPES + """
if ARGV[1] == '0' or redis.call('HGET', KEYS[1], 'height') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'hash') ~= ARGV[2] then
  return redis.error_reply('""" + _TIP + """ not a revertible tip')
end
if redis.call('HGET', KEYS[4], ARGV[3]) ~= ARGV[4] then
  return redis.error_reply('""" + _TIP + """ prev hash is not the parent')
end
local n_removed, n_restored = tonumber(ARGV[5]), tonumber(ARGV[6])
local n_txids = tonumber(ARGV[7])
if 7 + n_removed + 2 * n_restored + n_txids ~= #ARGV then
  return redis.error_reply('""" + _TYPE + """ argument count mismatch')
end
redis.call('HDEL', KEYS[4], ARGV[1])
local i = 8
for _ = 1, n_removed do
  redis.call('HDEL', KEYS[5], ARGV[i])
  i = i + 1
end
for _ = 1, n_restored do
  redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, n_txids do
  if redis.call('HGET', KEYS[6], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[6], ARGV[i])
  end
  i = i + 1
end
redis.call('HSET', KEYS[1], 'height', ARGV[3], 'hash', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'seq', 1)
return 1
"""

# KEYS: tx_index, heights.  ARGV: txid.  One script so that a revert
# cannot slip between the two reads.
_TX_LOCATION = """
local height = redis.call('HGET', KEYS[1], ARGV[1])
if not height then
  return false
end
local block_hash = redis.call('HGET', KEYS[2], height)
if not block_hash then
  return false
end
return {height, block_hash}
"""

# Hash entries come back packed into one bulk string, each field and value
# prefixed by its length (u32, big-endian): txredisapi handles each bulk
# string of a reply in its own reactor turn, which makes a reply of a
# million small strings take a minute.

# KEYS: a hash, the tip.  ARGV: cursor, count.  Returns the next cursor,
# the packed page and the tip's write counter at that instant.
_SCAN_PAGE = """
local reply = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local flat, parts = reply[2], {}
for i = 1, #flat do
  parts[i] = struct.pack('>I4', #flat[i]) .. flat[i]
end
return {reply[1], table.concat(parts), redis.call('HGET', KEYS[2], 'seq')}
"""

# KEYS: a hash.  Returns all of it, packed, atomically.
_GET_ALL = """
local flat, parts = redis.call('HGETALL', KEYS[1]), {}
for i = 1, #flat do
  parts[i] = struct.pack('>I4', #flat[i]) .. flat[i]
end
return table.concat(parts)
"""


def _unpack_pairs(packed: bytes) -> list[tuple[bytes, bytes]]:
    """
    The C{(field, value)} pairs of a hash packed by L{_SCAN_PAGE} or
    L{_GET_ALL}.
    """
    items = []
    view = memoryview(packed)
    i, end = 0, len(packed)
    while i < end:
        n = int.from_bytes(view[i:i + 4], "big")
        field = bytes(view[i + 4:i + 4 + n])
        i += 4 + n
        n = int.from_bytes(view[i:i + 4], "big")
        items.append((field, bytes(view[i + 4:i + 4 + n])))
        i += 4 + n
    return items


def parse_url(url: str) -> tuple[str, int, int, str | None, str | None]:
    """
    Split C{redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]} into C{(host, port,
    db, username, password)}.  The port defaults to 6379 and the database
    to 0.  Raises C{ValueError} on anything else.
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"not a redis:// URL: {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"unexpected query or fragment in {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    port = parts.port or DEFAULT_PORT
    path = parts.path.lstrip("/")
    if not path:
        db = 0
    elif path.isdigit() and len(path) <= 5:
        db = int(path)
    else:
        raise ValueError(f"the path of {url!r} must be a database number")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return host, port, db, username, password


def _int(raw: bytes) -> int:
    return int(raw.decode("ascii"))


class _NotOpened(Exception):
    """
    Stands for txredisapi's error class until L{RedisStore.open} imports it.
    """


@implementer(IChainStore)
class RedisStore:
    """
    The chain in one Redis database, under a per-network key prefix.

    @param url: C{redis://HOST:PORT/DB}.
    @param network: the network name, which makes the key prefix.
    @param reactor: the reactor for connecting and timeouts, the global one
        by default.  txredisapi schedules some of its own calls on the
        global reactor whatever is passed here, so this must be the running
        reactor.
    """

    def __init__(self, url: str, network: str, reactor: Any, *,
                 connect_timeout: float = CONNECT_TIMEOUT,
                 reply_timeout: float = REPLY_TIMEOUT,
                 retry_initial_delay: float = RETRY_INITIAL_DELAY,
                 retry_max_delay: float = RETRY_MAX_DELAY,
                 scan_count: int = SCAN_COUNT) -> None:
        if not _NETWORK.match(network):
            raise ValueError(f"bad network name for a key prefix: {network!r}")
        self._host, self._port, self._db, self._username, self._password = \
            parse_url(url)
        self._where = f"{self._host}:{self._port}/{self._db}"
        self._reactor = reactor
        self._connect_timeout = connect_timeout
        self._reply_timeout = reply_timeout
        self._retry_initial_delay = retry_initial_delay
        self._retry_max_delay = retry_max_delay
        self._scan_count = scan_count
        self.prefix = f"timecoin:{network}:"
        p = self.prefix.encode("ascii")
        self._schema_key = p + b"schema"
        self._meta = p + b"meta"
        self._tip = p + b"tip"
        self._blocks = p + b"blocks"
        self._undo = p + b"undo"
        self._heights = p + b"heights"
        self._utxos = p + b"utxos"
        self._tx_index = p + b"tx_index"
        self._tx_records = p + b"tx_records"
        self._block_keys = [self._tip, self._blocks, self._undo,
                            self._heights, self._utxos, self._tx_index,
                            self._tx_records]
        self._factory: Any = None
        self._redis_error: type[Exception] = _NotOpened

    def __repr__(self) -> str:
        return f"<RedisStore {self.prefix!r} at {self._where}>"

    # Connection plumbing.

    def _endpoint(self) -> Any:
        from twisted.internet.endpoints import (
            HostnameEndpoint,
            TCP4ClientEndpoint,
            TCP6ClientEndpoint,
        )
        timeout = self._connect_timeout
        if isIPv6Address(self._host):
            return TCP6ClientEndpoint(self._reactor, self._host, self._port,
                                      timeout=timeout)
        if isIPAddress(self._host):
            return TCP4ClientEndpoint(self._reactor, self._host, self._port,
                                      timeout=timeout)
        return HostnameEndpoint(self._reactor, self._host, self._port,
                                timeout=timeout)

    def _connection(self) -> Any:
        """
        The live protocol, or raise L{StoreError} at once: txredisapi would
        otherwise queue the call until a reconnection that may never come.
        """
        if self._factory is None:
            raise StoreError(f"{self!r} is not open")
        for conn in self._factory.pool:
            if conn.connected:
                return conn
        raise StoreError(f"Redis at {self._where} is not connected")

    def _translate(self, failure: Any, what: str) -> Any:
        if failure.check(StoreError):
            return failure
        if failure.check(self._redis_error, ConnectError, ConnectionLost,
                         defer.TimeoutError, defer.CancelledError):
            raise StoreError(f"Redis {what} at {self._where} failed: "
                             f"{failure.getErrorMessage()}") from failure.value
        return failure

    def _command(self, *args: Any) -> defer.Deferred[Any]:
        d = defer.maybeDeferred(
            lambda: self._connection().execute_command(*args))
        return d.addErrback(self._translate, args[0])

    def _script(self, script: str, keys: list[bytes],
                args: list[Any]) -> defer.Deferred[Any]:
        d = defer.maybeDeferred(
            lambda: self._connection().eval(script, keys, args))
        return d.addErrback(self._translate, "script")

    # IChainStore.

    def open(self) -> defer.Deferred[None]:
        """
        Connect (waiting up to the connect timeout), then write the schema
        version if there is none or check it.  Fails with L{StoreError}
        when Redis cannot be reached or holds another schema version.
        """
        return defer.Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        import txredisapi
        if self._factory is not None:
            raise StoreError(f"{self!r} is already open")
        self._redis_error = txredisapi.RedisError
        factory = txredisapi.RedisFactory(
            self._where, self._db, 1, isLazy=False,
            handler=txredisapi.ConnectionHandler, charset=None,
            password=self._password, replyTimeout=self._reply_timeout,
            convertNumbers=False, username=self._username)
        factory.reconnect = True
        factory.initialDelay = self._retry_initial_delay
        factory.maxDelay = self._retry_max_delay
        ready = factory.deferred
        ready.addTimeout(self._connect_timeout, self._reactor)
        factory.startConnecting(self._endpoint())
        try:
            await ready
        except Exception as e:
            await factory.disconnect()
            if isinstance(e, defer.TimeoutError):
                raise StoreError(
                    f"cannot reach Redis at {self._where}: no connection "
                    f"within {self._connect_timeout}s") from e
            raise StoreError(
                f"cannot open Redis at {self._where}: {e}") from e
        self._factory = factory
        try:
            await self._check_schema()
            await self._check_persistence()
        except BaseException:
            await self.close()
            raise

    async def _check_schema(self) -> None:
        version = str(SCHEMA_VERSION).encode("ascii")
        await self._command("SET", self._schema_key, version, "NX")
        found = await self._command("GET", self._schema_key)
        if found != version:
            raise StoreError(
                f"{self!r} holds schema version {found!r}, this node "
                f"reads {SCHEMA_VERSION}")

    async def _check_persistence(self) -> None:
        try:
            reply = await self._command("CONFIG", "GET", "append*")
        except StoreError as e:
            log.info("cannot read the persistence config of Redis at "
                     "{where} ({error}); a masternode needs appendonly yes "
                     "and appendfsync always", where=self._where, error=str(e))
            return
        config = dict(zip(reply[::2], reply[1::2]))
        appendonly = config.get(b"appendonly", b"").decode("ascii", "replace")
        appendfsync = config.get(b"appendfsync", b"").decode(
            "ascii", "replace")
        if appendonly != "yes":
            log.warn(  # noqa: G010 (twisted's Logger has no .warning)
                "Redis at {where} runs with appendonly {appendonly}: "
                "acknowledged blocks can be lost in a crash; set "
                "appendonly yes and appendfsync always",
                where=self._where, appendonly=appendonly)
        elif appendfsync != "always":
            log.warn(  # noqa: G010
                "Redis at {where} runs with appendfsync {appendfsync}: "
                "the last writes can be lost in a crash; set appendfsync "
                "always", where=self._where, appendfsync=appendfsync)

    def close(self) -> defer.Deferred[None]:
        """
        Stop reconnecting and close the connection.  Fires with C{None};
        later calls fail with L{StoreError}.
        """
        factory, self._factory = self._factory, None
        if factory is None:
            return defer.succeed(None)
        d: defer.Deferred[None] = factory.disconnect().addCallback(
            lambda _: None)
        return d

    def get_meta(self, key: str) -> defer.Deferred[bytes | None]:
        """
        Fires with the bytes stored under C{key}, or C{None}.
        """
        return self._command("HGET", self._meta, key.encode("utf-8"))

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        """
        Store C{value} under C{key}.  Fires with C{None}.
        """
        return self._command("HSET", self._meta, key.encode("utf-8"),
                             value).addCallback(lambda _: None)

    def tip(self) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Fires with C{(height, block_hash)} of the best block, or C{None}.
        """
        def parse(reply: list[bytes | None]) -> tuple[int, bytes] | None:
            height, block_hash = reply
            if height is None or block_hash is None:
                return None
            return _int(height), block_hash
        return self._command("HMGET", self._tip, "height",
                             "hash").addCallback(parse)

    def get_block(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        """
        Fires with the encoded block of C{block_hash}, or C{None}.
        """
        return self._command("HGET", self._blocks, block_hash)

    def get_block_hash(self, height: int) -> defer.Deferred[bytes | None]:
        """
        Fires with the main-chain block hash at C{height}, or C{None}.
        """
        return self._command("HGET", self._heights, str(int(height)))

    def get_undo(self, block_hash: bytes) -> defer.Deferred[bytes | None]:
        """
        Fires with the undo bytes of C{block_hash}, or C{None}.
        """
        return self._command("HGET", self._undo, block_hash)

    def get_utxo(self, key: bytes) -> defer.Deferred[bytes | None]:
        """
        Fires with the packed entry of outpoint C{key}, or C{None}.
        """
        return self._command("HGET", self._utxos, key)

    def load_utxos(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Fires with the whole UTXO set as C{(key, packed_entry)} pairs.

        The set is read in HSCAN pages rather than in one HGETALL, which
        would stall Redis and build one huge reply; a scan during which a
        block was applied or reverted is started over, so the result is
        the UTXO set of one tip.
        """
        return defer.Deferred.fromCoroutine(self._load_utxos())

    async def _load_utxos(self) -> list[tuple[bytes, bytes]]:
        keys = [self._utxos, self._tip]
        for _ in range(SCAN_ATTEMPTS):
            items: dict[bytes, bytes] = {}
            cursor, first_seq, pages = b"0", None, 0
            while True:
                cursor, packed, seq = await self._script(
                    _SCAN_PAGE, keys, [cursor, self._scan_count])
                pages += 1
                if pages == 1:
                    first_seq = seq
                elif seq != first_seq:
                    break
                items.update(_unpack_pairs(packed))
                if cursor == b"0":
                    return list(items.items())
        raise StoreError(f"the UTXO set of {self!r} kept changing during "
                         f"{SCAN_ATTEMPTS} scans")

    def get_tx_location(
            self, txid: bytes) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Fires with C{(height, block_hash)} of the block holding C{txid},
        or C{None}.
        """
        def parse(reply: list[bytes] | None) -> tuple[int, bytes] | None:
            if reply is None:
                return None
            return _int(reply[0]), reply[1]
        return self._script(_TX_LOCATION, [self._tx_index, self._heights],
                            [txid]).addCallback(parse)

    def _script_failed(self, failure: Any, message: str) -> Any:
        if failure.check(self._redis_error) and \
                failure.getErrorMessage().startswith(_TIP):
            raise StoreError(message) from failure.value
        return self._translate(failure, "script")

    def apply_block(self, change: BlockChange) -> defer.Deferred[None]:
        """
        Make C{change} the new tip in one script; fails with L{StoreError},
        having written nothing, unless it extends the tip.
        """
        args: list[Any] = [
            str(int(change.height)), change.block_hash, change.prev_hash,
            change.block, change.undo, len(change.spent),
            len(change.created), len(change.txids), len(change.archived)]
        args.extend(change.spent)
        for key, entry in change.created:
            args.append(key)
            args.append(entry)
        args.extend(change.txids)
        args.extend(change.archived)
        d = defer.maybeDeferred(
            lambda: self._connection().eval(_APPLY, self._block_keys, args))
        return d.addCallbacks(
            lambda _: None, self._script_failed,
            errbackArgs=(f"block {change.height} does not extend the tip",))

    def revert_block(self, change: BlockRevert) -> defer.Deferred[None]:
        """
        Disconnect the tip block in one script; fails with L{StoreError},
        having written nothing, unless C{change} describes the tip.
        """
        args: list[Any] = [
            str(int(change.height)), change.block_hash,
            str(int(change.height) - 1), change.prev_hash,
            len(change.removed), len(change.restored), len(change.txids)]
        args.extend(change.removed)
        for key, entry in change.restored:
            args.append(key)
            args.append(entry)
        args.extend(change.txids)
        d = defer.maybeDeferred(
            lambda: self._connection().eval(_REVERT, self._block_keys, args))
        return d.addCallbacks(
            lambda _: None, self._script_failed,
            errbackArgs=(f"block {change.height} is not a revertible tip",))

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        """
        Store the finality record of C{txid}.  Fires with C{None}.
        """
        return self._command("HSET", self._tx_records, txid,
                             record).addCallback(lambda _: None)

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        """
        Fires with the finality record of C{txid}, or C{None}.
        """
        return self._command("HGET", self._tx_records, txid)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        """
        Delete the finality record of C{txid}.  Fires with C{None}.
        """
        return self._command("HDEL", self._tx_records,
                             txid).addCallback(lambda _: None)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Fires with every stored C{(txid, record)}, read atomically.
        """
        return self._script(_GET_ALL, [self._tx_records],
                            []).addCallback(_unpack_pairs)
