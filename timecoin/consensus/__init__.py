"""
BFT block consensus: rounds, proposals, prevotes and precommits.

The masternodes of the committee for height h agree on block h with the
round-based protocol of Tendermint ("The latest gossip on BFT consensus",
Buchman, Kwon and Milosevic, 2018, Algorithm 1), with weights: "2f+1" is
the quorum rule's approval threshold over the committee's *total* weight
and "f+1" is more than the complement of it.

- Round r of height h starts at the slot time (the tip's timestamp plus the
  block time) for r = 0, and when round r-1 times out.  Its proposer is the
  selection policy's first candidate for (snapshot, h, previous hash, r).
  It proposes the block it saw a prevote quorum for (its valid value) if
  any, else a new block.
- A masternode prevotes the proposal if it is valid and it is not locked on
  another block (or the proposal carries a prevote quorum from a round at
  or after its lock); otherwise it prevotes nil.  No proposal within the
  propose timeout: prevote nil.
- A prevote quorum for a block locks it and precommits it; a nil quorum,
  or the prevote timeout, precommits nil.
- A precommit quorum for a block commits it: the precommits are its commit
  certificate, carried by the next block.  The precommit timeout starts the
  next round.  Timeouts grow with the round.

Safety (never two committed blocks at one height) holds with less than a
third of the weight Byzantine, whatever the network does; progress needs a
quorum connected.  Signed messages bind (network, height, round, block
hash); duplicates are dropped, conflicting ones from one signer (a proposer
sending two blocks for one round, a voter voting twice) are kept as
evidence.  Committed blocks are final: the chain never reorganizes them.
``docs/consensus.md`` describes the protocol.

What lives where:

  - L{timecoin.consensus.messages}: L{Proposal} and L{BlockVote}, what
    each signs, signing and verification.
  - L{timecoin.consensus.signing}: L{SigningState} and the
    L{SigningRecord <timecoin.consensus.signing.SigningRecord>}: the
    durable record of what this node signed, the may-sign rule, the
    restart point.
  - L{timecoin.consensus.votes}: the votes of a height per (phase, round),
    conflicting votes, tallies (L{VoteBook
    <timecoin.consensus.votes.VoteBook>}); late precommits added to the
    tip's certificate.
  - L{timecoin.consensus.proposals}: the proposals of a height, their
    checks, the validity of their blocks (L{ProposalBook
    <timecoin.consensus.proposals.ProposalBook>}).
  - L{timecoin.consensus.committee}: who proposes and votes at a height,
    with what weight; the quorum thresholds.
  - L{timecoin.consensus.intake}: the height and round checks of received
    messages, the next-height buffer.
  - L{timecoin.consensus.outgoing}: this node's own messages, the outbox
    signal, the re-broadcast, the votes skipped while not synced.
  - L{timecoin.consensus.evidence}: equivocation evidence and offence
    counts.
  - L{timecoin.consensus.timers}: step timeouts, the re-broadcast timer,
    the round watchdog.
  - L{timecoin.consensus.commit}: a decided block's certificate and its
    connect.
  - L{timecoin.consensus.rules}: L{RoundRules
    <timecoin.consensus.rules.RoundRules>}, the rules of the height
    (commit, valid block, round skip, prevote, lock, precommit) and the
    lock and valid block they keep.
  - L{timecoin.consensus.catchup}: L{CatchUp
    <timecoin.consensus.catchup.CatchUp>}, the re-broadcast heartbeat,
    the votes missed while not synced, the round watchdog, the resume
    after sync.
  - L{timecoin.consensus.engine}: L{BlockConsensus}, the round state
    machine, the coordinator of the objects above.

Imports: inside the package, C{messages}, C{evidence}, C{timers} and
C{committee} import nothing of it; C{signing}, C{outgoing} and C{commit}
import C{messages}; C{votes} and C{proposals} import C{messages} and
C{evidence}; C{intake} imports those two; C{rules} imports C{commit},
C{committee}, C{messages}, C{proposals}, C{signing} and C{votes};
C{catchup} imports C{rules} and what it drives; C{engine} imports all of
them.
From outside, only the core (C{block}, C{encoding}, C{keys},
C{masternodes}, C{interfaces}), C{signal} and C{chain}: never finality, mempool,
P2P, RPC or the node.
"""

from timecoin.consensus.engine import BlockConsensus
from timecoin.consensus.messages import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    BlockVote,
    Proposal,
    proposal_signature_ok,
    sign_proposal,
    sign_vote,
    vote_signature_ok,
)
from timecoin.consensus.signing import (
    LOCKED_BLOCK_KEY,
    SIGN_STEPS,
    SIGNING_STATE_KEY,
    SigningState,
)

__all__ = [
    "LOCKED_BLOCK_KEY",
    "NIL",
    "PRECOMMIT",
    "PREVOTE",
    "SIGNING_STATE_KEY",
    "SIGN_STEPS",
    "BlockConsensus",
    "BlockVote",
    "Proposal",
    "SigningState",
    "proposal_signature_ok",
    "sign_proposal",
    "sign_vote",
    "vote_signature_ok",
]
