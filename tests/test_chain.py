"""
Tests for chain state: full block validation with reason codes, the UTXO
lifecycle across blocks (every spent output removed, every created one
added), exact reverts with undo data, and reloading from the store.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import DEVNET, Harness, addr, key, result_of
from tests.helpers.chain import cert_for, rebuild
from timecoin import params
from timecoin.block import (
    Block,
    CommitCertificate,
    sign_block,
    sign_block_vote,
)
from timecoin.chain import BlockInvalid, Chain
from timecoin.quorum import CountQuorum
from timecoin.selection import RoundRobin
from timecoin.storage import StoreError
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint, Transaction, TxOut


class UtxoLifecycleTests(unittest.TestCase):
    """
    Spent outputs leave the UTXO set, created ones enter it, in memory and
    in the store alike.
    """

    def test_spend_and_create(self) -> None:
        """
        A block spending the genesis output removes it and adds the payment
        and change; memory and store agree; total value grows by exactly the
        block reward.
        """
        h = Harness()
        before = h.chain.total_amount()
        tx = h.pay([h.funding()], [(addr(key(2)), 10 * params.COIN),
                                   (addr(h.payer), 989 * params.COIN)])
        block = rebuild(h, [tx])
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        self.assertNotIn(h.funding(), h.chain.utxos)
        self.assertIn(OutPoint(tx.txid, 0), h.chain.utxos)
        self.assertIn(OutPoint(tx.txid, 1), h.chain.utxos)
        self.assertEqual(h.chain.total_amount(),
                         before + DEVNET.block_reward)
        stored = {k for k, _ in result_of(h.store.load_utxos())}
        self.assertEqual(stored, {op.key() for op in h.chain.utxos})

    def test_no_utxo_divergence_after_many_blocks(self) -> None:
        """
        The seeds' bug: UTXOs never removed.  After a chain of payments the
        UTXO count equals exactly outputs created minus outputs spent.
        """
        h = Harness()
        prev = h.funding()
        value = 1_000 * params.COIN
        for _ in range(10):
            value -= 1 * params.COIN
            tx = h.pay([prev], [(addr(h.payer), value)])
            block = rebuild(h, [tx])
            result_of(h.chain.connect_block(block, cert_for(h, block)))
            prev = OutPoint(tx.txid, 0)
        # genesis output spent 1:1 each block; 10 coinbases added.
        self.assertEqual(len(h.chain.utxos), 1 + 10)
        self.assertEqual(len(result_of(h.store.load_utxos())), 11)

    def test_in_block_chain_of_spends(self) -> None:
        """
        A block may spend an output created earlier in the same block; the
        intermediate output never reaches the store.
        """
        h = Harness()
        t1 = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        t2 = h.pay([OutPoint(t1.txid, 0)],
                   [(addr(h.payer), 998 * params.COIN)])
        block = rebuild(h, [t1, t2])
        change = result_of(h.chain.connect_block(block, cert_for(h, block)))
        self.assertNotIn(OutPoint(t1.txid, 0).key(),
                         [k for k, _ in change.created])
        self.assertIn(OutPoint(t2.txid, 0), h.chain.utxos)


class RevertTests(unittest.TestCase):
    """
    Undo data reverts a block exactly.
    """

    def test_revert_restores_exact_state(self) -> None:
        """
        Connecting then disconnecting blocks restores the UTXO set, its
        hash, the tip and the stored set, block by block.
        """
        h = Harness(funds=[500 * params.COIN, 500 * params.COIN])
        snapshots = [(h.chain.utxo_hash(), dict(h.chain.utxos))]
        prevs = [h.funding(0), h.funding(1)]
        for i in range(3):
            change = (400 - 50 * i) * params.COIN
            tx = h.pay([prevs[i % 2]], [(addr(key(5)), 3 * params.COIN),
                                        (addr(h.payer), change)])
            prevs[i % 2] = OutPoint(tx.txid, 1)
            block = rebuild(h, [tx])
            result_of(h.chain.connect_block(block, cert_for(h, block)))
            snapshots.append((h.chain.utxo_hash(), dict(h.chain.utxos)))
        for expected_hash, expected in reversed(snapshots[:-1]):
            result_of(h.chain.disconnect_tip())
            self.assertEqual(h.chain.utxos, expected)
            self.assertEqual(h.chain.utxo_hash(), expected_hash)
            stored = dict(result_of(h.store.load_utxos()))
            self.assertEqual(stored,
                             {op.key(): e.pack() for op, e in expected.items()})
        self.assertEqual(h.chain.height, 0)
        self.assertFailure(h.chain.disconnect_tip(), StoreError)

    def test_reconnect_after_revert(self) -> None:
        """
        After a revert the same block connects again, to the same hash.
        """
        h = Harness()
        h.next_block()
        h.next_block()
        tip_hash = h.chain.utxo_hash()
        tip = h.chain.tip
        commit = h.chain.tip_commit
        result_of(h.chain.disconnect_tip())
        result_of(h.chain.connect_block(tip, commit))
        self.assertEqual(h.chain.utxo_hash(), tip_hash)


class ValidateOnceTests(unittest.TestCase):
    """
    A block validated against the current tip (consensus checks a
    proposal before voting) is not validated again to connect it.
    """

    def counting(self, h: Harness) -> list[Block]:
        calls: list[Block] = []
        validate = h.chain.validate_block

        def counted(block: Block) -> object:
            calls.append(block)
            return validate(block)

        h.chain.validate_block = counted  # type: ignore[method-assign]
        return calls

    def test_validated_block_connects_without_second_validation(self) -> None:
        """
        validate_block then connect_block of the same block at the same tip
        validates once and connects to the same state as a fresh connect.
        """
        h = Harness()
        tx = h.pay([h.funding()], [(addr(key(2)), 10 * params.COIN),
                                   (addr(h.payer), 989 * params.COIN)])
        block = rebuild(h, [tx])
        calls = self.counting(h)
        h.chain.validate_block(block)
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        self.assertEqual(calls, [block])
        self.assertIn(OutPoint(tx.txid, 0), h.chain.utxos)
        stored = {k for k, _ in result_of(h.store.load_utxos())}
        self.assertEqual(stored, {op.key() for op in h.chain.utxos})

    def test_undo_with_commit_splice(self) -> None:
        """
        Putting the commit into encoded undo data gives the bytes of
        encoding the undo object with that commit.
        """
        from timecoin.chain import BlockUndo
        h = Harness()
        h.next_block()
        commit = h.chain.tip_commit
        assert commit is not None
        for spent in ([], [(b"k" * 36, b"v" * 20), (b"x" * 36, b"y" * 9)]):
            undo = BlockUndo(list(spent), None, [])
            raw = undo.encode()
            undo.commit = commit
            self.assertEqual(BlockUndo.with_commit(raw, commit), undo.encode())
            self.assertEqual(BlockUndo.decode(BlockUndo.with_commit(raw, commit)),
                             undo)

    def test_tip_moved_validates_again(self) -> None:
        """
        A validation made at another tip is not reused: the block is
        validated again (and refused, as it no longer extends the tip).
        """
        h = Harness()
        block = rebuild(h, [])
        h.chain.validate_block(block)
        h.next_block()
        calls = self.counting(h)
        self.assertFailure(h.chain.connect_block(block, cert_for(h, block)),
                           BlockInvalid)
        self.assertEqual(calls, [block])


class ValidationTests(unittest.TestCase):
    """
    Each invalid block is refused with its reason code, and nothing is
    written.
    """

    def assertInvalid(self, h: Harness, block: Block, reason: str,
                      commit: CommitCertificate | None = None) -> None:
        height, utxos = h.chain.height, dict(h.chain.utxos)
        tip = result_of(h.store.tip())
        d = h.chain.connect_block(block, commit)
        failure = self.failureResultOf(d, BlockInvalid)
        self.assertEqual(failure.value.reason, reason, str(failure.value))
        self.assertEqual((h.chain.height, h.chain.utxos), (height, utxos))
        self.assertEqual(result_of(h.store.tip()), tip)

    def test_double_spend_in_block(self) -> None:
        """
        Two transactions spending one output in one block.
        """
        h = Harness()
        t1 = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        t2 = h.pay([h.funding()], [(addr(key(3)), 999 * params.COIN)])
        self.assertInvalid(h, rebuild(h, [t1, t2], coinbase=Transaction(
            (), (TxOut(1, addr(h.mn_key)),), "coinbase", {"height": 1})),
            "bad-tx")

    def test_spend_of_spent_output(self) -> None:
        """
        Spending an output a previous block already spent.
        """
        h = Harness()
        t1 = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        block = rebuild(h, [t1])
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        t2 = h.pay([h.funding()], [(addr(key(3)), 998 * params.COIN)])
        b2 = rebuild(h, [t2], coinbase=Transaction(
            (), (TxOut(1, addr(h.mn_key)),), "coinbase", {"height": 2}))
        self.assertInvalid(h, b2, "bad-tx")

    def test_bad_signature(self) -> None:
        """
        A transaction whose input signature is forged.
        """
        h = Harness()
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        forged = Transaction(
            (replace(tx.inputs[0], signature=key(9).sign(b"x", b"y")),),
            tx.outputs)
        self.assertInvalid(h, rebuild(h, [forged]), "bad-tx")

    def test_pubkey_not_owner(self) -> None:
        """
        A correctly signed input whose pubkey does not own the output.
        """
        h = Harness()
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)],
                   signer=key(4))
        self.assertInvalid(h, rebuild(h, [tx]), "bad-tx")

    def test_coinbase_overpays(self) -> None:
        """
        A coinbase paying more than reward + fees.
        """
        h = Harness()
        cb = Transaction((), (TxOut(DEVNET.block_reward + 1, addr(h.mn_key)),),
                         "coinbase", {"height": 1})
        self.assertInvalid(h, rebuild(h, [], coinbase=cb), "bad-coinbase")

    def test_header_rules(self) -> None:
        """
        Wrong producer, time not after the parent, time in the future,
        wrong height, bad merkle root, and tampered signature.
        """
        h = Harness()
        self.assertInvalid(h, rebuild(h, [], producer=key(5)),
                           "wrong-producer")
        self.assertInvalid(
            h, rebuild(h, [], timestamp=h.chain.tip.header.timestamp),
            "time-too-old")
        self.assertInvalid(
            h, rebuild(h, [], timestamp=int(h.clock.seconds() * 1000)
                       + params.MAX_FUTURE_BLOCK_MS + 1000), "time-too-new")
        self.assertInvalid(h, rebuild(h, [], height=2), "bad-height")
        good = rebuild(h, [])
        bad_root = Block(replace(good.header, merkle_root=b"\x01" * 32),
                         good.signature, good.txs)
        bad_root = sign_block(h.mn_key, "devnet", bad_root.header,
                              bad_root.txs, None)
        self.assertInvalid(h, bad_root, "bad-merkle-root")
        tampered = Block(good.header, bytes(64), good.txs)
        self.assertInvalid(h, tampered, "bad-block-signature")

    def test_commit_required(self) -> None:
        """
        From height 2 a block must carry a valid certificate for its parent;
        one signed by a non-masternode does not count.
        """
        h = Harness()
        b1 = rebuild(h, [])
        result_of(h.chain.connect_block(b1, cert_for(h, b1)))
        self.assertInvalid(h, rebuild(h, [], commit=None), "bad-commit")
        vote = sign_block_vote(key(9), "devnet", 1, 0, b1.hash)
        fake = CommitCertificate(1, 0, b1.hash, (vote,))
        self.assertInvalid(h, rebuild(h, [], commit=fake), "bad-commit")

    def test_oversize_block(self) -> None:
        """
        A block over 2,000,000 bytes is refused before anything else.
        """
        h = Harness(funds=[10 * params.COIN] * 2)
        cb = Transaction((), (TxOut(1, addr(h.mn_key)),) * 40_000,
                         "coinbase", {"height": 1})
        self.assertInvalid(h, rebuild(h, [], coinbase=cb), "block-too-large")


class LoadTests(unittest.TestCase):
    """
    A chain reloaded from its store has the same state; a store of another
    genesis is refused.
    """

    def test_reload(self) -> None:
        """
        Reloading gives the same tip, UTXO hash and tip certificate.
        """
        h = Harness()
        h.next_block()
        h.next_block()
        again = Chain(DEVNET, h.store, h.genesis, RoundRobin(), CountQuorum(),
                      lambda: 0)
        result_of(again.load())
        self.assertEqual(again.tip.hash, h.chain.tip.hash)
        self.assertEqual(again.utxo_hash(), h.chain.utxo_hash())
        self.assertEqual(again.tip_commit, h.chain.tip_commit)

    def test_other_genesis_refused(self) -> None:
        """
        A data dir holding another genesis's chain is refused with a clear
        error rather than mixed.
        """
        h = Harness()
        other = Harness(funds=[5 * params.COIN])
        chain = Chain(DEVNET, h.store, other.genesis, RoundRobin(),
                      CountQuorum(), lambda: 0)
        failure = self.failureResultOf(chain.load(), StoreError)
        self.assertIn("another --datadir", str(failure.value))


class LostReplyStore(MemoryStore):
    """
    A memory store whose next apply_block lands but reports an error, as a
    Redis write does when the connection drops after the script ran.
    """

    lose_next = False

    def apply_block(self, change):
        d = super().apply_block(change)
        if self.lose_next:
            self.lose_next = False
            return d.addCallback(lambda _: (_ for _ in ()).throw(
                StoreError("connection lost")))
        return d


class LostReplyTests(unittest.TestCase):
    """
    A write whose reply was lost does not stall the chain.
    """

    def test_landed_write_is_recognized(self) -> None:
        """
        When apply_block fails but the store's tip is the block, the chain
        moves on to it; when the tip is not the block, the error stands.
        """
        store = LostReplyStore()
        h = Harness(store=store)
        block = rebuild(h, [])
        store.lose_next = True
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        self.assertEqual(h.chain.height, 1)
        self.assertEqual(h.chain.tip.hash, block.hash)
        h.next_block()
        self.assertEqual(h.chain.height, 2)

    def test_failed_write_still_fails(self) -> None:
        """
        A write that did not land keeps failing, and nothing changes.
        """
        class Refusing(MemoryStore):
            refuse = False

            def apply_block(self, change):
                if self.refuse:
                    from twisted.internet import defer
                    return defer.fail(StoreError("down"))
                return super().apply_block(change)

        store = Refusing()
        h = Harness(store=store)
        store.refuse = True
        block = rebuild(h, [])
        self.failureResultOf(h.chain.connect_block(block, cert_for(h, block)),
                             StoreError)
        self.assertEqual(h.chain.height, 0)
