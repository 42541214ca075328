"""
Peer addresses, peer identity, and the persisted peer table.

A peer is identified by its IP alone: the ephemeral source port of an
inbound connection never enters its identity (the seeds counted one machine
as several peers that way), and one IP holds one connection.  Loopback is
the one exception: several nodes of a local devnet share 127.0.0.1, so
there the identity is C{ip:port} with the port the node *listens* on (from
its C{hello}, or the port we dialled), never the source port.

The table holds addresses learned from the config (seeds), peer exchange
and inbound handshakes; it is bounded, forgets learned addresses that keep
failing, and is written atomically to C{DATADIR/peers.json}.

Addresses learned by peer exchange are kept in *buckets*, as Bitcoin
Core's address manager does in spirit: the network group (/24, /48; on
loopback the peer) of the peer that told us an address picks
C{buckets_per_source} of the C{bucket_count} buckets (by a keyed hash with
the table's secret), the address's own group picks one of those, and a
bucket holds at most C{bucket_size} addresses; a full bucket evicts its
worst untried address.  So one source can fill at most
C{buckets_per_source * bucket_size} entries (64 of 1,024 by default), never
the table, whatever it sends.  Addresses we connected to (I{tried}), seeds
and anchors are outside the buckets and never evicted by exchange.

I{Anchors} are the last few outbound peers whose handshake completed,
most recent first; they are persisted, so a restarted node dials them (and
its seeds) before anything learned.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()


class Source(StrEnum):
    """
    Where a known address came from; its value is what C{peers.json}
    stores.
    """

    SEED = "seed"
    """The config (seeds, C{--connect})."""
    EXCHANGE = "exchange"
    """Another peer told us (C{get_peers})."""
    INBOUND = "inbound"
    """It connected to us and told its listen port."""


SOURCES = tuple(Source)
"""Every source (a stored entry naming another is read as C{exchange})."""

ADDRESS_CACHE = 4096
"""Hosts whose parsed forms (L{is_ip}, L{is_loopback}, L{normalize_ip},
L{subnet}) are kept: the same few addresses are parsed again at every
exchange and connection (fifty masternodes in the simulator: 1.9 million
parses, 4 % of its time); a spray of new ones costs what it did."""


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def is_ip(host: str) -> bool:
    """
    Whether C{host} is an IPv4 or IPv6 literal.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def is_loopback(host: str) -> bool:
    """
    Whether C{host} is a loopback address (127.0.0.0/8, ::1).
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def format_address(host: str, port: int) -> str:
    """
    C{host:port}, with IPv6 hosts in brackets.
    """
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_address(text: str, ip_only: bool = True) -> tuple[str, int]:
    """
    Split C{host:port} (or C{[v6]:port}); C{localhost} becomes 127.0.0.1.

    @param ip_only: refuse host names (addresses from peers must be IPs).
    @raise ValueError: when it is not a valid address.
    """
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"not host:port: {text!r}")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port out of range: {text!r}")
    if host == "localhost":
        host = "127.0.0.1"
    if is_ip(host):
        host = normalize_ip(host)
        addr = ipaddress.ip_address(host)
        if addr.is_unspecified or addr.is_multicast:
            raise ValueError(f"not a peer address: {text!r}")
    elif ip_only:
        raise ValueError(f"not an IP address: {text!r}")
    return host, port


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def normalize_ip(host: str) -> str:
    """
    The canonical text of an IP (an IPv4-mapped IPv6 address, as a
    dual-stack listener sees IPv4 clients, becomes the IPv4 address);
    other strings are returned unchanged.
    """
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return str(addr.ipv4_mapped)
    return str(addr)


@functools.lru_cache(maxsize=ADDRESS_CACHE)
def subnet(host: str) -> str:
    """
    The network group of C{host}: its /24 (IPv4) or /48 (IPv6), or
    C{loopback}; what limits and eviction count connections by, so one
    operator's range counts as one source.
    """
    try:
        addr = ipaddress.ip_address(normalize_ip(host))
    except ValueError:
        return host
    if addr.is_loopback:
        return "loopback"
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def peer_key(host: str, port: int) -> str:
    """
    The identity of the peer at C{host} listening on C{port}: the IP, or
    C{ip:port} on loopback.
    """
    host = normalize_ip(host)
    if is_loopback(host):
        return format_address(host, port)
    return host


@dataclass
class PeerEntry:
    """
    One known peer address.

    @ivar source: C{seed} (config), C{exchange} (another peer told us) or
        C{inbound} (it connected to us and told its listen port).
    @ivar pubkey: its node key, once a handshake showed it.
    @ivar last_seen: when a connection to it last completed or ended.
    @ivar failures: failed dials since the last good connection.
    @ivar origin: the network group of the peer that told us this address
        (peer exchange), else C{""}.
    @ivar bucket: its bucket while it is an untried learned address, else
        -1.
    @ivar tried: a handshake with it completed once.
    @ivar retry_at: it is not dialled again before this time (a learned
        address whose dial failed; see L{PeerTable.failed}).
    """

    host: str
    port: int
    source: Source
    pubkey: bytes | None = None
    last_seen: float = 0.0
    failures: int = 0
    origin: str = ""
    bucket: int = -1
    tried: bool = False
    retry_at: float = 0.0
    _key: tuple[str, int, str] | None = field(default=None, compare=False,
                                              repr=False)

    @property
    def key(self) -> str:
        """
        The peer's identity (see L{peer_key}), cached per (host, port).
        """
        cached = self._key
        if cached is None or cached[:2] != (self.host, self.port):
            cached = self._key = (self.host, self.port,
                                  peer_key(self.host, self.port))
        return cached[2]

    @property
    def address(self) -> str:
        """
        C{host:port} to dial.
        """
        return format_address(self.host, self.port)

    def to_obj(self) -> dict[str, Any]:
        """
        The entry as a JSON object for C{peers.json}.
        """
        return {"host": self.host, "port": self.port, "source": self.source,
                "pubkey": None if self.pubkey is None else self.pubkey.hex(),
                "last_seen": self.last_seen, "failures": self.failures,
                "origin": self.origin, "tried": self.tried,
                "retry_at": self.retry_at}

    @classmethod
    def from_obj(cls, obj: Any) -> PeerEntry:
        """
        Inverse of L{to_obj}.

        @raise ValueError: (or C{KeyError}, C{TypeError}) on a bad entry.
        """
        host, port = parse_address(format_address(str(obj["host"]),
                                                  int(obj["port"])))
        source = Source(obj["source"]) if obj["source"] in SOURCES \
            else Source.EXCHANGE
        pubkey = None if obj.get("pubkey") is None else \
            bytes.fromhex(obj["pubkey"])
        if pubkey is not None and len(pubkey) != 32:
            raise ValueError("pubkey must be 32 bytes")
        return cls(host, port, source, pubkey, float(obj["last_seen"]),
                   int(obj["failures"]), str(obj.get("origin", ""))[:64],
                   tried=bool(obj.get("tried", False)),
                   retry_at=float(obj.get("retry_at", 0.0)))


class PeerTable:
    """
    Known peer addresses, keyed by peer identity, bounded, persisted.
    """

    def __init__(self, path: Path | None, clock: IReactorTime,
                 max_entries: int = 1000, max_failures: int = 10,
                 bucket_count: int = 64, bucket_size: int = 16,
                 buckets_per_source: int = 4, anchor_count: int = 2,
                 secret: bytes | None = None) -> None:
        self.path = path
        self.clock = clock
        self.max_entries = max_entries
        self.max_failures = max_failures
        self.bucket_count = max(1, bucket_count)
        self.bucket_size = max(1, bucket_size)
        self.buckets_per_source = max(1, min(buckets_per_source,
                                             self.bucket_count))
        self.anchor_count = anchor_count
        self.secret = secret if secret is not None else os.urandom(16)
        """Keys the bucket hash, so a source cannot aim at buckets
        (persisted, so the layout survives restarts)."""
        self.entries: dict[str, PeerEntry] = {}
        self.buckets: dict[int, set[str]] = {}
        self.anchors: list[str] = []
        """The last good outbound peers, most recent first."""

    def bucket_of(self, origin: str, host: str) -> int:
        """
        The bucket of an address at C{host} learned from C{origin}: one of
        the C{buckets_per_source} buckets C{origin} may use, chosen by the
        address's network group.
        """
        def h(*parts: str) -> int:
            digest = hashlib.sha256(self.secret + "\x00".join(
                parts).encode()).digest()
            return int.from_bytes(digest[:8], "big")

        slot = h("slot", subnet(host)) % self.buckets_per_source
        return h("bucket", origin, str(slot)) % self.bucket_count

    def _bucket_remove(self, entry: PeerEntry) -> None:
        if entry.bucket >= 0:
            members = self.buckets.get(entry.bucket)
            if members is not None:
                members.discard(entry.key)
                if not members:
                    del self.buckets[entry.bucket]
            entry.bucket = -1

    def _bucket_place(self, entry: PeerEntry) -> bool:
        """
        Put an untried learned C{entry} into its bucket, evicting the
        bucket's worst member if it is full; C{False} if no room.
        """
        bucket = self.bucket_of(entry.origin, entry.host)
        members = self.buckets.setdefault(bucket, set())
        if len(members) >= self.bucket_size:
            worst = max((self.entries[k] for k in members),
                        key=lambda e: (e.failures, -e.last_seen, e.key))
            self._drop(worst.key)
            members = self.buckets.setdefault(bucket, set())
        members.add(entry.key)
        entry.bucket = bucket
        return True

    def _drop(self, key: str) -> None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self._bucket_remove(entry)
        if key in self.anchors:
            self.anchors.remove(key)

    def from_source(self, origin: str) -> int:
        """
        How many untried addresses learned from C{origin} the table holds.
        """
        return sum(1 for e in self.entries.values()
                   if e.bucket >= 0 and e.origin == origin)

    def good_outbound(self, key: str) -> None:
        """
        An outbound handshake with C{key} completed: it becomes the first
        anchor (at most C{anchor_count} are kept).
        """
        if key in self.anchors:
            self.anchors.remove(key)
        self.anchors.insert(0, key)
        del self.anchors[self.anchor_count:]

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> PeerEntry | None:
        """
        The entry of identity C{key}, or C{None}.
        """
        return self.entries.get(key)

    def add(self, host: str, port: int, source: Source,
            pubkey: bytes | None = None,
            origin: str = "") -> PeerEntry | None:
        """
        Learn an address; returns its entry, or C{None} when the table is
        full of entries that may not be evicted (seeds, anchors).  An
        address a peer told us never overrides what a seed or handshake
        said.  An address learned by exchange from C{origin} (the network
        group of the peer that sent it) goes into its bucket (see the
        module docstring).
        """
        key = peer_key(host, port)
        entry = self.entries.get(key)
        if entry is not None:
            if source != Source.EXCHANGE and entry.port != port:
                entry.port = port
            if source == Source.SEED:
                entry.source = Source.SEED
                self._bucket_remove(entry)
            if pubkey is not None:
                entry.pubkey = pubkey
            return entry
        if len(self.entries) >= self.max_entries and not self._evict():
            return None
        entry = PeerEntry(host, port, source, pubkey, origin=origin)
        self.entries[key] = entry
        if source == Source.EXCHANGE and origin:
            self._bucket_place(entry)
        return entry

    def _evict(self) -> bool:
        candidates = [e for e in self.entries.values()
                      if e.source != Source.SEED and e.key not in self.anchors]
        if not candidates:
            return False
        worst = max(candidates, key=lambda e: (not e.tried, e.failures,
                                               -e.last_seen, e.key))
        self._drop(worst.key)
        return True

    def connected(self, key: str, host: str, port: int,
                  pubkey: bytes) -> None:
        """
        A handshake with C{key} completed: remember its key, reset its
        failures.  Inbound peers that listen (C{port} > 0) are added.
        """
        entry = self.entries.get(key)
        if entry is None and port:
            entry = self.add(host, port, Source.INBOUND, pubkey)
        if entry is not None:
            entry.pubkey = pubkey
            entry.failures = 0
            entry.retry_at = 0.0
            entry.tried = True
            self._bucket_remove(entry)
            entry.last_seen = self.clock.seconds()

    def touch(self, key: str) -> None:
        """
        A connection with C{key} ended now.
        """
        entry = self.entries.get(key)
        if entry is not None:
            entry.last_seen = self.clock.seconds()

    def failed(self, key: str) -> bool:
        """
        A dial to C{key} failed; returns whether the address should be
        given up (a learned address failing C{max_failures} times).
        """
        entry = self.entries.get(key)
        if entry is None:
            return True
        entry.failures += 1
        return entry.source != Source.SEED and \
            entry.failures >= self.max_failures

    def remove(self, key: str) -> None:
        """
        Forget C{key}.
        """
        self._drop(key)

    def addresses(self, limit: int, loopback: bool,
                  exclude: frozenset[str] = frozenset()) -> list[str]:
        """
        Up to C{limit} addresses to share: ones we connected to (tried)
        first, then most recently seen; loopback ones only if C{loopback}.
        """
        chosen = [e for e in self.entries.values()
                  if e.key not in exclude and e.failures < self.max_failures
                  and (loopback or not is_loopback(e.host))]
        chosen.sort(key=lambda e: (not e.tried, -e.last_seen, e.key))
        return [e.address for e in chosen[:limit]]

    def load(self) -> None:
        """
        Read C{peers.json} if there is one; bad entries are skipped and a
        damaged file is ignored (logged), never fatal.
        """
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text())
            rows = data["peers"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warn("ignoring unreadable peer table {path}: {error}",
                     path=str(self.path), error=str(e))
            return
        try:
            secret = bytes.fromhex(str(data.get("secret", "")))
        except ValueError:
            secret = b""
        if len(secret) == 16:
            self.secret = secret
        for row in rows[: self.max_entries]:
            try:
                entry = PeerEntry.from_obj(row)
            except (ValueError, KeyError, TypeError):
                continue
            if entry.source == Source.SEED:
                entry.source = Source.EXCHANGE
            self.entries[entry.key] = entry
            if entry.source == Source.EXCHANGE and entry.origin and \
                    not entry.tried:
                self._bucket_place(entry)
        anchors = data.get("anchors", [])
        if isinstance(anchors, list):
            self.anchors = [a for a in anchors if isinstance(a, str)
                            and a in self.entries][:self.anchor_count]
        log.info("loaded {n} peer addresses, {anchors} anchors",
                 n=len(self.entries), anchors=len(self.anchors))

    def save(self) -> None:
        """
        Write C{peers.json} atomically (temporary file, fsync, rename).
        """
        if self.path is None:
            return
        data = json.dumps({"version": 1, "secret": self.secret.hex(),
                           "anchors": self.anchors, "peers": [
            e.to_obj() for e in sorted(self.entries.values(),
                                       key=lambda e: e.key)]},
            sort_keys=True, indent=0).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
