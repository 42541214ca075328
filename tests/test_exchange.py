"""
An exchange's integration, end to end, against a real ``twistd timecoin``
devnet process (issue 16, "Done when"): the exchange side uses only
python-bitcoinlib's C{Proxy} and python-bitcoinrpc's C{AuthServiceProxy}
(C{batch_} included), unchanged, as it would against Bitcoin Core; it
follows deposits with C{listsinceblock}, and a C{[notify] wallet} command
(C{walletnotify}) writes a line per event to a file.

The customer paying the deposits holds a key of its own, outside the
node's wallet, and signs its payments itself (C{sendrawtransaction}).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.trial import unittest

from tests.nodeprocess import NodeProcess
from timecoin import params
from timecoin.address import address_of
from timecoin.keys import PrivateKey
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs

try:
    from bitcoin.core import COIN, b2lx
    from bitcoin.rpc import Proxy
    from bitcoinrpc.authproxy import AuthServiceProxy
except ImportError:  # pragma: no cover - the test extras are not installed
    Proxy = AuthServiceProxy = None

DEPOSITS = [Decimal("1"), Decimal("2.5"), Decimal("0.12345678")]


class ExchangeTests(unittest.TestCase):
    """
    Deposits followed the Bitcoin way on one devnet node.
    """

    if Proxy is None or AuthServiceProxy is None:
        skip = ("python-bitcoinlib or python-bitcoinrpc is not installed "
                "(pip install .[test])")

    def setUp(self) -> None:
        datadir = Path(self.mktemp()).resolve()
        datadir.mkdir(parents=True)
        self.notified = datadir / "walletnotify.log"
        config = datadir / "timecoin.toml"
        # No shell parses the command line itself: sh is run directly,
        # the txid and block hash reach it as arguments.
        config.write_text(
            "[notify]\n"
            "wallet = '''sh -c 'echo \"$1 $2\" >> \"$0\"' "
            f"{self.notified} %s %b'''\n")
        self.node = NodeProcess(datadir, "--config", str(config),
                                block_time=0.5)
        self.addCleanup(self.node.kill)
        self.node.start()
        self.node.wait_for(lambda: self.node.call("getblockcount") >= 1, 10)
        secret = (datadir / ".cookie").read_text().strip()
        self.url = f"http://{secret}@127.0.0.1:{self.node.rpc_port}"

    def wait(self, predicate: Any, timeout: float = 20) -> Any:
        """
        Poll C{predicate} until it returns something true; return it.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out:\n{self.node.log_tail()}")
            time.sleep(0.1)

    def test_follow_deposits(self) -> None:
        """
        The exchange makes deposit addresses (C{Proxy.call}), funds a
        customer (C{Proxy.sendtoaddress}, which sends Bitcoin's five
        arguments), and follows the customer's three deposits with
        C{listsinceblock} inside C{batch_} calls, from the lastblock of
        each call: each deposit is credited once, with exactly its
        amount, when it reaches 1 confirmation, and C{getreceivedbyaddress}
        agrees.  C{Proxy.getbalance} (which sends C{"*", 1, false})
        answers.  The walletnotify file has, for each deposit, exactly one
        line at finality (C{unconfirmed}) and exactly one when mined (its
        block hash, as C{gettransaction} shows it).
        """
        proxy = Proxy(service_url=self.url, timeout=10)
        rpc = AuthServiceProxy(self.url, timeout=10)
        balance = proxy.getbalance()
        self.assertGreater(balance, 0)
        self.assertIsInstance(balance, int)
        cursor = rpc.listsinceblock()["lastblock"]
        addresses = [proxy.call("getnewaddress") for _ in DEPOSITS]

        key = PrivateKey.generate()
        customer = address_of(key.public, "TIME0")
        funding = b2lx(proxy.sendtoaddress(customer, 50 * COIN))
        self.wait(lambda: rpc.gettransaction(funding)["confirmations"] >= 1)
        raw = rpc.getrawtransaction(funding, True)
        [coin] = [(OutPoint(bytes.fromhex(funding), o["n"]),
                   params.parse_amount(o["value"]))
                  for o in raw["vout"] if o["address"] == customer]

        txids = []
        for address, amount in zip(addresses, DEPOSITS, strict=True):
            outpoint, value = coin
            units = params.parse_amount(amount)
            change = value - units - params.min_fee(units)
            tx = sign_inputs(Transaction(
                (TxIn(outpoint, key.public),),
                (TxOut(units, address), TxOut(change, customer))), "devnet",
                [key])
            txid = rpc.sendrawtransaction(tx.encode().hex())
            self.assertEqual(rpc.waitfortransaction(txid, 10)["state"],
                             "finalized")
            txids.append(txid)
            coin = (OutPoint(tx.txid, 1), change)

        credited: dict[tuple[str, int], Decimal] = {}
        wanted = set(addresses)

        def follow() -> bool:
            nonlocal cursor
            height, since = rpc.batch_([["getblockcount"],
                                        ["listsinceblock", cursor, 1]])
            self.assertGreaterEqual(height, 1)
            for entry in since["transactions"]:
                if entry["category"] != "receive" or \
                        entry["address"] not in wanted or \
                        entry["confirmations"] < 1:
                    continue
                key = (entry["txid"], entry["vout"])
                self.assertNotIn(key, credited, "credited twice")
                credited[key] = entry["amount"]
            cursor = since["lastblock"]
            return len(credited) == len(DEPOSITS)

        self.wait(follow)
        self.assertEqual(sorted(credited.values()), sorted(DEPOSITS))
        self.assertEqual({t for t, _ in credited}, set(txids))
        received = rpc.batch_([["getreceivedbyaddress", a, 1]
                               for a in addresses])
        self.assertEqual(received, DEPOSITS)
        # Nothing new since: the cursor has moved past them.
        self.assertEqual([e for e in rpc.listsinceblock(cursor)[
            "transactions"] if e["txid"] in txids], [])

        blocks = {t: rpc.gettransaction(t)["blockhash"] for t in txids}

        def lines() -> list[str] | None:
            text = self.notified.read_text() if self.notified.exists() \
                else ""
            got = [line for line in text.splitlines()
                   if line.split()[0] in txids]
            return got if len(got) >= 2 * len(txids) else None

        got = self.wait(lines)
        time.sleep(1)  # any duplicate would have arrived by now
        got = lines() or got
        for txid in txids:
            mine = sorted(line.split()[1] for line in got
                          if line.split()[0] == txid)
            self.assertEqual(mine, sorted(["unconfirmed", blocks[txid]]))
