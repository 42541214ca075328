"""
``timecoin-devnet``: a local multi-node devnet of real ``twistd`` processes.

``timecoin-devnet up -n 4`` creates ``./devnet/node0..3`` (each with its own
node key, wallet and ports), writes one shared genesis, starts every node as
a daemonized ``twistd timecoin`` connected to the others over loopback,
prints where each node's RPC and log are, and shows progress until all are
connected and the chain grows.  ``status`` prints heights and peers;
``down`` stops them.

The genesis registers every node as a masternode (tier free) and funds
node0's wallet; blocks are committed by 2/3 of them (BFT rounds), so the
devnet keeps producing with one node of four stopped.  Node i listens on
P2P port base+2i and RPC port base+2i+1.  ``stop --node I`` and
``start --node I`` stop or restart one node, keeping its data.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timecoin.cli import CLIError, Target, call
from timecoin.genesis import make_genesis, write_genesis
from timecoin.masternodes import Masternode
from timecoin.node import DEVNET_FUNDS
from timecoin.params import NETWORKS
from timecoin.tx import TxOut
from timecoin.wallet import Wallet, load_or_create_key

DEFAULT_BASE_PORT = 24200

PORT_FLOOR = 20_000
"""Lowest port L{free_port_range} hands out."""

_ports = random.Random(os.getpid() ^ time.monotonic_ns())
"""Port choices of this process (distinct from another process's)."""


def _ephemeral_start() -> int:
    """
    The first port of the kernel's ephemeral range, from which it picks
    the source ports of outgoing connections (32768 if unreadable).
    """
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_range(count: int) -> int:
    """
    A base port such that C{count} consecutive ports from it were all free
    on 127.0.0.1 a moment ago, chosen at random below the kernel's
    ephemeral range.  Ports from C{bind(0)} are ephemeral ones: between
    the choice and the node's listen, any outgoing connection on the
    machine (RPC calls, a node dialling a peer that does not listen yet)
    could take one as its source port, and the node then fails to start
    with "Address already in use" (it happened in the tests' CI).  For
    tests and benchmarks that start nodes on loopback.
    """
    top = _ephemeral_start()
    floor = min(PORT_FLOOR, top // 2)
    for _ in range(500):
        base = _ports.randrange(floor, top - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no free port range")


def rpc(datadir: Path, port: int, method: str, *params: Any) -> Any:
    """
    Call C{method} on the node of C{datadir} (cookie auth).
    """
    user, _, password = (datadir / ".cookie").read_text().strip().partition(
        ":")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": list(params)}).encode()
    result, error = call(Target("127.0.0.1", port, user, password), body, 10)
    if error:
        raise CLIError(str(error))
    return result


def _layout(root: Path, n: int, base: int) -> list[tuple[Path, int, int]]:
    return [(root / f"node{i}", base + 2 * i, base + 2 * i + 1)
            for i in range(n)]


def up(root: Path, n: int, base: int, block_time: float,
       config: Path | None = None,
       seconds: Callable[[], float] = time.time) -> int:
    """
    Create (if new) and start an N-node devnet under C{root}; every node
    reads the TOML C{config} file, if given (its options override it).
    The genesis is stamped with the time C{seconds} gives (default: the
    wall clock; injectable for tests).
    """
    nodes = _layout(root, n, base)
    genesis_path = root / "genesis.json"
    if not genesis_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        prefix = NETWORKS["devnet"].address_prefix
        masternodes = []
        funded = ""
        for i, (datadir, p2p, _) in enumerate(nodes):
            key = load_or_create_key(datadir / "private" / "node_key")
            wallet = Wallet(datadir / "private" / "wallet.json", prefix)
            wallet.load()
            if i == 0:
                funded = wallet.addresses()[0]
            masternodes.append(Masternode(
                key.public, f"127.0.0.1:{p2p}", wallet.addresses()[0],
                "free"))
        genesis = make_genesis(
            "devnet", int(seconds() * 1000), [TxOut(DEVNET_FUNDS, funded)],
            masternodes)
        write_genesis(genesis_path, genesis)
        (root / "devnet.json").write_text(json.dumps(
            {"nodes": n, "base_port": base, "block_time": block_time,
             "config": None if config is None else str(config.resolve())}))
    for i in range(n):
        start_node(root, i)
    for datadir, p2p, rpc_port in nodes:
        print(f"{datadir.name}: rpc 127.0.0.1:{rpc_port}  p2p {p2p}  "
              f"log {datadir / 'node.log'}")
        print(f"    timecoin-cli --datadir {datadir} --rpc-port {rpc_port} "
              f"getblockchaininfo")
    return wait_ready(nodes, timeout=60)


def start_node(root: Path, i: int) -> None:
    """
    Start node C{i} of the devnet under C{root} as a daemonized twistd.
    """
    config = json.loads((root / "devnet.json").read_text())
    nodes = _layout(root, config["nodes"], config["base_port"])
    datadir, p2p, rpc_port = nodes[i]
    twistd = [sys.executable, "-c",
              "import sys; from twisted.scripts.twistd import run; "
              "sys.argv[0] = 'twistd'; run()"]
    datadir.mkdir(parents=True, exist_ok=True)
    peers = ",".join(f"127.0.0.1:{p}" for d, p, _ in nodes if d != datadir)
    cmd = [*twistd, f"--pidfile={datadir / 'twistd.pid'}",
           f"--logfile={datadir / 'node.log'}", "timecoin",
           "--network", "devnet", "--datadir", str(datadir),
           "--genesis", str(root / "genesis.json"), "--p2p-port", str(p2p),
           "--rpc-port", str(rpc_port), "--connect", peers,
           "--block-time", str(config["block_time"])]
    if config.get("config"):
        cmd.append(f"--config={config['config']}")
    subprocess.run(cmd, check=True)


def stop_node(root: Path, i: int) -> bool:
    """
    Stop node C{i} (SIGTERM via its pidfile) and wait until it has exited;
    whether it was running.
    """
    pidfile = root / f"node{i}" / "twistd.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.05)
    return True


def wait_ready(nodes: list[tuple[Path, int, int]], timeout: float) -> int:
    """
    Show progress until every node is connected to every other and the
    chain grew by two blocks; return 0, or 1 on timeout.
    """
    deadline = time.monotonic() + timeout
    start_height: int | None = None
    while time.monotonic() < deadline:
        line = []
        peers_ok = True
        heights = []
        for datadir, _, port in nodes:
            try:
                height = rpc(datadir, port, "getblockcount")
                peers = rpc(datadir, port, "getconnectioncount")
            except (CLIError, OSError):
                line.append(f"{datadir.name}: starting")
                peers_ok = False
                continue
            heights.append(height)
            peers_ok = peers_ok and peers >= len(nodes) - 1
            line.append(f"{datadir.name}: h={height} peers={peers}")
        print("  " + "  ".join(line), flush=True)
        if heights and len(heights) == len(nodes):
            if start_height is None:
                start_height = min(heights)
            if peers_ok and min(heights) >= start_height + 2:
                print("devnet up: all nodes connected and producing")
                return 0
        time.sleep(1)
    print("devnet not ready in time; see the node logs", file=sys.stderr)
    return 1


def down(root: Path) -> int:
    """
    Stop every node of the devnet under C{root} (SIGTERM via pidfiles).
    """
    config = json.loads((root / "devnet.json").read_text())
    stopped = sum(stop_node(root, i) for i in range(config["nodes"]))
    print(f"stopped {stopped} node(s)")
    return 0


def status(root: Path) -> int:
    """
    Print each node's height, tip and peers.
    """
    config = json.loads((root / "devnet.json").read_text())
    for datadir, _, port in _layout(root, config["nodes"],
                                    config["base_port"]):
        try:
            info = rpc(datadir, port, "getblockchaininfo")
            peers = rpc(datadir, port, "getconnectioncount")
            print(f"{datadir.name}: height {info['blocks']} tip "
                  f"{info['bestblockhash'][:16]} utxo "
                  f"{info['utxo_hash'][:16]} peers {peers}")
        except (CLIError, OSError) as e:
            print(f"{datadir.name}: down ({e})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """
    Entry point of C{timecoin-devnet}.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default="devnet", type=Path,
                        help="where the nodes' data dirs live")
    parser = argparse.ArgumentParser(prog="timecoin-devnet")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", parents=[common],
                          help="create and start the devnet")
    p_up.add_argument("-n", type=int, default=4, help="number of nodes")
    p_up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    p_up.add_argument("--block-time", type=float, default=2.0)
    p_up.add_argument("--config", type=Path, default=None,
                      help="a TOML config file every node reads")
    sub.add_parser("down", parents=[common], help="stop the devnet")
    sub.add_parser("status", parents=[common], help="heights and peers")
    for name, text in (("stop", "stop one node"),
                       ("start", "restart one node")):
        one = sub.add_parser(name, parents=[common], help=text)
        one.add_argument("--node", type=int, required=True)
    options = parser.parse_args(argv)
    root = options.dir.resolve()
    if options.command == "up":
        return up(root, options.n, options.base_port, options.block_time,
                  options.config)
    if options.command == "down":
        return down(root)
    if options.command == "stop":
        return 0 if stop_node(root, options.node) else 1
    if options.command == "start":
        start_node(root, options.node)
        return 0
    return status(root)


if __name__ == "__main__":
    sys.exit(main())
