"""
The one way to build a node: L{build} wires a L{Node}, its P2P service and
its notification hooks together the same way for C{twistd timecoin}
(L{timecoin.tap}), the test clusters, the benchmarks and the simulator,
so a test's node is wired like an operator's.

What differs between them is passed in, never patched afterwards: the
clock and the reactor (a real reactor, or L{twisted.internet.task.Clock}
with the fake TCP of L{timecoin.p2p.testing}), the store (default: the one
the config names), the P2P settings (default: from the config) and the
P2P randomness (default: seeded from the OS).

This module may import the node and the P2P layer; nothing below it
imports it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.interfaces import IReactorTime

from timecoin.config import Config
from timecoin.interfaces import IChainStore
from timecoin.node import Node
from timecoin.notify import Notifier
from timecoin.p2p.service import P2PService
from timecoin.p2p.settings import P2PSettings

__all__ = ["NodeServices", "attach_p2p", "build"]


class NodeServices(MultiService):
    """
    A node and its P2P service as one service: started in that order, and
    stopped in the reverse one (the P2P layer stops, and saves its peer
    table, before the node closes its store).

    @ivar node: the L{Node}.
    @ivar p2p: its L{P2PService}, also reachable as C{node.p2p}; C{None}
        for a node built without P2P.
    """

    def __init__(self, node: Node, p2p: P2PService | None) -> None:
        super().__init__()
        self.node = node
        self.p2p = p2p
        node.setServiceParent(self)
        if p2p is not None:
            p2p.setServiceParent(self)


def build(config: Config, clock: IReactorTime, *,
          reactor: Any = None,
          store: IChainStore | None = None,
          p2p_settings: P2PSettings | None = None,
          rng: random.Random | None = None,
          spawn: Callable[..., Any] | None = None,
          stop_process: Callable[[], None] | None = None,
          with_p2p: bool = True) -> NodeServices:
    """
    Build the node C{config} describes.

    @param config: a resolved L{Config}.
    @param clock: the node's time (the reactor, or a test's C{Clock}).
    @param reactor: what the P2P layer listens and dials with (providing
        C{IReactorTCP} and C{IReactorTime}); default: C{clock}.
    @param store: the chain store; default: the one the config names.
    @param p2p_settings: default: the config's, C{config.p2p}.
    @param rng: the P2P layer's randomness; default: seeded from the OS.
    @param spawn: C{IReactorProcess.spawnProcess} for the C{[notify]}
        commands; default: the reactor's, if it has one (a config with
        commands and nothing to spawn them with is a L{NotifyError}).
    @param stop_process: what the C{stop} RPC calls.
    @param with_p2p: false for a node without P2P (RPC and unit tests of
        one node; L{attach_p2p} can add it later, as a benchmark that
        fills a chain before serving it does).
    @raise timecoin.genesis.GenesisError: no usable genesis.
    @raise timecoin.selection.PolicyError: the policy cannot be loaded.
    @raise timecoin.notify.NotifyError: a C{[notify]} command is unusable.
    @raise ValueError: another unusable setting.
    """
    reactor = clock if reactor is None else reactor
    node = Node(config, clock, store=store, stop_process=stop_process)
    if spawn is None:
        spawn = getattr(reactor, "spawnProcess", _cannot_spawn)
    Notifier.from_settings(config.notify, spawn, clock).attach(node)
    if not with_p2p:
        return NodeServices(node, None)
    return NodeServices(node, attach_p2p(node, reactor, p2p_settings, rng))


def attach_p2p(node: Node, reactor: Any,
               settings: P2PSettings | None = None,
               rng: random.Random | None = None) -> P2PService:
    """
    Give C{node} its P2P service (C{node.p2p}), not started; see L{build}.
    """
    p2p = P2PService(node, reactor, settings, rng)
    node.p2p = p2p
    return p2p


def _cannot_spawn(*args: Any, **kwargs: Any) -> Any:
    raise OSError("this reactor cannot run [notify] commands")
