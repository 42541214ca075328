"""
P2P between real ``twistd timecoin`` processes on loopback: three nodes
connect once per pair and hold those connections for a minute with ping
RTTs in getpeerinfo; bad input over a real socket is answered with its
reason and costs the node nothing; a killed node that restarts is
reconnected within the backoff schedule, never twice at once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from twisted.trial import unittest

from tests.nodeprocess import NodeProcess

HOLD_SECONDS = float(os.environ.get("TIMECOIN_P2P_HOLD", "60"))
CONFIG = """\
[p2p]
ping_interval = 1.0
initial_delay = 1.0
max_delay = 8.0
"""


def peer_ids(node: NodeProcess) -> dict[str, float]:
    """
    Connected peers of C{node}: identity → time its connection was made.
    """
    return {p["id"]: p["connected_since"] for p in node.call("getpeerinfo")
            if p["state"] == "ready"}


def exchange(port: int, payload: bytes) -> bytes:
    """
    Connect to a P2P port, send C{payload}, and read until the node closes
    the connection or 5 s pass.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        chunks = []
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except TimeoutError:
            pass
    return b"".join(chunks)


class ThreeNodeTests(unittest.TestCase):
    """
    Three real processes, each told about the other two.
    """

    def test_stable_mesh_bad_input_and_restart(self) -> None:
        """
        One connection per pair, held for a minute with RTTs measured;
        garbage, an oversized line and a wrong-genesis hello each get an
        error with their reason while the mesh stays intact; a killed node
        comes back and is reconnected once per pair.
        """
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        config = base / "p2p.toml"
        config.write_text(CONFIG)
        a = NodeProcess(base / "a", "--config", str(config), block_time=0.5)
        nodes = [a]
        for name in ("b", "c"):
            nodes.append(NodeProcess(
                base / name, "--config", str(config), "--genesis",
                str(base / "a" / "genesis.json"), block_time=0.5))
        for node in nodes:
            others = [f"127.0.0.1:{n.p2p_port}" for n in nodes
                      if n is not node]
            node.args += ["--connect", ",".join(others)]
            self.addCleanup(node.kill)
        a.start()
        for node in nodes[1:]:
            node.start()
        for node in nodes:
            node.wait_for(lambda n=node: len(peer_ids(n)) == 2, 30)
        first = {id(n): peer_ids(n) for n in nodes}

        deadline = time.monotonic() + HOLD_SECONDS
        while time.monotonic() < deadline:
            for node in nodes:
                self.assertEqual(peer_ids(node), first[id(node)],
                                 "a connection was replaced")
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        for node in nodes:
            rtts = [p["rtt"] for p in node.call("getpeerinfo")]
            self.assertEqual(len(rtts), 2)
            for rtt in rtts:
                self.assertIsNotNone(rtt)
                self.assertGreater(rtt, 0)
                self.assertLess(rtt, 1.0)

        garbage = exchange(a.p2p_port, b"\xff\xfe not json\n")
        self.assertIn(b'"type":"error"', garbage)
        oversized = exchange(a.p2p_port, b"x" * 10_000 + b"\n")
        self.assertIn(b"line-too-long", oversized)
        wrong = {"type": "hello", "network": "devnet", "version": 1,
                 "genesis": "00" * 32, "height": 0, "listen_port": 1,
                 "pubkey": "11" * 32, "policy": "round-robin",
                 "nonce": "22" * 8, "user_agent": "test"}
        refused = exchange(a.p2p_port, json.dumps(wrong).encode() + b"\n")
        self.assertIn(b"wrong-genesis", refused)
        self.assertEqual(peer_ids(a), first[id(a)])
        self.assertGreaterEqual(a.call("getblockcount"), 1)
        log = a.log_tail() + (a.datadir / "node.log").read_text()
        for reason in ("line-too-long", "wrong-genesis"):
            self.assertIn(reason, log)

        c = nodes[2]
        c.kill()
        a.wait_for(lambda: len(peer_ids(a)) == 1, 15)
        c.start()
        started = time.monotonic()
        for node in nodes:
            node.wait_for(lambda n=node: len(peer_ids(n)) == 2, 20)
        self.assertLess(time.monotonic() - started, 20)
        for node in nodes:
            self.assertEqual(len(node.call("getpeerinfo")), 2)
