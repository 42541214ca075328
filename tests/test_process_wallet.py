"""
The wallet's passphrase with a real ``twistd timecoin`` process, as a new
user lives it: encrypt, restart, a locked spend fails, unlock through
``timecoin-cli``, spend, lock; no key and no passphrase in any file of the
data dir, the log included.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from twisted.trial import unittest

from tests.nodeprocess import NodeProcess, RpcError
from timecoin import cli

PASSPHRASE = "90210357713"
"""Digits only: timecoin-cli must still send it as a string."""


class EncryptedWalletProcessTests(unittest.TestCase):
    """
    One devnet node process.
    """

    def setUp(self) -> None:
        self.node = NodeProcess(Path(self.mktemp()).resolve())
        self.node.start()
        self.addCleanup(self.node.kill)

    def cli(self, *args: str) -> tuple[int, str, str]:
        """
        Run timecoin-cli against the node; return status, out, err.
        """
        out, err = io.StringIO(), io.StringIO()
        status = cli.main(["--datadir", str(self.node.datadir),
                           "--network", "devnet",
                           "--rpc-port", str(self.node.rpc_port), *args],
                          stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_encrypt_restart_unlock_spend(self) -> None:
        """
        encryptwallet; after a restart sendtoaddress fails with -13 (and
        timecoin-cli exits non-zero); `timecoin-cli walletpassphrase
        90210357713 60` unlocks (the digits sent as a string) and the
        payment is finalized; walletlock locks again.  The private keys
        dumped before encryption and the passphrase appear in no file of
        the data dir, node.log included.
        """
        node = self.node
        addresses = [node.call("getnewaddress") for _ in range(2)]
        addresses += [c["address"] for c in node.call("listunspent")]
        keys = [node.call("dumpprivkey", a) for a in addresses]
        node.call("encryptwallet", PASSPHRASE)
        node.stop()
        node.start()
        to = addresses[1]
        with self.assertRaises(RpcError) as caught:
            node.call("sendtoaddress", to, 1)
        self.assertEqual(caught.exception.code, -13)
        status, _, err = self.cli("sendtoaddress", to, "1")
        self.assertNotEqual(status, 0)
        self.assertIn("walletpassphrase", err)
        status, _, err = self.cli("walletpassphrase", PASSPHRASE, "60")
        self.assertEqual(status, 0, err)
        self.assertGreater(node.call("getwalletinfo")["unlocked_until"], 0)
        txid = node.call("sendtoaddress", to, 1)
        self.assertEqual(node.call("waitfortransaction", txid, 10)["state"],
                         "finalized")
        node.call("walletlock")
        with self.assertRaises(RpcError) as caught:
            node.call("sendtoaddress", to, 1)
        self.assertEqual(caught.exception.code, -13)
        for path in node.datadir.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in keys + [PASSPHRASE]:
                    self.assertNotIn(secret.encode(), data,
                                     f"{secret[:6]}… in {path.name}")

    def test_backup_wipe_restore(self) -> None:
        """
        Done-when of issue 16: with an encrypted wallet, backupwallet;
        stop, wipe the data dir (putting back the node key, the devnet
        genesis and, this single node having no peer to resync from, a
        copy of its chain, as docs/operating.md §6 says), start, and
        restorewallet: the same addresses (getaddressesbylabel), every
        coin of before (the balance only grows: the node keeps earning
        block rewards), still encrypted (a spend fails -13 until
        walletpassphrase, then works).
        """
        node = self.node
        for _ in range(2):
            node.call("getnewaddress")
        node.call("encryptwallet", PASSPHRASE)
        backup = Path(self.mktemp()).resolve()
        node.call("backupwallet", str(backup))
        addresses = node.call("getaddressesbylabel", "")
        coins = {(c["txid"], c["vout"]) for c in node.call("listunspent")}
        balance = node.call("getbalance")
        self.assertNotEqual(coins, set())
        node.stop()
        keep = Path(self.mktemp())
        keep.mkdir()
        saved = [node.datadir / "private" / "node_key",
                 node.datadir / "genesis.json",
                 *node.datadir.glob("chain.sqlite*")]
        for path in saved:
            shutil.copy(path, keep / path.name)
        shutil.rmtree(node.datadir)
        (node.datadir / "private").mkdir(parents=True, mode=0o700)
        for path in saved:
            shutil.copy(keep / path.name, path)
        node.start()
        self.assertNotEqual(node.call("getaddressesbylabel", ""), addresses)
        status, _, err = self.cli("restorewallet", str(backup))
        self.assertEqual(status, 0, err)
        self.assertEqual(node.call("getaddressesbylabel", ""), addresses)
        after = {(c["txid"], c["vout"]) for c in node.call("listunspent")}
        self.assertLessEqual(coins, after)
        self.assertGreaterEqual(node.call("getbalance"), balance)
        with self.assertRaises(RpcError) as caught:
            node.call("sendtoaddress", list(addresses)[1], 1)
        self.assertEqual(caught.exception.code, -13)
        node.call("walletpassphrase", PASSPHRASE, 60)
        node.call("sendtoaddress", list(addresses)[1], 1)
