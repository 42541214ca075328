"""
The simulated hosts and their lives: L{SimNode} (one host: key, IP, data
dir, the store it keeps across crashes, and while up its node and P2P
service) and L{Hosts}, which starts, crashes and restarts them, and
crashes them inside a consensus step (C{step-crash}).

Imports L{world}, L{clock}, L{network}, L{stores}, L{plan} and L{config}
from the rest of the simulator.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from twisted.internet.task import Clock

from timecoin.config import Config
from timecoin.consensus import SIGN_STEPS, SigningState
from timecoin.interfaces import IQuorumRule
from timecoin.keys import PrivateKey
from timecoin.mnstate import ServiceRules
from timecoin.node import Node
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings
from timecoin.storage.memory import MemoryStore
from timecoin.testing.simulation.clock import Journal
from timecoin.testing.simulation.config import SimConfig
from timecoin.testing.simulation.network import SimNetwork
from timecoin.testing.simulation.plan import FaultPlan
from timecoin.testing.simulation.stores import GroupCommitStore
from timecoin.testing.simulation.world import PORT, fork, masternode_key
from timecoin.wallet import write_private
from timecoin.wiring import build

__all__ = ["HostListener", "Hosts", "NodeRecipe", "SimNode", "make_hosts",
           "reference"]

_STEP_NAMES = {number: name for name, number in SIGN_STEPS.items()}


class SimNode:
    """
    One simulated host: a masternode key, an IP, a data dir, a memory
    store kept across crashes, the random stream of its P2P layer, and
    (while up) a node and its P2P service.
    """

    def __init__(self, index: int, key: PrivateKey, ip: str, datadir: Path,
                 offset: float, byzantine: bool,
                 store: MemoryStore | None = None,
                 rng: random.Random | None = None) -> None:
        self.index = index
        self.key = key
        self.ip = ip
        self.datadir = datadir
        self.offset = offset
        self.byzantine = byzantine
        self.name = f"n{index}" + ("*" if byzantine else "")
        self.store = store if store is not None else MemoryStore()
        self.rng = rng if rng is not None else random.Random(index)
        """Each start of its P2P layer forks a stream from this one."""
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


def make_hosts(config: SimConfig, plan: FaultPlan, workdir: Path,
               clock: Clock, rngs: list[random.Random]) -> list[SimNode]:
    """
    The hosts of a run, each with its key files written in its data dir
    under C{workdir}, its clock skew and byzantine role from C{plan}, and
    its P2P stream from C{rngs}.
    """
    nodes = []
    for i in range(config.hosts):
        datadir = workdir / f"n{i}"
        key = masternode_key(i)
        write_private(datadir / "private" / "node_key",
                      key.seed.hex().encode() + b"\n")
        write_private(datadir / "private" / "wallet.json",
                      json.dumps({"keys": [key.seed.hex()]}).encode())
        store = GroupCommitStore(clock, config.group_commit) \
            if config.group_commit or config.step_crashes else None
        nodes.append(SimNode(
            i, key, f"10.0.0.{i + 1}", datadir, plan.skew[i],
            i in plan.byzantine, store, rngs[i]))
    return nodes


def reference(nodes: list[SimNode]) -> Node | None:
    """
    The honest running node with the highest committed tip (the first
    such, in host order).
    """
    best = None
    for host in nodes:
        node = host.node
        if node is not None and not host.byzantine and (
                best is None or node.chain.height > best.chain.height):
            best = node
    return best


class NodeRecipe:
    """
    How every node of a run is built: the run's parameters, its genesis
    file, and what replaces the devnet's quorum rule and proof-of-service
    rules (C{None}: keep them).
    """

    def __init__(self, config: SimConfig, genesis: Path,
                 quorum: IQuorumRule | None = None) -> None:
        self.config = config
        self.genesis = genesis
        self.quorum = quorum
        self.rules: ServiceRules | None = None
        if config.service is not None:
            self.rules = ServiceRules(*config.service)

    def node_config(self, host: SimNode, ips: list[str]) -> Config:
        """
        The resolved node configuration of C{host} among hosts C{ips}.
        """
        config = Config(network="devnet", datadir=str(host.datadir),
                        block_time=self.config.block_time,
                        p2p=P2PSettings(port=PORT, bind=host.ip, connect=tuple(
                            f"{ip}:{PORT}" for ip in ips if ip != host.ip)),
                        genesis=str(self.genesis),
                        round_timeout=self.config.round_timeout,
                        vote_timeout=self.config.vote_timeout,
                        committee_size=self.config.committee,
                        storage="memory")
        config.resolve()
        return config


class HostListener(Protocol):
    """
    Told when a host's node is up (its P2P service started) or failed to
    start.
    """

    def host_ready(self, host: SimNode) -> None:
        """
        C{host} is up: hook checks and adversaries to its node.
        """

    def host_failed(self, host: SimNode, why: str) -> None:
        """
        C{host}'s node failed to start.
        """


class Hosts:
    """
    Starts, crashes and restarts the nodes of the hosts of a run, and
    crashes them inside a consensus step.

    @ivar nodes: the hosts, in index order.
    @ivar down: hosts down until a planned restart (or the calm).
    @ivar gone: hosts stopped for good (the lifecycle's C{stop}).
    @ivar away: hosts down until the chain sets them aside (the
        lifecycle's returning masternode).
    @ivar up_since: the highest honest height when each host last started.
    """

    def __init__(self, nodes: list[SimNode], net: SimNetwork,
                 recipe: NodeRecipe, journal: Journal,
                 listener: HostListener) -> None:
        self.nodes = nodes
        self.net = net
        self.recipe = recipe
        self.journal = journal
        self.listener = listener
        self.down: set[int] = set()
        self.gone: set[int] = set()
        self.away: set[int] = set()
        self.up_since: dict[int, int] = {}

    def honest_heights(self) -> dict[str, int]:
        """
        The committed height of every honest running node, by name.
        """
        return {h.name: h.node.chain.height for h in self.nodes
                if h.node is not None and not h.byzantine}

    def start(self, host: SimNode) -> None:
        """
        Start (or restart, on its kept store) the node of C{host}.
        """
        config = self.recipe.node_config(host, [n.ip for n in self.nodes])
        reactor = self.net.reactor(host.ip, host.offset)
        settings = replace(config.p2p, initial_delay=1.0, max_delay=4.0,
                           passive_wait=2.0, tip_interval=5.0)
        built = build(config, reactor, store=host.store,
                      p2p_settings=settings, rng=fork(host.rng))
        node, service = built.node, built.p2p
        assert service is not None
        if self.recipe.quorum is not None:
            node.chain.quorum = self.recipe.quorum
        if self.recipe.rules is not None:
            node.chain.rules = self.recipe.rules
        if not host.byzantine:
            self._trap_signing(host, node)
        node.startService()
        host.starting = node
        node.ready.addCallbacks(
            lambda _: self._ready(host, service),
            lambda f: self.listener.host_failed(
                host, f"{host.name} failed to start: "
                f"{f.getErrorMessage()}"))

    def _ready(self, host: SimNode, service: P2PService) -> None:
        """
        The node of C{host} loaded its chain and records (at once on a
        memory store, after a group commit otherwise): start its P2P.
        """
        node = service.node
        if host.starting is not node:
            return
        host.starting = None
        service.startService()
        host.node, host.service = node, service
        host.starts += 1
        self.up_since[host.index] = max(
            self.honest_heights().values(), default=0)
        self.listener.host_ready(host)

    def restart(self, host: SimNode) -> None:
        """
        A planned restart: disarm any step crash, and start C{host} unless
        it runs, is starting, or is kept down (stopped for good, or away
        until set aside).
        """
        self.disarm(host)
        if host.up or host.starting is not None or \
                host.index in self.gone or host.index in self.away:
            return
        self.down.discard(host.index)
        self.start(host)

    def restart_down(self) -> None:
        """
        The calm: start every host down until a planned restart.
        """
        for i in sorted(self.down):
            if not self.nodes[i].up and self.nodes[i].starting is None:
                self.start(self.nodes[i])
        self.down.clear()

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

    def arm(self, host: SimNode, mode: str, step: str) -> None:
        """
        Arm a crash inside the next consensus step of C{host} that signs
        C{step} (L{STEP_CRASH_MODES
        <timecoin.testing.simulation.plan.STEP_CRASH_MODES>}).
        """
        node = host.node
        store = host.store
        if node is None or not isinstance(store, GroupCommitStore):
            self.journal.counters["step-crash-missed"] += 1
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

    def disarm(self, host: SimNode) -> None:
        """
        Take back a step crash armed on C{host} that has not hit (counted
        as missed).
        """
        if host.trap is not None or (
                isinstance(host.store, GroupCommitStore)
                and host.store.trap is not None):
            self.journal.counters["step-crash-missed"] += 1
        host.trap = None
        if isinstance(host.store, GroupCommitStore):
            host.store.trap = None

    def reap(self) -> None:
        """
        The end of a step: every host a step crash hit dies now.
        """
        for host in self.nodes:
            if host.dying is not None:
                self._die(host, *host.dying)

    def _die(self, host: SimNode, node: Node, keep: bool) -> None:
        """
        The step crash armed by L{arm} hit C{node}: its held signing-state
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
        self.journal.note(
            f"step-crash hit {host.name} at height "
            f"{node.consensus.height} round {node.consensus.round} "
            f"({'write kept' if keep else 'write lost or never made'})")
        self.journal.counters["step-crash-hit"] += 1
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
        self.journal.counters["crashes"] += 1
