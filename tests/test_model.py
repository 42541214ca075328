"""
Tests for the pure data model: canonical encoding, keys and signatures,
addresses, transactions, blocks and merkle roots.  Known-answer tests pin
encodings so an accidental format change fails loudly.
"""

from __future__ import annotations

import hashlib

from twisted.trial import unittest

from tests.helpers import addr, key
from timecoin import params
from timecoin.address import (
    AddressError,
    address_of,
    decode_address,
    encode_address,
    is_valid,
)
from timecoin.block import (
    Block,
    BlockHeader,
    block_signature_ok,
    merkle_root,
    sign_block,
)
from timecoin.encoding import (
    ZERO_HASH,
    EncodingError,
    canonical,
    decode,
    sha256,
)
from timecoin.keys import PrivateKey, verify
from timecoin.tx import (
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    UtxoEntry,
    check_shape,
    input_signature_ok,
    sighash,
    sign_inputs,
)


class EncodingTests(unittest.TestCase):
    """
    The canonical encoding.
    """

    def test_sorted_compact(self) -> None:
        """
        Keys are sorted, separators compact, non-ASCII escaped.
        """
        self.assertEqual(canonical({"b": 1, "a": [True, None, "é"]}),
                         b'{"a":[true,null,"\\u00e9"],"b":1}')

    def test_floats_refused(self) -> None:
        """
        Floats are not part of the encoding, on either side.
        """
        self.assertRaises(EncodingError, decode, b'{"a":1.5}')
        self.assertRaises(ValueError, canonical, {"a": float("nan")})

    def test_garbage_refused(self) -> None:
        """
        Non-JSON and non-UTF-8 bytes raise EncodingError.
        """
        self.assertRaises(EncodingError, decode, b"{nope")
        self.assertRaises(EncodingError, decode, b"\xff\xfe")


class KeyTests(unittest.TestCase):
    """
    Ed25519 signing with domain separation.
    """

    def test_accept(self) -> None:
        """
        A signature verifies for its key, domain and message.
        """
        k = key(7)
        sig = k.sign(b"D", b"msg")
        self.assertTrue(verify(k.public, b"D", b"msg", sig))

    def test_reject(self) -> None:
        """
        Another message, domain, key or a flipped bit all fail; malformed
        keys and signatures fail without raising.
        """
        k = key(7)
        sig = k.sign(b"D", b"msg")
        self.assertFalse(verify(k.public, b"D", b"msh", sig))
        self.assertFalse(verify(k.public, b"E", b"msg", sig))
        self.assertFalse(verify(key(8).public, b"D", b"msg", sig))
        flipped = bytes([sig[0] ^ 1]) + sig[1:]
        self.assertFalse(verify(k.public, b"D", b"msg", flipped))
        self.assertFalse(verify(b"short", b"D", b"msg", sig))
        self.assertFalse(verify(k.public, b"D", b"msg", sig[:10]))
        self.assertFalse(verify(b"\xff" * 32, b"D", b"msg", sig))

    def test_rfc8032_vector(self) -> None:
        """
        PyNaCl derives RFC 8032 test vector 1's public key from its seed.
        """
        seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc4"
                             "4449c5697b326919703bac031cae7f60")
        self.assertEqual(PrivateKey(seed).public.hex(),
                         "d75a980182b10ab7d54bfed3c964073a"
                         "0ee172f3daa62325af021a68f707511a")


class AddressTests(unittest.TestCase):
    """
    TIME0/TIME1 Base58Check-style addresses.
    """

    def test_known_answer(self) -> None:
        """
        The address of the RFC 8032 vector-1 key, computed by the SPEC §3
        recipe step by step with hashlib, matches address_of.
        """
        pub = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a"
                            "0ee172f3daa62325af021a68f707511a")
        payload = hashlib.sha256(pub).digest()[:20]
        check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
        import base58
        expected = "TIME1" + base58.b58encode(payload + check).decode()
        self.assertEqual(address_of(pub, "TIME1"), expected)
        self.assertEqual(decode_address(expected), payload)

    def test_pinned(self) -> None:
        """
        A pinned devnet address for a fixed key (format regression).
        """
        self.assertEqual(addr(key(1)), address_of(key(1).public, "TIME0"))
        self.assertEqual(
            address_of(bytes(32), "TIME0"),
            "TIME0" + __import__("base58").b58encode(
                sha256(bytes(32))[:20]
                + sha256(sha256(sha256(bytes(32))[:20]))[:4]).decode())

    def test_rejections(self) -> None:
        """
        Wrong prefix, bad checksum, bad characters and wrong network are
        refused with a reason.
        """
        good = addr(key(1))
        self.assertTrue(is_valid(good, "TIME0"))
        self.assertFalse(is_valid(good, "TIME1"))
        bad_check = good[:-1] + ("2" if good[-1] != "2" else "3")
        self.assertRaises(AddressError, decode_address, bad_check)
        self.assertRaises(AddressError, decode_address, "TIME9" + good[5:])
        self.assertRaises(AddressError, decode_address, good[:10] + "0OIl")
        self.assertRaises(AddressError, decode_address, "")
        self.assertRaises(AddressError, encode_address, b"x", "TIME0")


class TransactionTests(unittest.TestCase):
    """
    Transactions: txid, sighash, signatures, shape checks.
    """

    def make(self) -> Transaction:
        tx = Transaction(
            (TxIn(OutPoint(b"\x11" * 32, 3), key(1).public),),
            (TxOut(5_000, addr(key(2))), TxOut(1_000_000, addr(key(1)))))
        return sign_inputs(tx, "devnet", [key(1)])

    def test_txid_excludes_signatures(self) -> None:
        """
        Signing (or re-signing for another network) keeps the txid: the
        txid covers everything but signatures, so no malleability.
        """
        tx = self.make()
        unsigned = Transaction(
            tuple(TxIn(i.prevout, i.pubkey) for i in tx.inputs), tx.outputs)
        other = sign_inputs(unsigned, "testnet", [key(1)])
        self.assertEqual(tx.txid, unsigned.txid)
        self.assertEqual(tx.txid, other.txid)
        self.assertNotEqual(tx.encode(), other.encode())

    def test_txid_known_answer(self) -> None:
        """
        The txid is SHA-256 of the canonical body (pinned layout).
        """
        tx = self.make()
        body = {
            "version": 1, "kind": "transfer", "data": {},
            "inputs": [{"txid": "11" * 32, "vout": 3,
                        "pubkey": key(1).public.hex()}],
            "outputs": [{"value": 5000, "address": addr(key(2))},
                        {"value": 1000000, "address": addr(key(1))}],
            "lock_time": 0}
        self.assertEqual(tx.txid, hashlib.sha256(
            canonical(body)).digest())

    def test_roundtrip(self) -> None:
        """
        decode(encode(tx)) == tx, and non-canonical bytes are refused.
        """
        tx = self.make()
        self.assertEqual(Transaction.decode(tx.encode()), tx)
        self.assertRaises(EncodingError, Transaction.decode,
                          tx.encode().replace(b",", b", ", 1))

    def test_signature_binding(self) -> None:
        """
        A valid signature verifies; a tampered signature, a signature for
        another input index, and one for another network are all rejected.
        """
        tx = self.make()
        self.assertTrue(input_signature_ok(tx, "devnet", 0))
        self.assertFalse(input_signature_ok(tx, "testnet", 0))
        sig = tx.inputs[0].signature
        tampered = Transaction(
            (TxIn(tx.inputs[0].prevout, tx.inputs[0].pubkey,
                  bytes([sig[0] ^ 0x80]) + sig[1:]),), tx.outputs)
        self.assertFalse(input_signature_ok(tampered, "devnet", 0))
        two = Transaction(
            (TxIn(OutPoint(b"\x11" * 32, 3), key(1).public),
             TxIn(OutPoint(b"\x22" * 32, 0), key(1).public)), tx.outputs)
        signed = sign_inputs(two, "devnet", [key(1), key(1)])
        swapped = Transaction(
            (TxIn(two.inputs[0].prevout, key(1).public,
                  signed.inputs[1].signature),
             TxIn(two.inputs[1].prevout, key(1).public,
                  signed.inputs[0].signature)), two.outputs)
        self.assertFalse(input_signature_ok(swapped, "devnet", 0))
        self.assertFalse(input_signature_ok(swapped, "devnet", 1))
        self.assertNotEqual(sighash("devnet", tx.txid, 0),
                            sighash("devnet", tx.txid, 1))

    def test_shape(self) -> None:
        """
        Dust, zero outputs, duplicate inputs, another network's address
        and an oversize transaction get their reason codes.
        """
        good = self.make()
        self.assertIsNone(check_shape(good, "TIME0"))
        self.assertEqual(check_shape(good, "TIME1"), "bad-address")
        dust = Transaction(good.inputs, (TxOut(545, addr(key(2))),))
        self.assertEqual(check_shape(dust, "TIME0"), "dust-output")
        dup = Transaction(good.inputs * 2, good.outputs)
        self.assertEqual(check_shape(dup, "TIME0"), "duplicate-input")
        self.assertEqual(check_shape(Transaction(good.inputs, ()), "TIME0"),
                         "no-outputs")
        big = Transaction(
            tuple(TxIn(OutPoint(sha256(b"%d" % i), 0), key(1).public,
                       b"\x00" * 64) for i in range(5000)), good.outputs)
        self.assertEqual(check_shape(big, "TIME0"), "tx-too-large")

    def test_utxo_entry_pack(self) -> None:
        """
        UTXO entries pack to a fixed layout and back.
        """
        entry = UtxoEntry(123, addr(key(1)), 7, True)
        self.assertEqual(UtxoEntry.unpack(entry.pack()), entry)
        self.assertEqual(entry.pack()[:8], (123).to_bytes(8, "big"))

    def test_fee_rule(self) -> None:
        """
        The minimum fee is 1,000 units plus 0.1 % of the amount, rounded
        up.
        """
        self.assertEqual(params.min_fee(0), 1_000)
        self.assertEqual(params.min_fee(1_000), 1_001)
        self.assertEqual(params.min_fee(1_001), 1_002)
        self.assertEqual(params.min_fee(150_000_000), 151_000)

    def test_parse_amount(self) -> None:
        """
        TIME amounts parse to units exactly; bad ones raise.
        """
        self.assertEqual(params.parse_amount("1.5"), 150_000_000)
        self.assertEqual(params.parse_amount(0.1), 10_000_000)
        self.assertEqual(params.parse_amount(2), 200_000_000)
        for bad in ("-1", "1.000000001", "abc", True, "nan"):
            self.assertRaises(ValueError, params.parse_amount, bad)


class MerkleTests(unittest.TestCase):
    """
    The merkle root rule of SPEC §3.
    """

    def test_cases(self) -> None:
        """
        Empty is zeros, one leaf is itself, odd levels duplicate the last.
        """
        a, b, c = (sha256(x) for x in (b"a", b"b", b"c"))
        self.assertEqual(merkle_root([]), ZERO_HASH)
        self.assertEqual(merkle_root([a]), a)
        self.assertEqual(merkle_root([a, b]), sha256(a + b))
        self.assertEqual(merkle_root([a, b, c]),
                         sha256(sha256(a + b) + sha256(c + c)))


class BlockTests(unittest.TestCase):
    """
    Blocks: hash, signature, encoding.
    """

    def test_sign_and_roundtrip(self) -> None:
        """
        A signed block verifies, round-trips byte-exact, and its encoding
        equals the generic canonical encoding; a block signed for another
        network does not verify.
        """
        cb = Transaction((), (TxOut(10, addr(key(1))),), "coinbase",
                         {"height": 1})
        header = BlockHeader(1, ZERO_HASH, merkle_root([cb.txid]), 5,
                             key(0).public)
        block = sign_block(key(0), "devnet", header, (cb,), None)
        self.assertTrue(block_signature_ok(block, "devnet"))
        self.assertFalse(block_signature_ok(block, "testnet"))
        self.assertEqual(block.encode(), canonical(block.to_obj()))
        self.assertEqual(Block.decode(block.encode()), block)
        self.assertEqual(block.hash, sha256(canonical(header.to_obj())))
