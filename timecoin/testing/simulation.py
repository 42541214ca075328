"""
A deterministic simulator of a whole TIME Coin network in one process.

N complete nodes (L{timecoin.node.Node} with its chain, mempool, finality
and block consensus, and L{timecoin.p2p.service.P2PService} speaking the
real line protocol) run on in-memory stores (committing finality
records in groups, late, as SQLite does: L{GroupCommitStore}) over one
L{SimNetwork} (the fake TCP of L{timecoin.p2p.testing} with per-link
faults) and one clock (L{HeapClock}, a L{twisted.internet.task.Clock}
that scales to thousands of timers).  Everything random comes
from one seed: C{random.Random(seed)} hands out independent streams to the
network, the fault plan, the workload, each node's P2P layer and each
adversary, so a seed replays the same run exactly (run the command with
C{PYTHONHASHSEED=0}; it re-executes itself so).

A run has two phases.  For C{duration} seconds a L{FaultPlan} (drawn from
the seed) drops, delays, duplicates and reorders gossip messages per link,
partitions and heals groups of nodes, crashes honest nodes and restarts
them on the same store, while nodes run with skewed clocks, Byzantine
masternodes (L{Adversary}) equivocate, double-vote, forge, replay and spam,
and a L{Workload} submits signed payments, with deliberate double spends,
to random nodes.  Then every fault stops (Byzantine nodes go on
misbehaving) for C{calm} seconds.

L{Checker} checks the invariants after every step and at the end, each
violation naming the seed, the nodes, heights and hashes:

- C{fork}: no two different committed blocks at one height, across nodes
  and over time (a node's block at a height never changes).
- C{finality}: no honest node rejects (by vote, timeout or conflict) a
  transaction it finalized, or reports one finalized twice; once faults
  stop, every transaction finalized
  on one honest node is final (finalized or in the chain) on every honest
  node, so none is finalized on one and rejected on another.  (A node may
  finalize a transaction it rejected earlier: late votes win over a
  timeout or a reject quorum that a double voter helped form, see
  L{timecoin.finality}.)
- C{double-spend}: no two different finalized or confirmed transactions
  spend one output.
- C{utxo}: equal C{chain.utxo_hash()} at equal committed heights.
- C{liveness}: once faults stop, if the honest running masternodes hold a
  quorum of the weight active then (Byzantine ones may stay silent; one
  stopped for good counts until the chain sets it aside), every honest
  node passes the highest height of the fault phase within
  C{liveness_bound} seconds.
- C{equivocation}: no honest node ever sends two different proposals or
  votes for one (height, round, step), across its crashes (checked on
  what leaves each node), and no node holds equivocation evidence
  against an honest masternode (block votes and proposals, and
  transaction votes within the vote window).
- C{status}: every honest node holds the same masternode statuses
  (registered, active, set aside, since when, why) and active set at
  each height it reaches.
- C{lifecycle} (at the end, lifecycle runs): a joiner whose registration
  was mined is active; the masternode stopped for good is set aside; a
  running honest masternode set aside is back once it may be, given
  L{SLACK} blocks.
- C{critical-log}: no node logs a critical event (a conflicting
  certificate, a block conflicting with a finalized transaction).
- C{bookkeeping} (at the end): each honest node's count of finalized
  mempool entries, which admission control reads, equals the entries.

Honest nodes are the ones checked: a Byzantine node runs the same code but
what it tells others is not its state.  Its own view is not an invariant.
Should the chain set aside so many honest masternodes that the Byzantine
ones hold a third of the active weight, safety is no longer promised: the
run reports it (C{beyond-model}) and keeps failing only on equivocation.

Lifecycle runs (C{--lifecycle}, L{LIFECYCLE}) add hosts outside the
genesis that are funded and register mid-run (their nodes activate by
themselves), a masternode stopped for good, one that stops until the
chain sets it aside and comes back, and crashes inside a consensus step
(C{step-crash}: before signing, or after signing with the signing-state
write lost or kept, before the message leaves).

C{python -m timecoin.testing.simulation --seeds 1000 --nodes 7
--byzantine 2} runs many seeds over worker processes and prints each
failure with the command reproducing it, then one summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import provider

from timecoin import params
from timecoin.address import address_of
from timecoin.block import Block, sign_block
from timecoin.config import Config
from timecoin.consensus import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    SIGN_STEPS,
    SIGNING_STATE_KEY,
    BlockVote,
    Proposal,
    SigningState,
    sign_proposal,
    sign_vote,
)
from timecoin.encoding import sha256
from timecoin.finality import (
    APPROVE,
    VOTE_HEIGHT_WINDOW,
    TxVote,
    sign_tx_vote,
)
from timecoin.genesis import make_genesis, write_genesis
from timecoin.interfaces import IQuorumRule
from timecoin.keys import PrivateKey
from timecoin.masternodes import Masternode
from timecoin.mempool import FINALIZED
from timecoin.mnstate import ACTIVE, REGISTERED, SET_ASIDE, ServiceRules
from timecoin.node import Node
from timecoin.p2p.consensus_relay import BlockVoteMsg, ProposalMsg
from timecoin.p2p.messages import (
    MAX_PEERS_PER_REPLY,
    GetPeers,
    GetTip,
    Hello,
    Message,
    Peers,
    Tip,
    TxMsg,
    TxVoteMsg,
)
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.testing import FakeNetwork, Link
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from timecoin.wallet import WalletError, build_registration, write_private

log = Logger()

START = 1_800_000_000.0
"""The simulated wall-clock time every run starts at."""
PORT = 24200
NETWORK = params.NETWORKS["devnet"]
WALLETS = 5
"""Workload keys; the genesis funds each with L{COINS_PER_WALLET}."""
COINS_PER_WALLET = 8
COIN_VALUE = 100 * params.COIN
COLLATERAL = params.TIER_COLLATERAL["bronze"]
FEE_COIN = 10 * params.COIN
FEE_COINS = 3
BANK_COIN = COLLATERAL + 2 * FEE_COIN
"""Lifecycle runs: the genesis pays each joiner's bank coin (collateral
and fee coin) and each genesis masternode L{FEE_COINS} coins for the fees
of its activations."""

GOSSIP = frozenset({b"tx", b"txs", b"tx_vote", b"tx_votes", b"get_tx_votes",
                    b"proposal", b"block_vote", b"block", b"heartbeat"})
"""Message types the fault plan may drop, duplicate and reorder: gossip
(and the vote query, which expects no reply), whose delivery the protocol
never relies on.  Every other line (hello, ping/pong, requests and
responses, errors) keeps TCP's promises: delivered once, in order,
possibly late."""
_TYPE = re.compile(rb'"type":"([a-z_]+)"')

DECISIONS = frozenset({"rejected-by-vote", "vote-timeout",
                       "conflict-finalized", "conflict-in-block"})
"""Reasons a node drops a pending transaction it had admitted.  None may
follow this node's own finality of it.  The reverse is allowed: a
transaction rejected here (timed out, or a reject quorum a double-voting
masternode helped form) still finalizes if an approval quorum arrives
late (L{timecoin.finality}); so whether nodes *disagree* is judged once
faults stop, by the end check."""


def _fired(d: defer.Deferred[Any]) -> Any:
    """
    The result of a Deferred that has already fired (the memory store's
    are synchronous); raises its failure.
    """
    out: list[Any] = []
    d.addBoth(out.append)
    if not out:
        raise AssertionError("Deferred has not fired")
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _short(h: bytes) -> str:
    return h.hex()[:16]


def masternode_key(i: int) -> PrivateKey:
    """
    The deterministic key of simulated masternode C{i}.
    """
    return PrivateKey(sha256(b"timecoin sim masternode %d" % i))


def bank_key() -> PrivateKey:
    """
    The key of the genesis coins that fund the joiners.
    """
    return PrivateKey(sha256(b"timecoin sim bank"))


def wallet_key(i: int) -> PrivateKey:
    """
    The deterministic key of workload wallet C{i}.
    """
    return PrivateKey(sha256(b"timecoin sim wallet %d" % i))


def _addr(key: PrivateKey) -> str:
    return address_of(key.public, NETWORK.address_prefix)


# Time -------------------------------------------------------------------


class HeapClock(Clock):
    """
    L{Clock} with its calls in a heap: C{task.Clock} re-sorts every call at
    every C{callLater} and after every call it runs, which makes a run
    with thousands of pending timers quadratic.  Same order of calls (by
    time, then by scheduling order); cancelled and rescheduled calls are
    dropped lazily.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = 0

    def _push(self, call: DelayedCall) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (call.getTime(), self._seq, call))

    def callLater(self, delay: float, callable: Callable[..., object],
                  *args: object, **kw: object) -> DelayedCall:
        call = DelayedCall(self.seconds() + delay, callable, args, kw,
                           lambda c: None, self._push, self.seconds)
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """
        The pending calls, soonest first.
        """
        live = {id(c): c for _, _, c in self._heap if c.active()}
        return sorted(live.values(), key=lambda c: c.getTime())

    def next_due(self) -> float | None:
        """
        When the soonest pending call is due, or C{None}.
        """
        heap = self._heap
        while heap:
            when, _, call = heap[0]
            if not call.active():
                heapq.heappop(heap)
            elif when != call.getTime():
                heapq.heappop(heap)
                self._push(call)
            else:
                return when
        return None

    def advance(self, amount: float) -> None:
        """
        Move time forward by C{amount}, running every call that falls due.
        """
        self.rightNow += amount
        while True:
            when = self.next_due()
            if when is None or when > self.rightNow:
                return
            _, _, call = heapq.heappop(self._heap)
            call.called = 1
            call.func(*call.args, **call.kw)


# The network ------------------------------------------------------------


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

    def arrived(self, ip: str, data: bytes) -> None:
        """
        Whole lines C{data} reached host C{ip}.
        """
        for line in data.split(b"\n")[:-1]:
            self.lines[ip] += 1
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
    """

    def __init__(self, clock: Clock, rng: Any) -> None:
        super().__init__(clock)
        self.rng = rng
        self.faults: dict[tuple[str, str], LinkFaults] = {}
        self.default = LinkFaults()
        self.counters: Counter[str] = Counter()
        self.copies = CopyCounter()
        self._directions: dict[int, tuple[Any, _Direction]] = {}
        self.deaf: set[str] = set()
        """Hosts that read nothing now (a C{non-reader} adversary)."""

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


# The fault plan ---------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """
    One step of a fault plan at time C{at} (seconds from the start).
    """

    at: float
    kind: str
    """C{partition}, C{heal}, C{crash}, C{restart}, C{faults},
    C{faults-clear}, C{step-crash} (arm a crash inside the node's next
    consensus step; its C{restart} follows)."""
    nodes: tuple[int, ...] = ()
    other: tuple[int, ...] = ()
    faults: LinkFaults | None = None
    detail: str = ""
    """C{step-crash}: where in the step (L{STEP_CRASH_MODES}) and which
    step (L{STEP_CRASH_STEPS})."""

    def describe(self, names: list[str]) -> str:
        """
        A one-line description.
        """
        who = ",".join(names[i] for i in self.nodes)
        if self.detail:
            return f"t={self.at:6.1f} {self.kind} {who} ({self.detail})"
        if self.kind in ("partition", "heal"):
            rest = ",".join(names[i] for i in self.other)
            return f"t={self.at:6.1f} {self.kind} [{who}] | [{rest}]"
        if self.kind.startswith("faults"):
            rest = ",".join(names[i] for i in self.other)
            what = "clean" if self.faults is None else \
                self.faults.describe()
            return f"t={self.at:6.1f} link {who}<->{rest}: {what}"
        return f"t={self.at:6.1f} {self.kind} {who}"


STEP_CRASH_MODES = ("before-sign", "unrecorded", "recorded")
"""Where inside a consensus step a C{step-crash} kills the node:
C{before-sign}: it decided (its lock and step moved on in memory) and dies
before signing; C{unrecorded}: it signed and issued the durable write of
its signing state, and dies before the write is done (lost) and before the
message left; C{recorded}: the same, but the write is done (kept)."""
STEP_CRASH_STEPS = ("proposal", "prevote", "precommit", "any")
"""Which signing step a C{step-crash} waits for."""
_STEP_NAMES = {number: name for name, number in SIGN_STEPS.items()}


@dataclass(frozen=True)
class LifecyclePlan:
    """
    The masternode lifecycle of a run, drawn from the seed; the
    L{Lifecycle} driver carries it out when the chain lets it.

    @ivar joiners: hosts outside the genesis that register mid-run.
    @ivar join_at: when each is funded (then it registers; its node
        activates by itself).
    @ivar back: the honest genesis masternode that crashes at C{back_at}
        or later (once every joiner is active), stays down until the chain
        has set it aside and C{min_away} plus C{back_extra} blocks have
        passed, then restarts; its node activates it again by itself.
    @ivar stop: the honest genesis masternode stopped for good at
        C{stop_at} or later (once C{back} is set aside): never restarted,
        the chain must set it aside.

    One at a time, so that the honest running weight stays a quorum of
    the active weight with three joiners and two Byzantine masternodes.
    """

    joiners: tuple[int, ...]
    join_at: tuple[float, ...]
    stop: int
    stop_at: float
    back: int
    back_at: float
    back_extra: int

    def describe(self, names: list[str]) -> list[str]:
        """
        The plan, one line per item.
        """
        lines = [f"t>={at:6.1f} {names[j]} is funded and registers"
                 for j, at in zip(self.joiners, self.join_at)]
        lines.append(f"t>={self.back_at:6.1f} {names[self.back]} stops "
                     f"until set aside for min_away+{self.back_extra} "
                     "blocks, then returns (once the joiners are active)")
        lines.append(f"t>={self.stop_at:6.1f} {names[self.stop]} stops for "
                     f"good (once {names[self.back]} is set aside)")
        return lines


@dataclass(frozen=True)
class FaultPlan:
    """
    Everything the run does to the network and the nodes, drawn from a
    seed: background link faults, timed events, clock skews, the
    behaviours of each Byzantine node and the masternode lifecycle.
    """

    background: LinkFaults
    events: tuple[Event, ...]
    skew: tuple[float, ...]
    byzantine: dict[int, frozenset[str]]
    lifecycle: LifecyclePlan | None = None

    @classmethod
    def draw(cls, rng: Any, nodes: int, byzantine: int, duration: float,
             faults: bool = True, max_skew: float = 3.0, joiners: int = 0,
             lifecycle: bool = False, step_crashes: int = 0,
             max_outage: float | None = None) -> FaultPlan:
        """
        A random plan for C{nodes} genesis masternodes of which
        C{byzantine} are Byzantine, plus C{joiners} honest hosts outside
        the genesis, over C{duration} seconds.  With C{faults} false only
        the Byzantine behaviours remain.  With C{lifecycle}, joiners
        register, one honest masternode stops for good and another comes
        back (L{LifecyclePlan}), and no other outage (crash, partition)
        lasts more than C{max_outage} seconds, so that only those two are
        set aside.  Up to C{step_crashes} honest nodes crash inside a
        consensus step.  Without these options the plan is the one
        earlier versions drew from the same seed.
        """
        byz = sorted(rng.sample(range(nodes), byzantine))
        behaviours = {i: frozenset(rng.sample(sorted(CONSENSUS_BEHAVIOURS),
                                              rng.randint(2, 4)))
                      for i in byz}
        # The P2P behaviours come from a stream of their own, so a seed
        # draws the rest of the plan it drew before them.  Not in
        # lifecycle runs yet: with them, planned lifecycle events did not
        # all happen (joiners, the returning masternode; not analysed).
        p2p_rng = random.Random(repr(rng.getstate()))
        behaviours = {i: b | {p for p in sorted(P2P_BEHAVIOURS)
                              if p2p_rng.random() < 0.5 and not lifecycle}
                      for i, b in behaviours.items()}
        hosts = nodes + joiners
        if not faults:
            return cls(LinkFaults(), (), (0.0,) * hosts, behaviours)
        honest = [i for i in range(nodes) if i not in byz]
        plan: LifecyclePlan | None = None
        if lifecycle:
            stop, back = rng.sample(honest, 2)
            honest = [i for i in honest if i not in (stop, back)]
            plan = LifecyclePlan(
                tuple(range(nodes, hosts)),
                tuple(rng.uniform(1, duration / 6) for _ in range(joiners)),
                stop, rng.uniform(duration / 4, duration / 2), back,
                rng.uniform(duration / 6, duration / 3), rng.randint(0, 3))
        outage = 25.0 if max_outage is None else max_outage
        down = 20.0 if max_outage is None else max_outage
        background = LinkFaults()
        if rng.random() < 0.7:
            background = LinkFaults(
                drop=rng.uniform(0, 0.05), duplicate=rng.uniform(0, 0.05),
                delay=rng.uniform(0, 0.3), max_delay=rng.uniform(0.05, 1.5),
                reorder=rng.uniform(0, 0.3),
                latency=rng.uniform(0.001, 0.05))
        events: list[Event] = []
        for _ in range(rng.randint(0, nodes)):
            a, b = rng.sample(range(nodes), 2)
            start = rng.uniform(0, duration)
            end = min(duration, start + rng.uniform(2, 15))
            heavy = LinkFaults(
                drop=rng.uniform(0, 0.3), duplicate=rng.uniform(0, 0.2),
                delay=rng.uniform(0, 0.6), max_delay=rng.uniform(0.1, 3.0),
                reorder=rng.uniform(0, 0.5), latency=rng.uniform(0, 0.2))
            events.append(Event(start, "faults", (a,), (b,), heavy))
            events.append(Event(end, "faults-clear", (a,), (b,)))
        for _ in range(rng.randint(0, 3)):
            start = rng.uniform(0, duration - 1)
            end = min(duration, start + rng.uniform(1, outage))
            if rng.random() < 0.5:
                side = [rng.randrange(nodes)]
            else:
                side = rng.sample(range(nodes), rng.randint(1, nodes // 2))
            rest = [i for i in range(hosts) if i not in side]
            events.append(Event(start, "partition", tuple(sorted(side)),
                                tuple(rest)))
            events.append(Event(end, "heal", tuple(sorted(side)),
                                tuple(rest)))
        for i in rng.sample(honest, rng.randint(0, min(3, len(honest)))):
            start = rng.uniform(0, duration - 1)
            end = min(duration, start + rng.uniform(1, down))
            events.append(Event(start, "crash", (i,)))
            events.append(Event(end, "restart", (i,)))
        skew = tuple(rng.uniform(-max_skew, max_skew)
                     if rng.random() < 0.3 else 0.0 for _ in range(nodes))
        if joiners:
            skew += tuple(rng.uniform(-max_skew, max_skew)
                          if rng.random() < 0.3 else 0.0
                          for _ in range(joiners))
        if step_crashes:
            targets = honest + list(range(nodes, hosts))
            for _ in range(rng.randint(1, step_crashes)):
                i = rng.choice(targets)
                start = rng.uniform(2, duration - 10)
                mode = rng.choice(STEP_CRASH_MODES)
                step = rng.choice(STEP_CRASH_STEPS)
                events.append(Event(start, "step-crash", (i,),
                                    detail=f"{mode} {step}"))
                events.append(Event(start + rng.uniform(0.5, min(8, down)),
                                    "restart", (i,)))
        events.sort(key=lambda e: (e.at, e.kind, e.nodes, e.other))
        return cls(background, tuple(events), skew, behaviours, plan)

    def describe(self, names: list[str]) -> list[str]:
        """
        The plan, one line per item.
        """
        lines = [f"background link faults: {self.background.describe()}"]
        lines += [f"clock skew {names[i]}: {s:+.2f}s"
                  for i, s in enumerate(self.skew) if s]
        lines += [f"byzantine {names[i]}: {', '.join(sorted(b))}"
                  for i, b in sorted(self.byzantine.items())]
        if self.lifecycle is not None:
            lines += self.lifecycle.describe(names)
        lines += [e.describe(names) for e in self.events]
        return lines


# Storage ----------------------------------------------------------------


class GroupCommitStore(MemoryStore):
    """
    A L{MemoryStore} whose finality-record writes wait for a group commit
    C{delay} seconds after the first, as L{timecoin.storage.sqlite}'s do
    under a real node: their Deferreds fire late, and a crash loses what
    was not committed yet (L{lose_pending}).  Block writes, record reads
    and C{close} commit what is queued first.
    """

    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self._queued: list[tuple[bytes, bytes | None,
                                 defer.Deferred[None]]] = []
        self._call: Any = None
        self.trap: Callable[[bytes], bool] | None = None
        """Armed by a C{step-crash}: given each signing-state value
        written; when it says so, that write and every later meta write
        are held (not done, their Deferreds unfired) until L{release}: the
        process is dying in the middle of the write."""
        self.held: list[tuple[str, bytes]] | None = None

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        if self.held is None and self.trap is not None and \
                key == SIGNING_STATE_KEY and self.trap(value):
            self.trap = None
            self.held = []
        if self.held is not None:
            self.held.append((key, value))
            return defer.Deferred()
        return super().put_meta(key, value)

    def release(self, keep: bool) -> None:
        """
        The process died during the held writes: they are done (C{keep},
        the disk got them) or lost.
        """
        held, self.held = self.held or [], None
        if keep:
            for key, value in held:
                super().put_meta(key, value)

    def _queue(self, txid: bytes, record: bytes | None
               ) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self._queued.append((txid, record, d))
        if self._call is None:
            self._call = self.clock.callLater(self.delay, self.commit)
        return d

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        return self._queue(txid, record)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        return self._queue(txid, None)

    def commit(self) -> None:
        """
        Apply the queued record writes in order, then fire their Deferreds.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        queued, self._queued = self._queued, []
        for txid, record, _ in queued:
            if record is None:
                super().delete_tx_record(txid)
            else:
                super().put_tx_record(txid, record)
        for _, _, d in queued:
            d.callback(None)

    def lose_pending(self) -> None:
        """
        The process died: queued writes never happen, their Deferreds never
        fire.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._queued = []

    def apply_block(self, change: Any) -> defer.Deferred[None]:
        self.commit()
        return super().apply_block(change)

    def revert_block(self, change: Any) -> defer.Deferred[None]:
        self.commit()
        return super().revert_block(change)

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        self.commit()
        return super().get_tx_record(txid)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        self.commit()
        return super().load_tx_records()

    def close(self) -> defer.Deferred[None]:
        self.commit()
        return super().close()


# Nodes ------------------------------------------------------------------


class SimNode:
    """
    One simulated host: a masternode key, an IP, a data dir, a memory
    store kept across crashes, and (while up) a node and its P2P service.
    """

    def __init__(self, index: int, key: PrivateKey, ip: str, datadir: Path,
                 offset: float, byzantine: bool,
                 store: MemoryStore | None = None) -> None:
        self.index = index
        self.key = key
        self.ip = ip
        self.datadir = datadir
        self.offset = offset
        self.byzantine = byzantine
        self.name = f"n{index}" + ("*" if byzantine else "")
        self.store = store if store is not None else MemoryStore()
        self.node: Node | None = None
        self.service: P2PService | None = None
        self.starting: Node | None = None
        """A node started but not yet ready (its chain loading)."""
        self.starts = 0
        self.trap: tuple[str, str] | None = None
        """An armed C{before-sign} step crash: (mode, step)."""
        self.dying: tuple[Node, bool] | None = None
        """A step crash hit this node: it dies at the end of the step,
        its held signing-state write kept or lost."""

    @property
    def up(self) -> bool:
        """
        Whether the node is running.
        """
        return self.service is not None


class Adversary:
    """
    The extra, hostile behaviour of one Byzantine masternode, on top of the
    node's honest code.  It signs with the node's own key and sends through
    the node's own connections (so the link faults apply to it too).

    Behaviours (any subset):
    - C{equivocate}: as proposer, sign a second block for the same round
      and send each to half of the peers.
    - C{double-vote}: send a conflicting prevote/precommit to half of the
      peers; approve both transactions of every double spend.
    - C{forge}: send votes and proposals with bad signatures, in others'
      names too.
    - C{replay}: re-send old proposals and votes (its own and others').
    - C{spam}: bursts of valid-looking votes for unknown transactions and
      duplicates.
    - C{silent}: withhold most of its own proposals and votes.
    - C{height-liar}: its C{hello} and C{tip} claim L{HEIGHT_LIE} more
      blocks than it has; it never answers C{get_blocks}.
    - C{non-reader}: for spells of 10-40 s it reads nothing peers send
      (L{SimNetwork.deaf}): their output to it piles up in their
      transports until they drop it.
    - C{address-poisoner}: answers C{get_peers} with a full reply of
      unreachable addresses (10.99.x.y).  It does not push them
      unasked: an unsolicited C{peers} is an offence.
    """

    def __init__(self, host: SimNode, behaviours: frozenset[str],
                 rng: Any, clock: Clock, masternodes: list[bytes],
                 net: SimNetwork | None = None) -> None:
        self.host = host
        self.net = net
        self._deaf: tuple[Any, list[Any]] | None = None
        self.behaviours = behaviours
        self.rng = rng
        self.clock = clock
        self.masternodes = masternodes
        self.counters: Counter[str] = Counter()
        self.bank: deque[Message] = deque(maxlen=300)
        self.twins: dict[tuple[int, int], bytes] = {}
        self._call: Any = None

    def attach(self) -> None:
        """
        Take over the node's consensus outbox; start the periodic mischief.
        """
        node, service = self.host.node, self.host.service
        assert node is not None and service is not None
        cast = service.consensus.cast
        outbox = node.consensus.outbox
        outbox[:] = [self.cast if cb == cast else cb for cb in outbox]
        if "height-liar" in self.behaviours:
            self._lie(service)
        if "address-poisoner" in self.behaviours:
            vars(service.manager)["_serve_peers"] = self._poison
        self._schedule()

    def _lie(self, service: P2PService) -> None:
        """
        Patch this node's own service (only): claim a far height in
        C{hello} and C{tip}, never serve C{get_blocks}.
        """
        manager, counters = service.manager, self.counters
        honest_hello = manager.local_hello

        def hello() -> Hello:
            counters["lied-hellos"] += 1
            mine = honest_hello()
            return replace(mine, height=mine.height + HEIGHT_LIE)

        def tip(conn: Any, msg: GetTip) -> None:
            counters["lied-tips"] += 1
            chain = service.node.chain
            conn.send(Tip(msg.id, chain.height + HEIGHT_LIE, chain.tip.hash))

        def blocks(conn: Any, msg: Any) -> None:
            counters["unanswered-get-blocks"] += 1

        # Instance attributes: the routes and the handshake look these
        # up by name on this service's objects (no other node's).
        vars(manager).update(local_hello=hello, _serve_tip=tip)
        vars(service.sync)["serve_blocks"] = blocks

    def _poison(self, conn: Any, msg: GetPeers) -> None:
        rng = self.rng
        bogus = tuple(f"10.99.{rng.randrange(256)}.{rng.randrange(1, 255)}:"
                      f"{PORT}" for _ in range(MAX_PEERS_PER_REPLY))
        conn.send(Peers(msg.id, bogus))
        self.counters["poisoned-replies"] += 1
        self.counters["poisoned-addresses"] += len(bogus)

    def _deafen(self) -> None:
        """
        Start a spell of reading nothing; it ends by itself.
        """
        assert self.net is not None
        self.net.deaf.add(self.host.ip)
        links = self.net.connections(self.host.ip)
        call = self.clock.callLater(self.rng.uniform(10, 40), self._hear)
        self._deaf = (call, links)
        self.counters["deaf-spells"] += 1

    def _hear(self) -> None:
        """
        End a spell: count what piled up for it and the connections
        peers dropped meanwhile, and read again.
        """
        if self._deaf is None or self.net is None:
            return
        call, links = self._deaf
        self._deaf = None
        if call.active():
            call.cancel()
        ip = self.host.ip
        unread = sum(sum(map(len, (link.client if link.server_ip == ip
                                   else link.server).stream))
                     for link in self.net.connections(ip))
        self.counters["unread-bytes-max"] = max(
            self.counters["unread-bytes-max"], unread)
        self.counters["dropped-while-deaf"] += sum(
            1 for link in links if link not in self.net.links)
        self.net.deaf.discard(ip)

    def _schedule(self) -> None:
        self._call = self.clock.callLater(self.rng.uniform(0.5, 3.0),
                                          self.tick)

    def stop(self) -> None:
        """
        Stop the periodic mischief.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._hear()

    def _peers(self) -> list[Any]:
        service = self.host.service
        return [] if service is None else list(service.manager.ready.values())

    def _send(self, message: Message, peers: Iterable[Any] | None = None,
              bank: bool = True) -> None:
        for conn in self._peers() if peers is None else peers:
            conn.send(message)
        if bank:
            self.bank.append(message)

    def _halves(self) -> tuple[list[Any], list[Any]]:
        peers = self._peers()
        self.rng.shuffle(peers)
        return peers[::2], peers[1::2]

    def cast(self, message: Proposal | BlockVote) -> None:
        """
        The node signed a proposal or vote: send it, or misbehave with it.
        """
        node = self.host.node
        service = self.host.service
        assert node is not None and service is not None
        service.consensus.seen.add(message.id)
        if "silent" in self.behaviours and self.rng.random() < 0.7:
            self.counters["withheld"] += 1
            return
        wrap = ProposalMsg if isinstance(message, Proposal) else BlockVoteMsg
        network = node.chain.network.name
        signer = message.proposer if isinstance(message, Proposal) \
            else message.voter
        if signer != self.host.key.public:
            # Others' votes re-sent as a proof of lock: pass them on.
            self._send(wrap(message))  # type: ignore[arg-type]
            return
        if isinstance(message, Proposal) and "equivocate" in self.behaviours:
            block = message.block
            header = replace(block.header, timestamp=block.header.timestamp
                             + 1 + self.rng.randrange(500))
            twin_block = sign_block(self.host.key, network, header,
                                    block.txs, block.commit)
            twin = sign_proposal(self.host.key, network, twin_block,
                                 message.round, message.valid_round)
            self.twins[(message.height, message.round)] = twin_block.hash
            a, b = self._halves()
            self._send(wrap(message), a)  # type: ignore[arg-type]
            self._send(ProposalMsg(twin), b)
            self.counters["equivocated"] += 1
            return
        if isinstance(message, BlockVote) and \
                "double-vote" in self.behaviours:
            other = NIL
            if message.block_hash == NIL:
                other = self.twins.get((message.height, message.round),
                                       self.rng.randbytes(32))
            twin_vote = sign_vote(self.host.key, network, message.phase,
                                  message.height, message.round, other)
            a, b = self._halves()
            self._send(wrap(message), a)  # type: ignore[arg-type]
            self._send(BlockVoteMsg(twin_vote), b)
            self.counters["double-voted"] += 1
            return
        self._send(wrap(message))  # type: ignore[arg-type]

    def double_spend(self, first: Transaction, second: Transaction) -> None:
        """
        The workload made a double spend: approve both halves of it.
        """
        node = self.host.node
        if "double-vote" not in self.behaviours or node is None:
            return
        for tx in (first, second):
            vote = sign_tx_vote(self.host.key, node.chain.network.name,
                                tx.txid, APPROVE, node.chain.height)
            self._send(TxVoteMsg(vote))
        self.counters["double-approved"] += 1

    def tick(self) -> None:
        """
        One round of periodic mischief.
        """
        self._schedule()
        node = self.host.node
        if node is None or not self._peers():
            return
        self._collect(node)
        if "forge" in self.behaviours and self.rng.random() < 0.3:
            self._forge(node)
        if "replay" in self.behaviours and self.bank:
            for _ in range(self.rng.randint(1, 10)):
                old = self.bank[self.rng.randrange(len(self.bank))]
                self._send(old, bank=False)
                self.counters["replayed"] += 1
        if "spam" in self.behaviours:
            self._spam(node)
        if "non-reader" in self.behaviours and self._deaf is None and \
                self.rng.random() < 0.1:
            self._deafen()

    def _collect(self, node: Node) -> None:
        engine = node.consensus
        for proposal in list(engine.proposals.values())[:2]:
            self.bank.append(ProposalMsg(proposal))
        for box in list(engine.votes.values())[:4]:
            for vote in list(box.values())[:2]:
                self.bank.append(BlockVoteMsg(vote))
        for entry in list(node.mempool.entries.values())[:3]:
            for held in list(entry.votes.values())[:2]:
                if isinstance(held, TxVote):
                    self.bank.append(TxVoteMsg(held))

    def _forge(self, node: Node) -> None:
        engine = node.consensus
        victim = self.rng.choice(self.masternodes)
        phase = self.rng.choice((PREVOTE, PRECOMMIT))
        fake = BlockVote(phase, engine.height, engine.round,
                         self.rng.randbytes(32), victim,
                         self.rng.randbytes(64))
        self._send(BlockVoteMsg(fake), bank=False)
        txid = self.rng.randbytes(32)
        for entry in list(node.mempool.entries.values())[:1]:
            txid = entry.tx.txid
        self._send(TxVoteMsg(TxVote(txid, APPROVE, node.chain.height,
                                    victim, self.rng.randbytes(64))),
                   bank=False)
        for proposal in list(engine.proposals.values())[:1]:
            self._send(ProposalMsg(replace(
                proposal, signature=self.rng.randbytes(64))), bank=False)
        self.counters["forged"] += 1

    def _spam(self, node: Node) -> None:
        network = node.chain.network.name
        for _ in range(self.rng.randint(5, 40)):
            vote = sign_tx_vote(self.host.key, network,
                                self.rng.randbytes(32), APPROVE,
                                node.chain.height)
            self._send(TxVoteMsg(vote), bank=False)
        for entry in list(node.mempool.entries.values())[:5]:
            self._send(TxMsg(entry.tx), bank=False)
        self.counters["spam-bursts"] += 1


CONSENSUS_BEHAVIOURS = frozenset({"equivocate", "double-vote", "forge",
                                  "replay", "spam", "silent"})
P2P_BEHAVIOURS = frozenset({"height-liar", "non-reader", "address-poisoner"})
BEHAVIOURS = CONSENSUS_BEHAVIOURS | P2P_BEHAVIOURS
HEIGHT_LIE = 1_000_000


# Workload ---------------------------------------------------------------


@dataclass
class _Coin:
    outpoint: OutPoint
    value: int
    owner: int


@dataclass
class _InFlight:
    tx: Transaction
    at: float
    pair: bytes | None = None


class Workload:
    """
    Signed payments between the workload wallets, submitted to random
    running nodes at C{rate} per second; a fraction are double spends (two
    payments of one coin submitted to two nodes at once).  It spends
    genesis coins and the outputs of payments it saw finalized.
    """

    def __init__(self, sim: Simulation, rng: Any, rate: float,
                 double_spends: float) -> None:
        self.sim = sim
        self.rng = rng
        self.rate = rate
        self.double_spends = double_spends
        self.keys = [wallet_key(i) for i in range(WALLETS)]
        self.addresses = [_addr(k) for k in self.keys]
        self.coins: list[_Coin] = []
        self.inflight: dict[bytes, _InFlight] = {}
        self.counters: Counter[str] = Counter()
        self._budget = 0.0

    def fund(self, genesis: Block) -> None:
        """
        Take the genesis outputs paid to the workload wallets.
        """
        coinbase = genesis.txs[0]
        for vout, out in enumerate(coinbase.outputs):
            if out.address in self.addresses:
                self.coins.append(_Coin(OutPoint(coinbase.txid, vout),
                                        out.value,
                                        self.addresses.index(out.address)))

    def tick(self, now: float, step: float) -> None:
        """
        Learn which payments finalized, then submit this step's share.
        """
        finalized = self.sim.checker.finalized
        for txid in list(self.inflight):
            flight = self.inflight[txid]
            if txid in finalized:
                del self.inflight[txid]
                self.counters["finalized"] += 1
                for vout, out in enumerate(flight.tx.outputs):
                    self.coins.append(_Coin(
                        OutPoint(txid, vout), out.value,
                        self.addresses.index(out.address)))
            elif now - flight.at > self.sim.config.vote_timeout + 10:
                del self.inflight[txid]
                self.counters["never-finalized"] += 1
        self._budget += self.rate * step
        while self._budget >= 1:
            self._budget -= 1
            self._submit_one()

    def _payment(self, coin: _Coin) -> Transaction:
        to = self.rng.randrange(WALLETS)
        amount = self.rng.randint(1, 20) * 100_000
        fee = params.min_fee(amount if to != coin.owner else 0)
        outputs = [TxOut(amount, self.addresses[to])]
        change = coin.value - amount - fee
        if change >= params.DUST_LIMIT:
            outputs.append(TxOut(change, self.addresses[coin.owner]))
        key = self.keys[coin.owner]
        tx = Transaction((TxIn(coin.outpoint, key.public),), tuple(outputs))
        return sign_inputs(tx, NETWORK.name, [key])

    def _submit_one(self) -> None:
        targets = [n for n in self.sim.nodes if n.up]
        usable = [c for c in self.coins if c.value > 3_000_000]
        if not targets or not usable:
            self.counters["starved"] += 1
            return
        coin = usable[self.rng.randrange(len(usable))]
        self.coins.remove(coin)
        first = self._payment(coin)
        now = self.sim.now
        self.inflight[first.txid] = _InFlight(first, now)
        self._to(self.rng.choice(targets), first)
        self.counters["payments"] += 1
        if self.rng.random() < self.double_spends:
            second = self._payment(coin)
            if second.txid == first.txid:
                return
            self.inflight[second.txid] = _InFlight(second, now, first.txid)
            self.inflight[first.txid].pair = second.txid
            self._to(self.rng.choice(targets), second)
            self.counters["double-spends"] += 1
            for adversary in self.sim.adversaries:
                adversary.double_spend(first, second)

    def _to(self, host: SimNode, tx: Transaction) -> None:
        assert host.node is not None
        d = host.node.submit(tx)
        d.addCallbacks(lambda _: self.counters.update(["accepted"]),
                       lambda f: self.counters.update(
                           [f"refused:{getattr(f.value, 'reason', '?')}"]))


# Lifecycle --------------------------------------------------------------


class Lifecycle:
    """
    Carries out a L{LifecyclePlan} as the chain allows: funds each joiner
    from its genesis bank coin and has its node register (the real
    L{build_registration} and C{submit}; the node then activates by
    itself), stops one masternode for good once every joiner is active,
    and stops another until the chain has set it aside and it may come
    back, then restarts it (its node activates it again by itself).

    @ivar away: hosts down until the chain sets them aside (the returning
        masternode).
    @ivar stopped_at: the honest tip height when the stopped-for-good
        masternode stopped.
    @ivar back_at: the honest tip height when the returning one restarted.
    """

    def __init__(self, sim: Simulation, plan: LifecyclePlan) -> None:
        self.sim = sim
        self.plan = plan
        self.state = {j: "waiting" for j in plan.joiners}
        self.sent: dict[int, float] = {}
        self.funding: dict[int, Transaction] = {}
        self.away: set[int] = set()
        self.stopped_at: int | None = None
        self.crashed_back: int | None = None
        self.back_at: int | None = None
        self.aside: dict[int, int] = {}
        """Hosts the plan did not stop, set aside by the chain: since."""
        self.counters = sim.counters

    def reference(self) -> Node | None:
        """
        The honest running node with the highest committed tip.
        """
        best = None
        for host in self.sim.nodes:
            node = host.node
            if node is not None and not host.byzantine and (
                    best is None or node.chain.height > best.chain.height):
                best = node
        return best

    def status(self, i: int) -> Any:
        """
        Host C{i}'s masternode status at the reference tip.
        """
        ref = self.reference()
        return None if ref is None else \
            ref.chain.mn_status(self.sim.nodes[i].key.public)

    def _log(self, text: str) -> None:
        self.sim.timeline.append(f"t={self.sim.now:6.1f} {text}")

    def tick(self, now: float) -> None:
        """
        One step of the plan.
        """
        plan = self.plan
        for j, at in zip(plan.joiners, plan.join_at):
            if now >= at:
                self._join(j, now)
        joined = all(self.state[j] == "active" for j in plan.joiners)
        sim = self.sim
        late = now >= sim.config.duration - 5
        if self.crashed_back is None and joined and now >= plan.back_at \
                and not late:
            host = sim.nodes[plan.back]
            ref = self.reference()
            self.crashed_back = ref.chain.height if ref else 0
            self.away.add(plan.back)
            sim.down.discard(plan.back)
            self._disarm_back()
            self._log(f"lifecycle: {host.name} stops, to come back once set "
                      "aside")
            self.counters["stopped-to-return"] += 1
            sim.crash(host)
        back = self.status(plan.back)
        back_aside = back is not None and back.state == SET_ASIDE
        if self.stopped_at is None and back_aside and now >= plan.stop_at \
                and not late and plan.stop not in sim.gone:
            host = sim.nodes[plan.stop]
            ref = self.reference()
            self.stopped_at = ref.chain.height if ref else 0
            sim.gone.add(plan.stop)
            sim.down.discard(plan.stop)
            self._log(f"lifecycle: {host.name} stops for good at height "
                      f"{self.stopped_at}")
            self.counters["stopped-for-good"] += 1
            sim.crash(host)
        if plan.back in self.away:
            back = self.status(plan.back)
            ref = self.reference()
            rules = ref.chain.rules if ref else None
            if back is not None and back.state == SET_ASIDE and \
                    ref is not None and rules is not None and \
                    ref.chain.height >= back.since + rules.min_away \
                    + plan.back_extra:
                self.restart_back(f"set aside at {back.since}")
        ref = self.reference()
        if ref is not None:
            for host in sim.nodes:
                status = ref.chain.mn_status(host.key.public)
                if status is None or status.state != SET_ASIDE or \
                        host.index in (plan.stop, plan.back):
                    continue
                if self.aside.get(host.index) != status.since:
                    self.aside[host.index] = status.since
                    self.counters["unplanned-set-aside"] += 1
                    self._log(f"lifecycle: {host.name} set aside at "
                              f"{status.since} (unplanned): "
                              f"{status.reason}")
        for j in plan.joiners:
            if self.state[j] != "active":
                status = self.status(j)
                if status is not None and status.state == ACTIVE:
                    self.state[j] = "active"
                    self.counters["joiner-active"] += 1
                    self._log(f"lifecycle: {sim.nodes[j].name} is active "
                              f"from height {status.since}")

    def _disarm_back(self) -> None:
        self.sim._disarm(self.sim.nodes[self.plan.back])

    def restart_back(self, why: str) -> None:
        """
        Start the returning masternode again.
        """
        sim = self.sim
        host = sim.nodes[self.plan.back]
        self.away.discard(self.plan.back)
        ref = self.reference()
        self.back_at = ref.chain.height if ref else 0
        self._log(f"lifecycle: {host.name} restarts ({why}) at height "
                  f"{self.back_at}")
        self.counters["returned" if why.startswith("set aside")
                      else "restarted-never-set-aside"] += 1
        if not host.up and host.starting is None:
            sim.start(host)

    def _join(self, j: int, now: float) -> None:
        sim = self.sim
        host = sim.nodes[j]
        state = self.state[j]
        node = host.node
        if state == "waiting":
            self.funding[j] = self._funding_tx(j)
            self._submit(j, self.funding[j], "funding", now)
            self.state[j] = "funding"
            return
        if state == "funding" and node is not None:
            fund = self.funding[j].txid
            mine = {op for op, _ in node.spendable()}
            collateral = OutPoint(fund, 0)
            if collateral in mine and OutPoint(fund, 1) in mine:
                try:
                    tx = build_registration(
                        node.wallet, node.spendable(), node.key,
                        f"{host.ip}:{PORT}", node.wallet.addresses()[0],
                        collateral, NETWORK.name)
                except WalletError as e:
                    self.counters[f"registration-error:{e}"] += 1
                    return
                self._submit(j, tx, "registration", now)
                self.state[j] = "registering"
            elif now - self.sent[j] > 15:
                self._submit(j, self.funding[j], "funding again", now)
            return
        if state == "registering":
            status = self.status(j)
            if status is not None:
                self.state[j] = "registered"
                self._log(f"lifecycle: {host.name} registered at height "
                          f"{status.since}")
                self.counters["joiner-registered"] += 1
            elif now - self.sent[j] > 20:
                self.state[j] = "funding"
                self.sent[j] = now

    def _funding_tx(self, j: int) -> Transaction:
        sim = self.sim
        coinbase = sim.genesis.txs[0]
        bank = _addr(bank_key())
        vouts = [v for v, out in enumerate(coinbase.outputs)
                 if out.address == bank]
        vout = vouts[self.plan.joiners.index(j)]
        to = _addr(sim.nodes[j].key)
        fee = params.min_fee(COLLATERAL + FEE_COIN)
        tx = Transaction(
            (TxIn(OutPoint(coinbase.txid, vout), bank_key().public),),
            (TxOut(COLLATERAL, to), TxOut(FEE_COIN, to),
             TxOut(BANK_COIN - COLLATERAL - FEE_COIN - fee, bank)))
        return sign_inputs(tx, NETWORK.name, [bank_key()])

    def _submit(self, j: int, tx: Transaction, what: str,
                now: float) -> None:
        sim = self.sim
        self.sent[j] = now
        host = sim.nodes[j]
        if host.node is None:
            targets = [h for h in sim.nodes if h.up and not h.byzantine]
            if not targets:
                return
            host = targets[int(now * 10) % len(targets)]
        assert host.node is not None
        self._log(f"lifecycle: {what} of {sim.nodes[j].name} "
                  f"{_short(tx.txid)} to {host.name}")
        d = host.node.submit(tx)
        d.addErrback(lambda f: self.counters.update(
            [f"lifecycle-refused:{getattr(f.value, 'reason', '?')}"]))


# Invariants -------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """
    A broken invariant: which, when (simulated seconds from the start) and
    why.
    """

    invariant: str
    at: float
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] t={self.at:.1f}s {self.detail}"


SLACK = 12
"""Blocks a running node is given to have its activation mined."""

NOTED = frozenset({"tx-equivocation"})
"""Found and reported in the statistics, not failing a run: an honest
masternode's approval and later rejection of one transaction, more than
C{VOTE_HEIGHT_WINDOW} blocks apart (its memory of the inputs it approved
for a rejected transaction lasts that long; a replayed transaction met
after it gets a rejection).  Transaction finality, not block consensus;
see docs/simulation.md."""

NOT_PROMISED = frozenset({"fork", "utxo", "double-spend", "finality",
                          "liveness", "status", "critical-log", "lifecycle",
                          "bookkeeping"})
"""What a run no longer promises once the chain set aside so many honest
masternodes that the Byzantine ones hold a third of the active weight."""


class Checker:
    """
    The invariants, checked after every step (L{check}) and at the end
    (L{final}).  Violations accumulate in L{violations} (each distinct
    one once).
    """

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.violations: list[Violation] = []
        self._said: set[str] = set()
        self.committed: dict[int, tuple[bytes, str]] = {}
        self.utxo: dict[int, tuple[bytes, str]] = {}
        self.finalized: dict[bytes, set[str]] = {}
        self.txs: dict[bytes, Transaction] = {}
        self.spender: dict[OutPoint, tuple[bytes, str]] = {}
        self.node_finalized: dict[str, set[bytes]] = {}
        self.node_rejected: dict[str, dict[bytes, str]] = {}
        self.scanned: dict[str, int] = {}
        self._reported: dict[int, set[bytes]] = {}
        """Per node object (one process lifetime): txids it reported
        finalized."""
        self._refusals: dict[str, int] = {}
        self.signed: dict[tuple[bytes, int, int, str], tuple[bytes, str]] = {}
        """What each honest key sent, over every life of its node: (key,
        height, round, step) -> (block hash, who saw it)."""
        self._evidence: dict[int, tuple[int, int]] = {}
        self.statuses: dict[int, tuple[bytes, str]] = {}
        """Per height: a digest of the masternode statuses after that block
        (who is registered, active, set aside, since when) and the node
        that held it first."""
        self.beyond: tuple[int, str] | None = None
        """The first height whose active set gives the Byzantine
        masternodes a third of the weight or more (the chain set aside too
        many honest ones): safety is not promised from there on."""

    def fail(self, invariant: str, detail: str) -> None:
        """
        Record a violation (once).
        """
        key = f"{invariant}:{detail}"
        if key in self._said:
            return
        self._said.add(key)
        violation = Violation(invariant, self.sim.now, detail)
        self.violations.append(violation)
        log.error("invariant broken: {violation}", violation=str(violation))

    def watch(self, host: SimNode) -> None:
        """
        Hook a freshly started node.
        """
        assert host.node is not None
        self._refusals[host.name] = 0
        if host.byzantine:
            return
        node = host.node
        node.finality.finalized.append(
            lambda txid, _latency: self._finalized(host, node, txid))
        node.consensus.outbox.append(
            lambda message: self._sent(host, message))

    def _sent(self, host: SimNode, message: Proposal | BlockVote) -> None:
        """
        An honest node let a proposal or vote leave: it must never send two
        different ones for one (height, round, step) of its own key, in
        this life or an earlier one.
        """
        if isinstance(message, Proposal):
            signer, step, block_hash = (message.proposer, "proposal",
                                        message.block.hash)
        else:
            signer, step, block_hash = (message.voter, message.phase,
                                        message.block_hash)
        if signer != host.key.public:
            return
        key = (signer, message.height, message.round, step)
        where = f"{host.name} (start {host.starts})"
        known = self.signed.get(key)
        if known is None:
            self.signed[key] = (block_hash, where)
        elif known[0] != block_hash:
            self.fail("equivocation", f"{host.name} sent two {step}s at "
                      f"height {message.height} round {message.round}: "
                      f"{_short(known[0])} ({known[1]}) and "
                      f"{_short(block_hash)} ({where})")

    def _accusations(self, host: SimNode) -> None:
        """
        No node (Byzantine ones included: they run the honest code for
        what they receive) holds equivocation evidence against an honest
        masternode, of block consensus or of transaction votes.
        """
        node = host.node
        assert node is not None
        sizes = (len(node.consensus.offences), len(node.finality.equivocations))
        if self._evidence.get(id(node)) == sizes:
            return
        self._evidence[id(node)] = sizes
        honest = {h.key.public: h.name for h in self.sim.nodes
                  if not h.byzantine}
        for signer in node.consensus.offences:
            if signer in honest:
                found = [e for e in node.consensus.evidence
                         if e["signer"] == signer.hex()][-1:]
                self.fail("equivocation", f"{host.name} holds evidence "
                          f"against honest {honest[signer]}: {found}")
        for first, second in node.finality.equivocations.values():
            if first.voter in honest:
                apart = abs(first.height - second.height)
                self.fail("tx-equivocation" if apart > VOTE_HEIGHT_WINDOW
                          else "equivocation", f"{host.name} holds tx-vote "
                          f"evidence against honest {honest[first.voter]} "
                          f"on tx {_short(first.txid)}: {first.decision} "
                          f"at height {first.height}, {second.decision} at "
                          f"height {second.height}")

    def _statuses(self, host: SimNode) -> None:
        """
        Every honest node holds the same masternode statuses (registered,
        active, set aside, since when, why) and the same active set at
        each height it reaches; and notes when the active set gives the
        Byzantine masternodes a third of the weight.
        """
        node = host.node
        assert node is not None
        chain = node.chain
        if chain.tip_commit is None and chain.height > 0:
            return
        height = chain.height
        active = chain.snapshot_for(height + 1)
        items = sorted((pk.hex(), s.pack().decode())
                       for pk, s in chain.status.items())
        digest = sha256(json.dumps(
            [items, sorted(m.pubkey.hex() for m in active)]).encode())
        known = self.statuses.get(height)
        if known is None:
            self.statuses[height] = (digest, host.name)
            self._weights(height, active, chain)
        elif known[0] != digest:
            self.fail("status", f"height {height}: masternode statuses "
                      f"{_short(known[0])} on {known[1]}, {_short(digest)} "
                      f"on {host.name}: {self._describe(chain)}")

    def _describe(self, chain: Any) -> str:
        names = {h.key.public: h.name for h in self.sim.nodes}
        return ", ".join(
            f"{names.get(pk, pk.hex()[:8])} {s.state}@{s.since}"
            for pk, s in sorted(chain.status.items()))

    def _weights(self, height: int, active: Any, chain: Any) -> None:
        byzantine = {h.key.public for h in self.sim.nodes if h.byzantine}
        total = sum(chain.quorum.weight(m) for m in active)
        bad = sum(chain.quorum.weight(m) for m in active
                  if m.pubkey in byzantine)
        if self.beyond is None and total and 3 * bad >= total:
            self.beyond = (height + 1, f"{bad} of {total}")

    def _finalized(self, host: SimNode, node: Node, txid: bytes) -> None:
        if host.node is not node:
            # A crashed node's leftover timers: its state died with it.
            return
        once = self._reported.setdefault(id(node), set())
        if txid in once:
            self.fail("finality", f"{host.name} reported tx {_short(txid)} "
                      "finalized twice")
        once.add(txid)
        entry = node.mempool.entries.get(txid)
        if entry is None:
            return
        tx = entry.tx
        self.node_finalized.setdefault(host.name, set()).add(txid)
        self.finalized.setdefault(txid, set()).add(host.name)
        self.txs[txid] = tx
        self._spends(tx, f"finalized on {host.name}")

    def _spends(self, tx: Transaction, where: str) -> None:
        for txin in tx.inputs:
            known = self.spender.get(txin.prevout)
            if known is None:
                self.spender[txin.prevout] = (tx.txid, where)
            elif known[0] != tx.txid:
                self.fail("double-spend", f"output {_short(txin.prevout.txid)}"
                          f":{txin.prevout.vout} spent by tx "
                          f"{_short(known[0])} ({known[1]}) and by tx "
                          f"{_short(tx.txid)} ({where})")

    def _rejections(self, host: SimNode) -> None:
        assert host.node is not None
        mempool = host.node.mempool
        total = sum(mempool.rejections.values())
        new = total - self._refusals.get(host.name, 0)
        self._refusals[host.name] = total
        if new <= 0:
            return
        recent = []
        for txid, reason in reversed(mempool.rejected.items()):
            recent.append((txid, reason))
            if len(recent) >= new:
                break
        for txid, reason in reversed(recent):
            if reason not in DECISIONS:
                continue
            self.node_rejected.setdefault(host.name, {})[txid] = reason
            if txid in self.node_finalized.get(host.name, ()):
                self.fail("finality", f"{host.name} rejected tx "
                          f"{_short(txid)} ({reason}) after finalizing it")

    def _blocks(self, host: SimNode) -> None:
        node = host.node
        assert node is not None
        chain = node.chain
        top = chain.height if chain.tip_commit is not None else \
            chain.height - 1
        for height in range(self.scanned.get(host.name, 0) + 1, top + 1):
            self._block(host, height)
        self.scanned[host.name] = max(top, self.scanned.get(host.name, 0))
        if chain.tip_commit is not None:
            digest = chain.utxo_hash()
            known = self.utxo.get(chain.height)
            if known is None:
                self.utxo[chain.height] = (digest, host.name)
            elif known[0] != digest:
                self.fail("utxo", f"height {chain.height}: utxo_hash "
                          f"{_short(known[0])} on {known[1]}, "
                          f"{_short(digest)} on {host.name}")

    def _block(self, host: SimNode, height: int) -> None:
        node = host.node
        assert node is not None
        block_hash = _fired(node.store.get_block_hash(height))
        if block_hash is None:
            self.fail("fork", f"{host.name} lost its block at height "
                      f"{height}")
            return
        known = self.committed.get(height)
        if known is None:
            self.committed[height] = (block_hash, host.name)
            raw = _fired(node.store.get_block(block_hash))
            block = Block.decode(raw)
            for tx in block.txs[1:]:
                self.txs.setdefault(tx.txid, tx)
                self._spends(tx, f"block {height}")
        elif known[0] != block_hash:
            self.fail("fork", f"height {height}: block {_short(known[0])} "
                      f"committed on {known[1]}, {_short(block_hash)} on "
                      f"{host.name}")

    def check(self) -> None:
        """
        The step check: new committed blocks, utxo hashes, rejections.
        """
        for host in self.sim.nodes:
            if host.up and not host.byzantine:
                self._blocks(host)
                self._rejections(host)
                self._statuses(host)
            if host.up:
                self._accusations(host)

    def state_of(self, host: SimNode, txid: bytes) -> str:
        """
        C{confirmed} (in the chain), or the mempool's state, or
        C{unknown}.
        """
        assert host.node is not None
        if _fired(host.node.store.get_tx_location(txid)) is not None:
            return "confirmed"
        return host.node.mempool.state_of(txid) or "unknown"

    def final(self) -> None:
        """
        The end checks: every committed height agrees on every honest
        node, each counts its finalized mempool entries right, and every
        finalized transaction is final everywhere.
        """
        self.check()
        honest = [h for h in self.sim.nodes if h.up and not h.byzantine]
        for host in honest:
            assert host.node is not None
            for height in range(1, self.scanned.get(host.name, 0) + 1):
                self._block(host, height)
            mempool = host.node.mempool
            counted = sum(e.state == FINALIZED
                          for e in mempool.entries.values())
            if mempool.finalized_count != counted:
                self.fail("bookkeeping", f"{host.name} counts "
                          f"{mempool.finalized_count} finalized mempool "
                          f"entries, holds {counted}")
        if self.sim.lifecycle is not None:
            self._lifecycle_final()
        for txid in sorted(self.finalized):
            states = {h.name: self.state_of(h, txid) for h in honest}
            lagging = {n: s for n, s in states.items()
                       if s not in ("confirmed", FINALIZED)}
            if lagging:
                where = ",".join(sorted(self.finalized[txid]))
                self.fail("finality", f"tx {_short(txid)} finalized on "
                          f"{where} but after the calm period "
                          + ", ".join(f"{n} has it {s}"
                                      for n, s in sorted(lagging.items())))


    def _lifecycle_final(self) -> None:
        """
        The lifecycle did what the chain promises, given time: a joiner
        whose registration was mined is active; the masternode stopped for
        good is set aside once a window of certificates missed it; every
        running honest masternode set aside is back once it may be and
        its node had L{SLACK} blocks to activate it.
        """
        sim = self.sim
        lifecycle = sim.lifecycle
        assert lifecycle is not None
        ref = lifecycle.reference()
        if ref is None:
            return
        chain = ref.chain
        rules = chain.rules
        tip = chain.height
        plan = lifecycle.plan
        for host in sim.nodes:
            if host.byzantine:
                continue
            status = chain.mn_status(host.key.public)
            if status is None:
                continue
            if host.index == plan.stop and host.index in sim.gone:
                stopped = lifecycle.stopped_at or 0
                if status.state == ACTIVE and \
                        tip >= max(stopped, rules.window) + rules.window + \
                        SLACK:
                    self.fail("lifecycle", f"{host.name} stopped for good "
                              f"at height {stopped}, still active at {tip}")
                continue
            if not host.up:
                continue
            up_since = sim.up_since.get(host.index, 0)
            if status.state == REGISTERED and \
                    tip >= max(status.since, up_since) + SLACK:
                self.fail("lifecycle", f"{host.name} registered at "
                          f"{status.since}, not active at {tip}: "
                          f"{host.node.participation.status() if host.node else ''}")
            if status.state == SET_ASIDE and tip >= max(
                    status.since + rules.min_away, up_since) + SLACK:
                self.fail("lifecycle", f"{host.name} set aside at "
                          f"{status.since}, running since height "
                          f"{up_since}, not back at {tip}: "
                          f"{host.node.participation.status() if host.node else ''}")


# The simulation ---------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    """
    One run's parameters (all but C{seed} shared by a batch).

    @ivar duration: seconds of faults and workload.
    @ivar calm: fault-free seconds after them.
    @ivar liveness_bound: within this many calm seconds every honest
        node must pass the highest height reached under faults.
    @ivar step: seconds per step (invariants are checked after each).
    @ivar tx_rate: payments per second during C{duration}.
    @ivar double_spends: fraction of payments that get a conflicting twin.
    @ivar faults: whether the fault plan injects network and crash faults
        (Byzantine nodes misbehave regardless).
    @ivar group_commit: seconds finality records wait for their group
        commit, as on SQLite (L{GroupCommitStore}); 0 for a plain memory
        store whose writes are done at once.
    @ivar joiners: honest hosts outside the genesis (they register when
        C{lifecycle} is on, else they only follow the chain).
    @ivar lifecycle: registrations, a masternode stopped for good, one
        coming back (L{LifecyclePlan}).
    @ivar step_crashes: at most this many crashes inside a consensus step.
    @ivar service: (window, max_missed, min_away) proof-of-service rules
        of every node, instead of the devnet's.
    @ivar max_outage: the longest plain crash or partition, instead of
        20 s and 25 s.
    """

    seed: int = 0
    nodes: int = 4
    byzantine: int = 0
    duration: float = 40.0
    calm: float = 40.0
    liveness_bound: float = 30.0
    step: float = 0.1
    block_time: float = 2.0
    round_timeout: float = 1.0
    vote_timeout: float = 10.0
    tx_rate: float = 3.0
    double_spends: float = 0.2
    faults: bool = True
    max_skew: float = 3.0
    group_commit: float = 0.02
    joiners: int = 0
    lifecycle: bool = False
    step_crashes: int = 0
    service: tuple[int, int, int] | None = None
    max_outage: float | None = None
    committee: int = 0
    """Block consensus by a committee of this many per epoch (0: all)."""

    @property
    def hosts(self) -> int:
        """
        Genesis masternodes plus joiners.
        """
        return self.nodes + self.joiners


LIFECYCLE = SimConfig(nodes=7, byzantine=2, joiners=3, lifecycle=True,
                      step_crashes=3, service=(10, 5, 8), block_time=1.0,
                      duration=35.0, calm=25.0, liveness_bound=20.0,
                      tx_rate=0.5, max_outage=4.0, max_skew=1.0)
"""The lifecycle runs (C{--lifecycle}): 7 genesis masternodes (2
Byzantine) and 3 hosts that register mid-run; one honest masternode stops
for good, another comes back; in-step crashes; 1 s blocks and proof of
service over windows of 10 blocks (set aside when missing from more than
5, back after 8), so that all of it fits in 35 s of faults and 25 s of
calm; other outages (crashes, partitions, step crashes) at most 4 s and
clock skews at most 1 s, so that mostly the planned ones are set aside.
Three joiners keep the honest running weight at a quorum of the active
weight while one masternode is down and not yet set aside, and the
Byzantine weight under a third of the active weight at every height."""


@dataclass
class SimResult:
    """
    What one run found.
    """

    seed: int
    violations: list[Violation]
    stats: dict[str, Any]
    plan: list[str]
    digest: str
    wall: float = 0.0

    @property
    def ok(self) -> bool:
        """
        Whether no invariant was broken.
        """
        return not self.violations


class Simulation:
    """
    One seeded run of a simulated network.

    @param quorum: replaces every node's quorum rule (the seam through
        which a test injects a deliberately broken rule); default: the
        config's rule (C{count}).
    """

    def __init__(self, config: SimConfig, workdir: Path,
                 quorum: IQuorumRule | None = None) -> None:
        self.config = config
        self.workdir = workdir
        self.quorum = quorum
        rng = random.Random(config.seed)
        self.rng = rng
        self.clock = HeapClock()
        self.clock.advance(START)
        self.net = SimNetwork(self.clock, _fork(rng))
        self.plan = FaultPlan.draw(
            _fork(rng), config.nodes, config.byzantine, config.duration,
            config.faults, config.max_skew, config.joiners,
            config.lifecycle, config.step_crashes, config.max_outage)
        self.workload = Workload(self, _fork(rng), config.tx_rate,
                                 config.double_spends)
        self._p2p_rngs = [_fork(rng) for _ in range(config.hosts)]
        adversary_rngs = [_fork(rng) for _ in range(config.hosts)]
        self.nodes: list[SimNode] = []
        for i in range(config.hosts):
            datadir = workdir / f"n{i}"
            key = masternode_key(i)
            write_private(datadir / "private" / "node_key",
                          key.seed.hex().encode() + b"\n")
            write_private(datadir / "private" / "wallet.json",
                          json.dumps({"keys": [key.seed.hex()]}).encode())
            store = GroupCommitStore(self.clock, config.group_commit) \
                if config.group_commit or config.step_crashes else None
            self.nodes.append(SimNode(
                i, key, f"10.0.0.{i + 1}", datadir, self.plan.skew[i],
                i in self.plan.byzantine, store))
        self.names = [n.name for n in self.nodes]
        self.genesis_path = workdir / "genesis.json"
        outputs = [TxOut(COIN_VALUE, _addr(wallet_key(w)))
                   for w in range(WALLETS) for _ in range(COINS_PER_WALLET)]
        if config.lifecycle:
            # A bank coin per joiner (its collateral and fee coin), and
            # fee coins for every genesis masternode's activations.
            outputs += [TxOut(BANK_COIN, _addr(bank_key()))
                        for _ in range(config.joiners)]
            outputs += [TxOut(FEE_COIN, _addr(n.key))
                        for n in self.nodes[:config.nodes]
                        for _ in range(FEE_COINS)]
        genesis = make_genesis(
            "devnet", int(START * 1000), outputs,
            [Masternode(n.key.public, f"{n.ip}:{PORT}", _addr(n.key), "free")
             for n in self.nodes[:config.nodes]])
        write_genesis(self.genesis_path, genesis)
        self.genesis = genesis
        self.workload.fund(genesis)
        self.rules: ServiceRules | None = None
        if config.service is not None:
            self.rules = ServiceRules(*config.service)
        self.checker = Checker(self)
        masternodes = [n.key.public for n in self.nodes]
        self.adversaries = [
            Adversary(n, self.plan.byzantine[n.index],
                      adversary_rngs[n.index], self.clock, masternodes,
                      self.net)
            for n in self.nodes if n.byzantine]
        self.blocked: Counter[frozenset[str]] = Counter()
        self.down: set[int] = set()
        """Hosts down until a planned restart (or the calm)."""
        self.gone: set[int] = set()
        """Hosts stopped for good (L{LifecyclePlan.stop})."""
        self.timeline: list[str] = []
        self.counters: Counter[str] = Counter()
        self.lifecycle = None if self.plan.lifecycle is None else \
            Lifecycle(self, self.plan.lifecycle)
        self.up_since: dict[int, int] = {}
        """The highest honest height when each host last started."""

    @property
    def now(self) -> float:
        """
        Simulated seconds since the start of the run.
        """
        return self.clock.seconds() - START

    # Hosts ---------------------------------------------------------------

    def start(self, host: SimNode) -> None:
        """
        Start (or restart, on its kept store) the node of C{host}.
        """
        ips = [n.ip for n in self.nodes]
        config = Config(network="devnet", datadir=str(host.datadir),
                        block_time=self.config.block_time, p2p_port=PORT,
                        p2p_bind=host.ip,
                        p2p_connect=[f"{ip}:{PORT}" for ip in ips
                                     if ip != host.ip],
                        genesis=str(self.genesis_path),
                        round_timeout=self.config.round_timeout,
                        vote_timeout=self.config.vote_timeout,
                        committee_size=self.config.committee,
                        storage="memory")
        config.resolve()
        reactor = self.net.reactor(host.ip, host.offset)
        node = Node(config, reactor, store=host.store)
        if self.quorum is not None:
            node.chain.quorum = self.quorum
        if self.rules is not None:
            node.chain.rules = self.rules
        if not host.byzantine:
            self._trap_signing(host, node)
        node.startService()
        host.starting = node
        node.ready.addCallbacks(
            lambda _: self._ready(host, node, config, reactor),
            lambda f: self.checker.fail(
                "restart", f"{host.name} failed to start: "
                f"{f.getErrorMessage()}"))

    def _ready(self, host: SimNode, node: Node, config: Config,
               reactor: Any) -> None:
        """
        The node of C{host} loaded its chain and records (at once on a
        memory store, after a group commit otherwise): start its P2P.
        """
        if host.starting is not node:
            return
        host.starting = None
        settings = P2PSettings.from_config(
            config, initial_delay=1.0, max_delay=4.0, passive_wait=2.0,
            tip_interval=5.0)
        service = P2PService(node, reactor, settings,
                             _fork(self._p2p_rngs[host.index]))
        service.startService()
        host.node, host.service = node, service
        host.starts += 1
        self.up_since[host.index] = max(
            self._honest_heights().values(), default=0)
        self.checker.watch(host)
        for adversary in self.adversaries:
            if adversary.host is host:
                adversary.attach()

    def _trap_signing(self, host: SimNode, node: Node) -> None:
        """
        Let a C{before-sign} step crash kill C{node} once it has decided to
        sign (its lock and step moved on) and before it signs.
        """
        engine = node.consensus
        may_sign = engine._may_sign

        def trapped(round: int, step: int, block_hash: bytes | None) -> bool:
            if host.dying is not None and host.dying[0] is node:
                return False
            ok = may_sign(round, step, block_hash)
            trap = host.trap
            if ok and trap is not None and trap[0] == "before-sign" and \
                    trap[1] in ("any", _STEP_NAMES[step]):
                host.trap = None
                host.dying = (node, False)
                return False
            return ok

        engine._may_sign = trapped  # type: ignore[method-assign]

    def _arm(self, host: SimNode, mode: str, step: str) -> None:
        """
        Arm a crash inside the next consensus step of C{host} that signs
        C{step} (L{STEP_CRASH_MODES}).
        """
        node = host.node
        store = host.store
        if node is None or not isinstance(store, GroupCommitStore):
            self.counters["step-crash-missed"] += 1
            return
        if mode == "before-sign":
            host.trap = (mode, step)
            return

        def hit(value: bytes) -> bool:
            signed = SigningState.unpack(value).step
            if step != "any" and SIGN_STEPS[step] != signed:
                return False
            host.dying = (node, mode == "recorded")
            return True

        store.trap = hit

    def _disarm(self, host: SimNode) -> None:
        if host.trap is not None or (
                isinstance(host.store, GroupCommitStore)
                and host.store.trap is not None):
            self.counters["step-crash-missed"] += 1
        host.trap = None
        if isinstance(host.store, GroupCommitStore):
            host.store.trap = None

    def _die(self, host: SimNode, node: Node, keep: bool) -> None:
        """
        The step crash armed by L{_arm} hit C{node}: its held signing-state
        write is done (C{keep}) or lost, and the process dies.  (It dies at
        the end of the step it was hit in, as the network must not change
        in the middle of a delivery; until then it signs nothing: its
        signing-state writes are held, its signing refused.)
        """
        host.dying = None
        if isinstance(host.store, GroupCommitStore):
            host.store.release(keep)
        if host.node is not node and host.starting is not node:
            return
        self.timeline.append(
            f"t={self.now:6.1f} step-crash hit {host.name} at height "
            f"{node.consensus.height} round {node.consensus.round} "
            f"({'write kept' if keep else 'write lost or never made'})")
        self.counters["step-crash-hit"] += 1
        self.down.add(host.index)
        self.crash(host)

    def crash(self, host: SimNode) -> None:
        """
        Kill C{host}: connections reset, services stopped, memory lost;
        the store stays.
        """
        if isinstance(host.store, GroupCommitStore):
            host.store.lose_pending()
            if host.store.held is not None:
                host.store.release(False)
        host.dying = None
        if host.starting is not None:
            starting, host.starting = host.starting, None
            starting.stopService()
        service, node = host.service, host.node
        if service is None or node is None:
            return
        host.service = host.node = None
        self.net.crash(host.ip)
        service.table.path = None
        service.stopService()
        node.stopService()
        self.counters["crashes"] += 1

    # Plan ----------------------------------------------------------------

    def _ips(self, indexes: tuple[int, ...]) -> list[str]:
        return [self.nodes[i].ip for i in indexes]

    def _block(self, a: str, b: str, on: bool) -> None:
        pair = frozenset((a, b))
        if on:
            self.blocked[pair] += 1
            if self.blocked[pair] == 1:
                self.net.partition(a, b)
        elif self.blocked[pair] > 0:
            self.blocked[pair] -= 1
            if self.blocked[pair] == 0:
                self.net.heal(a, b)

    def apply(self, event: Event) -> None:
        """
        Carry out one event of the plan.
        """
        self.timeline.append(event.describe(self.names))
        self.counters[event.kind] += 1
        if event.kind in ("partition", "heal"):
            for a in self._ips(event.nodes):
                for b in self._ips(event.other):
                    self._block(a, b, event.kind == "partition")
        elif event.kind == "crash":
            self.down.add(event.nodes[0])
            self.crash(self.nodes[event.nodes[0]])
        elif event.kind == "restart":
            host = self.nodes[event.nodes[0]]
            self._disarm(host)
            if host.up or host.starting is not None or \
                    host.index in self.gone or (
                        self.lifecycle is not None
                        and host.index in self.lifecycle.away):
                return
            self.down.discard(event.nodes[0])
            self.start(host)
        elif event.kind == "step-crash":
            mode, step = event.detail.split()
            self._arm(self.nodes[event.nodes[0]], mode, step)
        elif event.kind in ("faults", "faults-clear"):
            for a in self._ips(event.nodes):
                for b in self._ips(event.other):
                    for pair in ((a, b), (b, a)):
                        if event.faults is None:
                            self.net.faults.pop(pair, None)
                        else:
                            self.net.faults[pair] = event.faults

    def calm_down(self) -> None:
        """
        Stop every fault: heal, restart, clean links.
        """
        self.timeline.append(f"t={self.now:6.1f} calm: every fault stops")
        for pair in list(self.blocked):
            a, b = sorted(pair)
            self.net.heal(a, b)
        self.blocked.clear()
        for host in self.nodes:
            self._disarm(host)
        lifecycle = self.lifecycle
        if lifecycle is not None and lifecycle.plan.back in lifecycle.away:
            status = lifecycle.status(lifecycle.plan.back)
            if status is None or status.state != SET_ASIDE:
                lifecycle.restart_back("calm: never set aside")
        for i in sorted(self.down):
            if not self.nodes[i].up and self.nodes[i].starting is None:
                self.start(self.nodes[i])
        self.down.clear()
        self.net.faults.clear()
        self.net.default = LinkFaults()

    # Running -------------------------------------------------------------

    def _honest_heights(self) -> dict[str, int]:
        return {h.name: h.node.chain.height for h in self.nodes
                if h.node is not None and not h.byzantine}

    def _step(self) -> None:
        self.net.advance(self.config.step, self.config.step)
        for host in self.nodes:
            if host.dying is not None:
                self._die(host, *host.dying)
        self.checker.check()

    def run(self) -> SimResult:
        """
        Run both phases and the end checks.  A critical log event of any
        node (a conflicting certificate, a block conflicting with a
        finalized transaction: what only more than a third of Byzantine
        weight can cause) counts as a violation too.
        """
        @provider(ILogObserver)
        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") is LogLevel.critical:
                text = formatEvent(event)
                failure = event.get("log_failure")
                if failure is not None:
                    text += " " + failure.getTraceback()[-1500:]
                self.checker.fail("critical-log", text)

        globalLogPublisher.addObserver(observe)
        try:
            return self._run()
        finally:
            globalLogPublisher.removeObserver(observe)

    def _run(self) -> SimResult:
        config = self.config
        self.net.default = self.plan.background
        for host in self.nodes:
            self.start(host)
        events = deque(self.plan.events)
        steps = 0
        while self.now < config.duration - 1e-9:
            while events and events[0].at <= self.now:
                self.apply(events.popleft())
            self.workload.tick(self.now, config.step)
            if self.lifecycle is not None:
                self.lifecycle.tick(self.now)
            self._step()
            steps += 1
            if steps % 100 == 0:
                self.net.sweep()
        while events:
            self.apply(events.popleft())
        self.calm_down()
        before = self._honest_heights()
        target = max(before.values(), default=0) + 1
        calm_end = config.duration + config.calm
        checked = False
        while self.now < calm_end - 1e-9:
            if self.lifecycle is not None:
                self.lifecycle.tick(self.now)
            self._step()
            if not checked and \
                    self.now >= config.duration + config.liveness_bound:
                checked = True
                self._liveness(before, target)
        if not checked:
            self._liveness(before, target)
        self.checker.final()
        return self.result()

    def _liveness(self, before: dict[str, int], target: int) -> None:
        """
        Every honest running node passed C{target} -- promised only when
        the honest running masternodes hold a quorum of the active weight
        (the Byzantine ones may stay silent; a masternode stopped for good
        or away counts as down until the chain sets it aside).
        """
        promised = self._promised()
        if promised is not None:
            self.counters["liveness-not-promised"] += 1
            self.timeline.append(f"t={self.now:6.1f} liveness not "
                                 f"promised: {promised}")
            return
        now = self._honest_heights()
        behind = {n: h for n, h in now.items() if h < target}
        if behind:
            states = []
            for host in self.nodes:
                if host.node is not None and not host.byzantine:
                    engine = host.node.consensus
                    states.append(
                        f"{host.name}: h{host.node.chain.height} "
                        f"r{engine.round} {engine.step} peers "
                        f"{len(host.service.manager.ready) if host.service else 0}")
            self.checker.fail(
                "liveness", f"no progress within "
                f"{self.config.liveness_bound:.0f}s after faults stopped: "
                f"needed height {target} on every honest node; heights then "
                f"{before}, now {now}; " + "; ".join(states))

    def _promised(self) -> str | None:
        """
        Why liveness is not promised now, or C{None} when it is: the
        honest running masternodes hold a quorum of the weight active at
        the height the honest nodes work on.
        """
        ref = None
        for host in self.nodes:
            node = host.node
            if node is not None and not host.byzantine and (
                    ref is None or node.chain.height > ref.chain.height):
                ref = node
        if ref is None:
            return "no honest node runs"
        chain = ref.chain
        active = chain.snapshot_for(chain.height + 1)
        total = sum(chain.quorum.weight(m) for m in active)
        running = {h.key.public for h in self.nodes
                   if h.up and not h.byzantine}
        up = sum(chain.quorum.weight(m) for m in active
                 if m.pubkey in running)
        if chain.quorum.approved(up, total):
            return None
        return (f"honest running weight {up} of {total} active at height "
                f"{chain.height + 1}")

    def result(self) -> SimResult:
        """
        The run's violations, statistics, plan and a digest of its history
        (equal digests for equal runs).
        """
        heights = {h.name: h.node.chain.height for h in self.nodes
                   if h.node is not None}
        stats: dict[str, Any] = {
            "heights": heights,
            "committed": len(self.checker.committed),
            "finalized_txs": len(self.checker.finalized),
            "workload": dict(self.workload.counters),
            "network": dict(self.net.counters),
            "copies": self.net.copies.summary(len(self.checker.committed)),
            "events": dict(self.counters),
            "adversaries": {a.host.name: dict(a.counters)
                            for a in self.adversaries},
        }
        violations = [v for v in self.checker.violations
                      if v.invariant not in NOTED]
        noted = [str(v) for v in self.checker.violations
                 if v.invariant in NOTED]
        if noted:
            stats["noted"] = noted
        beyond = self.checker.beyond
        if beyond is not None:
            # The chain set aside so many honest masternodes that the
            # Byzantine ones hold a third of the active weight: only what
            # an honest node does alone (never equivocate) still holds.
            stats["beyond-model"] = {"height": beyond[0],
                                     "byzantine": beyond[1]}
            stats["not-promised"] = [str(v) for v in violations
                                     if v.invariant in NOT_PROMISED]
            violations = [v for v in violations
                          if v.invariant not in NOT_PROMISED]
        if self.lifecycle is not None:
            stats["lifecycle"] = {
                self.names[i]: None if (s := self.lifecycle.status(i)) is None
                else f"{s.state}@{s.since}" for i in range(len(self.nodes))}
        digest = hashlib.sha256(json.dumps([
            sorted((h, v[0].hex()) for h, v in self.checker.committed.items()),
            sorted(t.hex() for t in self.checker.finalized),
            sorted(heights.items()), sorted(self.net.counters.items()),
        ]).encode()).hexdigest()
        return SimResult(self.config.seed, violations, stats,
                         self.plan.describe(self.names) + [
                             "timeline:"] + self.timeline, digest)

    def stop(self) -> None:
        """
        Stop every node and adversary (and cancel their timers).
        """
        for adversary in self.adversaries:
            adversary.stop()
        for host in self.nodes:
            self.crash(host)


def _fork(rng: Any) -> Any:
    """
    An independent stream seeded from C{rng}.
    """
    return rng.__class__(rng.getrandbits(64))


def run_seed(config: SimConfig,
             quorum: IQuorumRule | None = None) -> SimResult:
    """
    Run one seeded simulation in a temporary directory.
    """
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="timecoin-sim-") as tmp:
        sim = Simulation(config, Path(tmp), quorum)
        try:
            result = sim.run()
        finally:
            sim.stop()
    result.wall = time.perf_counter() - began
    return result


# Command line -----------------------------------------------------------


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


def repro(config: SimConfig) -> str:
    """
    The command that replays C{config}.
    """
    defaults = LIFECYCLE if config.lifecycle else SimConfig()
    extra = " --lifecycle" if config.lifecycle else ""
    extra += "".join(
        f" --{name.replace('_', '-')} {getattr(config, name)}"
        for name in ("duration", "calm", "liveness_bound", "tx_rate",
                     "double_spends", "max_skew", "joiners", "step_crashes")
        if getattr(config, name) != getattr(defaults, name))
    if not config.faults:
        extra += " --no-faults"
    return (f"python -m timecoin.testing.simulation --seed {config.seed} "
            f"--nodes {config.nodes} --byzantine {config.byzantine}{extra} "
            "--verbose")


def main(argv: list[str] | None = None) -> int:
    """
    Run many seeds; print failures (with their reproducing command) and a
    summary line.  Exit status 1 if any seed failed.
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
    args = parser.parse_args(argv)
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
    preset = LIFECYCLE if args.lifecycle else SimConfig()
    chosen = {name: getattr(args, name)
              for name in ("joiners", "step_crashes", "duration", "calm",
                           "tx_rate", "liveness_bound", "max_skew",
                           "committee")
              if getattr(args, name) is not None}
    base = replace(preset, nodes=args.nodes, byzantine=args.byzantine,
                   double_spends=args.double_spends,
                   faults=not args.no_faults,
                   **chosen)
    seeds = [args.seed] if args.seed is not None else \
        list(range(args.start, args.start + args.seeds))
    jobs = [replace(base, seed=s) for s in seeds]
    _quiet_logs()
    began = time.perf_counter()
    failed: list[SimResult] = []
    totals: Counter[str] = Counter()
    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing
        pool = multiprocessing.get_context("fork").Pool(args.jobs)
        results: Iterable[SimResult] = pool.imap_unordered(_worker, jobs)
    else:
        pool = None
        results = map(_worker, jobs)
    try:
        for result in results:
            totals["seeds"] += 1
            if totals["seeds"] % 50 == 0 and len(jobs) > 50:
                print(f"... {totals['seeds']}/{len(jobs)} seeds, "
                      f"{len(failed)} failed, "
                      f"{time.perf_counter() - began:.0f}s", file=sys.stderr,
                      flush=True)
            totals["blocks"] += result.stats.get("committed", 0)
            totals["finalized"] += result.stats.get("finalized_txs", 0)
            totals["double_spends"] += result.stats.get(
                "workload", {}).get("double-spends", 0)
            events = result.stats.get("events", {})
            for name in LIFECYCLE_EVENTS:
                totals[name] += events.get(name, 0)
            totals["beyond-model"] += "beyond-model" in result.stats
            totals["noted"] += bool(result.stats.get("noted"))
            if result.stats.get("noted") and args.verbose:
                print(f"seed {result.seed} noted: "
                      + "; ".join(result.stats["noted"][:3]))
            if args.verbose:
                print(f"seed {result.seed}: {len(result.violations)} "
                      f"violations, {result.wall:.1f}s")
                for line in result.plan:
                    print("   ", line)
                print("    stats:", json.dumps(result.stats, sort_keys=True))
            if not result.ok:
                failed.append(result)
                config = replace(base, seed=result.seed)
                print(f"FAIL seed {result.seed}: "
                      f"{len(result.violations)} violation(s); reproduce "
                      f"with: {repro(config)}")
                for violation in result.violations[:10]:
                    print(f"    {violation}")
                sys.stdout.flush()
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    wall = time.perf_counter() - began
    failing = " ".join(str(r.seed) for r in sorted(failed,
                                                   key=lambda r: r.seed))
    print(f"{totals['seeds']} seeds, {len(failed)} failed "
          f"(nodes={args.nodes} byzantine={args.byzantine}"
          f"{' lifecycle' if args.lifecycle else ''}"
          f"{' no-faults' if args.no_faults else ''}); "
          f"{totals['blocks']} blocks committed, {totals['finalized']} txs "
          f"finalized, {totals['double_spends']} double spends attempted; "
          f"{wall:.0f}s"
          + (f"; failing seeds: {failing}" if failed else ""))
    if args.lifecycle or args.step_crashes:
        print("events: " + ", ".join(
            f"{name} {totals[name]}"
            for name in (*LIFECYCLE_EVENTS, "beyond-model", "noted")))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
