"""
Tests of RPC C{verifychain}: a replay of the stored blocks from genesis
compared with the stored UTXO set, on a devnet L{Node} with a
L{MemoryStore} and a L{Clock}, over HTTP in process (L{StubTreq}).  The
store is corrupted directly to show each kind of damage is reported as
C{ok: false} with a reason, never as an exception.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from twisted.internet import defer

from tests.helpers.rpc import URL, RPCTestBase
from timecoin.block import Block
from timecoin.rpc.errors import RPC_DATABASE_ERROR
from timecoin.rpc.pinned import VERIFY_YIELD_EVERY
from timecoin.storage import StoreError
from timecoin.storage.memory import MemoryStore
from timecoin.tx import OutPoint


class VerifyChainTests(RPCTestBase):
    """
    C{verifychain} on a node whose store the test can reach into.
    """

    @property
    def store(self) -> MemoryStore:
        """
        The node's store, a L{MemoryStore}.
        """
        store = self.node.store
        assert isinstance(store, MemoryStore)
        return store

    def grow(self, blocks: int = 3, payments: int = 2) -> None:
        """
        Produce C{blocks} blocks with C{payments} payments to an external
        address before each.
        """
        for _ in range(blocks):
            for _ in range(payments):
                self.rpc("sendtoaddress", self.external_address(), 1.25)
            self.block()

    def test_ok_after_blocks_and_payments(self) -> None:
        """
        After blocks carrying payments, verifychain answers ok with the
        tip height and equal replayed and stored hashes, both the hash the
        node reports in gettxoutsetinfo.
        """
        self.grow()
        result = self.rpc("verifychain")
        info = self.rpc("gettxoutsetinfo")
        self.assertEqual(result["height"], 3)
        self.assertIs(result["ok"], True)
        self.assertIsNone(result["reason"])
        self.assertEqual(result["utxo_hash_replayed"], info["utxo_hash"])
        self.assertEqual(result["utxo_hash_stored"], info["utxo_hash"])
        self.assertNotIn("failed_height", result)

    def test_ok_at_genesis(self) -> None:
        """
        A chain of the genesis block alone verifies at height 0.
        """
        result = self.rpc("verifychain")
        self.assertEqual((result["height"], result["ok"]), (0, True))

    def test_deleted_utxo(self) -> None:
        """
        An unspent output deleted from the store behind the node's back
        makes ok false with reason utxo-hash-mismatch; the replayed hash is
        still the node's own, the stored one differs.
        """
        self.grow()
        expected = self.rpc("gettxoutsetinfo")["utxo_hash"]
        del self.store.utxos[sorted(self.store.utxos)[0]]
        result = self.rpc("verifychain")
        self.assertIs(result["ok"], False)
        self.assertEqual(result["reason"], "utxo-hash-mismatch")
        self.assertEqual(result["utxo_hash_replayed"], expected)
        self.assertNotEqual(result["utxo_hash_stored"], expected)

    def test_resurrected_output(self) -> None:
        """
        A spent output written back into the stored UTXO set (coins from
        nothing, the bug seen after restarts elsewhere) is caught.
        """
        spent = OutPoint(self.node.genesis.txs[0].txid, 0).key()
        entry = self.store.utxos[spent]
        self.grow(blocks=1)
        self.assertNotIn(spent, self.store.utxos)
        self.store.utxos[spent] = entry
        result = self.rpc("verifychain")
        self.assertEqual((result["ok"], result["reason"]),
                         (False, "utxo-hash-mismatch"))

    def test_invalid_stored_block(self) -> None:
        """
        A stored block replaced by another (valid) block fails validation
        at its height: ok false, failed_height, and the reason code of the
        rule it broke, with the stored hash still reported.
        """
        self.grow()
        at_2 = self.store.heights[2]
        self.store.blocks[at_2] = self.store.blocks[self.store.heights[3]]
        result = self.rpc("verifychain")
        self.assertIs(result["ok"], False)
        self.assertEqual(result["failed_height"], 2)
        self.assertIn("block 2: bad-height", result["reason"])
        self.assertIsNone(result["utxo_hash_replayed"])
        self.assertEqual(result["utxo_hash_stored"],
                         self.rpc("gettxoutsetinfo")["utxo_hash"])

    def test_tampered_block(self) -> None:
        """
        A stored block whose payment was inflated by one unit after
        signing fails with a block-level reason (its merkle root no longer
        matches).
        """
        self.grow()
        block = Block.decode(self.store.blocks[self.store.heights[2]])
        tx = block.txs[1]
        paid = tx.outputs[0]
        forged = replace(tx, outputs=(replace(paid, value=paid.value + 1),
                                      *tx.outputs[1:]))
        tampered = replace(block, txs=(block.txs[0], forged, *block.txs[2:]))
        self.store.blocks[self.store.heights[2]] = tampered.encode()
        result = self.rpc("verifychain")
        self.assertIs(result["ok"], False)
        self.assertEqual(result["failed_height"], 2)
        self.assertIn("bad-merkle-root", result["reason"])

    def test_missing_data(self) -> None:
        """
        Missing undo data, a missing block and undecodable block bytes are
        each reported with the height at which the replay stopped.
        """
        self.grow()
        heights = self.store.heights
        saved = self.store.undo.pop(heights[2])
        result = self.rpc("verifychain")
        self.assertEqual((result["ok"], result["failed_height"]), (False, 2))
        self.assertIn("undo data", result["reason"])
        self.store.undo[heights[2]] = saved
        saved = self.store.blocks.pop(heights[3])
        result = self.rpc("verifychain")
        self.assertEqual((result["ok"], result["failed_height"]), (False, 3))
        self.assertIn("not stored", result["reason"])
        self.store.blocks[heights[3]] = b"\x00garbage"
        result = self.rpc("verifychain")
        self.assertEqual((result["ok"], result["failed_height"]), (False, 3))
        self.assertIn("unreadable", result["reason"])
        self.store.blocks[heights[3]] = saved
        self.assertIs(self.rpc("verifychain")["ok"], True)

    def test_store_error(self) -> None:
        """
        A store that cannot be read is an RPC error -20, not a verdict on
        the chain.
        """
        self.grow(blocks=1, payments=0)

        def down(height: int) -> defer.Deferred[Any]:
            return defer.fail(StoreError("Redis is not connected"))

        self.store.get_block_hash = down  # type: ignore[method-assign]
        error = self.rpc_error("verifychain")
        self.assertEqual(error.code, RPC_DATABASE_ERROR)
        self.assertIn("Redis is not connected", error.message)

    def test_long_chain_yields_and_pins(self) -> None:
        """
        On a chain longer than VERIFY_YIELD_EVERY blocks the replay waits
        for the reactor between stretches; a block connected meanwhile
        does not disturb it: the result is ok at the height it started
        from.
        """
        for _ in range(VERIFY_YIELD_EVERY + 6):
            self.block()
        start_height = self.node.chain.height
        d = self.stub.post(URL, headers={"Authorization": self.auth},
                           data=json.dumps({"method": "verifychain",
                                            "id": 1}).encode())
        self.stub.flush()
        self.assertNoResult(d)
        self.block()
        result = self.finish(d)
        self.assertEqual(result["height"], start_height)
        self.assertIs(result["ok"], True)
        self.assertEqual(self.node.chain.height, start_height + 1)

    def finish(self, d: defer.Deferred[Any]) -> Any:
        """
        Let reactor turns pass (time standing still) until the HTTP
        request C{d} is answered; return the result of its reply.
        """
        for _ in range(10):
            self.clock.advance(0)
            self.stub.flush()
        response = self.successResultOf(d)
        reply = json.loads(self.successResultOf(self.stub.content(response)))
        return reply["result"]

    def test_help(self) -> None:
        """
        help verifychain documents that it may take long.
        """
        text = self.rpc("help", "verifychain")
        self.assertTrue(text.startswith("verifychain\n"))
        self.assertIn("takes about as long", text)
