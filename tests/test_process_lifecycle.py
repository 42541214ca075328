"""
The masternode lifecycle with real ``twistd timecoin`` processes, as an
operator lives it: nodes join a running one-masternode devnet, are funded
and registered through RPC and activate by themselves, without a restart;
masternodes SIGKILLed are set aside by the chain and come back by
themselves once restarted; SIGKILLs at random instants never make a
masternode sign twice; a halted chain turns /health to 503 with its
reason.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from tests.nodeprocess import NodeProcess, RpcError

BLOCK_TIME = 1.0


def wait(predicate: Any, timeout: float, what: str,
         nodes: list[NodeProcess] = ()) -> float:
    """
    Poll C{predicate} until true; fail with C{what} (and the nodes' log
    tails) after C{timeout} seconds.  Returns the seconds it took.
    """
    start = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - start
        except (OSError, RpcError, ValueError, KeyError, TypeError):
            pass
        if time.monotonic() - start > timeout:
            tails = "\n".join(f"--- {n.datadir.name}\n{n.log_tail()[-1500:]}"
                              for n in nodes)
            raise AssertionError(f"timed out: {what}\n{tails}")
        time.sleep(0.1)


def blocks(node: NodeProcess, start: int) -> list[dict[str, Any]]:
    """
    The main-chain blocks of C{node} from height C{start} to its tip.
    """
    return [node.call("getblock", node.call("getblockhash", h))
            for h in range(start, node.call("getblockcount") + 1)]


def longest_gap(node: NodeProcess, start: int) -> float:
    """
    The longest time, in seconds, between two consecutive blocks of
    C{node} from height C{start}.
    """
    stamps = [b["time_ms"] for b in blocks(node, start)]
    return max((b - a) / 1000 for a, b in zip(stamps, stamps[1:]))


def agree(test: unittest.TestCase, nodes: list[NodeProcess]) -> int:
    """
    Every node has one block hash at every height up to the lowest tip;
    returns that height.
    """
    low = min(n.call("getblockcount") for n in nodes)
    for h in range(low + 1):
        test.assertEqual(len({n.call("getblockhash", h) for n in nodes}), 1,
                         f"height {h} differs")
    return low


def health(node: NodeProcess) -> tuple[int, dict[str, Any]]:
    """
    GET /health: the HTTP status and the JSON body.
    """
    url = f"http://127.0.0.1:{node.rpc_port}/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


class JoinTests(unittest.TestCase):
    """
    A one-masternode devnet that three operators join.
    """

    def setUp(self) -> None:
        self.base = Path(self.mktemp()).resolve()
        self.base.mkdir(parents=True)
        self.nodes: list[NodeProcess] = []

    def start(self, name: str, *args: str) -> NodeProcess:
        node = NodeProcess(self.base / name, *args, block_time=BLOCK_TIME)
        self.nodes.append(node)
        self.addCleanup(node.kill)
        node.start()
        return node

    def join(self, first: NodeProcess, node: NodeProcess) -> float:
        """
        What an operator does: fund the new node's wallet with a bronze
        collateral and a fee coin, call registermasternode, and wait
        until masternodestatus says active.  Returns the seconds from the
        registration to active.
        """
        address = node.call("getnewaddress")
        collateral = first.call("sendtoaddress", address, 1_500)
        self.assertEqual(first.call("waitfortransaction", collateral,
                                    30)["state"], "finalized")
        fee = first.call("sendtoaddress", address, 2)
        self.assertEqual(first.call("waitfortransaction", fee, 30)["state"],
                         "finalized")
        wait(lambda: node.call("waitfortransaction", fee, 5)["state"]
             == "finalized", 30, "funds never reached the new node",
             self.nodes)
        node.call("registermasternode", collateral, 0)
        started = time.monotonic()
        wait(lambda: node.call("masternodestatus")["status"] == "active",
             60, f"{node.datadir.name} never became active", self.nodes)
        return time.monotonic() - started

    def test_join_set_aside_and_return(self) -> None:
        """
        Three nodes join one after the other: after each registration
        the chain never stops longer than three block times, total weight
        reaches 4, each new masternode produces within a minute, without a
        restart.  Then two of them are SIGKILLed one after the other, the
        second once the first is set aside: the others keep committing,
        masternodelist shows both set aside with height and reason;
        restarted, both are active and producing again by themselves;
        every node has one block hash at every height.
        """
        first = self.start("mn0")
        genesis = str(self.base / "mn0" / "genesis.json")
        wait(lambda: first.call("getblockcount") >= 3, 30, "no blocks",
             self.nodes)
        start_height = first.call("getblockcount")
        connect = f"127.0.0.1:{first.p2p_port}"
        keys = [first.call("masternodestatus")["pubkey"]]
        for i in (1, 2, 3):
            node = self.start(f"mn{i}", "--genesis", genesis, "--connect",
                              connect)
            took = self.join(first, node)
            keys.append(node.call("masternodestatus")["pubkey"])
            self.assertEqual(first.call("getconsensusinfo")["total_weight"],
                             i + 1)
            self.assertLess(took, 60)
            self.assertLessEqual(longest_gap(first, start_height),
                                 3 * BLOCK_TIME + 1, f"after joiner {i}")
        # Each new masternode produces within a minute.
        height = first.call("getblockcount")
        wait(lambda: {b["producer"] for b in blocks(first, height + 1)}
             >= set(keys), 60, "not every masternode produced", self.nodes)
        agree(self, self.nodes)

        # Two stop, one after the other.
        rows = {r["pubkey"]: r for r in first.call("masternodelist")}
        self.assertEqual({r["status"] for r in rows.values()}, {"active"})
        victims = [self.nodes[3], self.nodes[2]]
        alive = self.nodes[:2]
        for n, victim in enumerate(victims):
            key = keys[self.nodes.index(victim)]
            victim.kill()
            wait(lambda key=key: key in {
                r["pubkey"] for r in first.call("masternodelist",
                                                "set-aside")},
                 120, f"victim {n} not set aside", alive)
            height = first.call("getblockcount")
            wait(lambda height=height: first.call("getblockcount")
                 >= height + 3, 20, "the others stopped committing", alive)
        aside = {r["pubkey"]: r for r in first.call("masternodelist",
                                                    "set-aside")}
        self.assertEqual(set(aside), {keys[3], keys[2]})
        for row in aside.values():
            self.assertIn("missed", row["reason"])
            self.assertGreater(row["return_height"], row["since"])
        self.assertEqual(first.call("getconsensusinfo")["total_weight"], 2)

        # Both come back by themselves.
        for victim in victims:
            victim.start()
        wait(lambda: {r["status"] for r in first.call("masternodelist")}
             == {"active"}, 240, "set-aside masternodes never came back",
             self.nodes)
        height = first.call("getblockcount")
        wait(lambda: {b["producer"] for b in blocks(first, height + 1)}
             >= set(keys), 60, "returned masternodes do not produce",
             self.nodes)
        wait(lambda: len({n.call("getblockcount") for n in self.nodes}) == 1,
             30, "nodes at different heights", self.nodes)
        agree(self, self.nodes)
        for node in self.nodes:
            self.assertEqual(node.call("getconsensusinfo")["evidence"], [])


class FourMasternodeTests(unittest.TestCase):
    """
    A devnet of four genesis masternodes (timecoin-devnet).
    """

    def setUp(self) -> None:
        import contextlib
        import io

        from tests.nodeprocess import free_port_range
        from timecoin import devnet
        self.devnet = devnet
        self.root = Path(self.mktemp()).resolve()
        self.base = free_port_range(8)
        self.addCleanup(self.down)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(devnet.up(self.root, 4, self.base, BLOCK_TIME),
                             0, out.getvalue())
        self.nodes = []
        for i in range(4):
            node = NodeProcess(self.root / f"node{i}")
            node.rpc_port = self.base + 2 * i + 1
            node.p2p_port = self.base + 2 * i
            self.nodes.append(node)

    def down(self) -> None:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            self.devnet.down(self.root)

    def kill(self, i: int) -> None:
        import os
        import signal
        pid = int((self.root / f"node{i}" / "twistd.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                # A zombie (unreaped) counts as gone once its port is free.
                with open(f"/proc/{pid}/status") as f:
                    if "zombie" in f.read():
                        break
            except OSError:
                break
            time.sleep(0.02)
        (self.root / f"node{i}" / "twistd.pid").unlink(missing_ok=True)

    def start(self, i: int) -> None:
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            self.devnet.start_node(self.root, i)

    def test_sigkills_never_double_sign(self) -> None:
        """
        Twenty SIGKILLs of masternodes at random instants under payments,
        each restarted at once: no node holds equivocation evidence
        against any of them, every node has one block hash at every
        height, and the chain never halts longer than the round timeouts
        need.
        """
        rng = random.Random(13)
        nodes = self.nodes
        wait(lambda: nodes[0].call("getblockcount") >= 3, 30, "no blocks",
             nodes)
        start_height = nodes[0].call("getblockcount")
        address = nodes[1].call("getnewaddress")
        payments = 0
        for _ in range(20):
            for _ in range(3):
                try:
                    nodes[0].call("sendtoaddress", address, 0.01)
                    payments += 1
                except RpcError:
                    pass
            victim = rng.randrange(1, 4)
            time.sleep(rng.uniform(0.0, BLOCK_TIME))
            self.kill(victim)
            self.start(victim)
            wait(lambda victim=victim: nodes[victim].call("getblockcount")
                 >= 0, 30, "restart", nodes)
            time.sleep(rng.uniform(0.5, 2.0))
        wait(lambda: len({n.call("getblockcount") for n in nodes}) == 1 and
             nodes[0].call("getblockcount") > start_height + 5, 60,
             "nodes never caught up", nodes)
        agree(self, nodes)
        self.assertGreater(payments, 30)
        for node in nodes:
            info = node.call("getconsensusinfo")
            self.assertEqual(info["evidence"], [], node.datadir.name)
        # No halt beyond what a few round timeouts explain (a restarted
        # proposer costs one round; the timeout grows with the round).
        self.assertLess(longest_gap(nodes[0], start_height), 20)

    def test_health_turns_503_on_halt(self) -> None:
        """
        Two of four masternodes stopped at once halt the chain (no 2/3):
        /health answers 503 within 30 s with a reason naming the weight
        online and needed, and 200 again once they are back.
        """
        nodes = self.nodes
        wait(lambda: nodes[0].call("getblockcount") >= 3, 30, "no blocks",
             nodes)
        self.assertEqual(health(nodes[0])[0], 200)
        self.kill(2)
        self.kill(3)
        took = wait(lambda: health(nodes[0])[0] == 503, 30,
                    "/health never turned 503", nodes)
        status, body = health(nodes[0])
        self.assertEqual(status, 503)
        self.assertIn("stalled: no commit for", body["reason"])
        self.assertIn("2 of 4, 3 needed", body["reason"])
        self.assertEqual(len(body["missing"]), 2)
        self.assertLess(took, 30)
        self.start(2)
        self.start(3)
        wait(lambda: health(nodes[0])[0] == 200, 60,
             "/health never recovered", nodes)
