"""
Tests for on-chain masternode registration: validated like any
transaction, tiers from the collateral, joining the snapshot from the next
height, deregistration when the collateral is spent, exact reverts, and
the registry surviving a reload (it lives in the chain state, hashed into
utxo_hash).
"""

from __future__ import annotations

import json
from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import DEVNET, addr, key, result_of
from tests.helpers.chain import COIN, RegistrationHarness
from timecoin.chain import Chain, TxInvalid
from timecoin.quorum import CountQuorum
from timecoin.registration import tier_for
from timecoin.selection import RoundRobin
from timecoin.tx import OutPoint
from timecoin.wallet import Wallet, WalletError, build_registration


class RegistrationTests(unittest.TestCase):
    """
    Registering and deregistering masternodes on chain.
    """

    def test_tiers(self) -> None:
        """
        The collateral's value sets the tier.
        """
        self.assertEqual(
            [tier_for(v * COIN) for v in (0, 999, 1_000, 10_000, 100_000)],
            ["free", "free", "bronze", "silver", "gold"])

    def test_register_then_deregister(self) -> None:
        """
        A registration makes a masternode registered, without weight; its
        activation joins it to the snapshot from the next height with the
        collateral's tier; spending the collateral removes it; the
        registry is in utxo_hash.
        """
        h = RegistrationHarness()
        tx = h.register()
        h.mine(tx)
        self.assertIn(tx.txid, [t.txid for t in h.chain.tip.txs])
        self.assertEqual(h.chain.mn_status(key(5).public).state,
                         "registered")
        self.assertNotIn(key(5).public, [
            m.pubkey for m in h.chain.snapshot_for(h.chain.height + 1)])
        h.mine(h.activate())
        snapshot = h.chain.snapshot_for(h.chain.height + 1)
        joined = [m for m in snapshot if m.pubkey == key(5).public]
        self.assertEqual(len(joined), 1)
        self.assertEqual(joined[0].tier, "silver")
        self.assertEqual(h.chain.registry[key(5).public].height,
                         h.chain.height - 1)
        # The block that activated it was produced without it.
        self.assertNotIn(key(5).public, [m.pubkey for m in h.chain
                                         .snapshot_for(h.chain.height)])
        with_mn = h.chain.utxo_hash()
        spend = h.pay([h.funding(0)],
                      [(addr(key(6)), 9_980 * COIN)])
        # Two masternodes now: the block needs both (2 of 2) to commit.
        from tests.helpers.chain import rebuild
        from timecoin.block import CommitCertificate, sign_block_vote
        height = h.chain.height + 1
        producer = h.chain.expected_producer(height, h.chain.tip.hash, 0)
        signer = key(5) if producer == key(5).public else h.mn_key
        block = rebuild(h, [spend], producer=signer)
        votes = tuple(sorted(
            (sign_block_vote(k, "devnet", height, 0, block.hash)
             for k in (h.mn_key, key(5))), key=lambda v: v.voter))
        one = CommitCertificate(height, 0, block.hash, votes[:1])
        self.failureResultOf(h.chain.connect_block(block, one))
        result_of(h.chain.connect_block(
            block, CommitCertificate(height, 0, block.hash, votes)))
        self.assertNotIn(key(5).public, h.chain.registry)
        self.assertNotIn(key(5).public, [
            m.pubkey for m in h.chain.snapshot_for(h.chain.height + 1)])
        self.assertNotEqual(h.chain.utxo_hash(), with_mn)

    def test_refusals(self) -> None:
        """
        Forged operator or collateral signatures, a collateral not owned by
        the signer, an already registered operator, a reused collateral,
        and a genesis masternode's key are refused with bad-registration.
        """
        h = RegistrationHarness()
        lookup = h.chain.lookup

        def reason(tx):
            e = self.assertRaises(TxInvalid, h.chain.check_new_registration,
                                  tx, lookup)
            return e.reason

        good = h.register()
        forged = replace(good, data={**good.data,
                                     "operator_signature": "00" * 64})
        self.assertEqual(reason(forged), "bad-registration")
        self.assertEqual(reason(h.register(owner=key(8))),
                         "bad-registration")
        self.assertEqual(reason(h.register(operator=h.mn_key)),
                         "bad-registration")
        missing = h.register(collateral=OutPoint(b"\x01" * 32, 0))
        self.assertEqual(reason(missing), "bad-registration")
        h.mine(good)
        change = OutPoint(good.txid, 0)
        self.assertEqual(reason(h.register(fee_coin=change)),
                         "bad-registration")
        self.assertEqual(reason(h.register(operator=key(7),
                                           fee_coin=change)),
                         "bad-registration")

    def test_mempool_refuses_second_pending(self) -> None:
        """
        A second registration of the same operator while the first is in
        the mempool is refused (both could not go into a block).
        """
        h = RegistrationHarness()
        from timecoin.finality import Finality
        engine = Finality(h.chain, h.mempool, None, h.clock)
        result_of(engine.submit(h.register()))
        second = h.register(fee_coin=h.funding(0))
        failure = self.failureResultOf(engine.submit(second), TxInvalid)
        self.assertEqual(failure.value.reason, "bad-registration")

    def test_revert_and_reload(self) -> None:
        """
        Reverting the registering block removes the masternode exactly;
        a chain reloaded from the store has the same registry, snapshots
        and utxo_hash.
        """
        h = RegistrationHarness()
        before = h.chain.utxo_hash()
        h.mine(h.register())
        registered_hash = h.chain.utxo_hash()
        again = Chain(DEVNET, h.store, h.genesis, RoundRobin(), CountQuorum(),
                      lambda: 2**62)
        result_of(again.load())
        self.assertEqual(again.utxo_hash(), registered_hash)
        self.assertEqual(again.registry, h.chain.registry)
        self.assertEqual(again.snapshot_for(again.height),
                         h.chain.snapshot_for(h.chain.height))
        result_of(h.chain.disconnect_tip())
        self.assertEqual(h.chain.registry, {})
        self.assertEqual(h.chain.utxo_hash(), before)

    def test_wallet_builds_registration(self) -> None:
        """
        The wallet signs a registration for a collateral it owns, paying
        the fee from another coin; without such a coin it refuses.
        """
        h = RegistrationHarness()
        path = self.mktemp()
        import os
        os.makedirs(path)
        with open(os.path.join(path, "wallet.json"), "w") as f:
            json.dump({"keys": [h.payer.seed.hex()]}, f)
        from pathlib import Path
        wallet = Wallet(Path(path) / "wallet.json", "TIME0")
        wallet.load()
        coins = list(h.chain.utxos.items())
        tx = build_registration(wallet, coins, key(5), "127.0.0.5:1",
                                addr(key(5)), h.funding(0), "devnet")
        masternode = h.chain.check_new_registration(tx, h.chain.lookup)
        self.assertEqual(masternode.tier, "silver")
        only_collateral = [c for c in coins if c[0] == h.funding(0)]
        e = self.assertRaises(WalletError, build_registration, wallet,
                              only_collateral, key(5), "x:1", addr(key(5)),
                              h.funding(0), "devnet")
        self.assertEqual(e.code, -6)
