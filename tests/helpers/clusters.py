"""
The tests' clusters of whole nodes, each a thin L{Cluster} of
L{timecoin.testing.cluster} with its own genesis and test keys: a
producing devnet (L{PeerCluster}), four masternodes (L{MasternodeCluster},
L{JoiningCluster}) and a sync network (L{SyncNet}); and the small helpers
the tests that use them share.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from tests.helpers import START, addr, key, result_of
from timecoin import params
from timecoin.genesis import make_genesis
from timecoin.masternodes import Masternode
from timecoin.node import Node
from timecoin.p2p.messages import GetBlocks
from timecoin.p2p.service import P2PService
from timecoin.testing.cluster import PORT, Cluster, TestCase
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs

__all__ = ["BLOCK_TIME", "FUNDS", "IPS", "PORT", "PRODUCER",
           "JoiningCluster", "MasternodeCluster", "PeerCluster", "SyncNet",
           "fan_out", "hashes", "keys_by_order", "node_of", "service_of",
           "silent_after"]

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
"""The IPs of the four masternodes of L{MasternodeCluster}."""

BLOCK_TIME = 0.05
"""The block time of a L{SyncNet} (seconds of fake time)."""

FUNDS = 1_000 * params.COIN
"""What the genesis of a L{SyncNet} pays test key 1."""

PRODUCER = "10.0.0.1"
"""The IP of a L{SyncNet}'s masternode."""


def keys_by_order(count: int) -> list[int]:
    """
    C{count} test key numbers sorted by public key (lowest first).
    """
    return sorted(range(20, 20 + count), key=lambda n: key(n).public)


class PeerCluster(Cluster):
    """
    Nodes on one fake network and clock; each host has its own IP.
    """

    def __init__(self, testcase: TestCase) -> None:
        super().__init__(testcase, make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(1)))],
            [Masternode(key(0).public, "127.0.0.1:1", addr(key(0)), "free")]),
            START)

    def start(self, ip: str, n: int, connect: tuple[str, ...] = (),
              genesis: str | None = None, port: int = PORT,
              block_time: float = 2.0, name: str | None = None,
              **settings: Any) -> P2PService:
        """
        Start (or restart, keeping its data dir) the node of test key C{n}
        at C{ip} with its P2P service, known as C{name} (default: its IP);
        C{genesis} "" makes it its own producing devnet.
        """
        name = name or ip
        datadir = self.datadir(name, key(n))
        options: dict[str, Any] = {} if genesis is None else {
            "genesis": genesis}
        config = self.config(ip, datadir, list(connect), port=port,
                             block_time=block_time, **options)
        return self.start_node(
            name, config, random.Random(n * 1000 + len(self.services)),
            settings=replace(config.p2p, **settings))

    def stop(self, name: str, crash: bool = False) -> None:
        """
        Stop the node C{name}: gracefully, or as a crash (connections
        reset, nothing saved).
        """
        self.stop_node(name, crash)


class MasternodeCluster(Cluster):
    """
    Four masternodes (test keys 0-3) registered by one genesis, each on its
    own IP of one fake network, all told about each other.
    """

    def __init__(self, testcase: TestCase, policy: str =
                 "round-robin", tiers: tuple[str, ...] = ("free",) * 4,
                 plugin_dirs: tuple[str, ...] = ()) -> None:
        self.policy = policy
        self.plugin_dirs = list(plugin_dirs)
        super().__init__(testcase, make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(0)))],
            [Masternode(key(i).public, f"{ip}:{PORT}", addr(key(i)), tier)
             for i, (ip, tier) in enumerate(zip(IPS, tiers))]), START)

    def start(self, i: int) -> P2PService:
        """
        Start (or restart with its data dir) masternode C{i}.
        """
        ip = IPS[i]
        datadir = self.datadir(ip, key(i), wallet=True)
        config = self.config(ip, datadir,
                             [f"{o}:{PORT}" for o in IPS if o != ip],
                             block_time=2.0, policy=self.policy,
                             plugin_dirs=self.plugin_dirs,
                             round_timeout=2.0)
        return self.start_node(
            ip, config, random.Random(i), store=self.store(ip),
            settings=replace(
                config.p2p, initial_delay=1.0, max_delay=4.0, passive_wait=2.0))

    def start_all(self) -> None:
        """
        Start the four masternodes and let them connect.
        """
        for i in range(4):
            self.start(i)
        self.net.advance(3, step=0.1)

    def stop(self, i: int) -> None:
        """
        Crash masternode C{i} (its store is kept for a restart).
        """
        self.stop_node(IPS[i], crash=True)

    def stop_all(self) -> None:
        """
        Crash every running masternode (test cleanup).
        """
        for i, ip in enumerate(IPS):
            if ip in self.services:
                self.stop(i)

    def advance(self, seconds: float, step: float = 0.1) -> None:
        """
        Let C{seconds} of fake time pass in steps of C{step}.
        """
        self.net.advance(seconds, step=step)


class JoiningCluster(MasternodeCluster):
    """
    The in-process network of L{MasternodeCluster} whose genesis registers
    only node 0: nodes 1-3 start as plain nodes and join as masternodes on
    the running chain, as operators do.
    """

    def __init__(self, testcase: TestCase) -> None:
        super().__init__(testcase)
        self.write_genesis(make_genesis(
            "devnet", int(START * 1000),
            [TxOut(100_000 * params.COIN, addr(key(0)))],
            [Masternode(key(0).public, f"{IPS[0]}:{PORT}", addr(key(0)),
                        "free")]))


def node_of(cluster: MasternodeCluster, i: int) -> Node:
    """
    The running node of masternode C{i}.
    """
    return cluster.services[IPS[i]].node


def service_of(cluster: MasternodeCluster, i: int) -> P2PService:
    """
    The P2P service of masternode C{i}.
    """
    return cluster.services[IPS[i]]


def fan_out(node: Node, count: int) -> Transaction:
    """
    A payment from C{node}'s largest coin (owned by test key 0) to itself
    in C{count} outputs of 5 TIME plus change (fee 1,000: nothing is
    sent to others).
    """
    outpoint, entry = max(node.spendable(), key=lambda c: c[1].value)
    outputs = [TxOut(5 * params.COIN, addr(key(0))) for _ in range(count)]
    outputs.append(TxOut(entry.value - count * 5 * params.COIN - 1_000,
                         addr(key(0))))
    return sign_inputs(Transaction((TxIn(outpoint, key(0).public),),
                                   tuple(outputs)), "devnet", [key(0)])


class SyncNet(Cluster):
    """
    Nodes on one fake network and clock sharing a genesis whose only
    masternode is test key 0 and whose funds belong to test key 1.
    """

    def __init__(self, testcase: TestCase,
                 block_time: float = BLOCK_TIME) -> None:
        self.block_time = block_time
        self.payer = key(1)
        genesis = make_genesis(
            "devnet", int(START * 1000), [TxOut(FUNDS, addr(self.payer))],
            [Masternode(key(0).public, f"{PRODUCER}:{PORT}", addr(key(0)),
                        "free")])
        super().__init__(testcase, genesis, START)
        self.coin = (OutPoint(genesis.txs[0].txid, 0), FUNDS)
        self.rng = random.Random(7)
        self.paid = 0

    def start(self, ip: str, n: int, connect: tuple[str, ...] = (),
              **settings: Any) -> P2PService:
        """
        Start a node with test key C{n} at C{ip} (its name) on a fresh
        memory store, dialing the IPs in C{connect}.
        """
        datadir = self.new_datadir(key(n))
        config = self.config(ip, datadir, [f"{c}:{PORT}" for c in connect],
                             block_time=self.block_time)
        return self.start_node(
            ip, config, random.Random(n * 1000 + len(self.services)),
            settings=replace(config.p2p, **settings))

    def stop(self, ip: str, crash: bool = False) -> None:
        """
        Stop the node at C{ip} (as a crash: connections reset).
        """
        self.stop_node(ip, crash)

    def pay(self, node: Node) -> Transaction:
        """
        Submit a signed payment from test key 1 (spending its last change)
        to a seeded-random address on C{node}.
        """
        outpoint, value = self.coin
        amount = self.rng.randrange(1_000, 100_000) * 1_000
        fee = params.min_fee(amount)
        dest = addr(key(100 + self.rng.randrange(50)))
        tx = Transaction((TxIn(outpoint, self.payer.public),),
                         (TxOut(amount, dest),
                          TxOut(value - amount - fee, addr(self.payer))))
        tx = sign_inputs(tx, "devnet", [self.payer])
        result_of(node.submit(tx))
        self.coin = (OutPoint(tx.txid, 1), value - amount - fee)
        self.paid += 1
        return tx

    def grow(self, node: Node, blocks: int, tx_every: int = 3) -> None:
        """
        Let the network run until C{node} (the producing masternode)
        committed C{blocks} more blocks, with a payment every C{tx_every}.
        """
        target = node.chain.height + blocks
        while node.chain.height < target:
            if node.chain.height % tx_every == 0:
                self.pay(node)
            self.net.advance(self.block_time, step=self.block_time)


def hashes(node: Node) -> list[bytes]:
    """
    The main-chain block hashes of C{node}, genesis first.
    """
    return [result_of(node.store.get_block_hash(h))
            for h in range(node.chain.height + 1)]


def silent_after(service: P2PService, answered: int) -> list[int]:
    """
    Make C{service} answer only its first C{answered} C{get_blocks}
    requests and ignore the rest (the connection stays up, pings are
    answered).  Returns the list of request starts it saw.
    """
    seen: list[int] = []
    serve = service.sync.server.serve_blocks

    def maybe_serve(conn: Any, msg: GetBlocks) -> Any:
        seen.append(msg.start)
        if len(seen) <= answered:
            return serve(conn, msg)
        return None

    service.sync.server.serve_blocks = maybe_serve  # type: ignore[method-assign]
    return seen
