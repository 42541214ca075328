"""
One seeded run: L{Simulation} builds the hosts, the network, the plan,
the workload, the adversaries, the lifecycle driver and the checks from
one seed and runs the fault phase and the calm; L{run_seed} runs one in a
temporary directory and returns its L{SimResult}; L{repro} prints the
command that replays it.

Imports every other module of the simulator but L{cli}.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.logger import (
    ILogObserver,
    LogLevel,
    formatEvent,
    globalLogPublisher,
)
from zope.interface import provider

from timecoin.block import Block
from timecoin.genesis import make_genesis, write_genesis
from timecoin.interfaces import IQuorumRule
from timecoin.masternodes import Masternode
from timecoin.testing.simulation.adversary import Adversary
from timecoin.testing.simulation.clock import HeapClock, Journal
from timecoin.testing.simulation.config import LIFECYCLE, SimConfig
from timecoin.testing.simulation.hosts import (
    Hosts,
    NodeRecipe,
    SimNode,
    make_hosts,
)
from timecoin.testing.simulation.invariants import (
    NOT_PROMISED,
    NOTED,
    Checker,
    Liveness,
    Violation,
)
from timecoin.testing.simulation.lifecycle import Lifecycle
from timecoin.testing.simulation.network import LinkFaults, SimNetwork
from timecoin.testing.simulation.plan import Event, FaultPlan
from timecoin.testing.simulation.workload import Workload
from timecoin.testing.simulation.world import (
    BANK_COIN,
    COIN_VALUE,
    COINS_PER_WALLET,
    FEE_COIN,
    FEE_COINS,
    PORT,
    START,
    WALLETS,
    address,
    bank_key,
    fork,
    wallet_key,
)
from timecoin.tx import TxOut

__all__ = ["SimResult", "Simulation", "repro", "run_seed"]


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


def make_sim_genesis(config: SimConfig, nodes: list[SimNode]) -> Block:
    """
    The genesis of a run: the workload wallets' coins, in lifecycle runs
    a bank coin per joiner and fee coins for every genesis masternode,
    and the first C{config.nodes} hosts as masternodes.
    """
    outputs = [TxOut(COIN_VALUE, address(wallet_key(w)))
               for w in range(WALLETS) for _ in range(COINS_PER_WALLET)]
    if config.lifecycle:
        # A bank coin per joiner (its collateral and fee coin), and
        # fee coins for every genesis masternode's activations.
        outputs += [TxOut(BANK_COIN, address(bank_key()))
                    for _ in range(config.joiners)]
        outputs += [TxOut(FEE_COIN, address(n.key))
                    for n in nodes[:config.nodes]
                    for _ in range(FEE_COINS)]
    return make_genesis(
        "devnet", int(START * 1000), outputs,
        [Masternode(n.key.public, f"{n.ip}:{PORT}", address(n.key), "free")
         for n in nodes[:config.nodes]])


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
        rng = random.Random(config.seed)
        self.rng = rng
        self.clock = HeapClock()
        self.clock.advance(START)
        self.journal = Journal(self.clock)
        # The order of these forks is each stream's seed: keep it.
        self.net = SimNetwork(self.clock, fork(rng))
        self.plan = FaultPlan.draw(
            fork(rng), config.nodes, config.byzantine, config.duration,
            config.faults, config.max_skew, config.joiners,
            config.lifecycle, config.step_crashes, config.max_outage)
        workload_rng = fork(rng)
        p2p_rngs = [fork(rng) for _ in range(config.hosts)]
        adversary_rngs = [fork(rng) for _ in range(config.hosts)]
        self.nodes = make_hosts(config, self.plan, workdir, self.clock,
                                p2p_rngs)
        self.names = [n.name for n in self.nodes]
        self.genesis_path = workdir / "genesis.json"
        self.genesis = make_sim_genesis(config, self.nodes)
        write_genesis(self.genesis_path, self.genesis)
        self.hosts = Hosts(self.nodes, self.net,
                           NodeRecipe(config, self.genesis_path, quorum),
                           self.journal, self)
        self.lifecycle = None if self.plan.lifecycle is None else \
            Lifecycle(self.plan.lifecycle, self.hosts, self.genesis,
                      self.journal, config.duration)
        self.checker = Checker(self.hosts, self.journal, self.lifecycle)
        self.liveness = Liveness(self.checker, config.liveness_bound,
                                 config.byzantine)
        masternodes = [n.key.public for n in self.nodes]
        self.adversaries = [
            Adversary(n, self.plan.byzantine[n.index],
                      adversary_rngs[n.index], self.clock, masternodes,
                      self.net)
            for n in self.nodes if n.byzantine]
        self.workload = Workload(workload_rng, config, self.nodes,
                                 self.adversaries)
        self.workload.fund(self.genesis)

    @property
    def now(self) -> float:
        """
        Simulated seconds since the start of the run.
        """
        return self.journal.now

    def start(self, host: SimNode) -> None:
        """
        Start (or restart, on its kept store) the node of C{host}.
        """
        self.hosts.start(host)

    def host_ready(self, host: SimNode) -> None:
        """
        C{host}'s node is up: the checks watch it, its adversary (if
        Byzantine) takes it over.
        """
        self.checker.watch(host)
        for adversary in self.adversaries:
            if adversary.host is host:
                adversary.attach()

    def host_failed(self, host: SimNode, why: str) -> None:
        """
        C{host}'s node failed to start: a violation.
        """
        self.checker.fail("restart", why)

    def _ips(self, indexes: tuple[int, ...]) -> list[str]:
        return [self.nodes[i].ip for i in indexes]

    def apply(self, event: Event) -> None:  # noqa: C901
        """
        Carry out one event of the plan.
        """
        self.journal.timeline.append(event.describe(self.names))
        self.journal.counters[event.kind] += 1
        if event.kind in ("partition", "heal"):
            for a in self._ips(event.nodes):
                for b in self._ips(event.other):
                    if event.kind == "partition":
                        self.net.cut(a, b)
                    else:
                        self.net.mend(a, b)
        elif event.kind == "crash":
            self.hosts.down.add(event.nodes[0])
            self.hosts.crash(self.nodes[event.nodes[0]])
        elif event.kind == "restart":
            self.hosts.restart(self.nodes[event.nodes[0]])
        elif event.kind == "step-crash":
            mode, step = event.detail.split()
            self.hosts.arm(self.nodes[event.nodes[0]], mode, step)
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
        self.journal.note("calm: every fault stops")
        self.net.mend_all()
        for host in self.nodes:
            self.hosts.disarm(host)
        if self.lifecycle is not None:
            self.lifecycle.calm()
        self.hosts.restart_down()
        self.net.faults.clear()
        self.net.default = LinkFaults()

    def _step(self) -> None:
        self.net.advance(self.config.step, self.config.step)
        self.hosts.reap()
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
            self.workload.tick(self.now, config.step, self.checker.finalized)
            if self.lifecycle is not None:
                self.lifecycle.tick(self.now)
            self._step()
            steps += 1
            if steps % 100 == 0:
                self.net.sweep()
        while events:
            self.apply(events.popleft())
        self.calm_down()
        before = self.hosts.honest_heights()
        target = max(before.values(), default=0) + 1
        calm_end = config.duration + config.calm
        self.liveness.effective = self.liveness.bound_now()
        checked = False
        while self.now < calm_end - 1e-9:
            if self.lifecycle is not None:
                self.lifecycle.tick(self.now)
            self._step()
            if not checked and \
                    self.now >= config.duration + self.liveness.effective:
                checked = True
                self.liveness.check(before, target)
        if not checked:
            self.liveness.check(before, target)
        self.checker.final()
        return self.result()

    def result(self) -> SimResult:
        """
        The run's violations, statistics, plan and a digest of its history
        (equal digests for equal runs).
        """
        heights = {h.name: h.node.chain.height for h in self.nodes
                   if h.node is not None}
        committed = self.checker.committed
        stats: dict[str, Any] = {
            "heights": heights,
            "committed": len(committed),
            "finalized_txs": len(self.checker.finalized),
            "workload": dict(self.workload.counters),
            "network": dict(self.net.counters),
            "copies": self.net.copies.summary(len(committed)),
            "finality-latency": _percentiles(self.checker.latencies),
            "events": dict(self.journal.counters),
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
            sorted((h, v[0].hex()) for h, v in committed.items()),
            sorted(t.hex() for t in self.checker.finalized),
            sorted(heights.items()), sorted(self.net.counters.items()),
        ]).encode()).hexdigest()
        return SimResult(self.config.seed, violations, stats,
                         self.plan.describe(self.names) + [
                             "timeline:"] + self.journal.timeline, digest)

    def stop(self) -> None:
        """
        Stop every node and adversary (and cancel their timers).
        """
        for adversary in self.adversaries:
            adversary.stop()
        for host in self.nodes:
            self.hosts.crash(host)


def _percentiles(values: list[float]) -> dict[str, float]:
    """
    The median, 99th percentile and maximum of C{values}, in seconds
    (empty when there are none).
    """
    if not values:
        return {}
    ordered = sorted(values)
    last = len(ordered) - 1
    return {"p50": round(ordered[last // 2], 3),
            "p99": round(ordered[min(last, round(0.99 * last))], 3),
            "max": round(ordered[-1], 3)}


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


def repro(config: SimConfig) -> str:
    """
    The command that replays C{config}.
    """
    defaults = LIFECYCLE if config.lifecycle else SimConfig()
    extra = " --lifecycle" if config.lifecycle else ""
    extra += "".join(
        f" --{name.replace('_', '-')} {getattr(config, name)}"
        for name in ("duration", "calm", "liveness_bound", "tx_rate",
                     "double_spends", "max_skew", "joiners", "step_crashes",
                     "committee")
        if getattr(config, name) != getattr(defaults, name))
    if not config.faults:
        extra += " --no-faults"
    return (f"python -m timecoin.testing.simulation --seed {config.seed} "
            f"--nodes {config.nodes} --byzantine {config.byzantine}{extra} "
            "--verbose")
