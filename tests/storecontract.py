"""
The L{IChainStore} contract as a test mixin, run against every store.

A store test module subclasses L{ChainStoreContractMixin} together with
C{twisted.trial.unittest.TestCase} and supplies C{make_store}.  The
in-memory store's behaviour is the reference: every test here passes
against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from zope.interface.verify import verifyObject

from timecoin.interfaces import IChainStore
from timecoin.storage import BlockChange, BlockRevert, StoreError
from timecoin.tx import OutPoint, UtxoEntry

if TYPE_CHECKING:
    from twisted.trial.unittest import TestCase as _Base
else:
    _Base = object


@dataclass(frozen=True)
class Snapshot:
    """
    Everything observable in a store for a known set of heights, block
    hashes and txids, to compare a store before and after an operation.
    """

    tip: tuple[int, bytes] | None
    utxos: frozenset[tuple[bytes, bytes]]
    heights: tuple[bytes | None, ...]
    blocks: tuple[bytes | None, ...]
    undo: tuple[bytes | None, ...]
    locations: tuple[tuple[int, bytes] | None, ...]
    records: frozenset[tuple[bytes, bytes]]


class ChangeMaker:
    """
    Builds random but reproducible test data (seeded C{random.Random}) and
    keeps a model of the UTXO set so that every spend is of an unspent
    output and every block has its exact inverse.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.utxos: dict[bytes, bytes] = {}

    def random_bytes(self, n: int) -> bytes:
        """
        C{n} bytes from the seeded generator.
        """
        return self.rng.randbytes(n)

    def entry(self, height: int) -> bytes:
        """
        A packed L{UtxoEntry} created at C{height}.
        """
        return UtxoEntry(
            value=self.rng.randrange(1, 10**12),
            address="tc1" + self.random_bytes(10).hex(),
            height=height,
            coinbase=self.rng.random() < 0.2,
        ).pack()

    def key(self) -> bytes:
        """
        A fresh 36-byte outpoint key.
        """
        return OutPoint(self.random_bytes(32), self.rng.randrange(8)).key()

    def block(self, height: int, prev_hash: bytes, n_created: int = 3,
              n_spent: int = 2, archived: list[bytes] | None = None,
              ) -> tuple[BlockChange, BlockRevert]:
        """
        A block at C{height} after C{prev_hash} spending C{n_spent} outputs
        of the model (as many as exist) and creating C{n_created}, and the
        revert that undoes it.  The model is not updated: call L{applied}
        once the store accepted the block.
        """
        spendable = sorted(self.utxos)
        spent = self.rng.sample(spendable, min(n_spent, len(spendable)))
        txids = [self.random_bytes(32) for _ in range(1 + n_created // 50)]
        created = [
            (OutPoint(txids[i % len(txids)], i).key(), self.entry(height))
            for i in range(n_created)]
        block_hash = self.random_bytes(32)
        change = BlockChange(
            height=height, block_hash=block_hash, prev_hash=prev_hash,
            block=b"block" + self.random_bytes(200),
            undo=b"undo" + self.random_bytes(50),
            spent=spent, created=created, txids=txids,
            archived=list(archived or []))
        revert = BlockRevert(
            height=height, block_hash=block_hash, prev_hash=prev_hash,
            removed=[k for k, _ in created],
            restored=[(k, self.utxos[k]) for k in spent],
            txids=txids)
        return change, revert

    def applied(self, change: BlockChange) -> None:
        """
        Update the model for an accepted C{change}.
        """
        for key in change.spent:
            del self.utxos[key]
        self.utxos.update(change.created)

    def reverted(self, revert: BlockRevert) -> None:
        """
        Update the model for an accepted C{revert}.
        """
        for key in revert.removed:
            del self.utxos[key]
        self.utxos.update(revert.restored)


class ChainStoreContractMixin(_Base):
    """
    The behaviour every L{IChainStore} must show.  Subclasses provide
    L{make_store}.
    """

    seed = 20240601

    def make_store(self) -> defer.Deferred[Any]:
        """
        Fire with a new, empty, opened store; register its cleanup.
        """
        raise NotImplementedError()

    # -- helpers -----------------------------------------------------------

    def maker(self) -> ChangeMaker:
        """
        A L{ChangeMaker} seeded from the class seed and the test name, so
        that every test has its own reproducible data.
        """
        return ChangeMaker(_stable_seed(self.seed, self.id()))

    async def chain(self, store: Any, maker: ChangeMaker, count: int,
                    ) -> list[tuple[BlockChange, BlockRevert]]:
        """
        Apply C{count} blocks from genesis and return them with their
        reverts.
        """
        blocks = []
        prev = maker.random_bytes(32)
        for height in range(count):
            change, revert = maker.block(height, prev)
            await store.apply_block(change)
            maker.applied(change)
            blocks.append((change, revert))
            prev = change.block_hash
        return blocks

    async def snapshot(self, store: Any,
                       blocks: list[BlockChange]) -> Snapshot:
        """
        Capture what C{store} shows about C{blocks} and its whole UTXO set
        and record set.
        """
        utxos = await store.load_utxos()
        self.assertEqual(len(utxos), len(set(utxos)), "duplicate UTXOs")
        heights = []
        for height in range(len(blocks) + 2):
            heights.append(await store.get_block_hash(height))
        stored = [await store.get_block(b.block_hash) for b in blocks]
        undo = [await store.get_undo(b.block_hash) for b in blocks]
        locations = []
        for change in blocks:
            for txid in change.txids:
                locations.append(await store.get_tx_location(txid))
        return Snapshot(
            tip=await store.tip(), utxos=frozenset(utxos),
            heights=tuple(heights), blocks=tuple(stored), undo=tuple(undo),
            locations=tuple(locations),
            records=frozenset(await store.load_tx_records()))

    async def assert_model(self, store: Any, maker: ChangeMaker) -> None:
        """
        Assert the store's UTXO set is exactly the model's.
        """
        utxos = await store.load_utxos()
        self.assertEqual(len(utxos), len(maker.utxos))
        self.assertEqual(dict(utxos), maker.utxos)

    # -- tests -------------------------------------------------------------

    async def test_provides_interface(self) -> None:
        """
        The store provides every method of L{IChainStore}.
        """
        store = await self.make_store()
        self.assertTrue(verifyObject(IChainStore, store))

    async def test_empty_store(self) -> None:
        """
        A new store has no tip, no blocks, no UTXOs and no records.
        """
        store = await self.make_store()
        self.assertIsNone(await store.tip())
        self.assertIsNone(await store.get_block_hash(0))
        self.assertIsNone(await store.get_block(b"\x00" * 32))
        self.assertIsNone(await store.get_undo(b"\x00" * 32))
        self.assertIsNone(await store.get_utxo(b"\x00" * 36))
        self.assertIsNone(await store.get_tx_location(b"\x00" * 32))
        self.assertEqual(list(await store.load_utxos()), [])
        self.assertEqual(list(await store.load_tx_records()), [])

    async def test_meta_roundtrip(self) -> None:
        """
        C{put_meta} stores bytes that C{get_meta} returns; a later put
        replaces them; an unknown key reads as C{None}.
        """
        store = await self.make_store()
        self.assertIsNone(await store.get_meta("network"))
        self.assertIsNone(await store.put_meta("network", b"testnet"))
        self.assertEqual(await store.get_meta("network"), b"testnet")
        await store.put_meta("network", b"\x00\xffmainnet")
        await store.put_meta("empty", b"")
        self.assertEqual(await store.get_meta("network"), b"\x00\xffmainnet")
        self.assertEqual(await store.get_meta("empty"), b"")
        self.assertIsNone(await store.get_meta("other"))

    async def test_signing_state_kept(self) -> None:
        """
        A masternode's consensus signing state (last signed vote and its
        lock) put under its meta key reads back equal, through block
        writes and reverts; a later state replaces it.
        """
        from tests.helpers import key
        from timecoin.consensus import (
            PRECOMMIT,
            SIGNING_STATE_KEY,
            SigningState,
            sign_vote,
        )
        store = await self.make_store()
        vote = sign_vote(key(3), "devnet", PRECOMMIT, 7, 2, b"\x05" * 32)
        state = SigningState(7, 2, 3, vote.block_hash, (2, vote.block_hash),
                             (vote,))
        await store.put_meta(SIGNING_STATE_KEY, state.pack())
        maker = self.maker()
        blocks = await self.chain(store, maker, 3)
        await store.revert_block(blocks[-1][1])
        raw = await store.get_meta(SIGNING_STATE_KEY)
        self.assertEqual(SigningState.unpack(raw), state)
        later = SigningState(8, 0, 1, b"\x06" * 32)
        await store.put_meta(SIGNING_STATE_KEY, later.pack())
        self.assertEqual(SigningState.unpack(
            await store.get_meta(SIGNING_STATE_KEY)), later)

    async def test_apply_genesis_then_block(self) -> None:
        """
        Genesis is accepted at height 0 whatever its C{prev_hash}; block 1
        must name it; the tip follows each apply.
        """
        store = await self.make_store()
        maker = self.maker()
        genesis, _ = maker.block(0, maker.random_bytes(32), n_spent=0)
        self.assertIsNone(await store.apply_block(genesis))
        maker.applied(genesis)
        self.assertEqual(await store.tip(), (0, genesis.block_hash))
        block1, _ = maker.block(1, genesis.block_hash)
        await store.apply_block(block1)
        self.assertEqual(await store.tip(), (1, block1.block_hash))
        self.assertEqual(await store.get_block_hash(0), genesis.block_hash)
        self.assertEqual(await store.get_block_hash(1), block1.block_hash)
        self.assertIsNone(await store.get_block_hash(2))

    async def test_reads_after_apply(self) -> None:
        """
        After applying blocks, every read shows them: block and undo bytes
        by hash, hashes by height, created outputs by key and in
        C{load_utxos}, and each txid's C{(height, hash)}.
        """
        store = await self.make_store()
        maker = self.maker()
        blocks = await self.chain(store, maker, 3)
        for height, (change, _) in enumerate(blocks):
            self.assertEqual(await store.get_block(change.block_hash),
                             change.block)
            self.assertEqual(await store.get_undo(change.block_hash),
                             change.undo)
            self.assertEqual(await store.get_block_hash(height),
                             change.block_hash)
            for txid in change.txids:
                self.assertEqual(await store.get_tx_location(txid),
                                 (height, change.block_hash))
        last = blocks[-1][0]
        for key, value in last.created:
            self.assertEqual(await store.get_utxo(key), value)
        await self.assert_model(store, maker)
        self.assertIsNone(await store.get_tx_location(maker.random_bytes(32)))

    async def test_spent_removed_created_present(self) -> None:
        """
        Applying a block deletes exactly the outpoints it spends and adds
        exactly those it creates.
        """
        store = await self.make_store()
        maker = self.maker()
        await self.chain(store, maker, 2)
        before = dict(await store.load_utxos())
        tip = await store.tip()
        change, _ = maker.block(2, tip[1], n_created=4, n_spent=3)
        self.assertEqual(len(change.spent), 3)
        await store.apply_block(change)
        for key in change.spent:
            self.assertIsNone(await store.get_utxo(key))
        for key, value in change.created:
            self.assertEqual(await store.get_utxo(key), value)
        expected = {k: v for k, v in before.items() if k not in change.spent}
        expected.update(change.created)
        self.assertEqual(dict(await store.load_utxos()), expected)

    async def test_apply_wrong_height_changes_nothing(self) -> None:
        """
        A block whose height is not tip + 1 fails with L{StoreError} and
        leaves UTXOs, tip, heights, blocks, tx index and records as they
        were; the store still accepts the right block afterwards.
        """
        store = await self.make_store()
        maker = self.maker()
        early, _ = maker.block(1, maker.random_bytes(32))
        await self.assertFailure(store.apply_block(early), StoreError)
        self.assertIsNone(await store.tip())
        self.assertIsNone(await store.get_block(early.block_hash))
        self.assertEqual(list(await store.load_utxos()), [])

        blocks = await self.chain(store, maker, 2)
        await store.put_tx_record(b"r" * 32, b"record")
        tip_hash = blocks[-1][0].block_hash
        bad = [maker.block(h, tip_hash, archived=[b"r" * 32])[0]
               for h in (0, 1, 3, 10)]
        changes = [c for c, _ in blocks]
        before = await self.snapshot(store, changes + bad)
        for change in bad:
            await self.assertFailure(store.apply_block(change), StoreError)
            self.assertEqual(await self.snapshot(store, changes + bad),
                             before)
        good, _ = maker.block(2, tip_hash)
        await store.apply_block(good)
        self.assertEqual(await store.tip(), (2, good.block_hash))

    async def test_apply_wrong_prev_hash_changes_nothing(self) -> None:
        """
        A block at the right height whose C{prev_hash} is not the tip hash
        fails with L{StoreError} and changes nothing.
        """
        store = await self.make_store()
        maker = self.maker()
        blocks = await self.chain(store, maker, 2)
        await store.put_tx_record(b"q" * 32, b"record")
        changes = [c for c, _ in blocks]
        bad, _ = maker.block(2, blocks[0][0].block_hash, n_spent=2,
                             archived=[b"q" * 32])
        before = await self.snapshot(store, changes + [bad])
        await self.assertFailure(store.apply_block(bad), StoreError)
        self.assertEqual(await self.snapshot(store, changes + [bad]), before)
        self.assertIsNone(await store.get_block(bad.block_hash))
        self.assertIsNone(await store.get_undo(bad.block_hash))

    async def test_revert_restores_previous_state(self) -> None:
        """
        Reverting the tip restores exactly the UTXO set, tip, heights and
        tx index from before it was applied; its block and undo bytes stay
        retrievable by hash.
        """
        store = await self.make_store()
        maker = self.maker()
        blocks = await self.chain(store, maker, 3)
        changes = [c for c, _ in blocks]
        tip_hash = changes[-1].block_hash
        change, revert = maker.block(3, tip_hash, n_created=6, n_spent=4)
        before = await self.snapshot(store, changes)
        await store.apply_block(change)
        self.assertNotEqual(await self.snapshot(store, changes), before)
        self.assertEqual(await store.get_tx_location(change.txids[0]),
                         (3, change.block_hash))
        self.assertIsNone(await store.revert_block(revert))
        self.assertEqual(await self.snapshot(store, changes), before)
        self.assertEqual(await store.tip(), (2, tip_hash))
        self.assertIsNone(await store.get_block_hash(3))
        for txid in change.txids:
            self.assertIsNone(await store.get_tx_location(txid))
        self.assertEqual(await store.get_block(change.block_hash),
                         change.block)
        self.assertEqual(await store.get_undo(change.block_hash), change.undo)

    async def test_revert_chain_to_genesis(self) -> None:
        """
        Reverting blocks one by one down to genesis gives back each
        earlier state in turn.
        """
        store = await self.make_store()
        maker = self.maker()
        states = []
        prev = maker.random_bytes(32)
        blocks = []
        for height in range(4):
            change, revert = maker.block(height, prev)
            await store.apply_block(change)
            blocks.append((change, revert))
            states.append(frozenset(await store.load_utxos()))
            maker.applied(change)
            prev = change.block_hash
        for height in range(3, 0, -1):
            await store.revert_block(blocks[height][1])
            self.assertEqual(await store.tip(),
                             (height - 1, blocks[height - 1][0].block_hash))
            self.assertEqual(frozenset(await store.load_utxos()),
                             states[height - 1])

    async def test_revert_non_tip_changes_nothing(self) -> None:
        """
        Reverting a block that is not the tip (an older block, or the tip
        height with another hash) fails with L{StoreError} and changes
        nothing.
        """
        store = await self.make_store()
        maker = self.maker()
        blocks = await self.chain(store, maker, 3)
        changes = [c for c, _ in blocks]
        before = await self.snapshot(store, changes)
        await self.assertFailure(store.revert_block(blocks[1][1]), StoreError)
        self.assertEqual(await self.snapshot(store, changes), before)
        tip_change, tip_revert = blocks[2]
        wrong = BlockRevert(
            height=2, block_hash=maker.random_bytes(32),
            prev_hash=tip_revert.prev_hash, removed=tip_revert.removed,
            restored=tip_revert.restored, txids=tip_revert.txids)
        await self.assertFailure(store.revert_block(wrong), StoreError)
        self.assertEqual(await self.snapshot(store, changes), before)
        above = BlockRevert(height=3, block_hash=tip_change.block_hash,
                            prev_hash=tip_change.block_hash)
        await self.assertFailure(store.revert_block(above), StoreError)
        self.assertEqual(await self.snapshot(store, changes), before)
        bad_parent = BlockRevert(
            height=2, block_hash=tip_change.block_hash,
            prev_hash=maker.random_bytes(32), removed=tip_revert.removed,
            restored=tip_revert.restored, txids=tip_revert.txids)
        await self.assertFailure(store.revert_block(bad_parent), StoreError)
        self.assertEqual(await self.snapshot(store, changes), before)

    async def test_revert_genesis_fails(self) -> None:
        """
        The genesis block cannot be reverted, even as the tip; an empty
        store has nothing to revert.
        """
        store = await self.make_store()
        maker = self.maker()
        genesis, revert = maker.block(0, maker.random_bytes(32))
        await self.assertFailure(store.revert_block(revert), StoreError)
        self.assertIsNone(await store.tip())
        await store.apply_block(genesis)
        before = await self.snapshot(store, [genesis])
        await self.assertFailure(store.revert_block(revert), StoreError)
        self.assertEqual(await self.snapshot(store, [genesis]), before)

    async def test_tx_records(self) -> None:
        """
        Finality records are stored, replaced, read, listed and deleted by
        txid; deleting an absent record is not an error.
        """
        store = await self.make_store()
        self.assertIsNone(await store.put_tx_record(b"a" * 32, b"pending"))
        await store.put_tx_record(b"b" * 32, b"finalized")
        await store.put_tx_record(b"a" * 32, b"finalized too")
        self.assertEqual(
            sorted(await store.load_tx_records()),
            [(b"a" * 32, b"finalized too"), (b"b" * 32, b"finalized")])
        self.assertEqual(await store.get_tx_record(b"a" * 32),
                         b"finalized too")
        self.assertIsNone(await store.get_tx_record(b"c" * 32))
        self.assertIsNone(await store.delete_tx_record(b"a" * 32))
        await store.delete_tx_record(b"c" * 32)
        self.assertEqual(list(await store.load_tx_records()),
                         [(b"b" * 32, b"finalized")])

    async def test_apply_archives_tx_records(self) -> None:
        """
        A block deletes the records of the txids it archives, leaves the
        others, and ignores archived txids that have no record.
        """
        store = await self.make_store()
        maker = self.maker()
        for name in (b"x", b"y", b"z"):
            await store.put_tx_record(name * 32, b"rec-" + name)
        genesis, _ = maker.block(
            0, maker.random_bytes(32),
            archived=[b"x" * 32, b"z" * 32, b"w" * 32])
        await store.apply_block(genesis)
        self.assertEqual(list(await store.load_tx_records()),
                         [(b"y" * 32, b"rec-y")])

    async def test_many_utxos(self) -> None:
        """
        A block creating 5,000 outputs, one spending all of them, and the
        revert restoring them all, each round-trip exactly.
        """
        store = await self.make_store()
        maker = self.maker()
        genesis, _ = maker.block(0, maker.random_bytes(32), n_created=5000)
        await store.apply_block(genesis)
        maker.applied(genesis)
        await self.assert_model(store, maker)
        spend_all, revert = maker.block(1, genesis.block_hash,
                                        n_created=10, n_spent=5000)
        self.assertEqual(len(spend_all.spent), 5000)
        await store.apply_block(spend_all)
        maker.applied(spend_all)
        await self.assert_model(store, maker)
        self.assertEqual(len(maker.utxos), 10)
        await store.revert_block(revert)
        maker.reverted(revert)
        await self.assert_model(store, maker)
        self.assertEqual(len(maker.utxos), 5000)

    async def test_apply_revert_apply_other(self) -> None:
        """
        After reverting the tip, a different block at the same height is
        accepted: it becomes the tip and owns the height and UTXO changes;
        the replaced block's txids leave the index but its bytes remain.
        """
        store = await self.make_store()
        maker = self.maker()
        blocks = await self.chain(store, maker, 2)
        prev = blocks[-1][0].block_hash
        first, revert = maker.block(2, prev)
        await store.apply_block(first)
        await store.revert_block(revert)
        second, _ = maker.block(2, prev, n_created=5, n_spent=2)
        await store.apply_block(second)
        maker.applied(second)
        self.assertEqual(await store.tip(), (2, second.block_hash))
        self.assertEqual(await store.get_block_hash(2), second.block_hash)
        await self.assert_model(store, maker)
        for txid in first.txids:
            self.assertIsNone(await store.get_tx_location(txid))
        for txid in second.txids:
            self.assertEqual(await store.get_tx_location(txid),
                             (2, second.block_hash))
        self.assertEqual(await store.get_block(first.block_hash), first.block)
        third, _ = maker.block(3, first.block_hash)
        await self.assertFailure(store.apply_block(third), StoreError)


def _stable_seed(seed: int, name: str) -> int:
    """
    A seed from C{seed} and a test name that does not depend on Python's
    per-process string hashing.
    """
    return random.Random(f"{seed}:{name}").getrandbits(32)
