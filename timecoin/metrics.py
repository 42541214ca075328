"""
Prometheus metrics of one node (``GET /metrics`` on the RPC port).

Each node has its own C{CollectorRegistry} (no process-global state, so
tests can run several nodes in one process).  Gauges are read from the
node's state at scrape time by a collector; the finality-latency histogram
is fed as transactions finalize, and the RPC-latency histogram by the RPC
server as calls complete (L{NodeMetrics.observe_rpc}).  Peer, ban and sync
series appear when the node has a P2P service (C{node.p2p}).  The
registry also holds C{timecoin_build_info} and prometheus_client's
C{process_*} series of the node's process.  Names follow Prometheus'
conventions so that C{promtool check metrics} passes (no C{_count} suffix
on a gauge: the UTXO gauge is C{timecoin_utxos}).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from timecoin.p2p.dependencies import Direction

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0,
                   5.0, 10.0, 30.0)


class _NodeCollector(Collector):
    """
    Reads gauges and counters off the node at scrape time.
    """

    def __init__(self, node: Any) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        node = self.node
        chain, mempool, finality = node.chain, node.mempool, node.finality
        yield GaugeMetricFamily("timecoin_chain_height",
                                "Height of the best block.", chain.height)
        yield GaugeMetricFamily("timecoin_utxos",
                                "Unspent outputs at the tip.",
                                len(chain.utxos))
        yield GaugeMetricFamily("timecoin_mempool_transactions",
                                "Transactions in the mempool.", len(mempool))
        yield GaugeMetricFamily("timecoin_mempool_bytes",
                                "Bytes of the mempool's transactions.",
                                mempool.total_bytes)
        yield GaugeMetricFamily("timecoin_masternode",
                                "1 if this node is an active masternode.",
                                int(node.is_masternode))
        yield GaugeMetricFamily("timecoin_tip_age_seconds",
                                "Seconds since the tip block's timestamp.",
                                node.stall_watch.tip_age())
        yield GaugeMetricFamily(
            "timecoin_chain_stalled",
            "1 while the synced node saw no block for stall_after seconds.",
            int(node.stall_watch.stall() is not None))
        states = GaugeMetricFamily("timecoin_masternodes",
                                   "Masternodes on chain, by status.",
                                   labels=["status"])
        counts = {"active": 0, "registered": 0, "set-aside": 0}
        for m in chain.all_masternodes():
            status = chain.mn_status(m.pubkey)
            if status is not None:
                counts[status.state] = counts.get(status.state, 0) + 1
        for name, count in sorted(counts.items()):
            states.add_metric([name], count)
        yield states
        tx = CounterMetricFamily("timecoin_transactions",
                                 "Transactions decided, by outcome.",
                                 labels=["outcome"])
        tx.add_metric(["finalized"], finality.counters["finalized"])
        tx.add_metric(["rejected"], finality.counters["rejected"])
        yield tx
        votes = CounterMetricFamily("timecoin_tx_votes",
                                    "Transaction votes received, by result.",
                                    labels=["result"])
        invalid = finality.counters["votes_invalid"]
        votes.add_metric(["valid"],
                         finality.counters["votes_received"] - invalid)
        votes.add_metric(["invalid"], invalid)
        yield votes
        refusals = CounterMetricFamily(
            "timecoin_mempool_refusals",
            "Transactions refused or rejected, by reason code.",
            labels=["reason"])
        for reason, count in sorted(mempool.rejections.items()):
            refusals.add_metric([reason], count)
        yield refusals
        counters = node.consensus.counters
        yield CounterMetricFamily("timecoin_blocks_proposed",
                                  "Blocks this node proposed.",
                                  counters.get("proposed", 0))
        yield CounterMetricFamily("timecoin_blocks_committed",
                                  "Blocks this node committed by consensus.",
                                  counters.get("committed", 0))
        timeouts = CounterMetricFamily("timecoin_round_timeouts",
                                       "Consensus timeouts, by step; "
                                       "step round: a round that lasted "
                                       "three times its timeout (a halt).",
                                       labels=["step"])
        for step in ("propose", "prevote", "precommit", "round"):
            timeouts.add_metric([step], counters.get(f"timeouts-{step}", 0))
        yield timeouts
        yield GaugeMetricFamily("timecoin_uptime_seconds",
                                "Seconds since the node started.",
                                node.uptime())
        p2p = getattr(node, "p2p", None)
        if p2p is not None:
            yield from self._p2p(p2p)
        sync = getattr(p2p, "sync", None)
        if sync is not None:
            current = sync.state
            state = GaugeMetricFamily(
                "timecoin_sync_state",
                "1 for the block-sync state the node is in, else 0.",
                labels=["state"])
            for name in sync.STATES:
                state.add_metric([name], int(name == current))
            yield state
            yield GaugeMetricFamily(
                "timecoin_sync_headers",
                "Best height reported by peers usable for sync.",
                sync.best_height())
            yield CounterMetricFamily(
                "timecoin_sync_blocks",
                "Blocks downloaded and connected by catch-up.",
                sync.counters["sync-blocks"])

    def _p2p(self, p2p: Any) -> Iterator[Any]:
        """
        Peers by direction and bans, from the node's P2P service.
        """
        peers = GaugeMetricFamily("timecoin_peers",
                                  "Connected (handshaken) peers, by "
                                  "direction.", labels=["direction"])
        directions = [c.direction for c in p2p.manager.peers.ready.values()]
        for direction in Direction:
            peers.add_metric([direction.value], directions.count(direction))
        yield peers
        yield GaugeMetricFamily("timecoin_peers_banned",
                                "Peer identities banned now.",
                                len(p2p.scores.bans()))
        yield CounterMetricFamily("timecoin_bans",
                                  "Bans imposed for misbehaviour.",
                                  p2p.manager.peers.counters["bans"])


class _RPCCollector(Collector):
    """
    The RPC server's limits at scrape time: open connections, running
    long-polls, refusals by reason.
    """

    def __init__(self, refusals: Mapping[str, int],
                 connections: Callable[[], int],
                 waiting: Callable[[], int]) -> None:
        self.refusals = refusals
        self.connections = connections
        self.waiting = waiting

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("timecoin_rpc_connections",
                                "Open RPC (HTTP) connections.",
                                self.connections())
        yield GaugeMetricFamily("timecoin_rpc_waiting",
                                "RPC long-polls (waitfortransaction) "
                                "running.", self.waiting())
        refusals = CounterMetricFamily(
            "timecoin_rpc_refusals",
            "RPC connections and requests refused, by reason.",
            labels=["reason"])
        for reason, count in sorted(self.refusals.items()):
            refusals.add_metric([reason], count)
        yield refusals


class _BuildCollector(Collector):
    """
    C{timecoin_build_info}: 1, labelled with the version running.
    """

    def collect(self) -> Iterator[Any]:
        from timecoin import __version__
        info = GaugeMetricFamily(
            "timecoin_build_info",
            "Always 1; the labels say which timecoin and Python run.",
            labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info


class NodeMetrics:
    """
    The metrics registry of one node.
    """

    def __init__(self, node: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_NodeCollector(node))
        self.registry.register(_BuildCollector())
        # process_* (CPU, memory, open files, start time) of this process,
        # on the node's own registry; empty where /proc is missing.
        ProcessCollector(registry=self.registry)
        self.finality_latency = Histogram(
            "timecoin_finality_latency_seconds",
            "Seconds from a transaction's acceptance to its finality.",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        node.finality.finalized.connect(
            lambda finalized: self.finality_latency.observe(
                finalized.seconds))
        self.rpc_latency = Histogram(
            "timecoin_rpc_latency_seconds",
            "Seconds to answer an RPC call, by method.",
            labelnames=["method"], buckets=LATENCY_BUCKETS,
            registry=self.registry)

    def watch_rpc(self, refusals: Mapping[str, int],
                  connections: Callable[[], int],
                  waiting: Callable[[], int]) -> None:
        """
        Export the RPC server's limits: C{refusals} by reason (read at
        scrape time), and the open C{connections} and running long-polls
        (C{waiting}) as gauges.
        """
        self.registry.register(_RPCCollector(refusals, connections, waiting))

    def observe_rpc(self, method: str, seconds: float) -> None:
        """
        Record one call of the known RPC method C{method} that took
        C{seconds} (unknown names are never passed: no label explosion).
        """
        self.rpc_latency.labels(method=method).observe(seconds)

    def render(self) -> bytes:
        """
        The Prometheus text exposition of every metric.
        """
        return generate_latest(self.registry)
