"""
The invariants of a run: L{Checker} watches the honest nodes (what they
finalize, reject, commit and send) and checks after every step and at
the end that no fork, double spend, conflicting finality, UTXO or status
disagreement or lost bookkeeping shows up; it owns
L{EquivocationCheck} (nothing signed twice, no evidence against an
honest masternode) and, in lifecycle runs, L{LifecycleCheck} (the end
check of registrations, returns and stops).  L{Liveness} checks
progress once faults stop.  Each broken invariant is a L{Violation}.

Imports L{world}, L{clock}, L{hosts} and L{lifecycle} from the rest of
the simulator.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain
from timecoin.consensus import BlockVote, Proposal
from timecoin.encoding import sha256
from timecoin.finality import RELEASED_BLOCKS
from timecoin.masternodes import Snapshot
from timecoin.mempool import FINALIZED
from timecoin.mnstate import ACTIVE, REGISTERED, SET_ASIDE
from timecoin.node import Node
from timecoin.testing.simulation.clock import Journal
from timecoin.testing.simulation.hosts import Hosts, SimNode, reference
from timecoin.testing.simulation.lifecycle import Lifecycle
from timecoin.testing.simulation.world import short
from timecoin.tx import OutPoint, Transaction

__all__ = ["DECISIONS", "NOTED", "NOT_PROMISED", "SLACK", "Checker",
           "EquivocationCheck", "LifecycleCheck", "Liveness", "Violation"]

log = Logger()

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
C{RELEASED_BLOCKS} blocks apart (its memory of the inputs it approved
for a rejected transaction lasts that long; a replayed transaction met
after it gets a rejection; no node holds both votes then, as each counts
only votes within C{VOTE_HEIGHT_WINDOW} of its tip).  Transaction
finality, not block consensus; see docs/simulation.md."""

NOT_PROMISED = frozenset({"fork", "utxo", "double-spend", "finality",
                          "liveness", "status", "critical-log", "lifecycle",
                          "bookkeeping"})
"""What a run no longer promises once the chain set aside so many honest
masternodes that the Byzantine ones hold a third of the active weight."""


class EquivocationCheck:
    """
    No honest node ever sends two different proposals or votes for one
    (height, round, step), across its crashes (L{sent}, on what leaves each
    node), and no node holds equivocation evidence against an honest
    masternode (L{accusations}).  Violations go to C{fail}.

    @ivar signed: what each honest key sent, over every life of its node:
        (key, height, round, step) -> (block hash, who saw it).
    """

    def __init__(self, nodes: list[SimNode],
                 fail: Callable[[str, str], None]) -> None:
        self.nodes = nodes
        self.fail = fail
        self.signed: dict[tuple[bytes, int, int, str], tuple[bytes, str]] = {}
        self._evidence: dict[int, tuple[int, int]] = {}

    def sent(self, host: SimNode, message: Proposal | BlockVote) -> None:
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
                      f"{short(known[0])} ({known[1]}) and "
                      f"{short(block_hash)} ({where})")

    def accusations(self, host: SimNode) -> None:
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
        honest = {h.key.public: h.name for h in self.nodes
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
                self.fail("tx-equivocation" if apart > RELEASED_BLOCKS
                          else "equivocation", f"{host.name} holds tx-vote "
                          f"evidence against honest {honest[first.voter]} "
                          f"on tx {short(first.txid)}: {first.decision} "
                          f"at height {first.height}, {second.decision} at "
                          f"height {second.height}")


class LifecycleCheck:
    """
    The end check of lifecycle runs (L{final}).  Violations go to C{fail}.
    """

    def __init__(self, hosts: Hosts, lifecycle: Lifecycle,
                 fail: Callable[[str, str], None]) -> None:
        self.hosts = hosts
        self.lifecycle = lifecycle
        self.fail = fail

    def final(self) -> None:
        """
        The lifecycle did what the chain promises, given time: a joiner
        whose registration was mined is active; the masternode stopped for
        good is set aside once a window of certificates missed it; every
        running honest masternode set aside is back once it may be and
        its node had L{SLACK} blocks to activate it.
        """
        lifecycle, hosts = self.lifecycle, self.hosts
        ref = lifecycle.reference()
        if ref is None:
            return
        chain = ref.chain
        rules = chain.rules
        tip = chain.height
        plan = lifecycle.plan
        for host in hosts.nodes:
            if host.byzantine:
                continue
            status = chain.mn_status(host.key.public)
            if status is None:
                continue
            if host.index == plan.stop and host.index in hosts.gone:
                stopped = lifecycle.stopped_at or 0
                if status.state == ACTIVE and \
                        tip >= max(stopped, rules.window) + rules.window + \
                        SLACK:
                    self.fail("lifecycle", f"{host.name} stopped for good "
                              f"at height {stopped}, still active at {tip}")
                continue
            if not host.up:
                continue
            up_since = hosts.up_since.get(host.index, 0)
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


class Checker:
    """
    The invariants, checked after every step (L{check}) and at the end
    (L{final}).  Violations accumulate in L{violations} (each distinct
    one once).
    """

    def __init__(self, hosts: Hosts, journal: Journal,
                 lifecycle: Lifecycle | None = None) -> None:
        self.hosts = hosts
        self.nodes = hosts.nodes
        self.journal = journal
        self.violations: list[Violation] = []
        self._said: set[str] = set()
        self.committed: dict[int, tuple[bytes, str]] = {}
        self.utxo: dict[int, tuple[bytes, str]] = {}
        self.finalized: dict[bytes, set[str]] = {}
        self.txs: dict[bytes, Transaction] = {}
        self.spender: dict[OutPoint, tuple[bytes, str]] = {}
        self.node_finalized: dict[str, set[bytes]] = {}
        self.latencies: list[float] = []
        """Seconds from a node's acceptance of a payment to its finality
        there, per honest node and payment."""
        self.node_rejected: dict[str, dict[bytes, str]] = {}
        self.scanned: dict[str, int] = {}
        self._reported: dict[int, set[bytes]] = {}
        """Per node object (one process lifetime): txids it reported
        finalized."""
        self.statuses: dict[int, tuple[bytes, str]] = {}
        """Per height: a digest of the masternode statuses after that block
        (who is registered, active, set aside, since when) and the node
        that held it first."""
        self.beyond: tuple[int, str] | None = None
        """The first height whose active set gives the Byzantine
        masternodes a third of the weight or more (the chain set aside too
        many honest ones): safety is not promised from there on."""
        self.equivocation = EquivocationCheck(self.nodes, self.fail)
        self.lifecycle_check = None if lifecycle is None else \
            LifecycleCheck(hosts, lifecycle, self.fail)

    def fail(self, invariant: str, detail: str) -> None:
        """
        Record a violation (once).
        """
        key = f"{invariant}:{detail}"
        if key in self._said:
            return
        self._said.add(key)
        violation = Violation(invariant, self.journal.now, detail)
        self.violations.append(violation)
        log.error("invariant broken: {violation}", violation=str(violation))

    def watch(self, host: SimNode) -> None:
        """
        Hook a freshly started node.
        """
        assert host.node is not None
        if host.byzantine:
            return
        node = host.node
        refuse = node.mempool.refuse

        def refused(txid: bytes, reason: str) -> None:
            refuse(txid, reason)
            if host.node is node:
                self._rejected(host, txid, reason)
        vars(node.mempool)["refuse"] = refused
        node.finality.finalized.connect(
            lambda finalized: self._finalized(host, node, finalized.txid,
                                              finalized.seconds))
        node.consensus.outbox.connect(
            lambda message: self.equivocation.sent(host, message))

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
                      f"{short(known[0])} on {known[1]}, {short(digest)} "
                      f"on {host.name}: {self._describe(chain)}")

    def _describe(self, chain: Chain) -> str:
        names = {h.key.public: h.name for h in self.nodes}
        return ", ".join(
            f"{names.get(pk, pk.hex()[:8])} {s.state}@{s.since}"
            for pk, s in sorted(chain.status.items()))

    def _weights(self, height: int, active: Snapshot,
                 chain: Chain) -> None:
        byzantine = {h.key.public for h in self.nodes if h.byzantine}
        total = sum(chain.quorum.weight(m) for m in active)
        bad = sum(chain.quorum.weight(m) for m in active
                  if m.pubkey in byzantine)
        if self.beyond is None and total and 3 * bad >= total:
            self.beyond = (height + 1, f"{bad} of {total}")

    def _finalized(self, host: SimNode, node: Node, txid: bytes,
                   latency: float) -> None:
        if host.node is not node:
            # A crashed node's leftover timers: its state died with it.
            return
        once = self._reported.setdefault(id(node), set())
        if txid in once:
            self.fail("finality", f"{host.name} reported tx {short(txid)} "
                      "finalized twice")
        once.add(txid)
        self.latencies.append(latency)
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
                self.fail("double-spend", f"output {short(txin.prevout.txid)}"
                          f":{txin.prevout.vout} spent by tx "
                          f"{short(known[0])} ({known[1]}) and by tx "
                          f"{short(tx.txid)} ({where})")

    def _rejected(self, host: SimNode, txid: bytes, reason: str) -> None:
        """
        The node of C{host} rejected C{txid} for C{reason} just now.

        Hooked on the mempool's C{refuse} (L{watch}), so the order against
        its finalizations is exact.  A periodic scan of the newest entries
        of C{mempool.rejected} took a refusal of a transaction already
        rejected (moved to the end, counted again) as room for an older
        entry, re-examined a rejection made before a late approval quorum
        finalized the transaction, and reported it as a rejection after
        finality (7/2 seeds 584 and 683).
        """
        if reason not in DECISIONS:
            return
        self.node_rejected.setdefault(host.name, {})[txid] = reason
        if txid in self.node_finalized.get(host.name, ()):
            self.fail("finality", f"{host.name} rejected tx "
                      f"{short(txid)} ({reason}) after finalizing it")

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
                          f"{short(known[0])} on {known[1]}, "
                          f"{short(digest)} on {host.name}")

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
            self.fail("fork", f"height {height}: block {short(known[0])} "
                      f"committed on {known[1]}, {short(block_hash)} on "
                      f"{host.name}")

    def check(self) -> None:
        """
        The step check: new committed blocks, utxo hashes, statuses
        (rejections are checked as they happen: L{_rejected}).
        """
        for host in self.nodes:
            if host.up and not host.byzantine:
                self._blocks(host)
                self._statuses(host)
            if host.up:
                self.equivocation.accusations(host)

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
        honest = [h for h in self.nodes if h.up and not h.byzantine]
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
        if self.lifecycle_check is not None:
            self.lifecycle_check.final()
        for txid in sorted(self.finalized):
            states = {h.name: self.state_of(h, txid) for h in honest}
            lagging = {n: s for n, s in states.items()
                       if s not in ("confirmed", FINALIZED)}
            if lagging:
                where = ",".join(sorted(self.finalized[txid]))
                self.fail("finality", f"tx {short(txid)} finalized on "
                          f"{where} but after the calm period "
                          + ", ".join(f"{n} has it {s}"
                                      for n, s in sorted(lagging.items())))


class Liveness:
    """
    Progress once faults stop: within C{bound} seconds every honest
    running node passes the highest height reached under faults --
    promised only when the honest running masternodes hold a quorum of
    the active weight (the Byzantine ones may stay silent; a masternode
    stopped for good or away counts as down until the chain sets it
    aside).  A violation goes to the L{Checker}.
    """

    def __init__(self, checker: Checker, bound: float,
                 byzantine: int = 0) -> None:
        self.checker = checker
        self.hosts = checker.hosts
        self.journal = checker.journal
        self.bound = bound
        self.byzantine = byzantine
        self.effective = bound
        """The bound of this run (L{bound_now} when the faults stopped)."""

    def bound_now(self) -> float:
        """
        Within how many seconds from now (the faults just stopped)
        progress is promised: the configured bound, or longer when the
        honest nodes are already in a late round.  Block consensus
        promises progress once the faults stop, not within a fixed time:
        each of C{byzantine} proposers in a row may cost a whole round
        (propose, prevote and precommit timeouts, which grow with the
        round), and the round the faults leave behind may fail too.  So
        the bound is at least the schedule of C{byzantine} + 2 rounds from
        the latest round an honest node is in.  From round 0 that is the
        configured 30 s of seven masternodes with two Byzantine; a fixed
        bound failed seed 53 of seven/two, which committed in round 6,
        one second after it, behind two Byzantine proposers in a row.
        """
        engines = [h.node.consensus for h in self.hosts.nodes
                   if h.node is not None and h.up and not h.byzantine]
        if not engines:
            return self.bound
        start = max(e.round for e in engines)
        schedule = sum(3 * engines[0].timeout(r)
                       for r in range(start, start + self.byzantine + 2))
        return max(self.bound, schedule)

    def check(self, before: dict[str, int], target: int) -> None:
        """
        Every honest running node passed C{target}; C{before}: their
        heights when faults stopped.
        """
        promised = self.promised()
        if promised is not None:
            self.journal.counters["liveness-not-promised"] += 1
            self.journal.note(f"liveness not promised: {promised}")
            return
        now = self.hosts.honest_heights()
        behind = {n: h for n, h in now.items() if h < target}
        if behind:
            states = []
            for host in self.hosts.nodes:
                if host.node is not None and not host.byzantine:
                    engine = host.node.consensus
                    service = host.service
                    states.append(
                        f"{host.name}: h{host.node.chain.height} "
                        f"r{engine.round} {engine.step} peers "
                        f"{len(service.manager.peers.ready) if service else 0}")
            self.checker.fail(
                "liveness", f"no progress within "
                f"{self.effective:.0f}s after faults stopped: "
                f"needed height {target} on every honest node; heights then "
                f"{before}, now {now}; " + "; ".join(states))

    def promised(self) -> str | None:
        """
        Why liveness is not promised now, or C{None} when it is: the
        honest running masternodes hold a quorum of the weight active at
        the height the honest nodes work on.
        """
        ref = reference(self.hosts.nodes)
        if ref is None:
            return "no honest node runs"
        chain = ref.chain
        active = chain.snapshot_for(chain.height + 1)
        total = sum(chain.quorum.weight(m) for m in active)
        running = {h.key.public for h in self.hosts.nodes
                   if h.up and not h.byzantine}
        up = sum(chain.quorum.weight(m) for m in active
                 if m.pubkey in running)
        if chain.quorum.approved(up, total):
            return None
        return (f"honest running weight {up} of {total} active at height "
                f"{chain.height + 1}")
