"""
Bounded output against a real ``twistd timecoin`` process (issue 14, item
2): sockets that ask for blocks and never read must neither grow the node
without bound nor stay in its peer set once they time out.
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

ATTACKERS = int(os.environ.get("TIMECOIN_LIMITS_ATTACKERS", "20"))
ATTACK_SECONDS = float(os.environ.get("TIMECOIN_LIMITS_SECONDS", "25"))
CONFIG = """\
[p2p]
ping_interval = 2.0
pong_timeout = 2.0
max_missed_pongs = 2
output_soft_bytes = 65536
"""
"""Short ping timeouts, and a soft output bound the devnet's small blocks
exceed (with the default 1 MiB the kernel's socket buffers absorb what a
non-reader gets before its ping timeout)."""
AGENT = "non-reader"


def rss_mb(pid: int) -> float:
    """
    The resident set size of process C{pid}, in MB.
    """
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class NonReader:
    """
    A peer that completes the handshake (protocol 2: its C{hello}, then
    a C{hello_proof} of its key), then sends C{get_blocks} and never
    reads a byte (its receive buffer is made tiny, so the node's
    replies pile up on the node's side).
    """

    def __init__(self, port: int, genesis: str, n: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.next_id = 0
        self.alive = True
        me = key(300 + n)
        ours = {"type": "hello", "network": "devnet", "version": 2,
                "genesis": genesis, "height": 0, "listen_port": 30000 + n,
                "pubkey": me.public.hex(), "policy": "round-robin",
                "nonce": f"{n + 1:016x}", "user_agent": AGENT}
        self.write(ours)
        # Protocol 2: prove the hello's key by signing the node's nonce.
        received = b""
        while b"\n" not in received:
            data = self.sock.recv(4096)
            if not data:
                self.alive = False
                break
            received += data
        self.sock.setblocking(False)
        if self.alive:
            theirs = parse_line(received.split(b"\n")[0])
            mine = parse_line(json.dumps(ours).encode())
            assert isinstance(theirs, Hello) and isinstance(mine, Hello)
            self.sock.sendall(make_proof(me, mine, theirs).encode() + b"\n")

    def write(self, obj: dict[str, object]) -> None:
        """
        Send one line; a refused or reset socket marks this peer dead.
        """
        try:
            self.sock.send(json.dumps(obj).encode() + b"\n")
        except BlockingIOError:
            pass
        except OSError:
            self.alive = False

    def ask(self) -> None:
        """
        Ask for the first hundred blocks, again.
        """
        self.next_id += 1
        self.write({"type": "get_blocks", "id": self.next_id, "start": 1,
                    "count": 100})

    def close(self) -> None:
        """
        Close the socket.
        """
        self.sock.close()


class NonReaderTests(unittest.TestCase):
    """
    One real node against peers that never read.
    """

    def test_non_readers_bounded_and_dropped(self) -> None:
        """
        Twenty sockets asking for blocks at their rate limit and never
        reading (each replaced by a fresh identity when the node drops
        it) for 25 s: their requests are held once output_soft_bytes
        wait unread, the node's RSS grows by less than 100 MB, it keeps
        producing and answering RPC, and once they stop (sockets still
        open, unread) every one of them is gone from getpeerinfo within
        its ping timeout plus the close grace.
        """
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        config = base / "p2p.toml"
        config.write_text(CONFIG)
        node = NodeProcess(base / "n", "--config", str(config),
                           block_time=0.05)
        self.addCleanup(node.kill)
        node.start()
        node.wait_for(lambda: node.call("getblockcount") >= 150, 30)
        assert node.proc is not None
        pid = node.proc.pid
        genesis = node.call("getblockchaininfo")["genesishash"]
        height = node.call("getblockcount")
        start = peak = rss_mb(pid)

        serial = 0

        def fresh() -> NonReader:
            nonlocal serial
            serial += 1
            peer = NonReader(node.p2p_port, genesis, serial)
            self.addCleanup(peer.close)
            return peer

        peers = [fresh() for _ in range(ATTACKERS)]
        deadline = time.monotonic() + ATTACK_SECONDS
        while time.monotonic() < deadline:
            for i, peer in enumerate(peers):
                if not peer.alive:
                    peers[i] = peer = fresh()
                peer.ask()
            time.sleep(0.5)
            peak = max(peak, rss_mb(pid))
        self.assertLess(peak - start, 100, f"RSS {start:.0f} → {peak:.0f} MB")

        def attackers() -> list[str]:
            return [p["id"] for p in node.call("getpeerinfo")
                    if p.get("user_agent") == AGENT]

        # Ping timeout: two pongs missed at 2 s, checked every 2 s, then
        # close_grace; 15 s is ample, the old code kept them for minutes.
        node.wait_for(lambda: not attackers(), 15)
        self.assertGreater(node.call("getblockcount"), height)
        counters = node.call("getnetworkinfo")["counters"]
        # Whether requests get held here depends on the kernel's socket
        # buffers (several MB on loopback) filling first: since relays go
        # to a bounded set of peers a non-reader gets too little within
        # its ping timeout for that.  Holding is pinned on fakes
        # (tests/test_p2p_limits.py); this test pins the RSS bound and the
        # drop.
        self.assertGreaterEqual(counters.get("closed:ping-timeout", 0),
                                ATTACKERS, counters)
        peak = max(peak, rss_mb(pid))
        self.assertLess(peak - start, 100, f"RSS {start:.0f} → {peak:.0f} MB")
