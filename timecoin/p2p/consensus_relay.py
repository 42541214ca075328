"""
Block-consensus messages on the wire, and their relay.

``proposal`` carries a signed L{Proposal} (the block inside, so at most one
block's size); ``block_vote`` carries a signed prevote or precommit.  Both
are deduplicated by id before relay (and a byte-identical repeat by its
line, before parsing: L{timecoin.p2p.caches.LineCache}), handed to the node's
L{timecoin.consensus.BlockConsensus}, and relayed only when it accepted
them (or buffered them for the next height), to at most C{relay_fanout}
peers not known to hold them (L{timecoin.p2p.registry.PeerRegistry.relay}).
Our own go to every peer not known to hold them; their periodic
re-broadcast reaches a peer known to hold one every C{resend_known_after}
seconds only.  Bad
signatures and votes from non-masternodes score the sender as invalid
votes do; equivocations are kept as evidence by the consensus engine and
not relayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from timecoin.consensus import BlockVote, Proposal
from timecoin.p2p.aggregation import Aggregation
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import (
    MAX_BLOCK_ENTRY_BYTES,
    Message,
    _field,
    register,
)

if TYPE_CHECKING:
    from timecoin.node import Node

RELAYED = frozenset({None, "buffered-next-height"})
SCORED = frozenset({"bad-proposal-signature", "bad-vote-signature",
                    "vote-not-masternode", "not-the-proposer",
                    "bad-valid-round"})
UNTIMELY = frozenset({"wrong-height", "round-too-far"})
"""Refusals for now only: the same message may be taken later (a node
catching up, or rounds behind), so it is not kept as seen and a later
copy (a peer's rebroadcast) is handled.  Keeping it seen dropped every
rebroadcast of an equivocator's prevote that a restarted node had got
while catching up, so it never saw the proof of lock of a re-proposal
and the network stalled (the simulator found it: seed 367 of 4 nodes
with 1 Byzantine)."""


@register
@dataclass(frozen=True)
class ProposalMsg(Message):
    """
    A proposer's signed block proposal for (height, round).
    """

    name: ClassVar[str] = "proposal"
    max_bytes: ClassVar[int] = MAX_BLOCK_ENTRY_BYTES + 1024

    proposal: Proposal

    def fields(self) -> dict[str, Any]:
        return {"proposal": self.proposal.to_obj()}

    def encode(self) -> bytes:
        """
        The canonical line, spliced around the block's own (cached)
        encoding rather than re-encoding its transactions: the same bytes
        as C{canonical(self.to_obj())}.
        """
        p = self.proposal
        return (b'{"proposal":{"block":' + p.block.encode()
                + b',"proposer":"' + p.proposer.hex().encode()
                + b'","round":%d,"signature":"' % p.round
                + p.signature.hex().encode()
                + b'","valid_round":%d},"type":"proposal"}' % p.valid_round)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> ProposalMsg:
        return cls(Proposal.from_obj(_field(obj, "proposal")))


@register
@dataclass(frozen=True)
class BlockVoteMsg(Message):
    """
    A masternode's signed prevote or precommit.
    """

    name: ClassVar[str] = "block_vote"
    max_bytes: ClassVar[int] = 1024

    vote: BlockVote

    def fields(self) -> dict[str, Any]:
        return {"vote": self.vote.to_obj()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> BlockVoteMsg:
        return cls(BlockVote.from_obj(_field(obj, "vote")))


class ConsensusRelay:
    """
    Moves consensus messages between the node's engine and its peers.
    """

    def __init__(self, node: Node, peerset: PeerSet, seen_size: int,
                 aggregation: Aggregation | None = None) -> None:
        self.node = node
        self.peerset = peerset
        self.seen = SeenCache(seen_size)
        self.counters: dict[str, int] = {}
        self.aggregation = aggregation
        """Where votes go in a dense mesh (none: every vote to every
        peer)."""
        if aggregation is not None:
            aggregation.route("votes", self.bundled_vote)

    def handlers(self) -> dict[str, Handler]:
        """
        The ready-state messages this relay handles, by type.
        """
        return {"proposal": self.received, "block_vote": self.received}

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def still_seen(self, name: str, item: bytes) -> bool:
        """
        Whether the proposal or vote C{item} is still in the seen-cache
        (a repeat of its line may then be dropped before parsing).
        """
        return item in self.seen

    def line_repeated(self, name: str) -> None:
        """
        A repeated C{name} line was dropped before parsing.
        """
        self._count("duplicate")

    @staticmethod
    def wrap(message: Proposal | BlockVote) -> Message:
        """
        The wire message carrying C{message}.
        """
        if isinstance(message, Proposal):
            return ProposalMsg(message)
        return BlockVoteMsg(message)

    def cast(self, message: Proposal | BlockVote) -> None:
        """
        Our engine signed C{message}, or sends it again (its periodic
        re-broadcast: its own messages of the round, and the prevotes
        proving its valid block): send it to every ready peer not known to
        hold it.  Sent again, it also goes to a peer known to hold it once
        L{P2PSettings.resend_known_after} seconds passed since that was
        last so (a peer may have dropped it as too early while it caught
        up: L{UNTIMELY}).  Where votes are aggregated, a vote still
        awaiting its aggregator's echo, or that reached us or went in our
        bundle since it was last sent again, is skipped once
        (L{Aggregation.skip_rebroadcast}).
        """
        if self.seen.add(message.id):
            self._count("cast")
            if self.aggregation is not None and \
                    isinstance(message, BlockVote):
                self.aggregation.send_own(self.wrap(message), message,
                                          message.height, message.round)
            else:
                self.peerset.relay(self.wrap(message))
            return
        if self.aggregation is not None and \
                isinstance(message, BlockVote) and \
                self.aggregation.skip_rebroadcast(message):
            return
        self._count("recast")
        self.peerset.relay(
            self.wrap(message),
            resend_after=self.peerset.settings.resend_known_after)

    def bundled_vote(self, conn: Connection, vote: BlockVote) -> None:
        """
        A block vote came in an aggregator's bundle: as if it came alone.
        """
        self.received(conn, BlockVoteMsg(vote))

    def received(self, conn: Connection,
                 msg: ProposalMsg | BlockVoteMsg) -> None:
        """
        A peer sent a proposal or vote: check it, then relay it.
        """
        message = msg.proposal if isinstance(msg, ProposalMsg) else msg.vote
        new = self.seen.add(message.id)
        self.peerset.lines.taken(conn, msg.name, self, message.id)
        if not new:
            self._count("duplicate")
            return
        reason = self.node.consensus.receive(message)
        if reason in RELAYED:
            self._count("relayed")
            if isinstance(message, Proposal):
                self.peerset.relay(msg, source=conn,
                                   signer=message.proposer)
            elif self.aggregation is not None:
                self.aggregation.accepted(msg, message, conn, message.voter,
                                          message.height, message.round)
            else:
                self.peerset.relay(msg, source=conn, signer=message.voter)
            return
        self._count(f"refused:{reason}")
        if reason in UNTIMELY:
            self.seen.discard(message.id)
            return
        if reason in SCORED:
            conn.misbehaved("invalid-vote", str(reason))
