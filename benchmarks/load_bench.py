"""
Load benchmark: a devnet of real node processes on loopback driven with
pre-signed payments at a target rate; finality latency per transaction.

::

    python benchmarks/load_bench.py [--rate 1000] [--duration 60]
        [--nodes 4] [--block-time 2] [--warmup 5] [--drain 15]
        [--double-spends 0.005] [--profile DIR]

(C{make bench ARGS="--rate 500 --duration 30"}.)

1. The machine's raw PyNaCl verify rate is measured first (one core, the
   nodes not yet running): every figure is also given as a ratio to it.
2. C{timecoin-devnet up} starts C{--nodes} real C{twistd timecoin}
   processes (SQLite, every node a masternode, node0's wallet funded by
   the genesis) on free loopback ports in a temporary directory.
3. Node0's genesis funds are fanned out into one coin per payment (one
   transaction of 100 outputs, then 100 of a few hundred each), finalized
   and mined before the clock starts.
4. Every payment (one input, a payee and change) is signed up front; a
   fraction C{--double-spends} get a conflicting twin (same coin, another
   payee) sent to another node at the same moment.
5. One thread per node sends its share of the rate as JSON-RPC batches of
   C{sendrawtransaction} every C{--tick} seconds (catching up if a reply
   was slow, so C{submitted_tps} is what the nodes accepted).  A payment
   a busy node refuses (-26 C{node-busy}, admission control) is sent
   again in the next tick, ahead of new ones, and counted in
   C{busy_refusals}, never as refused or lost.  One thread
   per node polls C{listfinalizedsince} (the node's finality feed) every
   C{--poll} seconds and stamps each txid when first seen there.
6. After C{--warmup} seconds the measured window of C{--duration} seconds
   starts; then submission stops and C{--drain} seconds let the rest
   finalize.

Figures (the measured window only): C{submitted_tps} (accepted
submissions per second), C{finalized_tps} (finalizations observed on the
submitting node per second), C{finality_p50_ms}/C{finality_p99_ms} (from
sending the batch to seeing the txid in the submitting node's feed),
C{lost} (accepted, not finalized on any node by the end of the drain;
double-spend pairs apart: at most one side may finalize, and the network
may reject both, counted as C{double_spend_pairs_both_rejected}),
C{double_finalized} (pairs with both sides finalized anywhere, and txids
finalized twice in one feed), C{refused} (errors by reason, busy
refusals apart), C{busy_refusals} (sends refused as C{node-busy}, retried)
and C{unsent_busy} (payments still refused busy when sending stopped),
C{cpu_per_node} (percent of one core, from
C{/proc/PID/stat}), C{peak_rss_mb_per_node} (each node's peak resident
memory, C{VmHWM}, at the end of the drain),
C{cpu_us_per_payment_per_node} (a node's CPU time in the window,
averaged over the nodes, per payment finalized in it) and
C{verify_equivalents_per_payment} (that over the time of one raw
signature check: how many checks' worth of work a payment costs a node),
the client's own CPU, C{raw_verify_per_s} (one core),
C{finalized_per_raw_verify} and C{finalized_per_raw_verify_all_cores}
(payments finalized a second over the raw verify rate of one core, and
of every core: with C{--nodes 1}, a node alone on the machine against
what its cores could verify), and the
machine's 1-minute load average before the run (C{loadavg_before}: other
work on the machine shares its cores).
C{--profile DIR} records node0 with py-spy over the window (collapsed
stacks in C{DIR/node0.txt}, for C{flamegraph.pl} or speedscope).

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ingest_bench import raw_verify_rate  # noqa: E402
from timecoin import devnet, params  # noqa: E402
from timecoin.address import address_of  # noqa: E402
from timecoin.encoding import sha256  # noqa: E402
from timecoin.genesis import load_genesis  # noqa: E402
from timecoin.keys import PrivateKey  # noqa: E402
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs  # noqa: E402
from timecoin.wallet import Wallet  # noqa: E402

PREFIX = params.NETWORKS["devnet"].address_prefix
FANOUT_FIRST = 100
"""Outputs of the first fan-out transaction."""
PAYEES = 256
PAY_AMOUNT = params.COIN // 100
MAX_BATCH = 200
"""Payments per JSON-RPC batch at most (a sender that fell behind catches
up in several)."""
CLK_TCK = os.sysconf("SC_CLK_TCK")
BUSY_CODE = -26
BUSY_REASON = "node-busy"
"""A busy node's refusal: error code and reason (docs/rpc.md)."""


class Rpc:
    """
    A blocking JSON-RPC client on one persistent HTTP connection (cookie
    auth); one per thread.
    """

    def __init__(self, datadir: Path, port: int, timeout: float = 60) -> None:
        cookie = (datadir / ".cookie").read_text().strip()
        self.auth = "Basic " + base64.b64encode(cookie.encode()).decode()
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port,
                                               timeout=timeout)

    def post(self, payload: Any) -> Any:
        """
        Send one request or batch; the decoded reply.
        """
        body = json.dumps(payload).encode()
        for attempt in range(2):
            try:
                self.conn.request("POST", "/", body, {
                    "Authorization": self.auth,
                    "Content-Type": "application/json"})
                response = self.conn.getresponse()
                return json.loads(response.read())
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, *params: Any) -> Any:
        """
        One call; raises on an RPC error.
        """
        reply = self.post({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)})
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def batch(self, method: str, params: list[list[Any]]) -> list[Any]:
        """
        One batch of calls of C{method}; replies in order (each a dict
        with C{result} or C{error}).
        """
        reply = self.post([{"jsonrpc": "2.0", "id": i, "method": method,
                            "params": p} for i, p in enumerate(params)])
        if not isinstance(reply, list):
            # The whole batch was refused (too large, say).
            error = reply.get("error") or {"message": str(reply)}
            return [{"error": error} for _ in params]
        by_id = {r["id"]: r for r in reply}
        return [by_id[i] for i in range(len(params))]


def busy_refusal(error: dict[str, Any]) -> bool:
    """
    Whether an RPC error is a node's admission control refusing a payment
    for now (-26 C{node-busy}): send it again later, it is not lost.
    """
    return error.get("code") == BUSY_CODE and \
        str(error.get("message", "")).startswith(BUSY_REASON)


@dataclass
class Payment:
    """
    One pre-signed payment and what happened to it.
    """

    tx: Transaction
    node: int
    raw: str = ""
    twin: int | None = None
    sent_at: float | None = None
    accepted: bool = False
    error: str = ""
    seen: dict[int, float] = field(default_factory=dict)

    @property
    def txid(self) -> str:
        return self.tx.txid.hex()


class Devnet:
    """
    The devnet under test: its directory, node RPC ports and pids.
    """

    def __init__(self, root: Path, nodes: int, block_time: float,
                 config: Path | None = None) -> None:
        self.root = root
        self.nodes = nodes
        self.base = devnet.free_port_range(2 * nodes)
        self.block_time = block_time
        self.config = config

    def up(self) -> None:
        """
        Start the nodes (quietly) and wait until they produce.
        """
        out = StringIO()
        with redirect_stdout(out):
            code = devnet.up(self.root, self.nodes, self.base,
                             self.block_time, self.config)
        if code:
            print(out.getvalue())
            raise RuntimeError("the devnet did not come up")

    def down(self) -> None:
        """
        Stop every node.
        """
        with redirect_stdout(StringIO()):
            devnet.down(self.root)

    def datadir(self, i: int) -> Path:
        return self.root / f"node{i}"

    def rpc_port(self, i: int) -> int:
        return self.base + 2 * i + 1

    def rpc(self, i: int) -> Rpc:
        """
        A new client of node C{i}.
        """
        return Rpc(self.datadir(i), self.rpc_port(i))

    def pid(self, i: int) -> int:
        return int((self.datadir(i) / "twistd.pid").read_text().strip())


def memory_kib(pid: int) -> dict[str, int]:
    """
    C{VmRSS} and C{VmHWM} (peak) of process C{pid}, in KiB.
    """
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


def cpu_seconds(pid: int) -> float:
    """
    User + system CPU seconds of process C{pid} so far.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    """
    The C{q}-quantile (0..1) of C{values} by nearest rank.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1,
                       max(0, math.ceil(q * len(ordered)) - 1))]


def wait_final(rpc: Rpc, txids: list[str], timeout: float) -> None:
    """
    Wait until every txid is finalized on the node of C{rpc}.
    """
    for start in range(0, len(txids), 100):
        replies = rpc.batch("waitfortransaction",
                            [[t, timeout] for t in txids[start:start + 100]])
        for reply in replies:
            state = (reply.get("result") or {}).get("state")
            if state != "finalized":
                raise RuntimeError(f"fan-out not finalized: {reply}")


def fan_out(net: Devnet, count: int) -> tuple[PrivateKey, str, list[tuple[
        OutPoint, int]]]:
    """
    Split node0's genesis funds into at least C{count} coins of node0's
    wallet address; returns (key, address, coins) once they are final on
    every node and mined.
    """
    wallet = Wallet(net.datadir(0) / "private" / "wallet.json", PREFIX)
    wallet.load()
    address = wallet.addresses()[0]
    key = wallet.key_for(address)
    genesis = load_genesis(net.root / "genesis.json", "devnet")
    coinbase = genesis.txs[0]
    vout = next(i for i, o in enumerate(coinbase.outputs)
                if o.address == address)
    total = coinbase.outputs[vout].value
    fee = params.MIN_FEE

    def split(outpoint: OutPoint, value: int, n: int) -> Transaction:
        each = (value - fee) // n
        tx = Transaction((TxIn(outpoint, key.public),),
                         tuple(TxOut(each, address) for _ in range(n)))
        return sign_inputs(tx, "devnet", [key])

    rpc = net.rpc(0)
    first = split(OutPoint(coinbase.txid, vout), total, FANOUT_FIRST)
    rpc.call("sendrawtransaction", first.encode().hex())
    wait_final(rpc, [first.txid.hex()], 30)
    per = math.ceil(count / FANOUT_FIRST)
    each = first.outputs[0].value
    second = [split(OutPoint(first.txid, i), each, per)
              for i in range(FANOUT_FIRST)]
    for start in range(0, len(second), 20):
        replies = rpc.batch("sendrawtransaction", [
            [tx.encode().hex()] for tx in second[start:start + 20]])
        for reply in replies:
            if reply.get("error"):
                raise RuntimeError(f"fan-out refused: {reply['error']}")
    txids = [tx.txid.hex() for tx in second]
    for i in range(net.nodes):
        wait_final(net.rpc(i), txids, 30)
    deadline = time.monotonic() + 20 * net.block_time + 30
    while time.monotonic() < deadline:
        replies = rpc.batch("gettransaction", [[t] for t in txids])
        if all((r.get("result") or {}).get("confirmations", 0) > 0
               for r in replies):
            break
        time.sleep(0.5)
    coins = [(OutPoint(tx.txid, i), out.value) for tx in second
             for i, out in enumerate(tx.outputs)]
    return key, address, coins


def sign_payments(key: PrivateKey, address: str,
                  coins: list[tuple[OutPoint, int]], count: int, nodes: int,
                  double_spends: float, rng: random.Random) -> list[Payment]:
    """
    C{count} independent payments (each its own coin), assigned to nodes
    round-robin; a fraction followed by a conflicting twin for another
    node.
    """
    payees = [address_of(PrivateKey(sha256(b"bench payee %d" % i)).public,
                         PREFIX) for i in range(PAYEES)]
    fee = params.min_fee(PAY_AMOUNT)

    def pay(coin: tuple[OutPoint, int], payee: str) -> Transaction:
        outpoint, value = coin
        tx = Transaction((TxIn(outpoint, key.public),),
                         (TxOut(PAY_AMOUNT, payee),
                          TxOut(value - PAY_AMOUNT - fee, address)))
        return sign_inputs(tx, "devnet", [key])

    payments: list[Payment] = []
    for n in range(count):
        coin = coins[n]
        node = n % nodes
        payment = Payment(pay(coin, rng.choice(payees)), node)
        payments.append(payment)
        if rng.random() < double_spends and nodes > 1:
            twin = Payment(pay(coin, rng.choice(payees)),
                           (node + 1 + rng.randrange(nodes - 1)) % nodes)
            if twin.txid != payment.txid:
                payment.twin = len(payments)
                payments.append(twin)
                twin.twin = len(payments) - 2
    for payment in payments:
        payment.raw = payment.tx.encode().hex()
    return payments


class Load:
    """
    The submitting and polling threads and what they recorded.
    """

    def __init__(self, net: Devnet, payments: list[Payment], rate: float,
                 tick: float, poll: float) -> None:
        self.net = net
        self.payments = payments
        self.rate = rate
        self.tick = tick
        self.poll = poll
        self.by_txid = {p.txid: p for p in payments}
        # A double-spend pair goes out together: the twin rides with the
        # first half (to its own node).
        self.order: list[list[Payment]] = []
        skip = set()
        for i, payment in enumerate(payments):
            if i in skip:
                continue
            group = [payment]
            if payment.twin is not None:
                group.append(payments[payment.twin])
                skip.add(payment.twin)
            self.order.append(group)
        self.stop_sending = threading.Event()
        self.stop_polling = threading.Event()
        self.lock = threading.Lock()
        self.errors: Counter[str] = Counter()
        self.duplicates = 0
        self.busy_refusals = 0
        self.unsent_busy = 0
        self.started = 0.0
        self._clients: dict[tuple[int, int], Rpc] = {}

    def sender(self, index: int) -> None:
        """
        Thread body: send node C{index}'s share of the groups at its rate.
        Payments a node refuses as busy (L{busy_refusal}) go out again in
        the next tick, ahead of new ones, until accepted or the window
        ends: they are neither accepted nor errors.
        """
        rpc = self.net.rpc(index)
        mine = self.order[index::self.net.nodes]
        rate = self.rate / self.net.nodes
        sent = 0
        retry: list[Payment] = []
        while not self.stop_sending.is_set() and (sent < len(mine) or retry):
            due = min(len(mine), int(rate * (time.monotonic()
                                              - self.started)))
            if due <= sent and not retry:
                time.sleep(self.tick)
                continue
            due = max(sent, min(due, sent + MAX_BATCH - len(retry)))
            chunk = retry + [p for group in mine[sent:due] for p in group]
            sent = due
            retry = []
            by_node: dict[int, list[Payment]] = {}
            for payment in chunk:
                by_node.setdefault(payment.node, []).append(payment)
            for node, batch in sorted(by_node.items()):
                client = rpc if node == index else self._client(node)
                now = time.monotonic()
                for payment in batch:
                    payment.sent_at = now
                try:
                    replies = client.batch("sendrawtransaction",
                                           [[p.raw] for p in batch])
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.errors[f"http:{type(e).__name__}"] += len(batch)
                    continue
                for payment, reply in zip(batch, replies):
                    error = reply.get("error")
                    if error and busy_refusal(error):
                        retry.append(payment)
                    elif error:
                        payment.error = str(error.get("message"))
                        with self.lock:
                            self.errors[payment.error.split(":")[0]] += 1
                    else:
                        payment.accepted = True
            if retry:
                with self.lock:
                    self.busy_refusals += len(retry)
                # Busy: give the node a tick before sending them again.
                time.sleep(self.tick)
        with self.lock:
            self.unsent_busy += len(retry)

    def _client(self, node: int) -> Rpc:
        key = (threading.get_ident(), node)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self.net.rpc(node)
        return client

    def poller(self, index: int) -> None:
        """
        Thread body: follow node C{index}'s finality feed.
        """
        rpc = self.net.rpc(index)
        cursor = rpc.call("listfinalizedsince", 0)["cursor"]
        while not self.stop_polling.is_set():
            began = time.monotonic()
            try:
                feed = rpc.call("listfinalizedsince", cursor)
            except (OSError, http.client.HTTPException, RuntimeError):
                time.sleep(self.poll)
                continue
            now = time.monotonic()
            cursor = feed["cursor"]
            for txid in feed["txids"]:
                payment = self.by_txid.get(txid)
                if payment is None:
                    continue
                if index in payment.seen:
                    self.duplicates += 1
                    print(f"txid {txid} finalized twice on node{index}",
                          file=sys.stderr, flush=True)
                else:
                    payment.seen[index] = now
            rest = self.poll - (time.monotonic() - began)
            if rest > 0:
                time.sleep(rest)


def run(options: argparse.Namespace) -> dict[str, Any]:
    """
    The whole benchmark; returns the figures.
    """
    rng = random.Random(options.seed)
    load_before = os.getloadavg()[0]
    raw = raw_verify_rate(options.verify_seconds)
    print(f"raw PyNaCl verify: {raw:,.0f}/s on one core "
          f"({os.cpu_count()} cores)", flush=True)
    workdir = Path(options.dir) if options.dir else Path(
        tempfile.mkdtemp(prefix="timecoin-load-"))
    if workdir.exists() and options.dir:
        shutil.rmtree(workdir)
    net = Devnet(workdir, options.nodes, options.block_time,
                 options.node_config)
    began = time.monotonic()
    net.up()
    print(f"devnet of {options.nodes} nodes up in "
          f"{time.monotonic() - began:.0f}s at {workdir}", flush=True)
    try:
        figures = measure(options, net, raw, rng)
        figures["loadavg_before"] = round(load_before, 2)
        return figures
    finally:
        net.down()
        if not options.keep and not options.dir:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(options: argparse.Namespace, net: Devnet, raw: float,  # noqa: C901
            rng: random.Random) -> dict[str, Any]:
    """
    Fan out, sign, load, drain; the figures.
    """
    total = math.ceil(options.rate * (options.warmup + options.duration)
                      * 1.02)
    began = time.monotonic()
    key, address, coins = fan_out(net, total)
    print(f"fanned out {len(coins)} coins in "
          f"{time.monotonic() - began:.0f}s", flush=True)
    began = time.monotonic()
    payments = sign_payments(key, address, coins, total, net.nodes,
                             options.double_spends, rng)
    print(f"signed {len(payments)} payments in "
          f"{time.monotonic() - began:.0f}s", flush=True)
    load = Load(net, payments, options.rate, options.tick, options.poll)
    pids = [net.pid(i) for i in range(net.nodes)]
    pollers = [threading.Thread(target=load.poller, args=(i,), daemon=True)
               for i in range(net.nodes)]
    senders = [threading.Thread(target=load.sender, args=(i,), daemon=True)
               for i in range(net.nodes)]
    for thread in pollers:
        thread.start()
    time.sleep(0.2)
    load.started = time.monotonic()
    for thread in senders:
        thread.start()
    time.sleep(options.warmup)
    window_start = time.monotonic()
    cpu_start = [cpu_seconds(p) for p in pids]
    client_start = os.times()
    profiler = None
    if options.profile:
        Path(options.profile).mkdir(parents=True, exist_ok=True)
        profiler = subprocess.Popen(
            ["py-spy", "record", "-p", str(pids[0]), "-d",
             str(int(options.duration)), "-r", "100", "--nonblocking",
             "-f", "raw", "-o", str(Path(options.profile) / "node0.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    heights_start = [net.rpc(i).call("getblockcount")
                     for i in range(net.nodes)]
    time.sleep(max(0.0, window_start + options.duration - time.monotonic()))
    window_end = time.monotonic()
    cpu_end = [cpu_seconds(p) for p in pids]
    client_end = os.times()
    load.stop_sending.set()
    for thread in senders:
        thread.join(timeout=30)
    deadline = time.monotonic() + options.drain
    while time.monotonic() < deadline:
        pending = [p for p in payments if p.accepted and p.twin is None
                   and p.node not in p.seen]
        if not pending:
            break
        time.sleep(0.25)
    time.sleep(2 * options.poll)
    load.stop_polling.set()
    for thread in pollers:
        thread.join(timeout=10)
    if profiler is not None:
        profiler.wait(timeout=60)
    peak_rss = [round(memory_kib(p)["VmHWM"] / 1024, 1) for p in pids]
    heights_end = [net.rpc(i).call("getblockcount")
                   for i in range(net.nodes)]
    window = window_end - window_start
    measured = [p for p in payments if p.sent_at is not None
                and window_start <= p.sent_at < window_end]
    accepted = [p for p in measured if p.accepted]
    finalized_in_window = sum(
        1 for p in payments if p.node in p.seen
        and window_start <= p.seen[p.node] < window_end)
    latencies = [(p.seen[p.node] - p.sent_at) * 1000 for p in accepted
                 if p.node in p.seen and p.sent_at is not None
                 and p.twin is None]
    if options.latency_csv:
        with open(options.latency_csv, "w") as out:
            out.write("sent_s,latency_ms\n")
            for p in sorted(accepted, key=lambda p: p.sent_at or 0.0):
                if p.node in p.seen and p.sent_at is not None and \
                        p.twin is None:
                    out.write(f"{p.sent_at - window_start:.3f},"
                              f"{(p.seen[p.node] - p.sent_at) * 1000:.1f}\n")
    lost = 0
    double = 0
    neither = 0
    for i, p in enumerate(payments):
        if p.twin is None:
            lost += p.accepted and not p.seen
        elif i < p.twin:
            twin = payments[p.twin]
            if p.seen and twin.seen:
                double += 1
                print(f"double spend finalized: {p.txid} on nodes "
                      f"{sorted(p.seen)}, {twin.txid} on nodes "
                      f"{sorted(twin.seen)}", file=sys.stderr)
            elif not p.seen and not twin.seen:
                neither += 1
    everywhere = sum(1 for p in accepted if p.twin is None
                     and len(p.seen) == net.nodes)
    singles = sum(1 for p in accepted if p.twin is None)
    cpu = [round(100 * (b - a) / window, 1)
           for a, b in zip(cpu_start, cpu_end)]
    client_cpu = (client_end.user - client_start.user + client_end.system
                  - client_start.system)
    node_seconds = [b - a for a, b in zip(cpu_start, cpu_end)]
    per_payment = (1e6 * sum(node_seconds) / len(node_seconds)
                   / finalized_in_window) if finalized_in_window else None
    figures: dict[str, Any] = {
        "nodes": net.nodes, "target_tps": options.rate,
        "duration_s": round(window, 1),
        "submitted_tps": round(len(accepted) / window, 1),
        "finalized_tps": round(finalized_in_window / window, 1),
        "finality_p50_ms": round(percentile(latencies, 0.50), 1),
        "finality_p90_ms": round(percentile(latencies, 0.90), 1),
        "finality_p99_ms": round(percentile(latencies, 0.99), 1),
        "finality_max_ms": round(max(latencies, default=float("nan")), 1),
        "finality_over_1s": sum(1 for ms in latencies if ms > 1000),
        "lost": lost, "double_finalized": double + load.duplicates,
        "double_finalized_pairs": double,
        "finalized_twice_in_a_feed": load.duplicates,
        "refused": dict(load.errors),
        "busy_refusals": load.busy_refusals,
        "unsent_busy": load.unsent_busy,
        "finalized_on_every_node": round(everywhere / singles, 4)
        if singles else None,
        "double_spend_pairs": sum(1 for p in payments
                                  if p.twin is not None) // 2,
        "double_spend_pairs_both_rejected": neither,
        "raw_verify_per_s": round(raw),
        "finalized_per_raw_verify": round(finalized_in_window / window / raw,
                                          3),
        "finalized_per_raw_verify_all_cores": round(
            finalized_in_window / window / (raw * (os.cpu_count() or 1)), 3),
        "cpu_per_node": cpu,
        "cpu_total_cores": round(sum(cpu) / 100, 2),
        "peak_rss_mb_per_node": peak_rss,
        "cpu_us_per_payment_per_node": round(per_payment, 1)
        if per_payment is not None else None,
        "verify_equivalents_per_payment": round(per_payment * raw / 1e6, 2)
        if per_payment is not None else None,
        "client_cpu": round(100 * client_cpu / window, 1),
        "blocks": [b - a for a, b in zip(heights_start, heights_end)],
        "cores": os.cpu_count(),
        "block_time_s": net.block_time,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    """
    Parse the options, run, print a summary and then the JSON line.
    """
    parser = argparse.ArgumentParser(
        description="Drive a devnet of real nodes with signed payments.")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="target payments per second (all nodes)")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds of the measured window")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--block-time", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=15.0)
    parser.add_argument("--tick", type=float, default=0.05,
                        help="seconds between submission batches")
    parser.add_argument("--poll", type=float, default=0.05,
                        help="seconds between finality-feed polls")
    parser.add_argument("--double-spends", type=float, default=0.005)
    parser.add_argument("--verify-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--node-config", type=Path, default=None,
                        help="a TOML config file every node reads (e.g. "
                        "[rpc] max_undecided)")
    parser.add_argument("--latency-csv", default=None,
                        help="write (seconds into the window, finality "
                        "latency in ms) per measured payment to this file")
    parser.add_argument("--dir", default=None,
                        help="devnet directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary devnet directory")
    parser.add_argument("--profile", default=None,
                        help="record node0 with py-spy into this dir")
    options = parser.parse_args(argv)
    figures = run(options)
    print(f"submitted {figures['submitted_tps']}/s, finalized "
          f"{figures['finalized_tps']}/s (target {options.rate:g}/s), "
          f"finality p50 {figures['finality_p50_ms']} ms p99 "
          f"{figures['finality_p99_ms']} ms, lost {figures['lost']}, "
          f"double finalized {figures['double_finalized']}; node CPU "
          f"{figures['cpu_per_node']} %, "
          f"{figures['cpu_us_per_payment_per_node']} us a payment "
          f"({figures['verify_equivalents_per_payment']} verify-"
          f"equivalents); raw verify {figures['raw_verify_per_s']}/s; "
          f"peak RSS {figures['peak_rss_mb_per_node']} MB")
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
