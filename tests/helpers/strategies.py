"""
Hypothesis strategies shared by the codec tests: JSON-able objects and
any transaction, block or vote (constructed, not checked: odd strings,
numbers far out of range), for comparing the fast encoders and decoders
with the reference ones.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from timecoin.block import Block, BlockHeader, CommitCertificate, Vote
from timecoin.consensus.messages import PRECOMMIT, PREVOTE, BlockVote
from timecoin.finality.votes import TxVote, TxVoteBatch
from timecoin.tx import KINDS, OutPoint, Transaction, TxIn, TxOut

ints = st.one_of(st.integers(0, 2**32 - 1), st.integers(-2**70, 2**70))
"""Small numbers and numbers beyond 64 bits, either sign."""

text = st.text(max_size=70)
"""Any text: non-ASCII, control characters, DEL, lone surrogates."""

address = st.one_of(
    st.text(alphabet="123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz",
            min_size=1, max_size=40).map(lambda s: "TIME0" + s),
    text)

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(text, inner, max_size=4)),
    max_leaves=12)
"""Nested dicts and lists of str, int, bool and None."""

tx_data = st.one_of(st.just({}), st.dictionaries(text, json_values, max_size=5),
                    st.fixed_dictionaries({"height": st.integers(0, 10**9)}))

hashes = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)


@st.composite
def transactions(draw: Any) -> Transaction:
    """
    Any transaction: every kind, up to 40 inputs and outputs, odd data,
    odd strings, unsigned or oddly sized signatures, numbers far out of
    range (a constructed transaction is not checked).
    """
    inputs = tuple(
        TxIn(OutPoint(draw(hashes), draw(ints)), draw(hashes),
             draw(st.one_of(st.just(b""), signatures,
                            st.binary(max_size=70))))
        for _ in range(draw(st.integers(0, 40))))
    outputs = tuple(TxOut(draw(ints), draw(address))
                    for _ in range(draw(st.integers(0, 40))))
    kind = draw(st.one_of(st.sampled_from(KINDS), text))
    return Transaction(inputs, outputs, kind, draw(tx_data), draw(ints),
                       draw(st.one_of(st.just(1), ints)))


@st.composite
def commits(draw: Any) -> CommitCertificate:
    """
    A commit certificate of up to 8 votes.
    """
    votes = tuple(Vote(draw(hashes), draw(signatures))
                  for _ in range(draw(st.integers(0, 8))))
    return CommitCertificate(draw(ints), draw(ints), draw(hashes), votes)


@st.composite
def blocks(draw: Any) -> Block:
    """
    A block of up to 5 transactions, with or without a commit.
    """
    header = BlockHeader(draw(ints), draw(hashes), draw(hashes), draw(ints),
                         draw(st.one_of(st.just(b""), hashes)), draw(ints),
                         draw(hashes), draw(st.one_of(st.just(1), ints)))
    txs = tuple(draw(st.lists(transactions(), max_size=5)))
    return Block(header, draw(signatures), txs,
                 draw(st.one_of(st.none(), commits())))


@st.composite
def tx_votes(draw: Any) -> TxVote:
    """
    A single transaction vote, with or without a Merkle branch.
    """
    branch = tuple(draw(st.lists(hashes, max_size=16)))
    return TxVote(draw(hashes), draw(st.sampled_from(["approve", "reject"])),
                  draw(ints), draw(hashes), draw(signatures),
                  draw(ints) if branch else 0, branch)


@st.composite
def tx_vote_batches(draw: Any) -> TxVoteBatch:
    """
    A batch of 1 to 60 decisions.
    """
    decisions = tuple(sorted(draw(st.dictionaries(
        hashes, st.sampled_from(["approve", "reject"]), min_size=1,
        max_size=60)).items()))
    return TxVoteBatch(draw(hashes), draw(ints), decisions, draw(signatures))


@st.composite
def block_votes(draw: Any) -> BlockVote:
    """
    A prevote or precommit.
    """
    return BlockVote(draw(st.sampled_from([PREVOTE, PRECOMMIT, "x\u00e9"])),
                     draw(ints), draw(ints), draw(hashes), draw(hashes),
                     draw(signatures))
