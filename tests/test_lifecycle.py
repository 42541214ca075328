"""
Tests for the masternode lifecycle as chain state (L{timecoin.mnstate}):
activation by the operator key, proof of service read from the commit
certificates (set aside, come back), exact reverts and reloads, and the
in-process network where masternodes join, stop and return.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import DEVNET, START, addr, key, result_of
from tests.test_registration import RegistrationHarness
from timecoin import params
from timecoin.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    commit_hash_of,
    merkle_root,
    sign_block,
    sign_block_vote,
)
from timecoin.chain import Chain, TxInvalid
from timecoin.genesis import make_genesis
from timecoin.masternodes import Masternode
from timecoin.mnstate import ACTIVE, REGISTERED, SET_ASIDE
from timecoin.quorum import CountQuorum
from timecoin.rewards import coinbase_outputs
from timecoin.selection import RoundRobin
from timecoin.storage.memory import MemoryStore
from timecoin.tx import Transaction, TxOut

KEYS = [key(10 + i) for i in range(4)]
W = DEVNET.service_window


class FourChain:
    """
    A chain of four genesis masternodes on a memory store, driven block by
    block with chosen certificate signers.
    """

    def __init__(self) -> None:
        self.genesis = make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(1)))],
            [Masternode(k.public, f"10.0.0.{i}:1", addr(k), "free")
             for i, k in enumerate(KEYS)])
        self.store = MemoryStore()
        self.chain = self.load()
        self.blocks: list[tuple[Block, CommitCertificate]] = []

    def load(self) -> Chain:
        chain = Chain(DEVNET, self.store, self.genesis, RoundRobin(),
                      CountQuorum(), lambda: 2**62)
        result_of(chain.load())
        return chain

    def block(self, txs: tuple[Transaction, ...] = ()) -> Block:
        chain = self.chain
        height = chain.height + 1
        producer = chain.expected_producer(height, chain.tip.hash, 0)
        signer = next(k for k in KEYS if k.public == producer)
        commit = chain.tip_commit if height > 1 else None
        fees = sum(sum(chain.utxos[i.prevout].value for i in tx.inputs)
                   - sum(o.value for o in tx.outputs) for tx in txs)
        coinbase = Transaction((), coinbase_outputs(
            chain.snapshot_for(height), DEVNET.block_reward, fees),
            "coinbase", {"height": height})
        all_txs = (coinbase, *txs)
        header = BlockHeader(height, chain.tip.hash,
                             merkle_root([t.txid for t in all_txs]),
                             chain.tip.header.timestamp + 2000, producer, 0,
                             commit_hash_of(commit))
        return sign_block(signer, "devnet", header, all_txs, commit)

    def step(self, signers: list[int],
             txs: tuple[Transaction, ...] = ()) -> Block:
        """
        Connect the next block, committed by the precommits of C{signers}
        (indexes into L{KEYS}); the next block carries that certificate.
        """
        block = self.block(txs)
        votes = tuple(sorted((sign_block_vote(KEYS[i], "devnet", block.height,
                                              0, block.hash)
                              for i in signers), key=lambda v: v.voter))
        cert = CommitCertificate(block.height, 0, block.hash, votes)
        result_of(self.chain.connect_block(block, cert))
        self.blocks.append((block, cert))
        return block

    def state(self, i: int) -> str:
        status = self.chain.mn_status(KEYS[i].public)
        assert status is not None
        return status.state

    def members(self) -> list[bytes]:
        return [m.pubkey for m in
                self.chain.snapshot_for(self.chain.height + 1)]


class ProofOfServiceTests(unittest.TestCase):
    """
    Set aside from the certificates on chain, identically everywhere.
    """

    def test_absent_masternode_set_aside(self) -> None:
        """
        A masternode missing from every certificate is judged only once it
        has been active for a whole window; the block that sees more than
        half of the window missing sets it aside (with its reason) and it
        leaves the snapshot, the weights and the rewards from the next
        height; the status is in utxo_hash.
        """
        f = FourChain()
        for _ in range(W):
            f.step([0, 1, 2])
        self.assertEqual(f.state(3), ACTIVE)
        self.assertIn(KEYS[3].public, f.members())
        before = f.chain.utxo_hash()
        f.step([0, 1, 2])
        self.assertEqual(f.chain.height, W + 1)
        status = f.chain.mn_status(KEYS[3].public)
        assert status is not None
        self.assertEqual((status.state, status.since), (SET_ASIDE, W + 1))
        self.assertIn(f"missed {W} of the last {W}", status.reason)
        self.assertNotIn(KEYS[3].public, f.members())
        self.assertEqual(len(f.members()), 3)
        self.assertNotEqual(f.chain.utxo_hash(), before)
        # Three of three now: the chain goes on with the same signers.
        block = f.step([0, 1, 2])
        self.assertEqual(len(block.txs[0].outputs), 3)

    def test_half_missing_stays(self) -> None:
        """
        Missing exactly the allowed number (half of the window) does not
        set a masternode aside; one more does.
        """
        f = FourChain()
        for height in range(1, 2 * W + 1):
            # Absent from the certificates of the first W/2 heights of the
            # second window only.
            absent = W < height <= W + DEVNET.service_max_missed
            f.step([0, 1, 2] if absent else [0, 1, 2, 3])
        self.assertEqual(f.state(3), ACTIVE)
        f.step([0, 1, 2])
        # Heights W+1 .. W+10 and 2W+1 missing, but the window at 2W+2
        # covers W+2 .. 2W+1: 10 missing.
        self.assertEqual(f.state(3), ACTIVE)

    def test_revert_and_reload_are_exact(self) -> None:
        """
        Reverting the block that set a masternode aside makes it active
        again with the same utxo_hash as before; a chain reloaded from
        the store holds the same statuses, snapshots and signers window,
        and sets aside the same masternode on the next block as the live
        chain.
        """
        f = FourChain()
        for _ in range(W):
            f.step([0, 1, 2])
        before = f.chain.utxo_hash()
        f.step([0, 1, 2])
        after = f.chain.utxo_hash()
        result_of(f.chain.disconnect_tip())
        self.assertEqual(f.state(3), ACTIVE)
        self.assertEqual(f.chain.utxo_hash(), before)
        block, cert = f.blocks[-1]
        result_of(f.chain.connect_block(block, cert))
        self.assertEqual(f.chain.utxo_hash(), after)
        again = f.load()
        self.assertEqual(again.utxo_hash(), after)
        self.assertEqual(again.status, f.chain.status)
        self.assertEqual(again.snapshot_for(again.height),
                         f.chain.snapshot_for(f.chain.height))
        self.assertEqual(
            {h: s for h, s in f.chain.signers.items() if h >= W + 1 - W},
            {h: s for h, s in again.signers.items()})

    def test_other_node_agrees(self) -> None:
        """
        A second node connecting the same blocks (as sync does) sets aside
        the same masternode at the same height, with the same utxo_hash
        at every height.
        """
        f = FourChain()
        for i in range(W + 3):
            f.step([0, 1, 2] if i % 5 else [0, 1, 2, 3])
        g = FourChain()
        for block, cert in f.blocks:
            result_of(g.chain.connect_block(block, cert))
        self.assertEqual(g.chain.utxo_hash(), f.chain.utxo_hash())
        self.assertEqual(g.chain.status, f.chain.status)


class ActivationTests(unittest.TestCase):
    """
    Registered, then active through the operator's signed activation.
    """

    def test_activation_admission(self) -> None:
        """
        An activation is refused before the registration is mined, with a
        forged operator signature, naming another state, or while one is
        already waiting; once mined, the masternode is active from the
        next height and another activation is refused as already active.
        """
        h = RegistrationHarness()
        reg = h.register()
        from timecoin.finality import Finality
        engine = Finality(h.chain, h.mempool, h.mn_key, h.clock)
        result_of(engine.submit(reg))

        def refused(tx: Transaction) -> str:
            failure = self.failureResultOf(engine.submit(tx), TxInvalid)
            return str(failure.value)

        early = h.activate(since=0)
        self.assertIn("not a registered masternode", refused(early))
        h.next_block()
        status = h.chain.mn_status(key(5).public)
        assert status is not None
        self.assertEqual(status.state, REGISTERED)
        good = h.activate()
        from timecoin.tx import sign_inputs
        forged = sign_inputs(replace(good, data={**good.data,
                                                 "signature": "00" * 64}),
                             "devnet", [h.payer])
        self.assertIn("bad operator signature", refused(forged))
        self.assertIn("names the state of height 0",
                      refused(h.activate(since=0)))
        result_of(engine.submit(good))
        self.assertIn("already waiting", refused(h.activate()))
        h.next_block()
        self.assertIn(good.txid, [t.txid for t in h.chain.tip.txs])
        self.assertEqual(h.chain.mn_status(key(5).public).since,
                         h.chain.height + 1)
        self.assertIn("already active", refused(h.activate(since=0)))

    def test_duplicate_in_block_changes_nothing(self) -> None:
        """
        Two activations of one masternode in one block (sent from two
        coins) are both valid transactions; only the first activates, and
        the block is valid: a late duplicate can never stall the chain.
        """
        h = RegistrationHarness()
        reg = h.register()
        h.mine(reg)
        from timecoin.tx import OutPoint
        change = OutPoint(reg.txid, 0)
        value = h.chain.utxos[change].value - params.min_fee(0)
        split = h.pay([change], [(addr(h.payer), value // 2),
                                 (addr(h.payer), value - value // 2)])
        h.mine(split)
        first = h.activate(fee_coin=OutPoint(split.txid, 0))
        second = h.activate(fee_coin=OutPoint(split.txid, 1))
        from tests.test_chain import cert_for, rebuild
        block = rebuild(h, [first, second])
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        status = h.chain.mn_status(key(5).public)
        assert status is not None
        self.assertEqual((status.state, status.since),
                         (ACTIVE, h.chain.height + 1))

    def test_come_back_after_min_away(self) -> None:
        """
        A masternode set aside may not come back before min_away blocks;
        from then its activation (naming the height it was set aside at)
        makes it active again.
        """
        f = FourChain()
        for _ in range(W + 1):
            f.step([0, 1, 2])
        status = f.chain.mn_status(KEYS[3].public)
        assert status is not None and status.state == SET_ASIDE
        from timecoin.mnstate import activation_refused
        back = status.since + DEVNET.service_min_away
        self.assertIn(f"may return from height {back}", activation_refused(
            status, status.since, back - 1, f.chain.rules) or "")
        self.assertIsNone(activation_refused(status, status.since, back,
                                             f.chain.rules))

