"""
``timecoin-devnet``: a local multi-node devnet of real ``twistd`` processes.

``timecoin-devnet up -n 4`` creates ``./devnet/node0..3`` (each with its own
node key, wallet and ports), writes one shared genesis, starts every node as
a daemonized ``twistd timecoin`` connected to the others over loopback,
prints where each node's RPC and log are, and shows progress until all are
connected and the chain grows.  ``status`` prints heights and peers;
``down`` stops them.

Until block votes travel over P2P, the genesis registers node0 as the only
masternode: it produces and finalizes, the others follow, relay and serve
RPC.  Node i listens on P2P port base+2i and RPC port base+2i+1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from timecoin.cli import CLIError, Target, call
from timecoin.genesis import make_genesis, write_genesis
from timecoin.masternodes import Masternode
from timecoin.node import DEVNET_FUNDS
from timecoin.params import NETWORKS
from timecoin.tx import TxOut
from timecoin.wallet import Wallet, load_or_create_key

DEFAULT_BASE_PORT = 24300


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


def up(root: Path, n: int, base: int, block_time: float) -> int:
    """
    Create (if new) and start an N-node devnet under C{root}.
    """
    nodes = _layout(root, n, base)
    genesis_path = root / "genesis.json"
    if not genesis_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        datadir0, p2p0, _ = nodes[0]
        key = load_or_create_key(datadir0 / "private" / "node_key")
        wallet = Wallet(datadir0 / "private" / "wallet.json",
                        NETWORKS["devnet"].address_prefix)
        wallet.load()
        funded = wallet.addresses()[0]
        genesis = make_genesis(
            "devnet", int(time.time() * 1000), [TxOut(DEVNET_FUNDS, funded)],
            [Masternode(key.public, f"127.0.0.1:{p2p0}", funded, "free")])
        write_genesis(genesis_path, genesis)
        (root / "devnet.json").write_text(json.dumps(
            {"nodes": n, "base_port": base, "block_time": block_time}))
    twistd = [sys.executable, "-c",
              "import sys; from twisted.scripts.twistd import run; "
              "sys.argv[0] = 'twistd'; run()"]
    for datadir, p2p, rpc_port in nodes:
        datadir.mkdir(parents=True, exist_ok=True)
        peers = ",".join(f"127.0.0.1:{p}" for d, p, _ in nodes
                         if d != datadir)
        cmd = [*twistd, f"--pidfile={datadir / 'twistd.pid'}",
               f"--logfile={datadir / 'node.log'}", "timecoin",
               "--network", "devnet", "--datadir", str(datadir),
               "--genesis", str(genesis_path), "--p2p-port", str(p2p),
               "--rpc-port", str(rpc_port), "--connect", peers,
               "--block-time", str(block_time)]
        subprocess.run(cmd, check=True)
        print(f"{datadir.name}: rpc 127.0.0.1:{rpc_port}  p2p {p2p}  "
              f"log {datadir / 'node.log'}")
        print(f"    timecoin-cli --datadir {datadir} --rpc-port {rpc_port} "
              f"getblockchaininfo")
    return wait_ready(nodes, timeout=60)


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
    stopped = 0
    for pidfile in sorted(root.glob("node*/twistd.pid")):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            stopped += 1
        except (OSError, ValueError):
            pass
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
    parser = argparse.ArgumentParser(prog="timecoin-devnet")
    parser.add_argument("--dir", default="devnet", type=Path,
                        help="where the nodes' data dirs live")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="create and start the devnet")
    p_up.add_argument("-n", type=int, default=4, help="number of nodes")
    p_up.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    p_up.add_argument("--block-time", type=float, default=2.0)
    sub.add_parser("down", help="stop the devnet")
    sub.add_parser("status", help="heights and peers")
    options = parser.parse_args(argv)
    root = options.dir.resolve()
    if options.command == "up":
        return up(root, options.n, options.base_port, options.block_time)
    if options.command == "down":
        return down(root)
    return status(root)


if __name__ == "__main__":
    sys.exit(main())
