"""
L{Cluster}: the one test fixture that runs several whole nodes in one
process: each built by L{timecoin.wiring.build} as an operator's node is,
on its own IP of one in-memory TCP network on one fake clock
(L{timecoin.p2p.testing.FakeNetwork}), sharing a genesis file.

It writes the genesis, gives each node a data dir with its key (kept
across restarts), starts and stops nodes (gracefully or as a crash: the
crash sequence lives here only), runs the network until a condition
holds, and registers its cleanup on the test case, so that no node is
left running on the reactor.  The tests' clusters (a producing devnet,
four masternodes, a sync network) are thin subclasses in C{tests/}.

May import the node (L{timecoin.wiring}, config, genesis, storage, the
P2P layer's fakes); only tests and benchmarks import it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from twisted.internet import defer
from twisted.internet.task import Clock

from timecoin.block import Block
from timecoin.config import Config
from timecoin.genesis import write_genesis
from timecoin.interfaces import IChainStore
from timecoin.keys import PrivateKey
from timecoin.node import Node
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings
from timecoin.p2p.testing import FakeNetwork, Link
from timecoin.storage.memory import MemoryStore
from timecoin.wallet import write_private
from timecoin.wiring import NodeServices, build

__all__ = ["PORT", "Cluster", "TestCase", "fired"]

PORT = 24200
"""The P2P port every node of a cluster listens on (each has its own IP)."""

T = TypeVar("T")


class TestCase(Protocol):
    """
    What a cluster needs of its test case (a trial C{TestCase} has it):
    fresh temporary paths, cleanups run after the test, and an
    assertion.
    """

    def mktemp(self) -> str:
        """
        A fresh path for temporary files.
        """

    def addCleanup(self, f: Callable[..., object], *args: Any,
                   **kwargs: Any) -> None:
        """
        Run C{f(*args, **kwargs)} after the test.
        """

    def assertEqual(self, first: object, second: object,
                    msg: str | None = None) -> None:
        """
        Fail the test unless C{first == second}.
        """


def fired(d: defer.Deferred[T]) -> T:
    """
    The result of a Deferred that has already fired (its failure is
    raised).  A node on a memory store and a fake clock answers at once.
    """
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    outcome = results[0]
    if hasattr(outcome, "raiseException"):
        outcome.raiseException()
    result: T = outcome
    return result


class Cluster:
    """
    Whole nodes on one fake network and clock, sharing one genesis; each
    node has a name (usually its IP), its own IP and a data dir.

    @ivar testcase: the test the cluster belongs to (temporary paths,
        cleanup).
    @ivar clock: the one fake clock, started at C{start}.
    @ivar net: the L{FakeNetwork} the nodes talk over.
    @ivar services: the running nodes' P2P services by name (each one's
        node is C{service.node}).
    @ivar datadirs: every node's data dir by name, kept across restarts.
    @ivar stores: the stores handed out by L{store}, by node name, kept
        across restarts.
    @ivar genesis_path: the genesis file every node loads.
    """

    def __init__(self, testcase: TestCase, genesis: Block, start: float,
                 port: int = PORT) -> None:
        self.testcase = testcase
        self.port = port
        self.clock = Clock()
        self.clock.advance(start)
        self.net = FakeNetwork(self.clock)
        self.services: dict[str, P2PService] = {}
        self.datadirs: dict[str, Path] = {}
        self.stores: dict[str, IChainStore] = {}
        self.genesis_path = Path(testcase.mktemp()) / "genesis.json"
        self.genesis_path.parent.mkdir(parents=True)
        self.write_genesis(genesis)
        testcase.addCleanup(self.stop_all)

    def write_genesis(self, genesis: Block) -> None:
        """
        Make C{genesis} the one the nodes started from now on load.
        """
        write_genesis(self.genesis_path, genesis)

    def new_datadir(self, key: PrivateKey, wallet: bool = False) -> Path:
        """
        A fresh data dir holding C{key} as its node key (and, with
        C{wallet}, a wallet of that one key).
        """
        datadir = Path(self.testcase.mktemp())
        write_private(datadir / "private" / "node_key",
                      key.seed.hex().encode() + b"\n")
        if wallet:
            write_private(datadir / "private" / "wallet.json",
                          json.dumps({"keys": [key.seed.hex()]}).encode())
        return datadir

    def datadir(self, name: str, key: PrivateKey,
                wallet: bool = False) -> Path:
        """
        The data dir of node C{name}: the one it had before a restart,
        else a L{new_datadir} (remembered in C{datadirs}).
        """
        datadir = self.datadirs.get(name)
        if datadir is None:
            datadir = self.datadirs[name] = self.new_datadir(key, wallet)
        return datadir

    def store(self, name: str) -> IChainStore:
        """
        The store of node C{name}, kept across restarts (a new
        L{MemoryStore} the first time).
        """
        store = self.stores.get(name)
        if store is None:
            store = self.stores[name] = MemoryStore()
        return store

    def config(self, ip: str, datadir: Path, connect: list[str],
               port: int | None = None, **options: Any) -> Config:
        """
        The resolved devnet config of a node at C{ip} listening on C{port}
        (default: the cluster's) with the cluster's genesis, dialing
        C{connect} (C{host:port} strings); C{options} are further
        L{Config} keys (C{genesis} overrides the cluster's).
        """
        options.setdefault("genesis", str(self.genesis_path))
        config = Config(network="devnet", datadir=str(datadir),
                        p2p=P2PSettings(
                            port=self.port if port is None else port,
                            bind=ip, connect=tuple(connect)), **options)
        config.resolve()
        return config

    def build_node(self, config: Config, rng: random.Random,
              store: IChainStore | None = None,
              settings: P2PSettings | None = None) -> NodeServices:
        """
        Build (not start) the node of C{config} on the cluster's network
        at its C{[p2p] bind} address, on C{store} (default: a fresh memory
        store), with the P2P C{settings} (default: from the config) and
        randomness C{rng}.
        """
        return build(config, self.clock,
                     reactor=self.net.reactor(config.p2p.bind),
                     store=store if store is not None else MemoryStore(),
                     p2p_settings=settings, rng=rng)

    def start_node(self, name: str, config: Config, rng: random.Random,
                   store: IChainStore | None = None,
                   settings: P2PSettings | None = None) -> P2PService:
        """
        Build the node of C{config} (see L{build_node}), start it and its P2P
        service, and run it as C{name}.
        """
        built = self.build_node(config, rng, store, settings)
        built.startService()
        fired(built.node.ready)
        assert built.p2p is not None
        self.services[name] = built.p2p
        return built.p2p

    def stop_node(self, name: str, crash: bool = False) -> None:
        """
        Stop the node C{name}: gracefully, or as a crash (its connections
        reset, its listener gone, its peer table not saved; its store and
        data dir stay for a restart).
        """
        service = self.services.pop(name)
        if crash:
            self.net.crash(service.settings.bind)
            service.table.path = None
        service.stopService()
        fired(service.node.stopService())
        self.net.flush()

    def stop_all(self) -> None:
        """
        Stop every running node gracefully (the test's cleanup).
        """
        for name in list(self.services):
            self.stop_node(name)

    def nodes(self) -> list[Node]:
        """
        The running nodes, in the order they were started.
        """
        return [s.node for s in self.services.values()]

    def heights(self) -> list[int]:
        """
        The chain height of every running node.
        """
        return [n.chain.height for n in self.nodes()]

    def advance(self, seconds: float, step: float = 1.0) -> None:
        """
        Let C{seconds} of fake time pass in steps of C{step}, delivering
        everything in flight.
        """
        self.net.advance(seconds, step)

    def advance_until(self, done: Callable[[], bool], timeout: float,
                      step: float = 0.1) -> bool:
        """
        Let fake time pass in steps of C{step} until C{done()} holds or
        C{timeout} seconds have passed; whether it holds.
        """
        end = self.clock.seconds() + timeout
        while not done():
            if self.clock.seconds() >= end:
                return False
            self.net.advance(step, step)
        return True

    def at_height(self, height: int) -> bool:
        """
        Whether every running node is at C{height} or above.
        """
        return all(h >= height for h in self.heights())

    def all_connected(self) -> bool:
        """
        Whether every running node has a completed connection to every
        other one.
        """
        return all(len(s.manager.peers.ready) >= len(self.services) - 1
                   for s in self.services.values())

    def links(self) -> list[tuple[str, str]]:
        """
        The open connections as (dialer IP, listener IP) pairs.
        """
        return sorted((link.client_ip, link.server_ip)
                      for link in self.connections())

    def connections(self) -> list[Link]:
        """
        The open connections of the network.
        """
        return self.net.connections()

    def ready_keys(self, name: str) -> list[str]:
        """
        The peer keys node C{name} has completed connections with.
        """
        return sorted(self.services[name].manager.peers.ready)

    def assert_agree(self) -> int:
        """
        Every running node has the same block at every height up to the
        lowest tip, and equal utxo_hash where heights are equal (checked
        with the test case's C{assertEqual}); returns the lowest height.
        """
        nodes = self.nodes()
        low = min(n.chain.height for n in nodes)
        for h in range(low + 1):
            hashes = {fired(n.store.get_block_hash(h)) for n in nodes}
            self.testcase.assertEqual(len(hashes), 1, f"height {h} differs")
        by_height: dict[int, set[bytes]] = {}
        for n in nodes:
            by_height.setdefault(n.chain.height, set()).add(
                n.chain.utxo_hash())
        for h, utxos in by_height.items():
            self.testcase.assertEqual(len(utxos), 1, f"utxo at {h}")
        return low
