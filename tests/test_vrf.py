"""
Tests for L{timecoin.vrf}: RFC 9381's test vectors, and proofs that must
not verify.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial import unittest

from timecoin import vrf
from timecoin.keys import PrivateKey

RFC_9381_B3 = [
    # (sk, pk, alpha, pi, beta): Appendix B.3, ECVRF-EDWARDS25519-SHA512-TAI
    # (the secret keys are RFC 8032's first three test keys).
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f"
     "26f8a57ccaed74ee1b190bed1f479d9727d2d0f9b005a6e456a35d4fb0daab12"
     "68a1b0db10836d9826a528ca76567805",
     "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff"
     "66b71dda49d2de59d03450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed593"
     "3bf0864a62558b3ed7f2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926d"
     "a3ef39226bbc355bdc9850112c8f4b02",
     "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb"
     "5e33821bc613efb94db5e5b54c70a848a0bef4553a41befc57663b56373a5031"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf80"
     "96bb474e53895c362d8628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a"
     "2d41b00b05081ed0f58ee5e31b3a970e",
     "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c45"
     "2118fec1219202a0edcf038bb6373241578be7217ba85a2687f7a0310b2df19f"),
]


def vector(i: int) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    return tuple(bytes.fromhex(v) for v in RFC_9381_B3[i])  # type: ignore


class VectorTests(unittest.TestCase):
    """
    The RFC's own examples, byte for byte.
    """

    def test_rfc_9381_examples(self) -> None:
        """
        For each example, the public key, the proof and the output are the
        RFC's, and the proof verifies to that output.
        """
        for i in range(len(RFC_9381_B3)):
            sk, pk, alpha, pi, beta = vector(i)
            self.assertEqual(vrf.public_key(sk), pk)
            self.assertEqual(vrf.prove(sk, alpha), pi)
            self.assertEqual(vrf.proof_to_hash(pi), beta)
            self.assertEqual(vrf.verify(pk, alpha, pi), beta)

    def test_same_key_as_the_masternode_signing_key(self) -> None:
        """
        The VRF public key of an Ed25519 seed is that seed's signing
        public key (RFC 8032 keys).
        """
        sk = vector(0)[0]
        self.assertEqual(vrf.public_key(sk), PrivateKey(sk).public)


class RefusalTests(unittest.TestCase):
    """
    Anything but the one proof of a key on an input is refused.
    """

    def test_every_single_bit_flip_refused(self) -> None:
        """
        Each of the 640 proofs one bit away from a valid one is refused.
        """
        _, pk, alpha, pi, _ = vector(1)
        for bit in range(8 * len(pi)):
            bad = bytearray(pi)
            bad[bit // 8] ^= 1 << (bit % 8)
            with self.assertRaises(vrf.InvalidProof, msg=bit):
                vrf.verify(pk, alpha, bytes(bad))

    def test_other_input_or_key_refused(self) -> None:
        """
        A proof does not verify for another input or another key.
        """
        _, pk, alpha, pi, _ = vector(2)
        other_pk = vector(0)[1]
        self.assertRaises(vrf.InvalidProof, vrf.verify, pk, b"x" + alpha, pi)
        self.assertRaises(vrf.InvalidProof, vrf.verify, other_pk, alpha, pi)

    def test_malformed_refused(self) -> None:
        """
        Wrong lengths, an unreduced s (s + q: the same point arithmetic, a
        second encoding), a key that is no point and a zero proof are
        refused with a reason.
        """
        _, pk, alpha, pi, _ = vector(0)
        self.assertRaises(vrf.InvalidProof, vrf.verify, pk, alpha, pi[:-1])
        self.assertRaises(vrf.InvalidProof, vrf.verify, pk[:31], alpha, pi)
        s = int.from_bytes(pi[48:], "little") + vrf._Q
        unreduced = pi[:48] + s.to_bytes(32, "little")
        with self.assertRaises(vrf.InvalidProof) as caught:
            vrf.verify(pk, alpha, unreduced)
        self.assertIn("range", str(caught.exception))
        self.assertRaises(vrf.InvalidProof, vrf.verify, bytes(32), alpha, pi)
        self.assertRaises(vrf.InvalidProof, vrf.verify, pk, alpha,
                          bytes(vrf.PROOF_BYTES))


class PropertyTests(unittest.TestCase):
    """
    Proofs made here verify, and the output is the key's alone.
    """

    @settings(max_examples=25, deadline=None)
    @given(seed=st.binary(min_size=32, max_size=32),
           alpha=st.binary(max_size=64))
    def test_prove_then_verify(self, seed: bytes, alpha: bytes) -> None:
        """
        A proof verifies to its output; another key's output on the same
        input differs.
        """
        pk = vrf.public_key(seed)
        proof = vrf.prove(seed, alpha)
        beta = vrf.verify(pk, alpha, proof)
        self.assertEqual(len(beta), 64)
        other = bytes(b ^ 1 for b in seed)
        self.assertNotEqual(vrf.proof_to_hash(vrf.prove(other, alpha)), beta)
