"""
Tests of the wallet's encryption, HD seed, keypool, backup and restore
(L{timecoin.wallet}, L{timecoin.hdwallet}) and of their RPC methods,
against real devnet L{Node}s on a L{Clock}, over HTTP in process.
"""

from __future__ import annotations

import base64
import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.trial import unittest

from tests.helpers.rpc import RPCTestBase
from tests.helpers.wallet import FAST_KDF, PASSPHRASE, find_secrets, secrets_of
from timecoin import hdwallet
from timecoin.address import address_of
from timecoin.config import Config
from timecoin.keys import PrivateKey
from timecoin.rpc.site import build_rpc_site
from timecoin.wallet import Wallet, WalletError
from timecoin.wiring import build


class SLIP10Tests(unittest.TestCase):
    """
    L{timecoin.hdwallet} follows SLIP-0010 for Ed25519.
    """

    VECTOR_1 = "000102030405060708090a0b0c0d0e0f"
    CHAIN_1 = [
        ((), "90046a93de5380a72b5e45010748567d5ea02bbf6522f979e05c0d8d8ca9fffb",
         "2b4be7f19ee27bbf30c667b642d5f4aa69fd169872f8fc3059c08ebae2eb19e7",
         "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed"),
        ((0,), "8b59aa11380b624e81507a27fedda59fea6d0b779a778918a2fd3590e16e9c69",
         "68e0fe46dfb67e368c75379acec591dad19df3cde26e63b93a8e704f1dade7a3",
         "8c8a13df77a28f3445213a0f432fde644acaa215fc72dcdf300d5efaa85d350c"),
        ((0, 1),
         "a320425f77d1b5c2505a6b1b27382b37368ee640e3557c315416801243552f14",
         "b1d0bad404bf35da785a64ca1ac54b2617211d2777696fbffaf208f746ae84f2",
         "1932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187"),
        ((0, 1, 2),
         "2e69929e00b5ab250f49c3fb1c12f252de4fed2c1db88387094a0f8c4c9ccd6c",
         "92a5b23c0b8a99e37d07df3fb9966917f5d06e02ddbd909c7e184371463e9fc9",
         "ae98736566d30ed0e9d2f4486a64bc95740d89c7db33f52121f8ea8f76ff0fc1"),
        ((0, 1, 2, 2),
         "8f6d87f93d750e0efccda017d662a1b31a266e4a6f5993b15f5c1f07f74dd5cc",
         "30d1dc7e5fc04c31219ab25a27ae00b50f6fd66622f6e9c913253d6511d1e662",
         "8abae2d66361c879b900d204ad2cc4984fa2aa344dd7ddc46007329ac76c429c"),
        ((0, 1, 2, 2, 1_000_000_000),
         "68789923a0cac2cd5a29172a475fe9e0fb14cd6adb5ad98a3fa70333e7afa230",
         "8f94d394a8e8fd6b1bc2f3f49f5c47e385281d5c17e65324b0f62483e37e8793",
         "3c24da049451555d51a7014a37337aa4e12d41e485abccfa46b47dfb2af54b7a"),
    ]
    VECTOR_2 = ("fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a2"
                "9f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542")

    def test_vector_1(self) -> None:
        """
        Every step of SLIP-0010's test vector 1 for Ed25519 (m to
        m/0'/1'/2'/2'/1000000000'): chain code, private key and public
        key as the spec lists them.
        """
        seed = bytes.fromhex(self.VECTOR_1)
        for path, chain_code, private, public in self.CHAIN_1:
            got_private, got_chain = hdwallet.derive(seed, path)
            self.assertEqual(got_chain.hex(), chain_code, path)
            self.assertEqual(got_private.hex(), private, path)
            self.assertEqual(PrivateKey(got_private).public.hex(), public,
                             path)

    def test_vector_2_master(self) -> None:
        """
        The master key of SLIP-0010's test vector 2 (a 64-byte seed).
        """
        private, chain_code = hdwallet.master_key(bytes.fromhex(self.VECTOR_2))
        self.assertEqual(private.hex(), "171cb88b1b3c1db25add599712e36245"
                         "d75bc65a1a5c9e18d76f9f2b1eab4012")
        self.assertEqual(chain_code.hex(), "ef70a74db9c3a5af931b5fe73ed8e1a5"
                         "3464133654fd55e7a66f8570b8e33c3b")

    def test_wallet_path(self) -> None:
        """
        The wallet's key i is m/0'/0'/i' of its seed; indexes from 2^31
        (already hardened) and short seeds are refused.
        """
        seed = bytes(range(32))
        chain = hdwallet.HDChain(seed)
        self.assertEqual(chain.key(5).seed,
                         hdwallet.derive(seed, (0, 0, 5))[0])
        self.assertRaises(ValueError, chain.key, 2**31)
        self.assertRaises(ValueError, hdwallet.master_key, b"short")


class WalletFileTests(unittest.TestCase):
    """
    The wallet file: HD addresses, keypool, old-format wallets.
    """

    def path(self) -> Path:
        return Path(self.mktemp()) / "private" / "wallet.json"

    def test_one_seed_restores_every_address(self) -> None:
        """
        Two wallets loaded from the same file hand out the same addresses
        in the same order, each the key at m/0'/0'/i' of the seed: the
        file holds the seed, not a list of keys.
        """
        path = self.path()
        wallet = Wallet(path, "TIME0", keypool_size=5)
        wallet.load()
        copy = path.read_bytes()
        ahead = [wallet.new_address() for _ in range(8)]
        path.write_bytes(copy)
        again = Wallet(path, "TIME0", keypool_size=5)
        again.load()
        self.assertEqual([again.new_address() for _ in range(8)], ahead)
        seed = bytes.fromhex(json.loads(copy)["secrets"]["seed"])
        self.assertEqual(wallet.addresses()[3], address_of(
            hdwallet.HDChain(seed).key(3).public, "TIME0"))
        self.assertEqual(wallet.seed_id, hdwallet.seed_id(seed))

    def test_keypool_addresses_are_owned(self) -> None:
        """
        Payments to keypool addresses not yet handed out are the wallet's
        (a backup covers later addresses); mark_used lists them, and the
        ones before them, as handed out.
        """
        wallet = Wallet(self.path(), "TIME0", keypool_size=4)
        wallet.load()
        copy = Wallet(wallet.path, "TIME0", keypool_size=4)
        copy.load()
        later = [wallet.new_address() for _ in range(3)]
        self.assertTrue(all(copy.owns(a) for a in later))
        self.assertEqual(copy.mark_used([later[2]]), later)
        self.assertEqual(copy.addresses(), wallet.addresses())
        self.assertEqual(copy.keypool_size_now(), 4)

    def test_old_format_keeps_working(self) -> None:
        """
        A wallet file of the old format (a list of raw keys) loads with
        its addresses in order and their keys (imported keys); the next
        address creates a seed and the file is rewritten in the new
        format, still holding the old keys.
        """
        path = self.path()
        old = [PrivateKey(bytes([i]) * 32) for i in (1, 2)]
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"keys": [k.seed.hex() for k in old]}))
        wallet = Wallet(path, "TIME0")
        wallet.load()
        addresses = [address_of(k.public, "TIME0") for k in old]
        self.assertEqual(wallet.addresses(), addresses)
        self.assertIsNone(wallet.seed_id)
        self.assertEqual(wallet.key_for(addresses[1]).seed, old[1].seed)
        fresh = wallet.new_address()
        again = Wallet(path, "TIME0")
        again.load()
        self.assertEqual(again.addresses(), addresses + [fresh])
        self.assertEqual(again.key_for(addresses[0]).seed, old[0].seed)
        self.assertEqual(json.loads(path.read_text())["version"], 2)
        self.assertIsNotNone(again.seed_id)

    def test_locked_keypool_runs_out(self) -> None:
        """
        A locked wallet hands out its keypool's addresses, then refuses
        with -12 until it is unlocked (which tops the keypool up).
        """
        from twisted.internet.task import Clock
        wallet = Wallet(self.path(), "TIME0", keypool_size=2)
        wallet.kdf_limits = FAST_KDF
        wallet.load()
        wallet.encrypt(PASSPHRASE)
        wallet.new_address()
        wallet.new_address()
        e = self.assertRaises(WalletError, wallet.new_address)
        self.assertEqual(e.code, -12)
        e = self.assertRaises(WalletError, wallet.refill_keypool)
        self.assertEqual(e.code, -13)
        wallet.unlock(PASSPHRASE, 10, Clock())
        self.assertEqual(wallet.keypool_size_now(), 2)
        self.assertEqual(len(wallet.addresses()), 3)
        wallet.new_address()


class EncryptedNodeTests(RPCTestBase):
    """
    encryptwallet and friends on a node whose chain and wallet live in
    its data dir (SQLite), restarted as an operator restarts it.
    """

    def setUp(self) -> None:
        super().setUp()
        self.node.wallet.kdf_limits = FAST_KDF

    def make_config(self, **overrides: Any) -> Config:
        return super().make_config(storage="sqlite", **overrides)

    def start_node(self, config: Config | None = None,
                   store: Any = None) -> None:
        """
        Stop the node and start a new L{Node} on C{config} (default: the
        same data dir), with its RPC site.
        """
        if self.node.running:
            self.node.stopService()
        self.config = config or self.config
        self.node = build(self.config, self.clock, store=store,
                          with_p2p=False).node
        self.node.startService()
        self.addCleanup(self.node.stopService)
        self.site = build_rpc_site(self.node, self.config)
        self.stub = StubTreq(self.site.resource)
        cookie = (Path(self.config.datadir) / ".cookie").read_text()
        self.auth = "Basic " + base64.b64encode(cookie.encode()).decode()

    def wipe_and_restart(self) -> None:
        """
        Stop the node, delete its data dir, and start a new node there
        (a new node key, a new wallet) on the same chain: the store and
        the genesis come back, as a resync from the network would give.
        """
        store = self.node.store
        datadir = Path(self.config.datadir)
        genesis = Path(self.mktemp())
        shutil.copy(datadir / "genesis.json", genesis)
        self.node.stopService()
        shutil.rmtree(datadir)
        config = Config(network="devnet", datadir=str(datadir),
                        block_time=2.0, genesis=str(genesis))
        config.resolve()
        self.start_node(config, store=store)

    def test_dumpwallet_wipe_sethdseed(self) -> None:
        """
        dumpwallet writes the seed and every key (each line's key is its
        address's) to a new file, mode 0600, and refuses to overwrite it
        (-8); after a wipe, sethdseed with that seed on the new node
        brings back every address with coins and the same balance; the
        new node's own first address stays its as an imported key.
        """
        for amount in (100, 200):
            self.rpc("sendtoaddress", self.rpc("getnewaddress"), amount)
            self.block()
        self.block()
        dump = Path(self.mktemp())
        self.assertEqual(self.rpc("dumpwallet", str(dump))["filename"],
                         str(dump.resolve()))
        self.assertEqual(dump.stat().st_mode & 0o777, 0o600)
        self.assertEqual(self.rpc_error("dumpwallet", str(dump)).code, -8)
        lines = dump.read_text().splitlines()
        seed = next(line.split()[2] for line in lines
                    if line.startswith("# hdseed "))
        listed = {}
        for line in lines:
            if not line.startswith("#"):
                key, address = line.split()[:2]
                listed[address] = key
                self.assertEqual(address_of(
                    PrivateKey(bytes.fromhex(key)).public, "TIME0"), address)
        addresses = self.node.wallet.addresses()
        self.assertLessEqual(set(addresses), set(listed))
        balance = self.rpc("getbalance")
        self.wipe_and_restart()
        fresh = self.node.wallet.addresses()
        fresh_key = self.rpc("dumpprivkey", fresh[0])
        self.assertEqual(self.rpc("getbalance"), Decimal(0))
        self.assertEqual(self.rpc_error("sethdseed", True, "abcd").code, -5)
        self.assertIsNone(self.rpc("sethdseed", True, seed))
        self.assertEqual(self.rpc("getbalance"), balance)
        self.assertEqual(self.node.wallet.addresses(), fresh + addresses)
        self.assertEqual(self.rpc("getwalletinfo")["hdseedid"],
                         hdwallet.seed_id(bytes.fromhex(seed)))
        self.assertEqual(self.rpc("dumpprivkey", fresh[0]), fresh_key)

    def test_encrypt_restart_unlock_relock(self) -> None:
        """
        The new user's path: encryptwallet, restart (a new Node on the
        same data dir): sendtoaddress fails -13 and getnewaddress still
        works; walletpassphrase for 60 s: sendtoaddress works and
        unlocked_until says when it locks; 61 s later it fails -13 again
        by itself.
        """
        self.start_node()   # its chain in SQLite from now on
        self.node.wallet.kdf_limits = FAST_KDF
        self.rpc("encryptwallet", PASSPHRASE)
        self.start_node()
        to = self.external_address()
        self.assertEqual(self.rpc_error("sendtoaddress", to, 1).code, -13)
        self.assertEqual(self.rpc("getwalletinfo")["unlocked_until"], 0)
        self.assertTrue(self.rpc("getnewaddress").startswith("TIME0"))
        self.rpc("walletpassphrase", PASSPHRASE, 60)
        self.assertEqual(self.rpc("getwalletinfo")["unlocked_until"],
                         int(self.clock.seconds()) + 60)
        txid = self.rpc("sendtoaddress", to, 1)
        self.block()
        self.assertEqual(self.rpc("waitfortransaction", txid, 0)["state"],
                         "finalized")
        self.clock.advance(61)
        error = self.rpc_error("sendtoaddress", to, 1)
        self.assertEqual((error.code, error.message), (
            -13, "Error: Please enter the wallet passphrase with "
            "walletpassphrase first."))
        self.assertEqual(self.rpc("getwalletinfo")["unlocked_until"], 0)

    def test_locked_signing_methods(self) -> None:
        """
        While locked, every method that needs a private key fails -13:
        sendtoaddress, signrawtransactionwithwallet, dumpprivkey,
        importprivkey, keypoolrefill, registermasternode; walletlock
        locks before the timeout; a wrong passphrase is -14.
        """
        address = self.node.wallet.addresses()[0]
        coin = self.rpc("listunspent")[0]
        raw = self.rpc("createrawtransaction",
                       [{"txid": coin["txid"], "vout": coin["vout"]}],
                       {self.external_address(): 1})
        self.rpc("encryptwallet", PASSPHRASE)
        self.assertEqual(self.rpc_error("walletpassphrase", "wrong",
                                        60).code, -14)
        calls = [("sendtoaddress", self.external_address(), 1),
                 ("signrawtransactionwithwallet", raw),
                 ("dumpprivkey", address),
                 ("importprivkey", PrivateKey.generate().seed.hex()),
                 ("keypoolrefill",),
                 ("registermasternode", coin["txid"], coin["vout"]),
                 ("sethdseed",),
                 ("dumpwallet", self.mktemp())]
        for call in calls:
            self.assertEqual(self.rpc_error(*call).code, -13, call[0])
        self.rpc("walletpassphrase", PASSPHRASE, 600)
        self.assertTrue(self.rpc("signrawtransactionwithwallet",
                                 raw)["complete"])
        self.rpc("walletlock")
        self.assertEqual(self.rpc_error("dumpprivkey", address).code, -13)

    def test_encryption_state_errors(self) -> None:
        """
        walletpassphrase, walletlock and walletpassphrasechange on an
        unencrypted wallet fail -15, as encryptwallet on an encrypted
        one; empty passphrases are -8; getwalletinfo shows unlocked_until
        only once encrypted.
        """
        self.assertNotIn("unlocked_until", self.rpc("getwalletinfo"))
        for call in [("walletpassphrase", PASSPHRASE, 1), ("walletlock",),
                     ("walletpassphrasechange", PASSPHRASE, "x")]:
            self.assertEqual(self.rpc_error(*call).code, -15, call[0])
        self.assertEqual(self.rpc_error("encryptwallet", "").code, -8)
        self.rpc("encryptwallet", PASSPHRASE)
        self.assertEqual(self.rpc_error("encryptwallet", "x").code, -15)
        self.assertEqual(self.rpc_error("walletpassphrase", PASSPHRASE,
                                        -1).code, -8)

    def test_passphrase_change(self) -> None:
        """
        walletpassphrasechange: a wrong old passphrase is -14 and changes
        nothing; after a change the old one is refused (-14) and the new
        one unlocks, also after a restart.
        """
        self.rpc("encryptwallet", PASSPHRASE)
        self.assertEqual(self.rpc_error("walletpassphrasechange", "wrong",
                                        "new one").code, -14)
        self.rpc("walletpassphrasechange", PASSPHRASE, "new one")
        self.start_node()
        self.assertEqual(self.rpc_error("walletpassphrase", PASSPHRASE,
                                        5).code, -14)
        self.rpc("walletpassphrase", "new one", 5)
        self.assertIsInstance(self.rpc("dumpprivkey",
                                       self.node.wallet.addresses()[0]), str)

    def test_no_secret_in_any_file(self) -> None:
        """
        After encryptwallet, no file under the data dir holds the seed,
        its master key or chain codes, or the private key of any address
        (handed out, keypool, imported), in hex or raw; nor after an
        unlock, an import and new addresses rewrote the file; nor does a
        backup.  The node key (private/node_key) is left in the clear by
        design, and is found.
        """
        wallet = self.node.wallet
        self.rpc("importprivkey", PrivateKey.generate().seed.hex())
        for _ in range(3):
            self.rpc("getnewaddress")
        secrets = secrets_of(wallet)
        datadir = Path(self.config.datadir)
        self.assertNotEqual(find_secrets(datadir, secrets), [])
        self.rpc("encryptwallet", PASSPHRASE)
        self.assertEqual(find_secrets(datadir, secrets), [])
        self.rpc("walletpassphrase", PASSPHRASE, 60)
        imported = PrivateKey.generate()
        self.rpc("importprivkey", imported.seed.hex())
        self.rpc("getnewaddress")
        self.rpc("keypoolrefill", 120)
        secrets = secrets_of(wallet)
        self.assertIn(imported.seed, secrets)
        self.rpc("backupwallet", str(datadir / "backup.json"))
        self.assertEqual(find_secrets(datadir, secrets), [])
        self.assertNotEqual(find_secrets(datadir, [self.node.key.seed]), [])

    def test_backup_wipe_restore(self) -> None:
        """
        backupwallet of an encrypted wallet, an address handed out and
        paid after the backup, the data dir wiped, a new node, and
        restorewallet: the same addresses (the later one too, found in
        the keypool), the same balance, still encrypted; the passphrase
        unlocks it and it spends.  The fresh wallet is kept aside.
        """
        self.rpc("encryptwallet", PASSPHRASE)
        self.rpc("walletpassphrase", PASSPHRASE, 600)
        for amount in (100, 200):
            self.rpc("sendtoaddress", self.rpc("getnewaddress"), amount)
            self.block()
        backup = Path(self.mktemp())
        self.rpc("backupwallet", str(backup))
        later = self.rpc("getnewaddress")
        self.rpc("sendtoaddress", later, 300)
        self.block()
        self.block()
        addresses = self.node.wallet.addresses()
        balance = self.rpc("getbalance")
        info = self.rpc("getwalletinfo")
        self.wipe_and_restart()
        self.assertEqual(self.rpc("getbalance"), Decimal(0))
        result = self.rpc("restorewallet", str(backup))
        self.assertTrue(Path(result["replaced"]).exists())
        self.assertEqual(self.node.wallet.addresses(), addresses)
        self.assertIn(later, addresses)
        self.assertEqual(self.rpc("getbalance"), balance)
        restored = self.rpc("getwalletinfo")
        self.assertEqual(restored["hdseedid"], info["hdseedid"])
        self.assertEqual(restored["unlocked_until"], 0)
        self.assertEqual(self.rpc_error("sendtoaddress",
                                        self.external_address(), 1).code,
                         -13)
        self.rpc("walletpassphrase", PASSPHRASE, 60)
        self.rpc("sendtoaddress", self.external_address(), 1)
        self.assertEqual(self.rpc_error("restorewallet", str(backup)).code,
                         -4)

    def test_restore_refusals(self) -> None:
        """
        restorewallet refuses (-4) a missing file, a file that is not a
        wallet, and any backup while the current wallet holds coins (it
        would lose their keys); the wallet file is left as it was.
        """
        wallet = self.node.wallet
        before = wallet.path.read_bytes()
        backup = Path(self.mktemp())
        self.rpc("backupwallet", str(backup))
        for path in (Path(self.mktemp()), backup):
            self.assertEqual(self.rpc_error("restorewallet", str(path)).code,
                             -4, path)
        for garbage in (b'{"version": 2}', b"[]", b"not json"):
            e = self.assertRaises(WalletError, wallet.restore, garbage)
            self.assertEqual(e.code, -4)
        self.assertEqual(wallet.path.read_bytes(), before)
        self.assertEqual(list(wallet.path.parent.glob("*.replaced-*")), [])

    def test_dump_and_import(self) -> None:
        """
        dumpprivkey prints the 64-hex seed of an address's key (the
        node's key format); importprivkey of it into another wallet makes
        the address that wallet's (validateaddress ismine); bad keys are
        -5, unknown addresses -4.
        """
        address = self.node.wallet.addresses()[0]
        dumped = self.rpc("dumpprivkey", address)
        self.assertEqual(address_of(PrivateKey(bytes.fromhex(dumped)).public,
                                    "TIME0"), address)
        foreign = PrivateKey.generate()
        foreign_address = address_of(foreign.public, "TIME0")
        self.assertFalse(self.rpc("validateaddress",
                                  foreign_address)["ismine"])
        self.assertIsNone(self.rpc("importprivkey", foreign.seed.hex(),
                                   "label", False))
        self.assertTrue(self.rpc("validateaddress",
                                 foreign_address)["ismine"])
        self.assertEqual(self.rpc("dumpprivkey", foreign_address),
                         foreign.seed.hex())
        self.assertEqual(self.rpc_error("importprivkey", "zz").code, -5)
        self.assertEqual(self.rpc_error("dumpprivkey",
                                        self.external_address()).code, -4)

    def test_getwalletinfo(self) -> None:
        """
        getwalletinfo: walletname, balance as getbalance, keypoolsize,
        hdseedid (the seed's id), no unlocked_until while unencrypted.
        """
        info = self.rpc("getwalletinfo")
        self.assertEqual(info["walletname"], "")
        self.assertEqual(info["balance"], self.rpc("getbalance"))
        self.assertEqual(info["keypoolsize"], 100)
        self.assertEqual(info["hdseedid"], self.node.wallet.seed_id)
        self.assertEqual(len(info["hdseedid"]), 40)
        self.assertNotIn("unlocked_until", info)

    def test_getaddressesbylabel(self) -> None:
        """
        getaddressesbylabel "" lists the wallet's addresses in order
        (keypool not included); another label is -11.
        """
        new = self.rpc("getnewaddress")
        listed = self.rpc("getaddressesbylabel", "")
        self.assertEqual(list(listed), self.node.wallet.addresses())
        self.assertEqual(list(listed)[-1], new)
        self.assertEqual(listed[new], {"purpose": "receive"})
        self.assertEqual(len(listed), 2)
        self.assertEqual(self.rpc_error("getaddressesbylabel", "x").code,
                         -11)
