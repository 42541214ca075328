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

from tests.helpers import key
from tests.nodeprocess import NodeProcess
from timecoin.p2p.handshake import make_proof
from timecoin.p2p.messages import Hello, parse_line

HOLD_SECONDS = float(os.environ.get("TIMECOIN_P2P_HOLD", "60"))
CONFIG = """\
[p2p]
ping_interval = 1.0
initial_delay = 1.0
max_delay = 8.0
handshake_timeout = 1.0
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

    def test_stable_mesh_bad_input_and_restart(self) -> None:  # noqa: C901
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

        genesis = a.call("getblockchaininfo")["genesishash"]
        good = {"type": "hello", "network": "devnet", "version": 2,
                "genesis": genesis, "height": 0, "listen_port": 1,
                "pubkey": "11" * 32, "policy": "round-robin",
                "nonce": "22" * 8, "user_agent": "test"}

        def hello(**changes: object) -> bytes:
            return json.dumps({**good, **changes}).encode() + b"\n"

        cases = [
            (b"\xff\xfe\n", b"not-utf8"),
            (b"not json\n", b"bad-json"),
            (b"x" * 10_000 + b"\n", b"line-too-long"),
            (b'{"type":"ping","nonce":7}\n', b"expected-hello"),
            (hello(network="testnet"), b"wrong-network"),
            (hello(genesis="00" * 32), b"wrong-genesis"),
            (hello(version=0), b"unsupported-version"),
            (hello(policy="stake-weighted"), b"policy-mismatch"),
            (b"", b"handshake-timeout"),
        ]
        for payload, reason in cases:
            reply = exchange(a.p2p_port, payload)
            self.assertTrue(reason in reply and b'"type":"error"' in reply,
                            (payload[:40], reply[-200:]))
            # Lift the sender's score so the next case is judged alone.
            a.call("setban", "127.0.0.1", "remove")
        # Repeated garbage adds up to a ban of the sender (never of the
        # peers, which loopback tells apart by their listen ports).
        for _ in range(6):
            exchange(a.p2p_port, b"not json\n")
        self.assertEqual([b["address"] for b in a.call("listbanned")],
                         ["127.0.0.1"])
        refused = exchange(a.p2p_port, b"not json\n")
        self.assertTrue(b'"reason":"banned"' in refused, refused[-200:])
        a.call("setban", "127.0.0.1", "remove")
        # A peer that completes the handshake, then misbehaves, is answered
        # and stays connected.
        with socket.create_connection(("127.0.0.1", a.p2p_port),
                                      timeout=5) as s:
            ours = hello(listen_port=9, nonce="33" * 8,
                         pubkey=key(44).public.hex())
            s.sendall(ours)
            first_line = b""
            while b"\n" not in first_line:
                data = s.recv(65536)
                if not data:
                    break
                first_line += data
            theirs = parse_line(first_line.split(b"\n")[0])
            assert isinstance(theirs, Hello)
            mine = parse_line(ours.strip())
            assert isinstance(mine, Hello)
            # The handshake proves our key: sign a's nonce (protocol 2).
            s.sendall(make_proof(key(44), mine, theirs).encode() + b"\n")
            s.sendall(b'{"type":"teleport"}\n')
            s.sendall(hello(listen_port=9))
            received = first_line
            while received.count(b"\n") < 20 and not (
                    b"unknown-type" in received
                    and b"not-allowed-in-state" in received):
                data = s.recv(65536)
                if not data:
                    break
                received += data
        self.assertTrue(b"unknown-type" in received
                        and b"not-allowed-in-state" in received,
                        received[-200:])
        self.assertEqual(peer_ids(a), first[id(a)])
        self.assertGreaterEqual(a.call("getblockcount"), 1)
        log = a.log_tail() + (a.datadir / "node.log").read_text()
        for _, reason in cases:
            self.assertIn(reason.decode(), log)

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


class MixedBackendTests(unittest.TestCase):
    """
    A 4-node devnet on two storage backends.
    """

    def test_two_redis_two_sqlite_agree(self) -> None:
        """
        Two SQLite and two Redis nodes (one real redis-server, a database
        each) follow one chain with payments sent through every node, and
        agree on every block hash and on utxo_hash at the same height.
        """
        from tests.helpers.redisserver import RedisServer
        from timecoin.address import address_of
        from timecoin.keys import PrivateKey

        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        (base / "redis").mkdir()
        redis = RedisServer(str(base / "redis"), durable=True)
        redis.start()
        self.addCleanup(redis.kill)
        genesis = str(base / "a" / "genesis.json")
        a = NodeProcess(base / "a", block_time=0.4)
        b = NodeProcess(base / "b", "--genesis", genesis, block_time=0.4)
        c = NodeProcess(base / "c", "--genesis", genesis, "--storage",
                        "redis", "--redis-url", redis.url(1), block_time=0.4)
        d = NodeProcess(base / "d", "--genesis", genesis, "--storage",
                        "redis", "--redis-url", redis.url(2), block_time=0.4)
        nodes = [a, b, c, d]
        for node in nodes:
            node.args += ["--connect", ",".join(
                f"127.0.0.1:{n.p2p_port}" for n in nodes if n is not node)]
            self.addCleanup(node.kill)
            node.start()
        for node in nodes:
            node.wait_for(lambda n=node: n.call("getconnectioncount") == 3, 30)
        # Fund each follower, then have each pay onward through its own RPC.
        # a's change is spendable once the payment before is final.
        txids = []
        for n in nodes[1:]:
            txid = a.call("sendtoaddress", n.call("getnewaddress"), 10)
            self.assertEqual(a.call("waitfortransaction", txid, 8)["state"],
                             "finalized")
            txids.append(txid)
        for node, txid in zip(nodes[1:], txids):
            node.wait_for(lambda n=node, t=txid: n.call(
                "gettransaction", t)["state"] == "finalized", 10)
        away = address_of(PrivateKey.generate().public, "TIME0")
        paid = [n.call("sendtoaddress", away, 1) for n in nodes[1:]]
        for txid in paid:
            a.wait_for(lambda t=txid: a.call("gettransaction", t).get(
                "blockheight") is not None, 10)
        a.kill()
        height = max(n.call("getblockcount") for n in nodes[1:])
        for node in nodes[1:]:
            node.wait_for(lambda n=node: n.call("getblockcount") == height
                          and n.call("getmempoolinfo")["size"] == 0, 15)
        a.start(block_time=3600)
        a.wait_for(lambda: a.call("getblockcount") >= height, 15)
        self.assertEqual(a.call("getblockcount"), height)
        for h in range(height + 1):
            hashes = {n.call("getblockhash", h) for n in nodes}
            self.assertEqual(len(hashes), 1, f"block {h} differs")
        utxo = {n.call("gettxoutsetinfo")["utxo_hash"] for n in nodes}
        self.assertEqual(len(utxo), 1)
        for node in nodes:
            self.assertTrue(node.call("verifychain")["ok"])
