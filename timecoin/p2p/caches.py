"""
Bounded caches the P2P objects share: ids already seen, line digests a
peer holds, and the digests of gossip lines already handled.

L{SeenCache} is a relay's seen-set (transactions, votes, blocks,
heartbeats, consensus messages); L{KnownSet} is what one connection is
known to hold (its peer sent it, or we sent it); L{LineCache} lets a
connection drop a byte-identical repeat of a handled line before parsing
it.  This module imports nothing else of C{timecoin.p2p}.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any, Protocol


class SeenCache:
    """
    A bounded set of ids; the oldest are forgotten first.

    A set of the ids and a queue of them in the order they were added:
    about 115 bytes an id where an ordered dict took 170 (a node's
    seen-cache of transactions fills its 100,000 in 100 s at 1,000
    payments a second; C{benchmarks/memory_sizes.py}).  An id discarded
    stays queued until its turn comes (it then counts against C{size}),
    and an id added again after a discard is forgotten at the first add's
    turn: the worst either costs is one more copy handled.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: set[bytes] = set()
        self._order: deque[bytes] = deque()

    def __contains__(self, key: bytes) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, key: bytes) -> bool:
        """
        Remember C{key}; returns whether it was new.
        """
        items = self._items
        if key in items:
            return False
        items.add(key)
        order = self._order
        order.append(key)
        if len(order) > self.size:
            items.discard(order.popleft())
        return True

    def discard(self, key: bytes) -> None:
        """
        Forget C{key}, so that it is new again.
        """
        self._items.discard(key)


class KnownSet:
    """
    What one peer is known to hold: the SHA-256 digests of gossip lines it
    sent us or we sent it, each with when that was, over one connection
    (a new connection starts empty, so a peer that restarted or joined
    late is sent everything again).  Bounded: past C{size} the least
    recently touched digest is forgotten (the worst that costs is one
    more copy).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, float] = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._items

    def __len__(self) -> int:
        return len(self._items)

    def since(self, digest: bytes) -> float | None:
        """
        When the peer was last known to hold C{digest}, or C{None}.
        """
        return self._items.get(digest)

    def add(self, digest: bytes, now: float) -> None:
        """
        The peer holds C{digest} as of C{now}.
        """
        items = self._items
        if digest in items:
            items.move_to_end(digest)
        items[digest] = now
        if len(items) > self.size:
            items.popitem(last=False)


class LineOwner(Protocol):
    """
    What handles a type of gossip line: it says whether an item is still
    in its seen-cache and counts a repeat dropped by its line.
    """

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether item C{item} of a C{name} message is in its seen-cache.
        """

    def line_repeated(self, name: str) -> None:
        """
        A repeat of a C{name} line was dropped before parsing: count it.
        """


class LineCache:
    """
    SHA-256 digests of gossip lines whose item a handler's seen-cache
    took, so a byte-identical repeat (a relay of the same signed vote,
    batch, heartbeat or consensus message) is dropped before parsing.

    A digest answers only while its item is still in the owner's
    seen-cache (asked at each lookup): a line is never dropped that the
    handler itself would process again.  The digest covers every byte,
    signatures included, so a forged copy never matches a valid line.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._lines: OrderedDict[bytes, tuple[str, LineOwner, bytes]] = \
            OrderedDict()

    def __len__(self) -> int:
        return len(self._lines)

    def lookup(self, digest: bytes) -> tuple[str, LineOwner] | None:
        """
        The message type and owner of the line with C{digest}, if it was
        handled and its item is still seen.
        """
        found = self._lines.get(digest)
        if found is None:
            return None
        name, owner, item = found
        if not owner.still_seen(name, item):
            del self._lines[digest]
            return None
        return name, owner

    def taken(self, conn: Any, name: str, owner: LineOwner,
              item: bytes) -> None:
        """
        The line C{conn} is handling (C{conn.line_digest}), a C{name}
        message, carried item C{item}, now in C{owner}'s seen-cache.
        """
        digest = getattr(conn, "line_digest", None)
        if digest is None or digest in self._lines:
            return
        self._lines[digest] = (name, owner, item)
        if len(self._lines) > self.size:
            self._lines.popitem(last=False)
