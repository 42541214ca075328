"""
Deposit tracking (issue 16 item 3), in process: the wallet's history
(L{timecoin.wallettxs}) behind C{listtransactions}, C{listsinceblock},
C{getreceivedbyaddress} and C{gettransaction}'s C{details}; C{sendmany},
C{gettxout}, C{getblockheader}, C{getmempoolentry}, C{getchaintips}; and
the C{[notify]} commands (L{timecoin.notify}) with a recording spawn and a
L{Clock}.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.helpers.rpc import HEX64, RPCTestBase
from timecoin import params
from timecoin.address import address_of
from timecoin.keys import PrivateKey
from timecoin.notify import (
    CommandRunner,
    Notifier,
    NotifyError,
    split_command,
    substitute,
)
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from timecoin.wallettxs import FILE_NAME, MINED, WalletTxEvent, WalletTxLog


class CountedWrites:
    """
    A file that counts the writes made to it.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.writes = 0
        self.closed = False

    def write(self, data: Any) -> int:
        self.writes += 1
        written: int = self.inner.write(data)
        return written

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class Customer:
    """
    A payer outside the node's wallet: a key of its own, funded by the
    node, paying deposit addresses with transactions it signs itself.
    """

    def __init__(self, test: RPCTestBase) -> None:
        self.test = test
        self.key = PrivateKey.generate()
        self.address = address_of(self.key.public, "TIME0")
        self.coins: list[tuple[OutPoint, int]] = []

    def fund(self, amount: int) -> None:
        """
        Have the node pay C{amount} TIME to the customer, mined.
        """
        txid = self.test.rpc("sendtoaddress", self.address, amount)
        raw = self.test.rpc("getrawtransaction", txid, True)
        for out in raw["vout"]:
            if out["address"] == self.address:
                self.coins.append((OutPoint(bytes.fromhex(txid), out["n"]),
                                   params.parse_amount(out["value"])))
        self.test.block()

    def pay(self, to: str, amount: Decimal) -> str:
        """
        Pay C{amount} to C{to} from the customer's largest coin, change
        back to the customer; submitted with sendrawtransaction.
        """
        outpoint, value = self.coins.pop()
        units = params.parse_amount(amount)
        change = value - units - params.min_fee(units)
        tx = sign_inputs(Transaction(
            (TxIn(outpoint, self.key.public),),
            (TxOut(units, to), TxOut(change, self.address))), "devnet",
            [self.key])
        self.coins.append((OutPoint(tx.txid, 1), change))
        txid: str = self.test.rpc("sendrawtransaction", tx.encode().hex())
        return txid


class DepositTests(RPCTestBase):
    """
    An exchange's view: deposits to fresh addresses, followed with
    listsinceblock and listtransactions.
    """

    def setUp(self) -> None:
        super().setUp()
        self.customer = Customer(self)
        self.customer.fund(1_000)

    def test_listsinceblock_follows_deposit(self) -> None:
        """
        A deposit appears in C{listsinceblock(lastblock)} once final,
        before any block, with 0 confirmations, trusted and final; the
        next call from the returned lastblock shows it again once mined
        with 1 confirmation and its block; a third call shows nothing.
        """
        cursor = self.rpc("listsinceblock")["lastblock"]
        self.assertEqual(cursor, self.rpc("getbestblockhash"))
        deposit = self.rpc("getnewaddress")
        txid = self.customer.pay(deposit, Decimal("12.5"))
        first = self.rpc("listsinceblock", cursor)
        [entry] = first["transactions"]
        self.assertEqual((entry["txid"], entry["address"], entry["category"],
                          entry["amount"], entry["confirmations"],
                          entry["trusted"], entry["final"]),
                         (txid, deposit, "receive", Decimal("12.5"), 0, True,
                          True))
        self.assertNotIn("blockhash", entry)
        self.assertEqual(first["removed"], [])
        self.block()
        second = self.rpc("listsinceblock", first["lastblock"])
        # The devnet node is the masternode: its block reward (category
        # generate) is a wallet transaction too.
        [mined] = [e for e in second["transactions"]
                   if e["category"] != "generate"]
        self.assertEqual((mined["txid"], mined["confirmations"],
                          mined["blockheight"], mined["blockhash"]),
                         (txid, 1, self.node.chain.height,
                          self.rpc("getbestblockhash")))
        self.assertEqual(self.rpc("listsinceblock", second["lastblock"])[
            "transactions"], [])
        self.assertIn("generate", {e["category"]
                                   for e in second["transactions"]})

    def test_target_confirmations(self) -> None:
        """
        C{target_confirmations} N returns as lastblock the block N - 1
        below the tip; 0 is refused with -8.
        """
        self.block()
        self.block()
        height = self.node.chain.height
        self.assertEqual(self.rpc("listsinceblock", None, 3)["lastblock"],
                         self.rpc("getblockhash", height - 2))
        self.assertEqual(self.rpc_error("listsinceblock", None, 0).code, -8)
        self.assertEqual(self.rpc_error("listsinceblock", "00" * 32).code,
                         -5)

    def test_getreceivedbyaddress_minconf(self) -> None:
        """
        C{getreceivedbyaddress} counts a finalized deposit with minconf 0
        and, by default (minconf 1), only once it is mined; two deposits
        add up; an address of another wallet is -4.
        """
        deposit = self.rpc("getnewaddress")
        self.customer.pay(deposit, Decimal("2"))
        self.assertEqual(self.rpc("getreceivedbyaddress", deposit, 0),
                         Decimal("2"))
        self.assertEqual(self.rpc("getreceivedbyaddress", deposit),
                         Decimal("0"))
        self.block()
        self.customer.pay(deposit, Decimal("0.5"))
        self.assertEqual(self.rpc("getreceivedbyaddress", deposit),
                         Decimal("2"))
        self.assertEqual(self.rpc("getreceivedbyaddress", deposit, 0),
                         Decimal("2.5"))
        self.assertEqual(self.rpc_error("getreceivedbyaddress",
                                        self.customer.address).code, -4)

    def test_gettransaction_amount_details(self) -> None:
        """
        C{gettransaction} of a deposit has amount (the credit) and one
        receive detail; of a payment to others amount is minus what was
        paid and the send detail carries the negative fee.
        """
        deposit = self.rpc("getnewaddress")
        txid = self.customer.pay(deposit, Decimal("3"))
        info = self.rpc("gettransaction", txid)
        self.assertEqual(info["amount"], Decimal("3"))
        self.assertEqual([(d["category"], d["address"], d["amount"])
                          for d in info["details"]],
                         [("receive", deposit, Decimal("3"))])
        out = self.external_address()
        paid = self.rpc("sendtoaddress", out, 4)
        info = self.rpc("gettransaction", paid)
        self.assertEqual(info["amount"], Decimal("-4"))
        [send] = info["details"]
        self.assertEqual((send["category"], send["address"], send["amount"],
                          send["fee"]),
                         ("send", out, Decimal("-4"),
                          -params.format_amount(params.min_fee(4 * params.COIN))))

    def test_listtransactions_window(self) -> None:
        """
        C{listtransactions} returns the newest count entries after
        skipping skip, oldest first; change is not listed; another label
        lists nothing.
        """
        deposits = [self.rpc("getnewaddress") for _ in range(3)]
        txids = [self.customer.pay(a, Decimal(n + 1))
                 for n, a in enumerate(deposits)]
        self.assertEqual([e["txid"] for e in self.rpc("listtransactions",
                                                      "*", 2)], txids[1:])
        self.assertEqual([e["txid"] for e in self.rpc("listtransactions",
                                                      "*", 2, 1)], txids[:2])
        self.assertEqual(self.rpc("listtransactions", "nolabel"), [])
        categories = {e["category"] for e in self.rpc("listtransactions",
                                                      "*", 100)}
        self.assertNotIn("change", categories)

    def test_sendmany(self) -> None:
        """
        C{sendmany "" {a: 1, b: 2.5}} pays both exactly in one
        transaction with the minimum fee on 3.5 TIME; a non-empty
        subtractfeefrom is -8; a bad amount -3.
        """
        a, b = self.external_address(), self.external_address()
        before = self.rpc("getbalance")
        txid = self.rpc("sendmany", "", {a: 1, b: Decimal("2.5")})
        raw = self.rpc("getrawtransaction", txid, True)
        paid = {o["address"]: o["value"] for o in raw["vout"]}
        self.assertEqual((paid[a], paid[b]), (Decimal("1"), Decimal("2.5")))
        fee = params.min_fee(params.parse_amount("3.5"))
        self.assertEqual(params.parse_amount(before - self.rpc("getbalance")),
                         params.parse_amount("3.5") + fee)
        self.assertEqual(self.rpc_error("sendmany", "", {a: 1}, 1, "", [a])
                         .code, -8)
        self.assertEqual(self.rpc_error("sendmany", "", {a: "x"}).code, -3)

    def test_gettxout(self) -> None:
        """
        C{gettxout} shows an unspent chain output with its confirmations,
        an output of a finalized unmined transaction with 0 (null with
        include_mempool false), and null once a mempool transaction
        spends it.
        """
        coin = self.customer.coins[-1]
        out = self.rpc("gettxout", coin[0].txid.hex(), coin[0].vout)
        self.assertEqual((out["value"], out["address"], out["confirmations"]),
                         (params.format_amount(coin[1]),
                          self.customer.address, 1))
        txid = self.customer.pay(self.rpc("getnewaddress"), Decimal("1"))
        self.assertIsNone(self.rpc("gettxout", coin[0].txid.hex(),
                                   coin[0].vout))
        fresh = self.rpc("gettxout", txid, 0)
        self.assertEqual(fresh["confirmations"], 0)
        self.assertIsNone(self.rpc("gettxout", txid, 0, False))

    def test_blockheader_mempoolentry_chaintips(self) -> None:
        """
        C{getblockheader} matches getblock's header fields (and hex with
        verbose false); C{getmempoolentry} shows a mempool transaction's
        fee and state (-5 for one not in the mempool); C{getchaintips}
        is the one active tip.
        """
        best = self.rpc("getbestblockhash")
        header = self.rpc("getblockheader", best)
        block = self.rpc("getblock", best)
        for key in ("hash", "height", "merkleroot", "time",
                    "previousblockhash", "confirmations"):
            self.assertEqual(header[key], block[key])
        self.assertRegex(self.rpc("getblockheader", best, False),
                         "^[0-9a-f]+$")
        txid = self.rpc("sendtoaddress", self.external_address(), 1)
        entry = self.rpc("getmempoolentry", txid)
        self.assertEqual((entry["state"], entry["fee"]),
                         ("finalized", params.format_amount(
                             params.min_fee(params.COIN))))
        self.block()
        self.assertEqual(self.rpc_error("getmempoolentry", txid).code, -5)
        self.assertEqual(self.rpc("getchaintips"), [{
            "height": self.node.chain.height,
            "hash": self.rpc("getbestblockhash"), "branchlen": 0,
            "status": "active"}])

    def test_history_survives_reload(self) -> None:
        """
        The log file read by a fresh L{WalletTxLog} gives the same
        transactions, in the same order, with the same blocks, without
        reading any block, and remembers the same unspent wallet outputs
        (those spent are forgotten).
        """
        deposit = self.rpc("getnewaddress")
        self.customer.pay(deposit, Decimal("1"))
        self.block()
        self.customer.pay(deposit, Decimal("2"))
        live = self.node.wallet_txs
        reread = WalletTxLog(Path(self.config.datadir) / FILE_NAME,
                             self.node.wallet, "TIME0", self.clock)
        reread.load()
        self.assertEqual([(w.txid, w.height, w.block_hash, w.outputs, w.fee)
                          for w in reread.order],
                         [(w.txid, w.height, w.block_hash, w.outputs, w.fee)
                          for w in live.order])
        self.assertGreaterEqual(len(reread.order), 4)
        # The wallet outputs it remembers are the unspent ones, as live.
        self.assertEqual(reread._owned, live._owned)

    def test_block_lines_written_before_mined_events(self) -> None:
        """
        A block's wallet lines reach the file in one write, before any
        observer hears that one of its transactions was mined; after
        L{WalletTxLog.close} a later line opens the file again.
        """
        deposit = self.rpc("getnewaddress")
        txids = {self.customer.pay(deposit, Decimal(n)) for n in (1, 2)}
        path = Path(self.config.datadir) / FILE_NAME
        seen: list[tuple[str, bool]] = []

        def mined(event: WalletTxEvent) -> None:
            if event.event == MINED:
                txid = event.wtx.txid.hex()
                on_file = path.read_text().count(f'"mined":"{txid}"')
                seen.append((txid, on_file == 1))

        history = self.node.wallet_txs
        history.observers.connect(mined)
        assert history._file is not None
        counted = CountedWrites(history._file)
        history._file = counted  # type: ignore[assignment]
        self.block()
        self.assertEqual(counted.writes, 1)
        self.assertTrue(txids <= {txid for txid, _ in seen}, seen)
        self.assertTrue(all(on_file for _, on_file in seen), seen)
        history.close()
        self.assertIsNone(history._file)
        self.assertTrue(counted.closed)
        self.customer.pay(deposit, Decimal(3))
        self.assertIsNotNone(history._file)
        # Private to the node's user, as the keys are.
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        reread = WalletTxLog(path, self.node.wallet, "TIME0", self.clock)
        reread.load()
        self.assertEqual(len(reread.order), len(self.node.wallet_txs.order))

    def test_history_rebuilt_by_scan(self) -> None:
        """
        Without its log file the history is rebuilt by scanning the
        chain: the mined wallet transactions come back with their blocks.
        """
        deposit = self.rpc("getnewaddress")
        txid = self.customer.pay(deposit, Decimal("1"))
        self.block()
        fresh = WalletTxLog(Path(self.mktemp()) / FILE_NAME,
                            self.node.wallet, "TIME0", self.clock)
        self.successResultOf(fresh.start(self.node.chain.height,
                                         self.node.block_at, []))
        mined = {w.txid.hex(): w.height for w in fresh.order}
        self.assertEqual(mined, {w.txid.hex(): w.height
                                 for w in self.node.wallet_txs.order})
        self.assertEqual(mined[txid], self.node.chain.height)


class FakeTransport:
    """
    The process transport of a recorded spawn.
    """

    def __init__(self) -> None:
        self.signals: list[str] = []

    def signalProcess(self, signal: str) -> None:
        self.signals.append(signal)


class Exited:
    """
    A process-ended reason with an exit code.
    """

    def __init__(self, code: int) -> None:
        self.exitCode = code


class Spawns:
    """
    A recording C{reactor.spawnProcess}.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, str, list[str]]] = []

    def __call__(self, proto: Any, executable: str, args: list[str],
                 env: Any = None) -> None:
        proto.transport = FakeTransport()
        self.calls.append((proto, executable, list(args)))

    def end(self, index: int, code: int = 0) -> None:
        """
        End the C{index}th spawned process with C{code}.
        """
        self.calls[index][0].processEnded(Failure(Exited(code)))


class CommandTests(unittest.TestCase):
    """
    How notify commands are split, substituted and bounded.
    """

    def test_split_no_shell(self) -> None:
        """
        The command is split as a shell would, its program resolved on
        PATH; a value with shell syntax becomes one argument, verbatim.
        """
        argv = split_command("echo 'a b' %s")
        self.assertTrue(argv[0].endswith("/echo"))
        self.assertEqual(argv[1:], ["a b", "%s"])
        self.assertEqual(substitute(argv, {"s": "$(rm -rf ~); x"})[1:],
                         ["a b", "$(rm -rf ~); x"])
        self.assertEqual(substitute(["p", "x%sy", "%%s", "%b/%h/%w"],
                                    {"s": "T", "b": "B", "h": "7", "w": ""}),
                         ["p", "xTy", "%s", "B/7/"])
        self.assertRaises(NotifyError, split_command, "no-such-program-xyz")
        self.assertRaises(NotifyError, split_command, "echo 'unclosed")
        self.assertRaises(NotifyError, split_command, "")

    def test_bounded(self) -> None:
        """
        At most max_running commands run; max_queue more wait and start
        as others end; beyond that they are dropped and counted.
        """
        spawns, clock = Spawns(), Clock()
        runner = CommandRunner("wallet", ["/bin/true", "%s"], spawns, clock,
                               max_running=2, max_queue=1, timeout=5)
        for n in range(5):
            runner.run({"s": str(n)})
        self.assertEqual([c[2][1] for c in spawns.calls], ["0", "1"])
        self.assertEqual(runner.counters["dropped"], 2)
        spawns.end(0)
        self.assertEqual([c[2][1] for c in spawns.calls], ["0", "1", "2"])
        spawns.end(1, code=3)
        self.assertEqual(runner.counters["failed"], 1)

    def test_timeout_kills(self) -> None:
        """
        A command still running after timeout seconds is sent SIGKILL.
        """
        spawns, clock = Spawns(), Clock()
        runner = CommandRunner("block", ["/bin/true"], spawns, clock,
                               timeout=5)
        runner.run({})
        clock.advance(4)
        self.assertEqual(spawns.calls[0][0].transport.signals, [])
        clock.advance(1)
        self.assertEqual(spawns.calls[0][0].transport.signals, ["KILL"])
        self.assertEqual(runner.counters["killed"], 1)


class NotifierTests(RPCTestBase):
    """
    C{[notify] wallet} and C{block} on a node.
    """

    def test_wallet_notify_final_then_mined(self) -> None:
        """
        An incoming payment runs the wallet command twice: once final
        (C{%b} unconfirmed, C{%h} -1) and once mined (its block and
        height); the block command runs once per block.
        """
        spawns = Spawns()
        runner = CommandRunner("wallet", ["/bin/n", "%s", "%b", "%h"],
                               spawns, self.clock, max_running=100)
        blocks = CommandRunner("block", ["/bin/b", "%s"], spawns, self.clock,
                               max_running=100)
        Notifier(runner, blocks).attach(self.node)
        customer = Customer(self)
        customer.fund(10)
        spawns.calls.clear()
        deposit = self.rpc("getnewaddress")
        txid = customer.pay(deposit, Decimal("1"))
        self.assertEqual([c[2] for c in spawns.calls],
                         [["/bin/n", txid, "unconfirmed", "-1"]])
        self.block()
        best = self.rpc("getbestblockhash")
        height = str(self.node.chain.height)
        # Less the devnet masternode's own block reward (a wallet
        # transaction first seen mined: one run).
        calls = [c[2] for c in spawns.calls if c[2][1] != txid
                 and c[2][0] == "/bin/n"]
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0][2:], [best, height])
        self.assertEqual(sorted(c[2] for c in spawns.calls
                                if c[2] not in calls), sorted([
            ["/bin/n", txid, "unconfirmed", "-1"],
            ["/bin/n", txid, best, height], ["/bin/b", best]]))
        self.assertRegex(txid, HEX64)
