"""
The node's status page (C{GET /} of the RPC port) and the data behind it
(C{GET /status.json}, and the RPC methods C{masternodelist},
C{masternodestatus} and C{getconsensusinfo}).

L{StatusHistory} remembers what the chain state does not keep at hand:
the last L{RECENT_BLOCKS} blocks (with producer and round), the finality
latency of the last L{LATENCY_SAMPLES} finalized transactions with the
time each was finalized, and the last block this node produced.

L{render_page} is server-rendered HTML with inline CSS and an inline SVG
chart: no script, no external asset, so it renders with a strict
C{Content-Security-Policy} and without network access.  The page reloads
itself every L{REFRESH_SECONDS} seconds.

Imports the node's modules (chain, mempool, masternode state, quorum);
imported by the RPC's server, site and masternode methods.
"""

from __future__ import annotations

import datetime
import html
import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin import __version__, params
from timecoin.block import Block
from timecoin.finality import Finalized
from timecoin.mempool import PENDING
from timecoin.mnstate import SET_ASIDE
from timecoin.p2p.dependencies import Direction, State
from timecoin.quorum import approval_threshold

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

RECENT_BLOCKS = 20
"""Blocks the page lists."""
LATENCY_SAMPLES = 2_000
"""Finality latencies remembered for the chart."""
PRODUCER_SCAN = 256
"""Blocks read back from the tip at start to find this node's last block."""
REFRESH_SECONDS = 10
"""The page reloads itself this often."""
CHART_BINS = 60
"""Time bins of the finality-latency chart."""
CONTENT_SECURITY_POLICY = (b"default-src 'none'; style-src 'unsafe-inline'; "
                           b"img-src data:; frame-ancestors 'none'")
"""What the page may load: its own inline style, nothing else."""


@dataclass(frozen=True)
class BlockSummary:
    """
    What the page and C{masternodestatus} show of one block.
    """

    height: int
    hash: bytes
    producer: bytes
    round: int
    time_ms: int
    ntx: int
    size: int

    @classmethod
    def of(cls, block: Block) -> BlockSummary:
        """
        The summary of C{block}.
        """
        header = block.header
        return cls(header.height, block.hash, header.producer, header.round,
                   header.timestamp, len(block.txs), block.size)

    def to_json(self) -> dict[str, Any]:
        """
        JSON for C{/status.json} and RPC.
        """
        return {"height": self.height, "hash": self.hash.hex(),
                "producer": self.producer.hex(), "round": self.round,
                "time": self.time_ms // 1000, "time_ms": self.time_ms,
                "ntx": self.ntx, "size": self.size}


class StatusHistory:
    """
    Recent blocks, finality latencies and this node's last produced block,
    fed by the chain's C{block_connected} and the finality's C{finalized}
    signals.

    @ivar blocks: the newest L{RECENT_BLOCKS} main-chain blocks, oldest
        first.
    @ivar latencies: C{(finalized at, seconds from acceptance)} pairs,
        oldest first.
    @ivar last_produced: the newest block this node produced that the
        history saw (since start, or among the L{PRODUCER_SCAN} blocks read
        at start).
    @ivar produced: blocks by this node connected since start.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.blocks: deque[BlockSummary] = deque(maxlen=RECENT_BLOCKS)
        self.latencies: deque[tuple[float, float]] = deque(
            maxlen=LATENCY_SAMPLES)
        self.last_produced: BlockSummary | None = None
        self.produced = 0
        self.started_at = node.clock.seconds()
        node.chain.block_connected.connect(self.block_connected)
        node.finality.finalized.connect(self.tx_finalized)
        node.ready.addCallback(self._node_ready)

    def _node_ready(self, result: Any) -> Any:
        self.preload().addErrback(
            lambda f: log.failure("status history preload failed", f))
        return result

    def block_connected(self, block: Block) -> None:
        """
        Remember a block joining the main chain; forget any block at its
        height or above (a reverted tip).
        """
        summary = BlockSummary.of(block)
        while self.blocks and self.blocks[-1].height >= summary.height:
            self.blocks.pop()
        self.blocks.append(summary)
        if summary.producer == self.node.key.public:
            self.produced += 1
            self.last_produced = summary

    def tx_finalized(self, finalized: Finalized) -> None:
        """
        Remember one finality latency.
        """
        self.latencies.append((self.node.clock.seconds(),
                               finalized.seconds))

    @defer.inlineCallbacks
    def preload(self) -> Any:
        """
        Read the blocks below the tip that the history has not seen (up to
        L{PRODUCER_SCAN}), to list recent blocks and find this node's last
        block after a restart.
        """
        tip = self.node.chain.height
        known = {b.height for b in self.blocks}
        found: list[BlockSummary] = []
        mine: BlockSummary | None = None
        # Only a masternode looks further back for its own last block.
        look_for_mine = self.last_produced is None and any(
            m.pubkey == self.node.key.public
            for m in snapshot_members(self.node))
        for height in range(tip, max(-1, tip - PRODUCER_SCAN), -1):
            if len(found) + len(known) >= RECENT_BLOCKS and (
                    mine is not None or not look_for_mine):
                break
            block = yield self.node.block_at(height)
            if block is None:
                break
            summary = BlockSummary.of(block)
            if height not in known and len(found) + len(known) < \
                    RECENT_BLOCKS:
                found.append(summary)
            if mine is None and summary.producer == self.node.key.public:
                mine = summary
        merged = {b.height: b for b in found}
        merged.update({b.height: b for b in self.blocks})
        self.blocks = deque((merged[h] for h in sorted(merged)),
                            maxlen=RECENT_BLOCKS)
        if self.last_produced is None:
            self.last_produced = mine


# Data shared by RPC and the page ------------------------------------------


def snapshot_members(node: Node) -> Any:
    """
    The masternode snapshot that produces and votes at the next height.
    """
    return node.chain.snapshot_for(node.chain.height + 1)


def registration_fields(chain: Any, pubkey: bytes) -> dict[str, Any]:
    """
    How a masternode got registered: collateral (txid:vout) and its value
    in TIME, and the registering block's height; genesis masternodes have
    no collateral and height 0.
    """
    registration = chain.registry.get(pubkey)
    if registration is None:
        return {"collateral": None, "collateral_amount": None,
                "registered_height": 0}
    entry = chain.utxos.get(registration.collateral)
    return {"collateral": str(registration.collateral),
            "collateral_amount": None if entry is None
            else params.format_amount(entry.value),
            "registered_height": registration.height}


def lifecycle_fields(chain: Any, pubkey: bytes) -> dict[str, Any]:
    """
    Where a masternode is in its lifecycle at the tip: status (active,
    registered: waiting for its activation, set-aside), since (the height
    it became so; for active, the first height it votes at), and for one
    set aside the reason and return_height (from when an activation may
    bring it back).
    """
    status = chain.mn_status(pubkey)
    if status is None:
        return {"status": None, "since": None}
    out: dict[str, Any] = {"status": status.state, "since": status.since}
    if status.state == SET_ASIDE:
        out["reason"] = status.reason
        out["return_height"] = status.since + chain.rules.min_away
    return out


def masternode_rows(node: Node, status: str | None = None
                    ) -> list[dict[str, Any]]:
    """
    One object per masternode, active or not (or only those of
    C{status}): pubkey, p2p_address, reward_address, tier, status, since
    (and reason, return_height when set aside), weight (under the quorum
    rule; 0 unless active), alive, last_seen (seconds since the epoch or
    None), reported_height (of its last heartbeat or None), is_self.
    """
    chain = node.chain
    view = node.liveness.view()
    members = {m.pubkey for m in snapshot_members(node)}
    rows = []
    for m in chain.all_masternodes():
        seen = view.get(m.pubkey, {})
        lifecycle = lifecycle_fields(chain, m.pubkey)
        if status is not None and lifecycle["status"] != status:
            continue
        rows.append({
            "pubkey": m.pubkey.hex(), "p2p_address": m.p2p_address,
            "reward_address": m.reward_address, "tier": m.tier,
            **lifecycle,
            "weight": chain.quorum.weight(m) if m.pubkey in members else 0,
            "alive": bool(seen.get("alive", False)),
            "last_seen": seen.get("last_seen"),
            "reported_height": seen.get("height"),
            "is_self": m.pubkey == node.key.public,
            **registration_fields(chain, m.pubkey),
        })
    return rows


def consensus_info(node: Node) -> dict[str, Any]:
    """
    The consensus parameters at the next height: quorum rule and its
    approval threshold over the snapshot's total weight, selection policy,
    snapshot size and weight, round-0 producer candidates, block time; and
    the live round state when the node runs block consensus.
    """
    chain = node.chain
    height = chain.height + 1
    snapshot = chain.committee_for(height)
    total = chain.total_weight(snapshot)
    candidates = chain.policy.candidates(snapshot, height, chain.tip.hash,
                                         0) if snapshot else []
    info: dict[str, Any] = {
        "height": height, "quorum": chain.quorum.name,
        "threshold": approval_threshold(total) if total else 0,
        "total_weight": total, "policy": chain.policy.name,
        "snapshot_size": len(snapshot_members(node)),
        "committee_size": len(snapshot),
        "committee_epoch": (height - 1) // chain.network.committee_epoch,
        "next_producers": [pk.hex() for pk in candidates],
        "block_time": node.config.block_time,
        "vote_timeout": node.config.vote_timeout,
    }
    state = node.consensus.info()
    info["round"] = {k: state[k] for k in ("height", "round", "step",
                                           "proposer", "locked_round")}
    info["last_commit"] = state["last_commit"]
    info["evidence"] = node.consensus.evidence[-10:]
    info["round_timeout"] = node.config.round_timeout
    return info


def masternode_status(node: Node, history: StatusHistory) -> dict[str, Any]:
    """
    This node as a masternode: is_masternode (in the next height's
    snapshot), pubkey, address, tier, weight, p2p_address,
    reward_address, alive, last_seen, next_producer (round 0 of the next
    height), blocks_produced (since start), last_block.
    """
    pubkey = node.key.public
    member = next((m for m in snapshot_members(node) if m.pubkey == pubkey),
                  None)
    info = consensus_info(node)
    view = node.liveness.view().get(pubkey, {})
    lifecycle = node.participation.status()
    out: dict[str, Any] = {
        "is_masternode": member is not None, "pubkey": pubkey.hex(),
        "address": node.node_address(),
        **lifecycle,
        "alive": node.liveness.is_alive(pubkey),
        "last_seen": view.get("last_seen"),
        "next_producer": bool(info["next_producers"]) and
        info["next_producers"][0] == pubkey.hex(),
        "blocks_produced": history.produced,
        "last_block": None if history.last_produced is None
        else history.last_produced.to_json(),
    }
    if member is not None:
        out.update({"tier": member.tier,
                    "weight": node.chain.quorum.weight(member),
                    "p2p_address": member.p2p_address,
                    "reward_address": member.reward_address})
    return out


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(history: StatusHistory) -> dict[str, Any]:
    """
    The finality latencies: count, p50, p99, max (seconds, None when
    empty) and the samples as C{[finalized_at, seconds]} pairs.
    """
    values = [s for _, s in history.latencies]
    return {
        "count": len(values),
        "p50": _quantile(values, 0.5) if values else None,
        "p99": _quantile(values, 0.99) if values else None,
        "max": max(values) if values else None,
        "samples": [[round(t, 3), round(s, 4)]
                    for t, s in history.latencies],
    }


def status_data(node: Node, history: StatusHistory) -> dict[str, Any]:
    """
    Everything the page shows, as JSON (C{GET /status.json}).
    """
    chain = node.chain
    mempool = node.mempool
    pending = sum(1 for e in mempool.entries.values()
                  if e.state == PENDING)
    peers: dict[str, Any] | None = None
    if node.p2p is not None:
        conns = node.p2p.peer_info()
        ready = [c for c in conns if c.get("state") == State.READY]
        peers = {
            "count": len(ready),
            "inbound": sum(1 for c in ready
                           if c.get("direction") == Direction.INBOUND),
            "outbound": sum(1 for c in ready
                            if c.get("direction") == Direction.OUTBOUND),
            "list": [{"addr": c.get("addr"), "direction": c.get("direction"),
                      "state": c.get("state"), "height": c.get("height"),
                      "pubkey": c.get("pubkey"), "rtt": c.get("rtt")}
                     for c in conns]}
    ok, health = node.health()
    return {
        "version": __version__, "network": chain.network.name,
        "now": node.clock.seconds(), "uptime": node.uptime(),
        "ready": bool(node.ready.called), "healthy": ok,
        "health_reason": health.get("reason"),
        "missing": health.get("missing", []),
        "height": chain.height, "best_block_hash": chain.tip.hash.hex(),
        "tip_time": chain.tip.header.timestamp // 1000,
        "masternode": masternode_status(node, history),
        "consensus": consensus_info(node),
        "masternodes": masternode_rows(node),
        "peers": peers,
        "mempool": {"size": len(mempool), "bytes": mempool.total_bytes,
                    "pending": pending, "finalized": len(mempool) - pending,
                    "total_fee": params.format_amount(
                        sum(e.fee for e in mempool.entries.values()))},
        "recent_blocks": [b.to_json() for b in reversed(history.blocks)],
        "finality_latency": latency_summary(history),
    }


# HTML ---------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(hex_text: str | None, n: int = 12) -> str:
    if not hex_text:
        return "-"
    return hex_text[:n] + "…" if len(hex_text) > n else hex_text


def _utc(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(now: float, then: float | None) -> str:
    if then is None:
        return "never"
    return f"{_duration(max(0.0, now - then))} ago"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _seconds(value: float | None) -> str:
    """
    A duration for people, to 3 significant digits: milliseconds below a
    second, else seconds.
    """
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def latency_chart(samples: list[list[float]], now: float,
                  width: int = 1000, height: int = 200) -> str:
    """
    An inline SVG of finality latency over time: the samples binned into
    up to L{CHART_BINS} time bins, the median of each bin as a line and
    its maximum as dots, with a labelled seconds axis and time axis
    (relative to C{now}).
    """
    left, right, top, bottom = 56, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="100%" '
             f'viewBox="0 0 {width} {height}" id="latency-chart" '
             f'role="img" aria-label="finality latency over time">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" '
             f'height="{plot_h}" class="plot"/>']
    if not samples:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
                     f'text-anchor="middle" class="muted">no transaction '
                     f'finalized since the node started</text></svg>')
        return "".join(parts)
    t0 = min(t for t, _ in samples)
    t1 = max(now, max(t for t, _ in samples))
    span = max(t1 - t0, 1.0)
    bins: list[list[float]] = [[] for _ in range(CHART_BINS)]
    for t, s in samples:
        index = min(CHART_BINS - 1, int((t - t0) / span * CHART_BINS))
        bins[index].append(s)
    top_value = max(s for _, s in samples)
    y_max = _nice_ceiling(top_value)

    def x_of(index: float) -> float:
        return left + (index + 0.5) / CHART_BINS * plot_w

    def y_of(value: float) -> float:
        return top + plot_h - value / y_max * plot_h

    ticks = _tick_count(y_max)
    for k in range(ticks + 1):
        value = y_max * k / ticks
        y = y_of(value)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" '
                     f'y2="{y:.1f}" class="grid"/><text x="{left - 6}" '
                     f'y="{y + 4:.1f}" text-anchor="end">'
                     f'{_e(_seconds(value))}</text>')
    for k in range(3):
        x = left + plot_w * k / 2
        label = "now" if k == 2 else f"-{_duration(span * (2 - k) / 2)}"
        parts.append(f'<text x="{x:.1f}" y="{height - 8}" '
                     f'text-anchor="middle">{_e(label)}</text>')
    points = []
    for index, values in enumerate(bins):
        if not values:
            continue
        median = _quantile(values, 0.5)
        points.append(f"{x_of(index):.1f},{y_of(median):.1f}")
        parts.append(f'<circle cx="{x_of(index):.1f}" '
                     f'cy="{y_of(median):.1f}" r="3" class="median-dot"/>')
        parts.append(f'<circle cx="{x_of(index):.1f}" '
                     f'cy="{y_of(max(values)):.1f}" r="2.5" class="max">'
                     f'<title>{len(values)} txs, max '
                     f'{_e(_seconds(max(values)))}</title></circle>')
    parts.append(f'<polyline points="{" ".join(points)}" class="median"/>')
    parts.append("</svg>")
    return "".join(parts)


def _tick_count(top: float) -> int:
    """
    Intervals of the seconds axis so that ticks fall on round values:
    1 and 2 in quarters and halves (4), 2.5 and 5 in fifths (5).
    """
    mantissa = top / 10 ** math.floor(math.log10(top))
    return 5 if 2.2 < mantissa < 9.5 else 4


def _nice_ceiling(value: float) -> float:
    """
    The smallest of 1, 2, 2.5, 5 times a power of ten at or above
    C{value} (a readable top of the axis).
    """
    if value <= 0:
        return 1.0
    scale = 10.0 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    while value < scale / 10:
        scale /= 10
    for step in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= scale * step:
            return scale * step
    return scale * 10


STYLE = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;
align-items:baseline;gap:24px;flex-wrap:wrap}
header h1{font-size:20px;margin:0}
header .big{font-size:28px;font-weight:600}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));
gap:16px;padding:16px 24px}
section{background:#fff;border-radius:8px;padding:12px 16px;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px;color:#44506a}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eceef2;
white-space:nowrap}
th{font-weight:600;color:#44506a}
code{font:12px ui-monospace,Menlo,Consolas,monospace}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.muted{color:#7a8399}
.kv td:first-child{color:#44506a;width:45%}
svg text{font-size:11px;fill:#44506a}
svg .plot{fill:#fafbfc;stroke:#d5d9e0}svg .grid{stroke:#eceef2}
svg .median{fill:none;stroke:#2f6fde;stroke-width:2}
svg .max{fill:#e8710a}svg .median-dot{fill:#2f6fde}
.kv td{white-space:normal}.kv code{word-break:break-all}
.legend span{margin-right:14px}
"""


def _amount(value: Any) -> str:
    """
    An amount in TIME with its 8 decimals, never in exponent form.
    """
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _status_text(row: dict[str, Any]) -> str:
    """
    A masternode's lifecycle status in words, for one not active.
    """
    if row.get("status") == SET_ASIDE:
        return (f"set aside at {row.get('since')}: {row.get('reason')}; "
                f"may return from {row.get('return_height')}")
    return f"{row.get('status')} since {row.get('since')}"


def _badge(ok: bool, yes: str, no: str) -> str:
    return f'<span class="{"ok" if ok else "bad"}">{_e(yes if ok else no)}' \
        f'</span>'


def render_page(data: dict[str, Any]) -> bytes:
    """
    The status page for L{status_data}'s C{data}, as UTF-8 HTML.
    """
    now = data["now"]
    mn = data["masternode"]
    consensus = data["consensus"]
    mempool = data["mempool"]
    peers = data["peers"]
    latency = data["finality_latency"]
    out: list[str] = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">',
        '<meta name="viewport" content="width=device-width">',
        f'<title>timecoin {_e(data["network"])} · height '
        f'{data["height"]}</title><style>{STYLE}</style></head><body>',
        f'<header><h1>timecoin · {_e(data["network"])}</h1>'
        f'<div>height <span class="big" id="height">{data["height"]}'
        f'</span></div>'
        f'<div>{_badge(data["healthy"], "healthy", "not ready")}</div>'
        + (f'<div class="bad" id="health-reason">'
           f'{_e(data.get("health_reason"))}</div>'
           if data.get("health_reason") else "") +
        f'<div>peers <b>{"-" if peers is None else peers["count"]}</b></div>'
        f'<div>mempool <b>{mempool["size"]}</b></div>'
        f'<div>uptime {_e(_duration(data["uptime"]))}</div>'
        f'<div class="muted">v{_e(data["version"])}</div></header><main>',
    ]
    out.append(
        '<section><h2>Chain</h2><table class="kv">'
        f'<tr><td>best block</td><td><code>{_e(data["best_block_hash"])}'
        f'</code></td></tr>'
        f'<tr><td>tip time</td><td>{_e(_utc(data["tip_time"]))} '
        f'({_e(_ago(now, data["tip_time"]))})</td></tr>'
        f'<tr><td>quorum</td><td>{_e(consensus["quorum"])}: '
        f'{consensus["threshold"]} of {consensus["total_weight"]}</td></tr>'
        f'<tr><td>selection policy</td><td>{_e(consensus["policy"])}'
        f'</td></tr>'
        f'<tr><td>next producer</td><td><code>'
        f'{_e(_short((consensus["next_producers"] or [None])[0]))}'
        f'</code></td></tr>'
        f'<tr><td>block time</td><td>{_e(consensus["block_time"])} s'
        f'</td></tr>'
        + (f'<tr><td>consensus</td><td>height {_e(consensus["round"]["height"])}'
           f', round {_e(consensus["round"]["round"])}, '
           f'{_e(consensus["round"]["step"])}</td></tr>'
           if consensus.get("round") else "")
        + '</table></section>')
    last = mn["last_block"]
    out.append(
        '<section><h2>This node</h2><table class="kv">'
        f'<tr><td>masternode</td><td>'
        f'{_badge(mn["is_masternode"], "yes", "no")}</td></tr>'
        f'<tr><td>pubkey</td><td><code>{_e(_short(mn["pubkey"], 24))}'
        f'</code></td></tr>'
        f'<tr><td>alive</td><td>{_badge(mn["alive"], "alive", "silent")}'
        f'</td></tr>'
        f'<tr><td>blocks produced since start</td><td>'
        f'{mn["blocks_produced"]}</td></tr>'
        f'<tr><td>last block produced</td><td>'
        + ("-" if last is None else
           f'{last["height"]} (round {last["round"]}, '
           f'{_e(_ago(now, last["time"]))})')
        + '</td></tr></table></section>')
    out.append(
        '<section><h2>Mempool</h2><table class="kv">'
        f'<tr><td>transactions</td><td id="mempool-size">{mempool["size"]}'
        f'</td></tr>'
        f'<tr><td>pending / finalized</td><td>{mempool["pending"]} / '
        f'{mempool["finalized"]}</td></tr>'
        f'<tr><td>bytes</td><td>{mempool["bytes"]:,}</td></tr>'
        f'<tr><td>fees</td><td>{_e(_amount(mempool["total_fee"]))} TIME'
        '</td></tr>'
        '</table></section>')
    out.append(
        '<section class="wide"><h2>Finality latency</h2>'
        f'<div class="legend"><span>{latency["count"]} transactions</span>'
        f'<span>p50 {_e(_seconds(latency["p50"]))}</span>'
        f'<span>p99 {_e(_seconds(latency["p99"]))}</span>'
        f'<span>max {_e(_seconds(latency["max"]))}</span>'
        '<span style="color:#2f6fde">— median per interval</span>'
        '<span style="color:#e8710a">● maximum</span></div>'
        f'{latency_chart(latency["samples"], now)}</section>')
    missing = set(data.get("missing", []))
    rows = "".join(
        ('<tr class="bad">' if m["pubkey"] in missing else '<tr>') +
        f'<td><code>{_e(_short(m["pubkey"], 16))}</code>'
        f'{" (this node)" if m["is_self"] else ""}'
        f'{" — not heard from" if m["pubkey"] in missing else ""}</td>'
        f'<td>{_e(m["p2p_address"])}</td><td>{_e(m["tier"])}</td>'
        f'<td>{_badge(m.get("status") == "active", "active", _status_text(m))}'
        f'</td><td>{m["weight"]}</td>'
        f'<td>{_badge(m["alive"], "alive", "silent")}</td>'
        f'<td>{_e(_ago(now, m["last_seen"]))}</td>'
        f'<td>{_e(m["reported_height"] if m["reported_height"] is not None else "-")}'
        f'</td></tr>'
        for m in data["masternodes"])
    out.append(
        f'<section class="wide"><h2>Masternodes ({len(data["masternodes"])})'
        '</h2><table><tr><th>pubkey</th><th>p2p address</th><th>tier</th>'
        '<th>status</th><th>weight</th><th>liveness</th>'
        f'<th>last heartbeat</th><th>height</th></tr>{rows}</table>'
        '</section>')
    own = mn["pubkey"]
    rows = "".join(
        f'<tr><td>{b["height"]}</td><td><code>{_e(_short(b["hash"], 16))}'
        f'</code></td><td><code>{_e(_short(b["producer"], 16))}</code>'
        f'{" (this node)" if b["producer"] == own else ""}</td>'
        f'<td>{b["round"]}</td><td>{b["ntx"]}</td>'
        f'<td>{_e(_utc(b["time"]))}</td></tr>'
        for b in data["recent_blocks"])
    out.append(
        '<section class="wide"><h2>Recent blocks</h2><table><tr>'
        '<th>height</th><th>hash</th><th>producer</th><th>round</th>'
        f'<th>txs</th><th>time</th></tr>{rows}</table></section>')
    if peers is None:
        body = '<p class="muted">P2P is not running.</p>'
    else:
        rows = "".join(
            f'<tr><td>{_e(p["addr"])}</td><td>{_e(p["direction"])}</td>'
            f'<td>{_e(p["state"])}</td><td>{_e(p["height"])}</td>'
            f'<td>{_e(_seconds(p["rtt"]))}</td>'
            f'<td><code>{_e(_short(p["pubkey"], 16))}</code></td></tr>'
            for p in peers["list"])
        body = (f'<p>{peers["count"]} connected ({peers["inbound"]} in, '
                f'{peers["outbound"]} out)</p><table><tr><th>address</th>'
                '<th>direction</th><th>state</th><th>height</th>'
                f'<th>ping</th><th>node key</th></tr>{rows}</table>')
    out.append(f'<section class="wide"><h2>Peers</h2>{body}</section>')
    out.append(f'</main><footer class="muted" style="padding:0 24px 16px">'
               f'Generated {_e(_utc(now))}; reloads every '
               f'{REFRESH_SECONDS} s. Data: <code>/status.json</code>, '
               f'<code>/metrics</code>, <code>/health</code>.</footer>'
               '</body></html>')
    return "".join(out).encode("utf-8")
