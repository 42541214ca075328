"""
Tests of the two-step masternode registration (L{timecoin.registration}'s
requests; RPC C{registermasternode_prepare}, C{signmasternoderegistration},
C{registermasternode_submit}; C{timecoin-cli signmasternoderegistration
REQUEST KEYFILE}): the collateral owner signs on another node or offline,
and neither side ever holds the other's key.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from tests.helpers import result_of
from tests.helpers.clusters import JoiningCluster
from tests.helpers.rpc import RPCTestBase
from tests.helpers.wallet import FAST_KDF, PASSPHRASE, find_secrets
from timecoin import cli, params
from timecoin.address import address_of
from timecoin.keys import PrivateKey
from timecoin.registration import (
    decode_request,
    encode_request,
    parse_registration,
)
from timecoin.rpc.methods import RPCMethods
from timecoin.tx import OutPoint
from timecoin.wallet import Wallet, WalletError


def sign_offline(request: str, key_file: Path) -> tuple[int, Any, str]:
    """
    Run C{timecoin-cli signmasternoderegistration REQUEST KEYFILE}; return
    its exit status, its decoded output (or C{None}) and its stderr.
    """
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["signmasternoderegistration", request, str(key_file)],
                      stdout=out, stderr=err)
    return status, json.loads(out.getvalue()) if status == 0 else None, \
        err.getvalue()


def settled(result: Any) -> Any:
    """
    An RPC method's result: its value, or that of the fired Deferred it
    returned.
    """
    if isinstance(result, defer.Deferred):
        return result_of(result)
    return result


class RequestTests(RPCTestBase):
    """
    The three steps on one devnet node, and what each refuses.  (The
    node's key is a genesis masternode, so its own registration is
    refused at the end: the full flow runs in L{TwoNodeTests}.)
    """

    def setUp(self) -> None:
        super().setUp()
        self.owner = PrivateKey.generate()
        self.owner_address = address_of(self.owner.public, "TIME0")
        txid = self.rpc("sendtoaddress", self.owner_address, 1500)
        self.collateral = (txid, self.vout_of(txid, self.owner_address))

    def vout_of(self, txid: str, address: str) -> int:
        tx = result_of(self.node.transaction(bytes.fromhex(txid)))["tx"]
        return next(n for n, o in enumerate(tx.outputs)
                    if o.address == address)

    def prepare(self) -> dict[str, Any]:
        return self.rpc("registermasternode_prepare", *self.collateral,
                        self.owner_address, "10.0.0.9:24200")

    def test_prepare_shows_what_is_signed(self) -> None:
        """
        registermasternode_prepare returns the request with this node's
        operator key, the addresses, the collateral's amount and tier;
        the request decodes to exactly those fields.
        """
        prepared = self.prepare()
        self.assertEqual(prepared["operator_pubkey"],
                         self.node.key.public.hex())
        self.assertEqual(prepared["tier"], "bronze")
        self.assertEqual(str(prepared["collateral_amount"]), "1500.00000000")
        self.assertTrue(self.node.wallet.owns(prepared["reward_address"]))
        request = decode_request(prepared["request"], signed=False)
        self.assertEqual(request["collateral"], {
            "txid": self.collateral[0], "vout": self.collateral[1]})
        self.assertEqual(request["collateral_address"], self.owner_address)
        self.assertEqual(request["p2p_address"], "10.0.0.9:24200")
        self.assertEqual(request["network"], "devnet")

    def test_prepare_refusals(self) -> None:
        """
        prepare refuses (-8) an outpoint that is not unspent, one paying
        another address than the one given, and a bad address (-5).
        """
        txid, vout = self.collateral
        other = address_of(PrivateKey.generate().public, "TIME0")
        self.assertEqual(self.rpc_error("registermasternode_prepare", txid,
                                        vout + 5, self.owner_address).code,
                         -8)
        self.assertEqual(self.rpc_error("registermasternode_prepare", txid,
                                        vout, other).code, -8)
        self.assertEqual(self.rpc_error("registermasternode_prepare", txid,
                                        vout, "TIME0nope").code, -5)

    def test_offline_sign_then_submit_checks(self) -> None:
        """
        The offline CLI signs with a key file only when the key owns the
        collateral address (else exit 1, nothing printed); the signed
        request carries the owner's key and a valid signature, which
        registermasternode_submit checks: a field changed after signing
        is refused (-8 bad collateral signature), as a request prepared
        for another operator key; the untouched one is completed with
        the operator's signature and reaches the chain's own check.
        """
        prepared = self.prepare()
        wrong = Path(self.mktemp())
        wrong.write_text(PrivateKey.generate().seed.hex() + "\n")
        status, _, err = sign_offline(prepared["request"], wrong)
        self.assertEqual(status, 1)
        self.assertIn("not the key of", err)
        key_file = Path(self.mktemp())
        key_file.write_text(self.owner.seed.hex() + "\n")
        status, signed, _ = sign_offline(prepared["request"], key_file)
        self.assertEqual(status, 0)
        self.assertEqual(signed["operator_pubkey"],
                         self.node.key.public.hex())
        request = decode_request(signed["signed"], signed=True)
        self.assertEqual(request["collateral_pubkey"],
                         self.owner.public.hex())
        changed = dict(request, reward_address=address_of(
            PrivateKey.generate().public, "TIME0"))
        error = self.rpc_error("registermasternode_submit",
                               encode_request(changed))
        self.assertEqual((error.code, error.message),
                         (-8, "bad collateral signature"))
        other = dict(request, pubkey=PrivateKey.generate().public.hex())
        error = self.rpc_error("registermasternode_submit",
                               encode_request(other))
        self.assertIn("another operator key", error.message)
        error = self.rpc_error("registermasternode_submit", signed["signed"])
        self.assertEqual(error.code, -26)
        self.assertIn("operator already registered", error.message)

    def test_sign_needs_the_collateral_key(self) -> None:
        """
        signmasternoderegistration on a node whose wallet lacks the
        collateral address is -4; a malformed request is -8; once the
        key is imported it signs, and while the wallet is locked it is
        -13.
        """
        prepared = self.prepare()
        self.assertEqual(self.rpc_error("signmasternoderegistration",
                                        prepared["request"]).code, -4)
        self.assertEqual(self.rpc_error("signmasternoderegistration",
                                        "00ff").code, -8)
        self.rpc("importprivkey", self.owner.seed.hex())
        signed = self.rpc("signmasternoderegistration", prepared["request"])
        self.assertEqual(signed["collateral_address"], self.owner_address)
        self.node.wallet.kdf_limits = FAST_KDF
        self.rpc("encryptwallet", PASSPHRASE)
        self.assertEqual(self.rpc_error("signmasternoderegistration",
                                        prepared["request"]).code, -13)


class TwoNodeTests(unittest.TestCase):
    """
    A registration between nodes of one in-process network where the
    operator's node never holds the collateral key.
    """

    def test_collateral_signed_on_another_node(self) -> None:
        """
        Node 0's wallet holds a bronze collateral; node 1 (its wallet
        encrypted, holding only a fee coin) prepares, node 0 signs, node
        1 submits (-13 while locked, then unlocked); node 1's wallet is
        locked again before the activation: the node logs why it cannot
        activate and stays registered; once unlocked it activates by
        itself and is active.  Node 1's wallet never owns the collateral
        address, no file of node 1 holds the collateral key, no file of
        node 0 holds node 1's key, and node 0's wallet never spends the
        collateral.  Then node 2 registers with a collateral whose only
        key is in an encrypted wallet backup, signed offline by
        timecoin-cli.
        """
        from tests.helpers.clusters import IPS, PORT
        events: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if "why" in event:
                events.append(str(event["why"]))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        cluster = JoiningCluster(self)
        cluster.start_all()
        cluster.advance(6)
        node0 = cluster.nodes()[0]
        node1 = cluster.services[IPS[1]].node
        rpc0 = RPCMethods(node0).registry()
        rpc1 = RPCMethods(node1).registry()
        collateral_address = node0.new_address()
        txid = result_of(node0.send_to_address(collateral_address,
                                               1_500 * params.COIN))
        cluster.advance(1)
        result_of(node0.send_to_address(node1.wallet.addresses()[0],
                                        2 * params.COIN))
        cluster.advance(1)
        node1.wallet.kdf_limits = FAST_KDF
        rpc1["encryptwallet"](PASSPHRASE)

        prepared = rpc1["registermasternode_prepare"](
            txid.hex(), 0, collateral_address, f"{IPS[1]}:{PORT}")
        signed = rpc0["signmasternoderegistration"](prepared["request"])
        e = self.assertRaises(WalletError, rpc1["registermasternode_submit"],
                              signed["signed"])
        self.assertEqual(e.code, -13)
        rpc1["walletpassphrase"](PASSPHRASE, 30)
        settled(rpc1["registermasternode_submit"](signed["signed"]))
        rpc1["walletlock"]()
        cluster.advance(20)
        self.assertEqual(node1.participation.status()["status"],
                         "waiting-for-activation")
        self.assertIn("Error: Please enter the wallet passphrase with "
                      "walletpassphrase first.", events)
        rpc1["walletpassphrase"](PASSPHRASE, 60)
        cluster.advance(20)
        self.assertTrue(node1.is_masternode)
        self.assertEqual(node1.participation.status()["status"], "active")

        self.assertFalse(node1.wallet.owns(collateral_address))
        collateral_key = node0.wallet.key_for(collateral_address)
        self.assertEqual(find_secrets(cluster.datadirs[IPS[1]],
                                      [collateral_key.seed]), [])
        self.assertEqual(find_secrets(cluster.datadirs[IPS[0]],
                                      [node1.key.seed]), [])
        self.assertNotIn(OutPoint(txid, 0), dict(node0.spendable()))
        self.assertIn(OutPoint(txid, 0), node0.chain.collaterals)

        # Node 2: the collateral key only in an encrypted wallet backup.
        node2 = cluster.services[IPS[2]].node
        cold = Wallet(Path(self.mktemp()), "TIME0")
        cold.kdf_limits = FAST_KDF
        cold.load()
        cold.encrypt("cold passphrase")
        cold_address = cold.new_address()
        txid2 = result_of(node0.send_to_address(cold_address,
                                                1_000 * params.COIN))
        cluster.advance(1)
        result_of(node0.send_to_address(node2.wallet.addresses()[0],
                                        2 * params.COIN))
        cluster.advance(1)
        prepared = RPCMethods(node2).registry()["registermasternode_prepare"](
            txid2.hex(), 0, cold_address, f"{IPS[2]}:{PORT}")
        self.patch(cli_getpass(), "getpass", lambda prompt: "cold passphrase")
        status, signed, err = sign_offline(prepared["request"], cold.path)
        self.assertEqual(status, 0, err)
        tx = settled(RPCMethods(node2).registry()["registermasternode_submit"](
            signed["signed"]))
        registration = result_of(node2.transaction(bytes.fromhex(tx)))["tx"]
        masternode, outpoint = parse_registration(registration, "devnet",
                                                  "TIME0")
        self.assertEqual((masternode.pubkey, outpoint),
                         (node2.key.public, OutPoint(txid2, 0)))
        cluster.advance(20)
        self.assertEqual(node2.participation.status()["status"], "active")


def cli_getpass() -> Any:
    """
    The C{getpass} module the offline signer asks the passphrase with.
    """
    import getpass
    return getpass

