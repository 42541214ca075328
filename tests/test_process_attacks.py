"""
The attacks of issue 14 against real ``twistd timecoin`` processes on
loopback, each from raw sockets that speak protocol 2 (a C{hello}, then a
C{hello_proof} signed with the attacker's own key): height liars with a
fresh identity every 10 s against two of four masternodes; a node
restarted with a poisoned peer table; deeply nested JSON from one source;
a C{hello} that claims another node's key.

The fakes (L{tests.test_sync_liar}, L{tests.test_p2p_addrman},
L{tests.test_p2p_handshake_proof}) pin the logic; these pin what the
operator's processes do: sockets, timers and logs included.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from tests.helpers import key
from tests.nodeprocess import NodeProcess, free_port
from timecoin import devnet
from timecoin.devnet import free_port_range
from timecoin.keys import PrivateKey
from timecoin.p2p.handshake import make_proof
from timecoin.p2p.messages import Hello, parse_line
from timecoin.wallet import write_private

LIE = 1_000_000_000
"""The height a liar claims."""
ATTACK_SECONDS = float(os.environ.get("TIMECOIN_ATTACK_SECONDS", "60"))
ROTATE_SECONDS = 10.0
BLOCK_TIME = 1.0


class Peer:
    """
    A raw protocol-2 peer: one socket to a node's P2P port.

    It sends its C{hello} at once; L{handshake} reads the node's C{hello}
    and sends a C{hello_proof} signed by C{signer} (by default the key of
    the hello: a valid proof); L{pump} then reads whatever arrived and
    answers pings (and C{get_tip} with C{tip_height}, if set), so the
    peer stays connected as long as it is pumped.
    """

    def __init__(self, port: int, genesis: str, pubkey: bytes,
                 listen_port: int, nonce: int, height: int = 0,
                 agent: str = "attacker") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buffer = b""
        self.alive = True
        self.got: Counter[str] = Counter()
        self.errors: list[str] = []
        self.tip_height: int | None = None
        self.hello = Hello(network="devnet", version=2,
                           genesis=bytes.fromhex(genesis), height=height,
                           listen_port=listen_port, pubkey=pubkey,
                           policy="round-robin",
                           nonce=nonce.to_bytes(8, "big"), user_agent=agent)
        self.write(self.hello.encode())

    def write(self, line: bytes) -> None:
        """
        Send one line; a closed socket marks the peer dead.
        """
        try:
            self.sock.sendall(line + b"\n")
        except OSError:
            self.alive = False

    def read_line(self, timeout: float = 5.0) -> bytes | None:
        """
        The next line (blocking up to C{timeout}); C{None} once closed.
        """
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                data = b""
            if not data:
                self.alive = False
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def handshake(self, signer: PrivateKey | None) -> Hello:
        """
        Read the node's C{hello}, then send our C{hello_proof} signed by
        C{signer} (a claimer signs with a key other than its hello's).
        Returns the node's hello.
        """
        line = self.read_line()
        assert line is not None, "no hello from the node"
        theirs = parse_line(line)
        assert isinstance(theirs, Hello), line[:200]
        if signer is not None:
            self.write(make_proof(signer, self.hello, theirs).encode())
        return theirs

    def pump(self) -> None:
        """
        Handle every line that arrived, without blocking.
        """
        if not self.alive:
            return
        self.sock.setblocking(False)
        try:
            while True:
                try:
                    data = self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                if not data:
                    self.alive = False
                    break
                self.buffer += data
        finally:
            self.sock.setblocking(True)
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.handle(line)

    def handle(self, line: bytes) -> None:
        """
        Answer one line from the node: pings, and tips if we lie.
        """
        try:
            obj = json.loads(line)
        except ValueError:
            return
        kind = obj.get("type")
        self.got[kind] += 1
        if kind == "error":
            self.errors.append(str(obj.get("reason")))
        elif kind == "ping":
            self.write(json.dumps({"type": "pong",
                                   "nonce": obj["nonce"]}).encode())
        elif kind == "get_tip" and self.tip_height is not None:
            self.write(json.dumps({"type": "tip", "id": obj["id"],
                                   "height": self.tip_height,
                                   "hash": "11" * 32}).encode())

    def close(self) -> None:
        """
        Close the socket.
        """
        self.alive = False
        self.sock.close()


def pump_all(peers: list[Peer], seconds: float) -> None:
    """
    Pump C{peers} for C{seconds}, waking on input.
    """
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        live = [p for p in peers if p.alive]
        if not live:
            time.sleep(left)
            return
        ready, _, _ = select.select([p.sock for p in live], [], [],
                                    min(left, 0.2))
        for peer in live:
            if peer.sock in ready:
                peer.pump()


def kill_devnet(root: Path, n: int) -> None:
    """
    SIGKILL the devnet's nodes under C{root} by their pidfiles (the ones
    this test started; the pid is gone once the node exits).
    """
    for i in range(n):
        try:
            pid = int((root / f"node{i}" / "twistd.pid").read_text())
            os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


class Devnet:
    """
    A 4-masternode devnet from L{devnet.up}, with blocking RPC helpers.
    """

    def __init__(self, case: unittest.TestCase, config: str,
                 block_time: float) -> None:
        self.root = Path(case.mktemp()).resolve()
        self.root.mkdir(parents=True)
        self.base = free_port_range(8)
        case.addCleanup(kill_devnet, self.root, 4)
        path = self.root / "config.toml"
        path.write_text(config)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = devnet.up(self.root, 4, self.base, block_time, path)
        case.assertEqual(code, 0, out.getvalue())

    def call(self, i: int, method: str, *params: Any) -> Any:
        """
        RPC C{method} on node C{i}.
        """
        return devnet.rpc(self.root / f"node{i}", self.base + 2 * i + 1,
                          method, *params)

    def p2p_port(self, i: int) -> int:
        """
        The P2P port of node C{i}.
        """
        return self.base + 2 * i


LIAR_CONFIG = """\
[p2p]
tip_interval = 5.0
"""
"""Tips are asked every 5 s (not 30), so each liar identity also lies in
C{tip} replies within its 10 s."""


class HeightLiarTests(unittest.TestCase):
    """
    Peers that lie about their height, against four real masternodes.
    """

    def test_rotating_liars_do_not_stop_the_chain(self) -> None:
        """
        A liar with a fresh key (and listen port) every 10 s completes the
        handshake with masternodes 0 and 1 for 60 s, claiming height
        1,000,000,000 in its C{hello} and C{tip} replies, answering pings
        and never answering C{get_blocks}: the liars are connected and
        asked for blocks (the claim is taken as a hint), yet the attacked
        nodes report C{synced} (not in initial block download) at every
        sample, no gap between two committed blocks exceeds five block
        times during the attack or in the 20 s after it, the chain grows
        after it, and all four agree.

        Before the fix (the claimed height trusted as is, p2p/sync.py
        before "sync trusts only shown heights"), the attacked nodes went
        C{catching-up}, stopped voting, and the chain stopped for the whole
        attack (a gap of ~60 s), sometimes for good.
        """
        net = Devnet(self, LIAR_CONFIG, BLOCK_TIME)
        genesis = net.call(0, "getblockchaininfo")["genesishash"]
        targets = (0, 1)
        start = net.call(2, "getblockcount")
        liars: list[Peer] = []
        retired: list[Peer] = []
        samples: list[tuple[int, str, bool]] = []
        lying_seen: set[int] = set()

        def retire() -> None:
            for liar in liars:
                liar.close()
            retired.extend(liars)
            liars.clear()

        self.addCleanup(retire)
        began = time.monotonic()
        serial = 0
        while time.monotonic() - began < ATTACK_SECONDS:
            retire()
            serial += 1
            me = key(500 + serial)
            listen = free_port()
            for i in targets:
                liar = Peer(net.p2p_port(i), genesis, me.public, listen,
                            nonce=serial * 10 + i, height=LIE,
                            agent="liar")
                liar.tip_height = LIE
                liar.handshake(me)
                liars.append(liar)
            rotated = time.monotonic()
            while time.monotonic() - rotated < ROTATE_SECONDS:
                pump_all(liars, 1.0)
                for i in targets:
                    info = net.call(i, "getblockchaininfo")
                    samples.append((i, info["sync"]["state"],
                                    info["initialblockdownload"]))
                    if any(p.get("height") == LIE
                           for p in net.call(i, "getpeerinfo")):
                        lying_seen.add(i)
        retire()
        during = net.call(2, "getblockcount")
        time.sleep(20)
        after = net.call(2, "getblockcount")

        asked = sum(p.got["get_blocks"] for p in retired)
        self.assertGreater(asked, 0, "no liar was asked for blocks")
        self.assertEqual(lying_seen, set(targets))
        unsynced = [s for s in samples if s[1] != "synced" or s[2]]
        self.assertEqual(unsynced, [], f"{len(samples)} samples")
        times = [net.call(2, "getblock", net.call(2, "getblockhash", h))[
            "time_ms"] for h in range(start, after + 1)]
        gaps = [(b - a) / 1000 for a, b in zip(times, times[1:])]
        self.assertLessEqual(max(gaps), 5 * BLOCK_TIME,
                             f"gaps {sorted(gaps)[-5:]}")
        self.assertGreaterEqual(during - start,
                                ATTACK_SECONDS / (3 * BLOCK_TIME))
        self.assertGreaterEqual(after - during, 20 / (3 * BLOCK_TIME))
        for i in range(4):
            info = net.call(i, "getblockchaininfo")
            self.assertFalse(info["initialblockdownload"], info)
            self.assertLess(info["headers"], LIE, info)
        low = min(net.call(i, "getblockcount") for i in range(4))
        self.assertEqual(len({net.call(i, "getblockhash", low)
                              for i in range(4)}), 1)
        sync = net.call(0, "getnetworkinfo")["sync"]
        print(f"\nliars: {serial} identities, get_blocks asked {asked}, "
              f"blocks {start}->{during}->{after}, "
              f"largest gaps {sorted(gaps)[-3:]}, sync counters {sync}")


def write_node_key(datadir: Path, node_key: PrivateKey) -> None:
    """
    Give the node of C{datadir} the node key C{node_key} (before its
    first start), as the node itself stores it.
    """
    write_private(datadir / "private" / "node_key",
                  node_key.seed.hex().encode("ascii") + b"\n")


def poison_rows(count: int, now: float) -> list[dict[str, Any]]:
    """
    C{count} unreachable addresses as C{peers.json} rows made to look
    their best (tried, seen just now, never failed): loopback ports where
    nothing listens (refused at once) and private addresses in as many
    /24s as possible (unrouted here: a dial hangs or fails).
    """
    rows = []
    for n in range(count):
        if n % 3 == 0:
            host, port = "127.0.0.1", 2000 + n // 3
        else:
            host, port = f"10.{n % 250}.{n // 250}.7", 24200
        rows.append({"host": host, "port": port, "source": "exchange",
                     "pubkey": None, "last_seen": now, "failures": 0,
                     "origin": f"10.66.{n % 200}.0/24", "tried": True,
                     "retry_at": 0.0})
    return rows


SILENT_CONFIG = """\
[p2p]
max_outbound = 0
"""
"""The victim's peers never dial anyone: whatever connects, the victim
dialled."""
VICTIM_CONFIG = """\
[p2p]
listen = false
"""
"""The victim does not listen: nobody can dial it back into the
network."""


class PoisonedTableTests(unittest.TestCase):
    """
    A node restarted with a peer table full of unreachable addresses.
    """

    def restart_poisoned(self, victim_rank: int) -> None:
        """
        Three peers that never dial (B, C, D) and a victim V that does not
        listen, V's node key of rank C{victim_rank} among the four (0 the
        lowest).  V, seeded with B, C and D, connects to all three; it is
        stopped, its C{peers.json} (secret and anchors kept) is filled up
        to the table's 1,000 entries with unreachable addresses that look
        their best, and it is restarted with only the peer that is not an
        anchor as its C{--connect} seed.  Within 15 s of the restart it is
        connected, outbound, to that seed and to both anchors.
        """
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        silent = base / "silent.toml"
        silent.write_text(SILENT_CONFIG)
        quiet = base / "victim.toml"
        quiet.write_text(VICTIM_CONFIG)
        keys = sorted((key(700 + n) for n in range(4)),
                      key=lambda k: k.public)
        victim_key = keys.pop(victim_rank)
        b = NodeProcess(base / "b", "--config", str(silent), block_time=0.5)
        genesis = str(base / "b" / "genesis.json")
        peers = [b] + [NodeProcess(base / name, "--config", str(silent),
                                   "--genesis", genesis, block_time=0.5)
                       for name in ("c", "d")]
        victim = NodeProcess(base / "v", block_time=0.5)
        for node, node_key in zip([*peers, victim], [*keys, victim_key]):
            write_node_key(node.datadir, node_key)
            self.addCleanup(node.kill)
        for node in peers:
            node.start()
        ident = {f"127.0.0.1:{n.p2p_port}": n for n in peers}

        def outbound() -> set[str]:
            return {p["id"] for p in victim.call("getpeerinfo")
                    if p["state"] == "ready" and p["direction"] == "outbound"}

        def run(seeds: list[str]) -> None:
            victim.args = ["--config", str(quiet), "--genesis", genesis,
                           "--connect", ",".join(seeds)]
            victim.start()

        run(sorted(ident))
        victim.wait_for(lambda: outbound() == set(ident), 30)
        victim.stop()
        table_path = victim.datadir / "peers.json"
        table = json.loads(table_path.read_text())
        anchors = table["anchors"]
        self.assertEqual(len(anchors), 2, table)
        seed = sorted(set(ident) - set(anchors))[0]
        rows = table["peers"]
        rows += poison_rows(1000 - len(rows), time.time())
        table["peers"] = sorted(rows, key=lambda r: (r["host"], r["port"]))
        table_path.write_text(json.dumps(table))

        started = time.monotonic()
        run([seed])
        expected = {seed, *anchors}
        victim.wait_for(lambda: expected <= outbound(), 15)
        elapsed = time.monotonic() - started
        info = victim.call("getnetworkinfo")
        self.assertGreater(info["known_peers"], 900, info)
        print(f"\nvictim rank {victim_rank}: seed and anchors connected "
              f"{elapsed:.1f} s after the restart; "
              f"{len(info['dialing'])} dialing, counters "
              f"{ {k: v for k, v in info['counters'].items() if 'dial' in k} }")

    def test_lowest_key_reconnects_to_seed_and_anchors(self) -> None:
        """
        The victim has the lowest key of the four (it dials them all by
        the dial rule): seed and anchors within 15 s (L{restart_poisoned}).
        """
        self.restart_poisoned(0)

    def test_highest_key_reconnects_to_seed_and_anchors(self) -> None:
        """
        The victim has the highest key (by the dial rule its anchors, all
        lower, would dial it; it does not listen, so they cannot): seed
        and anchors within 15 s all the same (L{restart_poisoned}).
        """
        self.restart_poisoned(3)


def two_nodes(case: unittest.TestCase) -> tuple[NodeProcess, NodeProcess]:
    """
    Node A (the devnet genesis's one masternode, committing a block every
    0.5 s) and node B (a follower dialing A), connected.
    """
    base = Path(case.mktemp()).resolve()
    base.mkdir(parents=True)
    a = NodeProcess(base / "a", block_time=0.5)
    case.addCleanup(a.kill)
    a.start()
    b = NodeProcess(base / "b", "--genesis", str(base / "a" / "genesis.json"),
                    "--connect", f"127.0.0.1:{a.p2p_port}", block_time=0.5)
    case.addCleanup(b.kill)
    b.start()
    a.wait_for(lambda: b_link(a, b) is not None
               and b_link(b, a) is not None, 30)
    return a, b


def b_link(node: NodeProcess, other: NodeProcess) -> dict[str, Any] | None:
    """
    C{node}'s ready connection to C{other} (getpeerinfo), if any.
    """
    for p in node.call("getpeerinfo"):
        if p["id"] == f"127.0.0.1:{other.p2p_port}" and p["state"] == "ready":
            return p
    return None


def banned(node: NodeProcess) -> list[str]:
    """
    The identities C{node} bans now (listbanned).
    """
    return [b["address"] for b in node.call("listbanned")]


def drain(peer: Peer, seconds: float = 5.0) -> None:
    """
    Read and handle C{peer}'s lines until the node closes it or
    C{seconds} pass.
    """
    deadline = time.monotonic() + seconds
    while peer.alive and time.monotonic() < deadline:
        line = peer.read_line(deadline - time.monotonic())
        if line is not None:
            peer.handle(line)


NESTED_TX = b'{"type":"tx","tx":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
"""A C{tx} line nested 100,000 deep (200 kB, under the type's cap):
before the fix the decoder's C{RecursionError} escaped with a traceback."""
NESTED_HELLO = b"[" * 1020
"""A line nested 1,020 deep that fits the 1,024 bytes a line may have
before the handshake."""
FLOOD_SECONDS = 15.0
FLOOD_MAX = 10_000


class NestedJsonTests(unittest.TestCase):
    """
    Deeply nested JSON from one source.
    """

    def test_nested_json_banned_quietly(self) -> None:
        """
        One peer identity (handshake done) sending C{tx} lines nested
        100,000 deep is answered C{bad-json} and banned by its sixth line
        (20 points each against a threshold of 100, less the score's
        decay between lines); then connections from the same IP each
        sending a line nested 1,020 deep before any handshake (up to
        10,000 in 15 s): the IP is banned by the sixth, the rest are
        closed as banned.  Through all
        of it the node's log grows by less than 64 kB, it keeps
        committing, and its real peer stays connected and unbanned.

        Before the fix each line logged a full C{RecursionError}
        traceback (48 MB of log for 36,252 connections) and the sender
        was never banned.
        """
        a, b = two_nodes(self)
        genesis = a.call("getblockchaininfo")["genesishash"]
        since = b_link(a, b)["connected_since"]  # type: ignore[index]
        log = a.datadir / "node.log"
        size = log.stat().st_size
        height = a.call("getblockcount")

        me = key(900)
        listen = free_port()
        peer = Peer(a.p2p_port, genesis, me.public, listen, nonce=900)
        self.addCleanup(peer.close)
        peer.handshake(me)
        ident = f"127.0.0.1:{listen}"
        lines = 0
        while ident not in banned(a) and lines < 20 and peer.alive:
            peer.write(NESTED_TX)
            lines += 1
            deadline = time.monotonic() + 5
            while peer.errors.count("bad-json") + peer.errors.count(
                    "banned") < lines and peer.alive and \
                    time.monotonic() < deadline:
                line = peer.read_line(0.2)
                if line is not None:
                    peer.handle(line)
        self.assertIn(ident, banned(a))
        self.assertLessEqual(lines, 6, peer.errors)
        self.assertIn("bad-json", peer.errors)

        first_ban = None
        flood = 0
        began = time.monotonic()
        while flood < FLOOD_MAX and \
                time.monotonic() - began < FLOOD_SECONDS:
            flood += 1
            with socket.create_connection(("127.0.0.1", a.p2p_port),
                                          timeout=5) as s:
                s.sendall(NESTED_HELLO + b"\n")
                with contextlib.suppress(OSError):
                    while s.recv(65536):
                        pass
            if first_ban is None and "127.0.0.1" in banned(a):
                first_ban = flood
        flood_seconds = time.monotonic() - began
        assert first_ban is not None, "the source was never banned"
        self.assertLessEqual(first_ban, 6)
        grown = log.stat().st_size - size
        self.assertLess(grown, 64 * 1024, a.log_tail())
        a.wait_for(lambda: a.call("getblockcount") >= height + 10, 10)
        link = b_link(a, b)
        self.assertIsNotNone(link)
        assert link is not None
        self.assertEqual(link["connected_since"], since)
        self.assertNotIn(f"127.0.0.1:{b.p2p_port}", banned(a))
        counters = a.call("getnetworkinfo")["counters"]
        self.assertGreaterEqual(counters.get("bans", 0), 2, counters)
        print(f"\nnested: identity banned after {lines} lines, IP after "
              f"{first_ban} connections; {flood} connections in "
              f"{flood_seconds:.1f} s; log grew {grown} bytes; height "
              f"{height} -> {a.call('getblockcount')}")


class ClaimedKeyTests(unittest.TestCase):
    """
    A C{hello} that claims another node's key and listen port.
    """

    def test_claimer_refused_real_node_kept(self) -> None:
        """
        Twenty connections to A, each with a C{hello} carrying B's node
        key and listen port: ten prove it with another key's signature,
        ten with a zero signature; each is refused with
        C{bad-hello-proof}.  Five more claim B and then send garbage
        before any proof (charged to the claimer's IP, never to B's
        identity).  Throughout, A's connection to B is the one it had
        (same connected_since, ban score 0), B's to A as well, and B's
        identity never appears among A's bans.

        Before the handshake proof, such a claim replaced B's connection
        and its offences were charged to (and banned) B.
        """
        a, b = two_nodes(self)
        genesis = a.call("getblockchaininfo")["genesishash"]
        link = b_link(a, b)
        back = b_link(b, a)
        assert link is not None and back is not None
        pubkey = bytes.fromhex(link["pubkey"])
        b_ident = f"127.0.0.1:{b.p2p_port}"
        refused = 0
        for n in range(20):
            claimer = Peer(a.p2p_port, genesis, pubkey, b.p2p_port,
                           nonce=1000 + n, agent="claimer")
            self.addCleanup(claimer.close)
            if n % 2:
                claimer.handshake(key(950 + n))
            else:
                claimer.handshake(None)
                claimer.write(json.dumps({"type": "hello_proof",
                                          "signature": "00" * 64}).encode())
            drain(claimer)
            self.assertFalse(claimer.alive, "the claimer stayed connected")
            self.assertIn("bad-hello-proof", claimer.errors)
            refused += 1
            self.assertNotIn(b_ident, banned(a))
        for n in range(5):
            claimer = Peer(a.p2p_port, genesis, pubkey, b.p2p_port,
                           nonce=2000 + n, agent="claimer")
            self.addCleanup(claimer.close)
            claimer.handshake(None)
            claimer.write(b"not json")
            drain(claimer)
            self.assertNotIn(b_ident, banned(a))
        now = b_link(a, b)
        self.assertIsNotNone(now, "A lost its connection to B")
        assert now is not None
        self.assertEqual(now["connected_since"], link["connected_since"])
        self.assertEqual(now["ban_score"], 0)
        again = b_link(b, a)
        assert again is not None
        self.assertEqual(again["connected_since"], back["connected_since"])
        self.assertNotIn(b_ident, banned(a))
        self.assertNotIn(f"127.0.0.1:{a.p2p_port}", banned(b))
        counters = a.call("getnetworkinfo")["counters"]
        self.assertGreaterEqual(counters.get("bad-hello-proof", 0), 20,
                                counters)
        print(f"\nclaims: {refused} refused with bad-hello-proof; A bans "
              f"{banned(a)}; counters "
              f"{ {k: v for k, v in counters.items() if 'proof' in k} }")
