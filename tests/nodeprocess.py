"""
Real ``twistd timecoin`` node processes for integration tests: start one on
free loopback ports, call its RPC with the cookie, SIGKILL or stop it.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from timecoin.devnet import free_port_range

ROOT = Path(__file__).resolve().parent.parent
TWISTD = ("import sys; from twisted.scripts.twistd import run; "
          "sys.argv[0] = 'twistd'; run()")


def free_port() -> int:
    """
    A TCP port that was free on 127.0.0.1 a moment ago, below the
    ephemeral range (L{free_port_range}).
    """
    return free_port_range(1)


class RpcError(Exception):
    """
    The node answered with a JSON-RPC error.
    """

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")


class NodeProcess:
    """
    One node as a child process.  Blocking helpers: these tests run no
    reactor of their own.
    """

    def __init__(self, datadir: Path, *args: str,
                 block_time: float = 0.5) -> None:
        self.datadir = datadir
        self.args = list(args)
        self.block_time = block_time
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, block_time: float | None = None) -> None:
        """
        Start the process and wait until its RPC answers.
        """
        self.datadir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-c", TWISTD, "-n", "--pidfile=",
               f"--logfile={self.datadir / 'node.log'}", "timecoin",
               "--network", "devnet", "--datadir", str(self.datadir),
               "--rpc-port", str(self.rpc_port),
               "--p2p-port", str(self.p2p_port),
               "--block-time", str(block_time or self.block_time),
               *self.args]
        self.proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_for(lambda: self.call("getblockcount") is not None, 30)

    def log_tail(self) -> str:
        """
        The end of the node's log, for failure messages.
        """
        path = self.datadir / "node.log"
        return path.read_text()[-4000:] if path.exists() else "(no log)"

    def call(self, method: str, *params: Any) -> Any:
        """
        One JSON-RPC call with the cookie; raises L{RpcError} on an RPC
        error and OSError when the node is unreachable.
        """
        cookie = (self.datadir / ".cookie").read_text().strip()
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                           "params": list(params)}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rpc_port}/", data=body,
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(
                         cookie.encode()).decode()})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = json.load(response)
        except urllib.error.HTTPError as e:
            reply = json.load(e)
        if reply.get("error"):
            raise RpcError(reply["error"])
        return reply["result"]

    def wait_for(self, predicate: Any, timeout: float) -> None:
        """
        Poll C{predicate} until true; fail with the log tail on timeout or
        if the process died.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"node exited with {self.proc.returncode}:\n"
                    f"{self.log_tail()}")
            try:
                if predicate():
                    return
            except (OSError, RpcError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """
        SIGKILL the process and reap it.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> int:
        """
        SIGTERM the process and return its exit status (twistd re-raises
        the signal after a clean shutdown, so a clean stop is -SIGTERM).
        """
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit()

    def wait_exit(self, timeout: float = 20) -> int:
        """
        Wait for the process to exit; return its status.
        """
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self.proc = None
        return code
