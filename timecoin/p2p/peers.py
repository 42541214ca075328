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
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()

SEED = "seed"
EXCHANGE = "exchange"
INBOUND = "inbound"
SOURCES = (SEED, EXCHANGE, INBOUND)


def is_ip(host: str) -> bool:
    """
    Whether C{host} is an IPv4 or IPv6 literal.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


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
    """

    host: str
    port: int
    source: str
    pubkey: bytes | None = None
    last_seen: float = 0.0
    failures: int = 0

    @property
    def key(self) -> str:
        """
        The peer's identity (see L{peer_key}).
        """
        return peer_key(self.host, self.port)

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
                "last_seen": self.last_seen, "failures": self.failures}

    @classmethod
    def from_obj(cls, obj: Any) -> PeerEntry:
        """
        Inverse of L{to_obj}.

        @raise ValueError: (or C{KeyError}, C{TypeError}) on a bad entry.
        """
        host, port = parse_address(format_address(str(obj["host"]),
                                                  int(obj["port"])))
        source = obj["source"] if obj["source"] in SOURCES else EXCHANGE
        pubkey = None if obj.get("pubkey") is None else \
            bytes.fromhex(obj["pubkey"])
        if pubkey is not None and len(pubkey) != 32:
            raise ValueError("pubkey must be 32 bytes")
        return cls(host, port, source, pubkey, float(obj["last_seen"]),
                   int(obj["failures"]))


class PeerTable:
    """
    Known peer addresses, keyed by peer identity, bounded, persisted.
    """

    def __init__(self, path: Path | None, clock: IReactorTime,
                 max_entries: int = 1000, max_failures: int = 10) -> None:
        self.path = path
        self.clock = clock
        self.max_entries = max_entries
        self.max_failures = max_failures
        self.entries: dict[str, PeerEntry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> PeerEntry | None:
        """
        The entry of identity C{key}, or C{None}.
        """
        return self.entries.get(key)

    def add(self, host: str, port: int, source: str,
            pubkey: bytes | None = None) -> PeerEntry | None:
        """
        Learn an address; returns its entry, or C{None} when the table is
        full of entries that may not be evicted (seeds).  An address a
        peer told us never overrides what a seed or handshake said.
        """
        key = peer_key(host, port)
        entry = self.entries.get(key)
        if entry is not None:
            if source != EXCHANGE and entry.port != port:
                entry.port = port
            if source == SEED:
                entry.source = SEED
            if pubkey is not None:
                entry.pubkey = pubkey
            return entry
        if len(self.entries) >= self.max_entries and not self._evict():
            return None
        entry = PeerEntry(host, port, source, pubkey)
        self.entries[key] = entry
        return entry

    def _evict(self) -> bool:
        candidates = [e for e in self.entries.values() if e.source != SEED]
        if not candidates:
            return False
        worst = max(candidates, key=lambda e: (e.failures, -e.last_seen,
                                               e.key))
        del self.entries[worst.key]
        return True

    def connected(self, key: str, host: str, port: int,
                  pubkey: bytes) -> None:
        """
        A handshake with C{key} completed: remember its key, reset its
        failures.  Inbound peers that listen (C{port} > 0) are added.
        """
        entry = self.entries.get(key)
        if entry is None and port:
            entry = self.add(host, port, INBOUND, pubkey)
        if entry is not None:
            entry.pubkey = pubkey
            entry.failures = 0
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
        return entry.source != SEED and entry.failures >= self.max_failures

    def remove(self, key: str) -> None:
        """
        Forget C{key}.
        """
        self.entries.pop(key, None)

    def addresses(self, limit: int, loopback: bool,
                  exclude: frozenset[str] = frozenset()) -> list[str]:
        """
        Up to C{limit} addresses to share, most recently seen first;
        loopback ones only if C{loopback}.
        """
        chosen = [e for e in self.entries.values()
                  if e.key not in exclude and e.failures < self.max_failures
                  and (loopback or not is_loopback(e.host))]
        chosen.sort(key=lambda e: (-e.last_seen, e.key))
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
        for row in rows[: self.max_entries]:
            try:
                entry = PeerEntry.from_obj(row)
            except (ValueError, KeyError, TypeError):
                continue
            if entry.source == SEED:
                entry.source = EXCHANGE
            self.entries[entry.key] = entry
        log.info("loaded {n} peer addresses", n=len(self.entries))

    def save(self) -> None:
        """
        Write C{peers.json} atomically (temporary file, fsync, rename).
        """
        if self.path is None:
            return
        data = json.dumps({"version": 1, "peers": [
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
