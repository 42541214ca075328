"""
Integration tests with real ``twistd timecoin`` processes on loopback: the
devnet a newcomer gets from ``make run``, payments final within 2 s and in
a block within two block times, balances to the unit, SIGKILL at random
moments under load with nothing acknowledged lost, and a clean stop.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from pathlib import Path

from twisted.trial import unittest

from tests.helpers import result_of
from tests.nodeprocess import NodeProcess, RpcError
from timecoin.address import address_of
from timecoin.chain import Chain
from timecoin.genesis import load_genesis
from timecoin.keys import PrivateKey
from timecoin.params import NETWORKS
from timecoin.quorum import CountQuorum
from timecoin.selection import RoundRobin
from timecoin.storage.sqlite import SqliteStore
from timecoin.verify import replay

GENESIS_FUNDS = Decimal(1_000_000)
REWARD = Decimal(100)


def stable_totals(node: NodeProcess) -> tuple[dict, Decimal]:
    """
    gettxoutsetinfo and getbalance read at one height.
    """
    for _ in range(100):
        before = node.call("gettxoutsetinfo")
        balance = Decimal(str(node.call("getbalance")))
        after = node.call("gettxoutsetinfo")
        if before["height"] == after["height"] and \
                node.call("getmempoolinfo")["size"] == 0:
            return after, balance
    raise AssertionError("node never held still")


def replay_store(datadir: Path) -> tuple[int, str, str]:
    """
    Replay the stopped node's SQLite chain from genesis; return (height,
    replayed utxo_hash, stored utxo_hash).
    """
    genesis = load_genesis(datadir / "genesis.json", "devnet")
    template = Chain(NETWORKS["devnet"], SqliteStore(":memory:"), genesis,
                     RoundRobin(), CountQuorum(), lambda: 0)
    store = SqliteStore(str(datadir / "chain.sqlite"))
    result_of(store.open())
    try:
        result = result_of(replay(store, template))
    finally:
        result_of(store.close())
    return (result.height, result.replayed_hash.hex(),
            result.stored_hash.hex())


class DevnetProcessTests(unittest.TestCase):
    """
    One real devnet node process.
    """

    def node(self, **kw) -> NodeProcess:
        node = NodeProcess(Path(self.mktemp()).resolve(), **kw)
        self.addCleanup(node.kill)
        return node

    def test_payment_finality_and_balances(self) -> None:
        """
        sendtoaddress 1.5 is finalized within 2 s and in a block within two
        block times; total supply is genesis + reward per block, and the
        wallet holds all of it but the 1.5 paid away, to the unit.
        """
        node = self.node(block_time=0.5)
        node.start()
        node.wait_for(lambda: node.call("getblockcount") >= 1, 10)
        to = address_of(PrivateKey.generate().public, "TIME0")
        started = time.monotonic()
        txid = node.call("sendtoaddress", to, 1.5)
        node.wait_for(lambda: node.call("gettransaction", txid)["state"]
                      == "finalized", 2)
        finalized_after = time.monotonic() - started
        self.assertLess(finalized_after, 2.0)
        node.wait_for(lambda: node.call("gettransaction", txid).get(
            "blockheight") is not None, 2 * 0.5 + 1.0)
        info, balance = stable_totals(node)
        total = Decimal(str(info["total_amount"]))
        self.assertEqual(total, GENESIS_FUNDS + REWARD * info["height"])
        self.assertEqual(balance + Decimal("1.5"), total)
        self.assertEqual(node.call("stop"), "timecoin stopping")
        self.assertEqual(node.wait_exit(), 0)
        self.assertIn("Server Shut Down.", node.log_tail())

    def test_sigterm_stops_cleanly(self) -> None:
        """
        SIGTERM shuts the node down through the service tree (store closed,
        port released) and the restarted node resumes at the same tip.
        """
        import signal
        node = self.node(block_time=0.5)
        node.start()
        node.wait_for(lambda: node.call("getblockcount") >= 1, 10)
        self.assertEqual(node.stop(), -signal.SIGTERM)
        self.assertIn("Server Shut Down.", node.log_tail())
        node.start(block_time=3600)
        height = node.call("getblockcount")
        self.assertGreaterEqual(height, 1)

    def test_sigkill_under_load(self) -> None:
        """
        SIGKILLed at seeded random moments while producing blocks and
        accepting payments, the node restarts at no lower height than it
        acknowledged, every finalized payment it acknowledged survives, the
        stored UTXO set equals a replay of the stored blocks, and a restart
        with nothing new keeps the same height and utxo_hash.
        """
        rng = random.Random(20261121)
        node = self.node(block_time=0.3)
        to = address_of(PrivateKey.generate().public, "TIME0")
        finalized: list[str] = []
        for _ in range(3):
            node.start()
            acked = node.call("getblockcount")
            deadline = time.monotonic() + rng.uniform(0.5, 2.0)
            while time.monotonic() < deadline:
                try:
                    txid = node.call("sendtoaddress", to, 0.01)
                    if node.call("waitfortransaction", txid, 1)["state"] \
                            == "finalized":
                        finalized.append(txid)
                except RpcError:
                    pass
                acked = max(acked, node.call("getblockcount"))
            node.kill()
            node.start(block_time=3600)
            self.assertGreaterEqual(node.call("getblockcount"), acked)
            for txid in finalized:
                self.assertEqual(
                    node.call("gettransaction", txid)["state"], "finalized",
                    txid)
            first = node.call("gettxoutsetinfo")
            node.kill()
            node.start(block_time=3600)
            second = node.call("gettxoutsetinfo")
            self.assertEqual((second["height"], second["utxo_hash"]),
                             (first["height"], first["utxo_hash"]))
            node.kill()
            height, replayed, stored = replay_store(node.datadir)
            self.assertEqual(height, first["height"])
            self.assertEqual(replayed, stored)
            self.assertEqual(stored, first["utxo_hash"])
        self.assertGreater(len(finalized), 0)


class TwoNodeProcessTests(unittest.TestCase):
    """
    Two real node processes over loopback TCP.
    """

    def test_follower_catches_up_and_pays(self) -> None:
        """
        A second node started later with the first's genesis connects,
        catches up, receives a payment, pays onward through its own RPC
        (finalized by the masternode's vote over P2P), and ends at the same
        block hashes and utxo_hash as the masternode.
        """
        base = Path(self.mktemp()).resolve()
        master = NodeProcess(base / "a", block_time=0.3)
        self.addCleanup(master.kill)
        master.start()
        master.wait_for(lambda: master.call("getblockcount") >= 5, 15)
        follower = NodeProcess(
            base / "b", "--genesis", str(base / "a" / "genesis.json"),
            "--connect", f"127.0.0.1:{master.p2p_port}", block_time=0.3)
        self.addCleanup(follower.kill)
        follower.start()
        follower.wait_for(lambda: follower.call("getblockcount")
                          >= master.call("getblockcount") - 1, 20)
        mine = follower.call("getnewaddress")
        txid = master.call("sendtoaddress", mine, 3)
        follower.wait_for(lambda: follower.call("gettransaction", txid)
                          ["state"] == "finalized", 5)
        away = address_of(PrivateKey.generate().public, "TIME0")
        onward = follower.call("sendtoaddress", away, 1)
        master.wait_for(lambda: master.call("gettransaction", onward)
                        .get("blockheight") is not None, 10)
        follower.wait_for(lambda: follower.call("gettransaction", onward)
                          .get("blockheight") is not None, 10)
        master.kill()
        follower.wait_for(lambda: follower.call("getmempoolinfo")["size"]
                          == 0, 5)
        height = follower.call("getblockcount")
        master.start(block_time=3600)
        master.wait_for(lambda: master.call("getblockcount") >= height, 10)
        self.assertEqual(master.call("getblockhash", height),
                         follower.call("getblockhash", height))
        if master.call("getblockcount") == height:
            self.assertEqual(master.call("gettxoutsetinfo")["utxo_hash"],
                             follower.call("gettxoutsetinfo")["utxo_hash"])


class DevnetCommandTests(unittest.TestCase):
    """
    timecoin-devnet up / status / down.
    """

    def test_up_status_down(self) -> None:
        """
        `timecoin-devnet up -n 3` starts three daemonized twistd
        masternodes that connect to each other and grow one chain; with one
        stopped the other two keep committing, the restarted one catches
        up; `down` stops them all.
        """
        import contextlib
        import io

        from tests.nodeprocess import free_port_range
        from timecoin import devnet
        root = Path(self.mktemp()).resolve()
        base = free_port_range(6)
        out = io.StringIO()
        self.addCleanup(devnet.down, root)
        with contextlib.redirect_stdout(out):
            code = devnet.up(root, 3, base, 0.3)
        self.assertEqual(code, 0, out.getvalue())
        self.assertIn("all nodes connected and producing", out.getvalue())
        status = io.StringIO()
        with contextlib.redirect_stdout(status):
            devnet.status(root)
        self.assertEqual(status.getvalue().count("peers 2"), 3,
                         status.getvalue())
        # One of three masternodes stopped: the other two (2/3) go on.
        from timecoin.devnet import rpc as call
        node0 = (root / "node0", base + 1)
        self.assertTrue(devnet.stop_node(root, 2))
        height = call(*node0, "getblockcount")
        deadline = time.monotonic() + 45
        while call(*node0, "getblockcount") < height + 3:
            self.assertLess(time.monotonic(), deadline, "no progress")
            time.sleep(0.2)
        devnet.start_node(root, 2)
        target = call(*node0, "getblockcount")
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(root / "node2", base + 5, "getblockcount") >= target:
                    break
            except Exception:
                pass
            self.assertLess(time.monotonic(), deadline, "no catch-up")
            time.sleep(0.2)
        with contextlib.redirect_stdout(io.StringIO()):
            devnet.down(root)
        for i in range(3):
            pidfile = root / f"node{i}" / "twistd.pid"
            deadline = time.monotonic() + 15
            while pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertFalse(pidfile.exists())


class FourMasternodeTests(unittest.TestCase):
    """
    The issue-4 devnet: four real masternode processes.
    """

    def test_quorum_behaviour(self) -> None:
        """
        Four masternodes agree on every block; with the next producer
        stopped the other three keep committing; with two stopped nothing
        commits and nothing diverges; restarting one resumes production and
        all four converge on the same hashes and utxo_hash.
        """
        import contextlib
        import io

        from tests.nodeprocess import free_port_range
        from timecoin import devnet
        from timecoin.devnet import rpc as raw_call
        root = Path(self.mktemp()).resolve()
        base = free_port_range(8)
        self.addCleanup(devnet.down, root)
        with contextlib.redirect_stdout(io.StringIO()) as out:
            self.assertEqual(devnet.up(root, 4, base, 0.3), 0, out.getvalue())

        def call(i: int, method: str, *params):
            return raw_call(root / f"node{i}", base + 2 * i + 1, method,
                            *params)

        def wait(predicate, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if predicate():
                        return
                except Exception:
                    pass
                self.assertLess(time.monotonic(), deadline, what)
                time.sleep(0.1)

        def agree(nodes) -> int:
            low = min(call(i, "getblockcount") for i in nodes)
            for h in range(low + 1):
                self.assertEqual(len({call(i, "getblockhash", h)
                                      for i in nodes}), 1, f"height {h}")
            return low

        wait(lambda: call(0, "getblockcount") >= 5, 20, "no blocks")
        agree(range(4))
        keys = [call(i, "masternodestatus")["pubkey"] for i in range(4)]
        nxt = call(0, "getconsensusinfo")["next_producers"][0]
        victim = keys.index(nxt)
        with contextlib.redirect_stdout(io.StringIO()):
            devnet.stop_node(root, victim)
        alive = [i for i in range(4) if i != victim]
        height = call(alive[0], "getblockcount")
        wait(lambda: call(alive[0], "getblockcount") >= height + 3, 20,
             "three of four did not commit")
        second = alive.pop()
        devnet.stop_node(root, second)
        time.sleep(1.0)
        stuck = [call(i, "getblockcount") for i in alive]
        time.sleep(4.0)
        self.assertEqual([call(i, "getblockcount") for i in alive], stuck)
        wait(lambda: len({call(i, "getblockcount") for i in alive}) == 1, 10,
             "the two survivors differ")
        self.assertEqual(len({call(i, "gettxoutsetinfo")["utxo_hash"]
                              for i in alive}), 1)
        agree(alive)
        devnet.start_node(root, second)
        wait(lambda: call(alive[0], "getblockcount") > max(stuck) + 2, 30,
             "no resume after restarting one")
        devnet.start_node(root, victim)
        low = call(alive[0], "getblockcount")
        wait(lambda: min(call(i, "getblockcount") for i in range(4)) >= low,
             30, "restarted nodes did not catch up")
        agree(range(4))


class PortTests(unittest.TestCase):
    """
    The test servers' ports stay out of the kernel's ephemeral range.
    """

    def test_below_ephemeral_range(self) -> None:
        """
        free_port_range gives consecutive ports, all bindable now and all
        below the first ephemeral port (where no outgoing connection can
        take them as its source port before a node listens).
        """
        import socket

        from timecoin.devnet import _ephemeral_start, free_port_range
        top = _ephemeral_start()
        for _ in range(20):
            base = free_port_range(8)
            self.assertLess(base + 8, top + 1)
            self.assertGreaterEqual(base, 1024)
            for port in range(base, base + 8):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
