"""
Instant finality: masternodes vote on transactions; 2/3 of the snapshot's
weight approving finalizes one, more than 1/3 rejecting (or the vote
timeout) rejects it.  The decision rules are written down in
``docs/finality.md``.

What lives where:

  - L{timecoin.finality.votes}: the vote types (L{TxVote}, L{TxVoteBatch}),
    signing, verification, Merkle batches and the cache of verified
    signatures.
  - L{timecoin.finality.tally}: who votes with what weight, the
    transactions votes are counted for, the checks a received vote passes,
    equivocation evidence.
  - L{timecoin.finality.voter}: this masternode's own decisions, batched
    and signed.
  - L{timecoin.finality.records}: the durable finality records (their
    encodings and writes), released approvals and the certificate index.
  - L{timecoin.finality.recovery}: the restart from those records.
  - L{timecoin.finality.decisions}: finalizing and rejecting a
    transaction (L{Decisions <timecoin.finality.decisions.Decisions>}),
    its vote timeout, the callers waiting for a decision.
  - L{timecoin.finality.engine}: L{Finality}, the coordinator that admits,
    decides and retires transactions.
  - L{timecoin.finality.settings}: L{FinalitySettings}.

The chain learns what is finalized through the C{FinalizedSet}
(L{timecoin.finalized}) it shares with the engine, which this package
fills; the chain never imports this package.

Imports: inside the package, C{settings} and C{votes} import nothing of
it; C{tally} imports those two, C{records} C{votes}; C{voter} and
C{recovery} import the modules above them, C{decisions} those and
C{voter}; C{engine} imports all of them.  From outside, only the core
(C{encoding}, C{keys}, C{tx}, C{block}, C{interfaces}), C{chain},
C{mempool}, C{finalized}, C{logs}, C{signal} and C{txcache}: never P2P,
RPC or the node.
"""

from timecoin.finality.decisions import Finalized
from timecoin.finality.engine import Finality
from timecoin.finality.settings import FinalitySettings
from timecoin.finality.tally import BatchResult
from timecoin.finality.votes import (
    APPROVE,
    MAX_BATCH_VOTES,
    MAX_BRANCH,
    REJECT,
    RELEASED_BLOCKS,
    VOTE_HEIGHT_WINDOW,
    TxVote,
    TxVoteBatch,
    sign_tx_vote,
    sign_tx_votes,
    tx_vote_ok,
    tx_votes_ok,
)

__all__ = [
    "APPROVE",
    "MAX_BATCH_VOTES",
    "MAX_BRANCH",
    "REJECT",
    "RELEASED_BLOCKS",
    "VOTE_HEIGHT_WINDOW",
    "BatchResult",
    "Finality",
    "Finalized",
    "FinalitySettings",
    "TxVote",
    "TxVoteBatch",
    "sign_tx_vote",
    "sign_tx_votes",
    "tx_vote_ok",
    "tx_votes_ok",
]
