"""
The Byzantine masternodes' hostile behaviour: L{Adversary}, on top of a
node's honest code, signing with its key and sending through its own
connections (the behaviours' names are in L{plan}, which draws them).

Imports L{world}, L{network}, L{plan} and L{hosts} from the rest of the
simulator.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from twisted.internet.task import Clock

from timecoin.block import sign_block
from timecoin.consensus import (
    NIL,
    PRECOMMIT,
    PREVOTE,
    BlockVote,
    Proposal,
    sign_proposal,
    sign_vote,
)
from timecoin.finality import APPROVE, TxVote, TxVoteBatch, sign_tx_vote
from timecoin.node import Node
from timecoin.p2p.aggregation import VoteBundleMsg
from timecoin.p2p.consensus_relay import BlockVoteMsg, ProposalMsg
from timecoin.p2p.messages import (
    MAX_PEERS_PER_REPLY,
    GetPeers,
    GetTip,
    Hello,
    Message,
    Peers,
    Tip,
    TxMsg,
    TxVoteMsg,
)
from timecoin.p2p.service import P2PService
from timecoin.testing.simulation.hosts import SimNode
from timecoin.testing.simulation.network import SimNetwork
from timecoin.testing.simulation.world import PORT
from timecoin.tx import Transaction

__all__ = ["HEIGHT_LIE", "Adversary"]

HEIGHT_LIE = 1_000_000
"""How many blocks more than it has a C{height-liar} claims."""


class Adversary:
    """
    The extra, hostile behaviour of one Byzantine masternode, on top of the
    node's honest code.  It signs with the node's own key and sends through
    the node's own connections (so the link faults apply to it too).

    Behaviours (any subset):
    - C{equivocate}: as proposer, sign a second block for the same round
      and send each to half of the peers.
    - C{double-vote}: send a conflicting prevote/precommit to half of the
      peers; approve both transactions of every double spend.
    - C{forge}: send votes and proposals with bad signatures, in others'
      names too.
    - C{replay}: re-send old proposals and votes (its own and others').
    - C{spam}: bursts of valid-looking votes for unknown transactions and
      duplicates.
    - C{silent}: withhold most of its own proposals and votes; as a vote
      aggregator (a dense mesh: L{timecoin.p2p.aggregation}), send each
      signer its own votes back and nobody anything else, so no signer
      sees reason to send its vote to everyone.
    - C{height-liar}: its C{hello} and C{tip} claim L{HEIGHT_LIE} more
      blocks than it has; it never answers C{get_blocks}.
    - C{non-reader}: for spells of 10-40 s it reads nothing peers send
      (L{SimNetwork.deaf}): their output to it piles up in their
      transports until they drop it.
    - C{address-poisoner}: answers C{get_peers} with a full reply of
      unreachable addresses (10.99.x.y).  It does not push them
      unasked: an unsolicited C{peers} is an offence.
    - C{reach-liar}: in a dense mesh, says it reaches every masternode
      (L{timecoin.p2p.reach}) and sends its own proposals and votes to
      half of its peers, so that nobody relays them to the other half.
    """

    def __init__(self, host: SimNode, behaviours: frozenset[str],
                 rng: random.Random, clock: Clock, masternodes: list[bytes],
                 net: SimNetwork | None = None) -> None:
        self.host = host
        self.net = net
        self._deaf: tuple[Any, list[Any]] | None = None
        self.behaviours = behaviours
        self.rng = rng
        self.clock = clock
        self.masternodes = masternodes
        self.counters: Counter[str] = Counter()
        self.bank: deque[Message] = deque(maxlen=300)
        self.twins: dict[tuple[int, int], bytes] = {}
        self._call: Any = None

    def attach(self) -> None:
        """
        Take over the node's consensus outbox; start the periodic mischief.
        """
        node, service = self.host.node, self.host.service
        assert node is not None and service is not None
        cast = service.consensus.cast
        outbox = node.consensus.outbox
        outbox.replace(cast, self.cast)
        if "height-liar" in self.behaviours:
            self._lie(service)
        if "address-poisoner" in self.behaviours:
            vars(service.manager)["_serve_peers"] = self._poison
        if "silent" in self.behaviours:
            vars(service.gossip.aggregation)["flush"] = self._echo_only
        if "reach-liar" in self.behaviours:
            vars(service.gossip.reach)["reaches"] = \
                service.manager.peers.dense
        self._schedule()

    def _echo_only(self) -> None:
        """
        As an aggregator: each signer gets a bundle of its own votes, and
        nobody gets anyone else's.
        """
        service = self.host.service
        assert service is not None
        pending = service.gossip.aggregation.take()
        for conn in self._peers():
            pubkey = conn.hello.pubkey if conn.hello is not None else None
            mine = [item for item in pending if item.voter == pubkey]
            if mine:
                self.counters["echo-only-bundles"] += 1
                conn.send(VoteBundleMsg(
                    tuple(i for i in mine if isinstance(i, BlockVote)),
                    tuple(i for i in mine if isinstance(i, TxVoteBatch))))

    def _lie(self, service: P2PService) -> None:
        """
        Patch this node's own service (only): claim a far height in
        C{hello} and C{tip}, never serve C{get_blocks}.
        """
        manager, counters = service.manager, self.counters
        honest_hello = manager.local_hello

        def hello() -> Hello:
            counters["lied-hellos"] += 1
            mine = honest_hello()
            return replace(mine, height=mine.height + HEIGHT_LIE)

        def tip(conn: Any, msg: GetTip) -> None:
            counters["lied-tips"] += 1
            chain = service.node.chain
            conn.send(Tip(msg.id, chain.height + HEIGHT_LIE, chain.tip.hash))

        def blocks(conn: Any, msg: Any) -> None:
            counters["unanswered-get-blocks"] += 1

        # Instance attributes: the routes and the handshake look these
        # up by name on this service's objects (no other node's).
        vars(manager).update(local_hello=hello, _serve_tip=tip)
        vars(service.sync.server)["serve_blocks"] = blocks

    def _poison(self, conn: Any, msg: GetPeers) -> None:
        rng = self.rng
        bogus = tuple(f"10.99.{rng.randrange(256)}.{rng.randrange(1, 255)}:"
                      f"{PORT}" for _ in range(MAX_PEERS_PER_REPLY))
        conn.send(Peers(msg.id, bogus))
        self.counters["poisoned-replies"] += 1
        self.counters["poisoned-addresses"] += len(bogus)

    def _deafen(self) -> None:
        """
        Start a spell of reading nothing; it ends by itself.
        """
        assert self.net is not None
        self.net.deaf.add(self.host.ip)
        links = self.net.connections(self.host.ip)
        call = self.clock.callLater(self.rng.uniform(10, 40), self._hear)
        self._deaf = (call, links)
        self.counters["deaf-spells"] += 1

    def _hear(self) -> None:
        """
        End a spell: count what piled up for it and the connections
        peers dropped meanwhile, and read again.
        """
        if self._deaf is None or self.net is None:
            return
        call, links = self._deaf
        self._deaf = None
        if call.active():
            call.cancel()
        ip = self.host.ip
        unread = sum(sum(map(len, (link.client if link.server_ip == ip
                                   else link.server).stream))
                     for link in self.net.connections(ip))
        self.counters["unread-bytes-max"] = max(
            self.counters["unread-bytes-max"], unread)
        self.counters["dropped-while-deaf"] += sum(
            1 for link in links if link not in self.net.links)
        self.net.deaf.discard(ip)

    def _schedule(self) -> None:
        self._call = self.clock.callLater(self.rng.uniform(0.5, 3.0),
                                          self.tick)

    def stop(self) -> None:
        """
        Stop the periodic mischief.
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._hear()

    def _peers(self) -> list[Any]:
        service = self.host.service
        return [] if service is None else list(service.manager.peers.ready.values())

    def _send(self, message: Message, peers: Iterable[Any] | None = None,
              bank: bool = True) -> None:
        for conn in self._peers() if peers is None else peers:
            conn.send(message)
        if bank:
            self.bank.append(message)

    def _halves(self) -> tuple[list[Any], list[Any]]:
        peers = self._peers()
        self.rng.shuffle(peers)
        return peers[::2], peers[1::2]

    def cast(self, message: Proposal | BlockVote) -> None:
        """
        The node signed a proposal or vote: send it, or misbehave with it.
        """
        node = self.host.node
        service = self.host.service
        assert node is not None and service is not None
        service.consensus.seen.add(message.id)
        if "silent" in self.behaviours and self.rng.random() < 0.7:
            self.counters["withheld"] += 1
            return
        wrap = ProposalMsg if isinstance(message, Proposal) else BlockVoteMsg
        network = node.chain.network.name
        signer = message.proposer if isinstance(message, Proposal) \
            else message.voter
        if signer != self.host.key.public:
            # Others' votes re-sent as a proof of lock: pass them on.
            self._send(wrap(message))  # type: ignore[arg-type]
            return
        if isinstance(message, Proposal) and "equivocate" in self.behaviours:
            block = message.block
            header = replace(block.header, timestamp=block.header.timestamp
                             + 1 + self.rng.randrange(500))
            twin_block = sign_block(self.host.key, network, header,
                                    block.txs, block.commit)
            twin = sign_proposal(self.host.key, network, twin_block,
                                 message.round, message.valid_round)
            self.twins[(message.height, message.round)] = twin_block.hash
            a, b = self._halves()
            self._send(wrap(message), a)  # type: ignore[arg-type]
            self._send(ProposalMsg(twin), b)
            self.counters["equivocated"] += 1
            return
        if isinstance(message, BlockVote) and \
                "double-vote" in self.behaviours:
            other = NIL
            if message.block_hash == NIL:
                other = self.twins.get((message.height, message.round),
                                       self.rng.randbytes(32))
            twin_vote = sign_vote(self.host.key, network, message.phase,
                                  message.height, message.round, other)
            a, b = self._halves()
            self._send(wrap(message), a)  # type: ignore[arg-type]
            self._send(BlockVoteMsg(twin_vote), b)
            self.counters["double-voted"] += 1
            return
        if "reach-liar" in self.behaviours and \
                service.manager.peers.dense():
            self.counters["reach-lied"] += 1
            self._send(wrap(message), self._halves()[0])  # type: ignore[arg-type]
            return
        self._send(wrap(message))  # type: ignore[arg-type]

    def double_spend(self, first: Transaction, second: Transaction) -> None:
        """
        The workload made a double spend: approve both halves of it.
        """
        node = self.host.node
        if "double-vote" not in self.behaviours or node is None:
            return
        for tx in (first, second):
            vote = sign_tx_vote(self.host.key, node.chain.network.name,
                                tx.txid, APPROVE, node.chain.height)
            self._send(TxVoteMsg(vote))
        self.counters["double-approved"] += 1

    def tick(self) -> None:
        """
        One round of periodic mischief.
        """
        self._schedule()
        node = self.host.node
        if node is None or not self._peers():
            return
        self._collect(node)
        if "forge" in self.behaviours and self.rng.random() < 0.3:
            self._forge(node)
        if "replay" in self.behaviours and self.bank:
            for _ in range(self.rng.randint(1, 10)):
                old = self.bank[self.rng.randrange(len(self.bank))]
                self._send(old, bank=False)
                self.counters["replayed"] += 1
        if "spam" in self.behaviours:
            self._spam(node)
        if "non-reader" in self.behaviours and self._deaf is None and \
                self.rng.random() < 0.1:
            self._deafen()

    def _collect(self, node: Node) -> None:
        engine = node.consensus
        for proposal in list(engine.proposals.values())[:2]:
            self.bank.append(ProposalMsg(proposal))
        for box in list(engine.votes.values())[:4]:
            for vote in list(box.values())[:2]:
                self.bank.append(BlockVoteMsg(vote))
        for entry in list(node.mempool.entries.values())[:3]:
            for held in list(entry.votes.values())[:2]:
                if isinstance(held, TxVote):
                    self.bank.append(TxVoteMsg(held))

    def _forge(self, node: Node) -> None:
        engine = node.consensus
        victim = self.rng.choice(self.masternodes)
        phase = self.rng.choice((PREVOTE, PRECOMMIT))
        fake = BlockVote(phase, engine.height, engine.round,
                         self.rng.randbytes(32), victim,
                         self.rng.randbytes(64))
        self._send(BlockVoteMsg(fake), bank=False)
        txid = self.rng.randbytes(32)
        for entry in list(node.mempool.entries.values())[:1]:
            txid = entry.tx.txid
        self._send(TxVoteMsg(TxVote(txid, APPROVE, node.chain.height,
                                    victim, self.rng.randbytes(64))),
                   bank=False)
        for proposal in list(engine.proposals.values())[:1]:
            self._send(ProposalMsg(replace(
                proposal, signature=self.rng.randbytes(64))), bank=False)
        self.counters["forged"] += 1

    def _spam(self, node: Node) -> None:
        network = node.chain.network.name
        for _ in range(self.rng.randint(5, 40)):
            vote = sign_tx_vote(self.host.key, network,
                                self.rng.randbytes(32), APPROVE,
                                node.chain.height)
            self._send(TxVoteMsg(vote), bank=False)
        for entry in list(node.mempool.entries.values())[:5]:
            self._send(TxMsg(entry.tx), bank=False)
        self.counters["spam-bursts"] += 1

