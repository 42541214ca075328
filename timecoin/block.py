"""
Blocks, their headers, merkle roots and commit certificates.

A block is ``{header, signature, txs, commit}``.  The block hash is the hash
of the canonical header.  The producer signs ``network ‖ block hash``.
``commit`` is the certificate that committed the *previous* block (2/3 of
the masternode weight voting for it); the header binds it through
``commit_hash`` so it cannot be swapped after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timecoin.encoding import (
    ZERO_HASH,
    EncodingError,
    canonical,
    decode,
    hash_obj,
    need_dict,
    need_int,
    need_list,
    sha256,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.tx import Transaction
from timecoin.txcache import parse_tx

BLOCK_VERSION = 1
BLOCK_SIG_DOMAIN = b"TIMECOIN/block"
BLOCK_VOTE_DOMAIN = b"TIMECOIN/block-vote"
MAX_BLOCK_TXS = 100_000
MAX_CERT_VOTES = 10_000


def merkle_root(txids: list[bytes]) -> bytes:
    """
    SHA-256 pair tree over C{txids}; the last hash is duplicated on odd
    levels; the empty tree is 32 zero bytes.
    """
    if not txids:
        return ZERO_HASH
    level = list(txids)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256(level[i] + level[i + 1])
                 for i in range(0, len(level), 2)]
    return level[0]


@dataclass(frozen=True)
class BlockHeader:
    """
    The hashed part of a block.  C{timestamp} is in milliseconds since the
    Unix epoch; C{producer} is the producer's 32-byte public key (empty for
    genesis).
    """

    height: int
    prev_hash: bytes
    merkle_root: bytes
    timestamp: int
    producer: bytes
    round: int = 0
    commit_hash: bytes = ZERO_HASH
    version: int = BLOCK_VERSION

    def to_obj(self) -> dict[str, Any]:
        return {
            "version": self.version, "height": self.height,
            "prev_hash": self.prev_hash.hex(),
            "merkle_root": self.merkle_root.hex(),
            "timestamp": self.timestamp, "producer": self.producer.hex(),
            "round": self.round, "commit_hash": self.commit_hash.hex(),
        }

    @classmethod
    def from_obj(cls, obj: Any) -> BlockHeader:
        need_dict(obj, "header", {"version", "height", "prev_hash",
                                  "merkle_root", "timestamp", "producer",
                                  "round", "commit_hash"})
        producer = unhex(obj["producer"], None, "producer")
        if len(producer) not in (0, 32):
            raise EncodingError("producer must be a 32-byte key")
        return cls(
            height=need_int(obj["height"], "height"),
            prev_hash=unhex(obj["prev_hash"], 32, "prev_hash"),
            merkle_root=unhex(obj["merkle_root"], 32, "merkle_root"),
            timestamp=need_int(obj["timestamp"], "timestamp"),
            producer=producer,
            round=need_int(obj["round"], "round", 0, 1_000_000),
            commit_hash=unhex(obj["commit_hash"], 32, "commit_hash"),
            version=need_int(obj["version"], "version", BLOCK_VERSION,
                             BLOCK_VERSION),
        )

    @property
    def hash(self) -> bytes:
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash_obj(self.to_obj())
            object.__setattr__(self, "_hash", cached)
        return cached


@dataclass(frozen=True)
class Vote:
    """
    One masternode's signed vote for a block at (height, round).
    """

    voter: bytes
    signature: bytes

    def to_obj(self) -> dict[str, Any]:
        return {"voter": self.voter.hex(), "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> Vote:
        need_dict(obj, "vote", {"voter", "signature"})
        return cls(unhex(obj["voter"], 32, "voter"),
                   unhex(obj["signature"], 64, "vote signature"))


def block_vote_message(network: str, height: int, round: int,
                       block_hash: bytes) -> bytes:
    """
    What a masternode signs to vote for C{block_hash} at (height, round).
    """
    return canonical({"network": network, "height": height, "round": round,
                      "block_hash": block_hash.hex()})


def sign_block_vote(key: PrivateKey, network: str, height: int, round: int,
                    block_hash: bytes) -> Vote:
    """
    A signed vote by C{key}.
    """
    msg = block_vote_message(network, height, round, block_hash)
    return Vote(key.public, key.sign(BLOCK_VOTE_DOMAIN, msg))


@dataclass(frozen=True)
class CommitCertificate:
    """
    Votes of masternodes holding at least 2/3 of the snapshot weight for
    one block; sorted by voter so the encoding is canonical.
    """

    height: int
    round: int
    block_hash: bytes
    votes: tuple[Vote, ...]

    def to_obj(self) -> dict[str, Any]:
        return {"height": self.height, "round": self.round,
                "block_hash": self.block_hash.hex(),
                "votes": [v.to_obj() for v in self.votes]}

    @classmethod
    def from_obj(cls, obj: Any) -> CommitCertificate:
        need_dict(obj, "commit", {"height", "round", "block_hash", "votes"})
        votes = tuple(Vote.from_obj(v) for v in need_list(
            obj["votes"], "votes", MAX_CERT_VOTES))
        if [v.voter for v in votes] != sorted({v.voter for v in votes}):
            raise EncodingError("certificate votes must be sorted and unique")
        return cls(need_int(obj["height"], "commit height"),
                   need_int(obj["round"], "commit round", 0, 1_000_000),
                   unhex(obj["block_hash"], 32, "commit block_hash"), votes)

    @property
    def hash(self) -> bytes:
        return hash_obj(self.to_obj())

    def valid_votes(self, network: str) -> list[bytes]:
        """
        The voters whose signatures verify (duplicates already excluded).
        """
        msg = block_vote_message(network, self.height, self.round,
                                 self.block_hash)
        return [v.voter for v in self.votes
                if verify(v.voter, BLOCK_VOTE_DOMAIN, msg, v.signature)]


def commit_hash_of(commit: CommitCertificate | None) -> bytes:
    """
    The header field binding C{commit} (zeros when there is none).
    """
    return ZERO_HASH if commit is None else commit.hash


@dataclass(frozen=True)
class Block:
    """
    A block: header, producer signature, transactions (coinbase first) and
    the commit certificate of the previous block.
    """

    header: BlockHeader
    signature: bytes
    txs: tuple[Transaction, ...]
    commit: CommitCertificate | None = None

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def to_obj(self) -> dict[str, Any]:
        return {"header": self.header.to_obj(),
                "signature": self.signature.hex(),
                "txs": [t.to_obj() for t in self.txs],
                "commit": None if self.commit is None
                else self.commit.to_obj()}

    def encode(self) -> bytes:
        """
        The canonical encoding (what is sized, stored and sent).
        """
        cached = self.__dict__.get("_raw")
        if cached is None:
            header = canonical(self.header.to_obj())
            commit = b"null" if self.commit is None else canonical(
                self.commit.to_obj())
            # Same bytes as canonical(self.to_obj()), built from the cached
            # per-transaction encodings (keys in sorted order).
            cached = (b'{"commit":' + commit + b',"header":' + header
                      + b',"signature":"' + self.signature.hex().encode()
                      + b'","txs":[' + b",".join(t.encode() for t in self.txs)
                      + b"]}")
            object.__setattr__(self, "_raw", cached)
        return cached

    @property
    def size(self) -> int:
        return len(self.encode())

    @classmethod
    def from_obj(cls, obj: Any) -> Block:
        need_dict(obj, "block", {"header", "signature", "txs", "commit"})
        # Most transactions of a block were parsed here before (gossip,
        # the proposal): the cache returns those objects, txid and
        # encoding included.
        txs = tuple(parse_tx(t) for t in need_list(
            obj["txs"], "txs", MAX_BLOCK_TXS))
        commit = None if obj["commit"] is None else \
            CommitCertificate.from_obj(obj["commit"])
        return cls(BlockHeader.from_obj(obj["header"]),
                   unhex(obj["signature"], None, "block signature"),
                   txs, commit)

    @classmethod
    def decode(cls, raw: bytes) -> Block:
        """
        Parse canonical bytes; the bytes must be exactly canonical.
        """
        block = cls.from_obj(decode(raw))
        if block.encode() != raw:
            raise EncodingError("block is not canonically encoded")
        return block


def block_sig_message(network: str, block_hash: bytes) -> bytes:
    return network.encode("ascii") + b"\x00" + block_hash


def sign_block(key: PrivateKey, network: str, header: BlockHeader,
               txs: tuple[Transaction, ...],
               commit: CommitCertificate | None) -> Block:
    """
    A block with C{header}, signed by the producer C{key}.
    """
    sig = key.sign(BLOCK_SIG_DOMAIN, block_sig_message(network, header.hash))
    return Block(header, sig, txs, commit)


def block_signature_ok(block: Block, network: str) -> bool:
    """
    Whether the producer signature verifies against C{header.producer}.
    """
    return verify(block.header.producer, BLOCK_SIG_DOMAIN,
                  block_sig_message(network, block.hash), block.signature)
