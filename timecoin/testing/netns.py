"""
Real hosts for tests: Linux network namespaces on a bridge, each with its
own address, running real ``twistd timecoin`` processes.

L{Lab} builds one namespace per host and one for the bridge (nothing in
the root namespace: traffic stays inside the namespaces it makes), links
each host to the bridge with a veth pair, and can cut a host's link and
heal it (the bridge side goes down: the host's TCP connections stall, as
on a real network, instead of failing).  A test process in the root
namespace reaches each node's RPC through a Unix socket that a small
forwarder inside the node's namespace connects to the node's loopback
RPC port (L{FORWARDER}).  L{Lab.destroy} deletes every namespace, also
after a failure; names carry the test's pid so that a crashed run's
leftovers never collide (and L{sweep} removes them).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
PREFIX = "tcn"
"""Every namespace this harness makes starts with this."""
P2P_PORT = 24200
RPC_PORT = 24201
TWISTD = ("import sys; from twisted.scripts.twistd import run; "
          "sys.argv[0] = 'twistd'; run()")

FORWARDER = r"""
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
try:
    os.unlink(path)
except FileNotFoundError:
    pass
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(64)
def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
def serve(client):
    try:
        upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
"""Forwards connections on a Unix socket to a loopback TCP port of the
namespace it runs in."""


def available() -> str | None:
    """
    C{None} if this machine can make network namespaces (root and
    C{ip netns}), else why not.
    """
    if os.geteuid() != 0:
        return "network namespaces need root (or CAP_NET_ADMIN)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    name = f"{PREFIX}probe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True,
                       capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        return f"ip netns add failed: {e}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True,
                   timeout=10)
    return None


def sweep() -> None:
    """
    Delete namespaces this harness left behind in runs that died (those
    whose pid is gone).
    """
    out = subprocess.run(["ip", "netns", "list"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True,
                   timeout=10)


class Lab:
    """
    C{n} hosts at 10.77.0.1 … 10.77.0.n on one bridge.
    """

    def __init__(self, n: int, subnet: str = "10.77.0") -> None:
        self.n = n
        self.subnet = subnet
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}-br"
        self.made: list[str] = []

    def host(self, i: int) -> str:
        """
        The namespace of host C{i}.
        """
        return f"{self.tag}-h{i}"

    def address(self, i: int) -> str:
        return f"{self.subnet}.{i + 1}"

    def create(self) -> None:
        """
        Make the bridge and the hosts; on any error, delete what was made.
        """
        try:
            _ip("netns", "add", self.bridge)
            self.made.append(self.bridge)
            _ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.bridge, "link", "set", "br0", "up")
            for i in range(self.n):
                self.add_host(i)
        except BaseException:
            self.destroy()
            raise

    def add_host(self, i: int) -> None:
        """
        Host C{i}'s namespace, its veth to the bridge and its address.
        """
        ns = self.host(i)
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer",
            "name", f"p{i}", "netns", self.bridge)
        _ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", self.bridge, "link", "set", f"p{i}", "master", "br0")
        _ip("-n", self.bridge, "link", "set", f"p{i}", "up")

    def cut(self, i: int) -> None:
        """
        Take host C{i}'s link down at the bridge: its packets go nowhere.
        """
        _ip("-n", self.bridge, "link", "set", f"p{i}", "down")

    def heal(self, i: int) -> None:
        _ip("-n", self.bridge, "link", "set", f"p{i}", "up")

    def destroy(self) -> None:
        """
        Delete every namespace made (processes inside keep running until
        killed; the caller kills them first).
        """
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True,
                           timeout=10)
        self.made = []

    def popen(self, i: int, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        """
        Run C{cmd} inside host C{i}'s namespace.
        """
        return subprocess.Popen(["ip", "netns", "exec", self.host(i), *cmd],
                                **kw)


class NsNode:
    """
    A real node process inside a host of a L{Lab}, its RPC reached
    through a forwarder's Unix socket.
    """

    def __init__(self, lab: Lab, host: int, datadir: Path, genesis: Path,
                 connect: list[str], config: Path,
                 p2p_port: int = P2P_PORT, rpc_port: int = RPC_PORT,
                 block_time: float = 1.0) -> None:
        self.lab = lab
        self.host = host
        self.datadir = datadir
        self.genesis = genesis
        self.connect = connect
        self.config = config
        self.p2p_port = p2p_port
        self.rpc_port = rpc_port
        self.block_time = block_time
        self.proc: subprocess.Popen[bytes] | None = None
        self.forwarder: subprocess.Popen[bytes] | None = None
        self.socket = f"/tmp/{lab.tag}-{host}-{rpc_port}.sock"

    @property
    def address(self) -> str:
        return self.lab.address(self.host)

    def start(self) -> None:
        """
        Start the node (and the forwarder) and wait until RPC answers.
        """
        self.datadir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-c", TWISTD, "-n", "--pidfile=",
               f"--logfile={self.datadir / 'node.log'}", "timecoin",
               "--network", "devnet", "--datadir", str(self.datadir),
               "--genesis", str(self.genesis), "--config", str(self.config),
               "--p2p-port", str(self.p2p_port),
               "--rpc-port", str(self.rpc_port),
               "--block-time", str(self.block_time)]
        if self.connect:
            cmd += ["--connect", ",".join(self.connect)]
        self.proc = self.lab.popen(self.host, cmd, cwd=str(ROOT), env=env,
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if self.forwarder is None or self.forwarder.poll() is not None:
            self.forwarder = self.lab.popen(
                self.host, [sys.executable, "-c", FORWARDER, self.socket,
                            str(self.rpc_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_for(lambda: self.call("getblockcount") is not None, 40)

    def call(self, method: str, *params: Any) -> Any:
        """
        One JSON-RPC call with the cookie; raises RuntimeError on an RPC
        error, OSError when unreachable.
        """
        cookie = (self.datadir / ".cookie").read_text().strip()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)})
        conn = _UnixHTTPConnection(self.socket, timeout=10)
        try:
            conn.request("POST", "/", body, {
                "Content-Type": "application/json",
                "Authorization": "Basic "
                + base64.b64encode(cookie.encode()).decode()})
            reply = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if reply.get("error"):
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def log_tail(self, chars: int = 3000) -> str:
        path = self.datadir / "node.log"
        return path.read_text()[-chars:] if path.exists() else "(no log)"

    def log(self) -> str:
        path = self.datadir / "node.log"
        return path.read_text() if path.exists() else ""

    def wait_for(self, predicate: Any, timeout: float) -> float:
        """
        Poll C{predicate} until true; fail with the log tail on timeout or
        if the process died.  Returns the seconds it took.
        """
        start = time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"node {self.host} exited with "
                                     f"{self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                if predicate():
                    return time.monotonic() - start
            except (OSError, RuntimeError, ValueError, KeyError):
                pass
            if time.monotonic() - start > timeout:
                raise AssertionError(f"node {self.host}: timed out:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.2)

    def kill(self) -> None:
        """
        SIGKILL the node (the forwarder stays for a restart).
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.kill()
        if self.forwarder is not None and self.forwarder.poll() is None:
            self.forwarder.kill()
            self.forwarder.wait(10)
        self.forwarder = None

    def peers(self) -> list[dict[str, Any]]:
        """
        The node's ready peers (getpeerinfo).
        """
        return [p for p in self.call("getpeerinfo")
                if p.get("state") == "ready"]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """
    HTTP over a Unix socket.
    """

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


CONFIG = """\
[p2p]
bind = "{address}"
"""


def masternode_network(lab: Lab, base: Path, n: int,
                       block_time: float = 1.0, extra_config: str = "",
                       seconds: Callable[[], float] = time.time
                       ) -> list[NsNode]:
    """
    Keys, wallets and one devnet genesis for C{n} masternodes on hosts
    0 … n-1 of C{lab} (the first funded with 1,000,000 TIME), each told to
    connect to the others; the nodes are returned unstarted.  The genesis
    is stamped with C{seconds} (the wall clock the real processes run on,
    by default; injectable, as L{timecoin.devnet.up}).
    """
    from timecoin import params
    from timecoin.genesis import make_genesis, write_genesis
    from timecoin.masternodes import Masternode
    from timecoin.tx import TxOut
    from timecoin.wallet import Wallet, load_or_create_key

    genesis = base / "genesis.json"
    masternodes, funded = [], ""
    for i in range(n):
        datadir = base / f"node{i}"
        key = load_or_create_key(datadir / "private" / "node_key")
        wallet = Wallet(datadir / "private" / "wallet.json", "TIME0")
        wallet.load()
        funded = funded or wallet.addresses()[0]
        masternodes.append(Masternode(
            key.public, f"{lab.address(i)}:{P2P_PORT}",
            wallet.addresses()[0], "free"))
    write_genesis(genesis, make_genesis(
        "devnet", int(seconds() * 1000),
        [TxOut(1_000_000 * params.COIN, funded)], masternodes))
    return [network_node(lab, base, i, i, n, block_time, extra_config)
            for i in range(n)]


def network_node(lab: Lab, base: Path, host: int, index: int, n: int,
                 block_time: float = 1.0, extra_config: str = "",
                 p2p_port: int = P2P_PORT,
                 rpc_port: int = RPC_PORT) -> NsNode:
    """
    Node C{index} of a L{masternode_network} of C{n}, on host C{host}.
    """
    config = base / f"node{index}.toml"
    config.write_text(CONFIG.format(address=lab.address(host))
                      + extra_config)
    return NsNode(lab, host, base / f"node{index}", base / "genesis.json",
                  [f"{lab.address(j)}:{P2P_PORT}" for j in range(n)
                   if j != host], config, p2p_port, rpc_port, block_time)


def rss_kib(pid: int) -> int | None:
    """
    The resident set size of process C{pid} in KiB, or C{None}.
    """
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
