"""
The simulated network: L{SimNetwork}, the fake TCP of
L{timecoin.p2p.testing} whose links apply L{LinkFaults} per direction
(drop, duplicate, delay, reorder gossip lines; latency on every line),
hold bytes in flight across partitions (counted per pair, so overlapping
partitions heal right), and count what they carry (L{CopyCounter}).

Imports L{clock} only from the rest of the simulator.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from twisted.internet.task import Clock

from timecoin.p2p.testing import FakeNetwork, Link
from timecoin.testing.simulation.clock import HeapClock

__all__ = ["GOSSIP", "CopyCounter", "LinkFaults", "SimNetwork"]

GOSSIP = frozenset({b"tx", b"txs", b"tx_vote", b"tx_votes", b"get_tx_votes",
                    b"vote_bundle",
                    b"proposal", b"block_vote", b"block", b"heartbeat"})
"""Message types the fault plan may drop, duplicate and reorder: gossip
(and the vote query, which expects no reply), whose delivery the protocol
never relies on.  Every other line (hello, ping/pong, requests and
responses, errors) keeps TCP's promises: delivered once, in order,
possibly late."""
_TYPE = re.compile(rb'"type":"([a-z_]+)"')


@dataclass(frozen=True)
class LinkFaults:
    """
    What one direction of a link does to the lines it carries.

    @ivar drop: probability a gossip line is lost.
    @ivar duplicate: probability a gossip line arrives twice.
    @ivar delay: probability a gossip line is held up to C{max_delay}
        seconds (so later lines overtake it).
    @ivar reorder: probability the gossip lines of one write burst are
        shuffled.
    @ivar latency: seconds every line takes (control lines stay in order).
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    max_delay: float = 0.0
    reorder: float = 0.0
    latency: float = 0.0

    @property
    def clean(self) -> bool:
        """
        Whether this changes nothing.
        """
        return not (self.drop or self.duplicate or self.delay or
                    self.reorder or self.latency)

    def describe(self) -> str:
        """
        A short human description.
        """
        return (f"drop {self.drop:.0%} dup {self.duplicate:.0%} delay "
                f"{self.delay:.0%}<={self.max_delay:.1f}s reorder "
                f"{self.reorder:.0%} latency {self.latency * 1000:.0f}ms")


@dataclass
class _Direction:
    """
    The state of one direction of one link: an incomplete trailing line,
    when its last in-order line is due, and how many lines are in flight.
    """

    partial: bytes = b""
    fifo_at: float = 0.0
    pending: int = 0


class CopyCounter:
    """
    Copies received per distinct gossip message per node: every gossip
    line a host's connections deliver to it, and the distinct lines among
    them (by content), per message type.  A line relayed byte for byte
    (votes, proposals, heartbeats, vote batches) is the same message
    wherever it comes from; a C{txs} batch is composed per peer, so its
    lines say little about transactions.
    """

    def __init__(self) -> None:
        self.received: Counter[tuple[str, bytes]] = Counter()
        self.distinct: dict[tuple[str, bytes], set[int]] = {}
        self.lines: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()

    def arrived(self, ip: str, data: bytes) -> None:
        """
        Whole lines C{data} reached host C{ip}.
        """
        for line in data.split(b"\n")[:-1]:
            self.lines[ip] += 1
            self.bytes[ip] += len(line) + 1
            match = _TYPE.search(line)
            kind = match.group(1) if match else b""
            if kind in GOSSIP:
                self.received[(ip, kind)] += 1
                self.distinct.setdefault((ip, kind), set()).add(hash(line))

    def summary(self, blocks: int) -> dict[str, Any]:
        """
        Per message type and overall: copies received per distinct
        message, averaged over hosts; and lines of any type per host per
        committed block.
        """
        hosts = sorted({ip for ip, _ in self.received})
        out: dict[str, Any] = {}
        for kind in sorted({k for _, k in self.received}) + [None]:
            ratios = []
            for ip in hosts:
                keys = [(ip, kind)] if kind is not None else \
                    [k for k in self.received if k[0] == ip]
                got = sum(self.received[k] for k in keys)
                seen = sum(len(self.distinct.get(k, ())) for k in keys)
                if seen:
                    ratios.append(got / seen)
            name = kind.decode() if kind is not None else "all-gossip"
            if ratios:
                out[name] = round(sum(ratios) / len(ratios), 2)
        if hosts and blocks:
            out["lines-per-node-per-block"] = round(
                sum(self.lines.values()) / len(hosts) / blocks, 1)
            out["bytes-per-node-per-block"] = round(
                sum(self.bytes.values()) / len(hosts) / blocks)
            by_kind: Counter[str] = Counter()
            for (_, kind), n in self.received.items():
                by_kind[kind.decode()] += n
            out["gossip-lines-per-node-per-block"] = {
                kind: round(n / len(hosts) / blocks, 1)
                for kind, n in sorted(by_kind.items())}
        return out


class SimNetwork(FakeNetwork):
    """
    L{FakeNetwork} whose links apply L{LinkFaults} per direction, line by
    line, with their own seeded randomness.

    @ivar faults: per directed pair of IPs (a window of heavy faults).
    @ivar default: for every other pair (the run's background faults).
    @ivar counters: lines delivered, dropped, duplicated, delayed.
    @ivar cuts: per pair of IPs, how many partitions now separate them.
    """

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        super().__init__(clock)
        self.rng = rng
        self.faults: dict[tuple[str, str], LinkFaults] = {}
        self.default = LinkFaults()
        self.counters: Counter[str] = Counter()
        self.copies = CopyCounter()
        self._directions: dict[int, tuple[Any, _Direction]] = {}
        self.deaf: set[str] = set()
        """Hosts that read nothing now (a C{non-reader} adversary)."""
        self.cuts: Counter[frozenset[str]] = Counter()

    def cut(self, a: str, b: str) -> None:
        """
        One more partition separates hosts C{a} and C{b}.
        """
        pair = frozenset((a, b))
        self.cuts[pair] += 1
        if self.cuts[pair] == 1:
            self.partition(a, b)

    def mend(self, a: str, b: str) -> None:
        """
        One partition between C{a} and C{b} heals; the last one lets their
        traffic through again.
        """
        pair = frozenset((a, b))
        if self.cuts[pair] > 0:
            self.cuts[pair] -= 1
            if self.cuts[pair] == 0:
                self.heal(a, b)

    def mend_all(self) -> None:
        """
        Every partition heals.
        """
        for pair in list(self.cuts):
            a, b = sorted(pair)
            self.heal(a, b)
        self.cuts.clear()

    def _direction(self, transport: Any) -> _Direction:
        found = self._directions.get(id(transport))
        if found is None or found[0] is not transport:
            found = (transport, _Direction())
            self._directions[id(transport)] = found
        return found[1]

    def _due(self) -> bool:
        when = self.clock.next_due() if isinstance(self.clock, HeapClock) \
            else None
        if when is None and not isinstance(self.clock, HeapClock):
            return super()._due()
        return when is not None and when <= self.clock.seconds()

    def sweep(self) -> None:
        """
        Forget the state of links that are gone.
        """
        alive = {id(t) for link in self.links
                 for t in (link.client, link.server)}
        for key in [k for k in self._directions if k not in alive]:
            del self._directions[key]

    def _pump(self, link: Link) -> bool:
        self.clock.advance(0)
        moved = False
        for src, dst, a, b in ((link.client, link.server, link.client_ip,
                                link.server_ip),
                               (link.server, link.client, link.server_ip,
                                link.client_ip)):
            if b in self.deaf:
                # b does not read: what is sent to it waits in the
                # sender's transport, which says how much (its bounds).
                vars(src)["output_buffered"] = \
                    lambda t=src: sum(map(len, t.stream))
                continue
            data = src.getOutBuffer()
            if data:
                moved = True
                self._carry(link, dst, self.faults.get((a, b), self.default),
                            data)
        if moved:
            return True
        if self._direction(link.client).pending or \
                self._direction(link.server).pending:
            return False
        # Both directions drained: a close travels now (as in IOPump).
        server, client = link.server, link.client
        if server.disconnecting and not server.disconnected:
            server.disconnected = True
            client.disconnecting = True
            client.reportDisconnect()
            return True
        if client.disconnecting and not client.disconnected:
            client.disconnected = True
            server.disconnecting = True
            server.reportDisconnect()
            return True
        return False

    def _carry(self, link: Link, dst: Any, faults: LinkFaults,
               data: bytes) -> None:
        state = self._direction(dst)
        if faults.clean and not state.pending and not state.partial:
            self.counters["lines"] += data.count(b"\n")
            self.copies.arrived(_ip(link, dst), data)
            dst.bufferReceived(data)
            return
        lines = (state.partial + data).split(b"\n")
        state.partial = lines.pop()
        kinds = []
        for line in lines:
            match = _TYPE.search(line)
            kinds.append(match.group(1) if match else b"")
        rng = self.rng
        if faults.reorder and rng.random() < faults.reorder:
            slots = [i for i, k in enumerate(kinds) if k in GOSSIP]
            moved = [lines[i] for i in slots]
            rng.shuffle(moved)
            for i, line in zip(slots, moved):
                lines[i] = line
                kinds[i] = (_TYPE.search(line) or _NO_MATCH).group(1)
            self.counters["reordered-bursts"] += 1
        now = self.clock.seconds()
        immediate: list[bytes] = []
        for line, kind in zip(lines, kinds):
            line += b"\n"
            if kind not in GOSSIP:
                at = max(now + faults.latency, state.fifo_at)
                state.fifo_at = at
                self._send(link, dst, state, line, at, now, immediate)
                continue
            if faults.drop and rng.random() < faults.drop:
                self.counters["dropped"] += 1
                continue
            copies = 1
            if faults.duplicate and rng.random() < faults.duplicate:
                copies = 2
                self.counters["duplicated"] += 1
            for _ in range(copies):
                extra = 0.0
                if faults.delay and rng.random() < faults.delay:
                    extra = rng.uniform(0, faults.max_delay)
                    self.counters["delayed"] += 1
                at = max(now + faults.latency + extra, state.fifo_at)
                self._send(link, dst, state, line, at, now, immediate)
        if immediate:
            self.copies.arrived(_ip(link, dst), b"".join(immediate))
            dst.bufferReceived(b"".join(immediate))

    def _send(self, link: Link, dst: Any, state: _Direction, line: bytes,
              at: float, now: float, immediate: list[bytes]) -> None:
        self.counters["lines"] += 1
        if at <= now:
            immediate.append(line)
            return
        state.pending += 1
        self.clock.callLater(at - now, self._deliver, link, dst, state, line)

    def _deliver(self, link: Link, dst: Any, state: _Direction,
                 line: bytes) -> None:
        if dst.disconnected:
            state.pending -= 1
            self.counters["lost-with-connection"] += 1
            return
        if self._blocked(link):
            # A partition holds bytes in flight (TCP retransmits them
            # once it heals); try again shortly.
            self.clock.callLater(0.1, self._deliver, link, dst, state, line)
            return
        state.pending -= 1
        self.copies.arrived(_ip(link, dst), line)
        dst.bufferReceived(line)


def _ip(link: Link, dst: Any) -> str:
    return link.server_ip if dst is link.server else link.client_ip


class _NoMatch:
    def group(self, _: int) -> bytes:
        return b""


_NO_MATCH = _NoMatch()
