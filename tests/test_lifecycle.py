"""
Tests for the masternode lifecycle as chain state (L{timecoin.mnstate}):
activation by the operator key, proof of service read from the commit
certificates (set aside, come back), exact reverts and reloads, and the
in-process network where masternodes join, stop and return.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import DEVNET, START, addr, key, result_of
from tests.helpers.chain import RegistrationHarness
from tests.helpers.clusters import JoiningCluster
from timecoin import params
from timecoin.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    commit_hash_of,
    merkle_root,
    sign_block,
    sign_block_vote,
)
from timecoin.chain import Chain, TxInvalid
from timecoin.genesis import make_genesis
from timecoin.masternodes import Masternode
from timecoin.mnstate import ACTIVE, REGISTERED, SET_ASIDE
from timecoin.quorum import CountQuorum
from timecoin.rewards import coinbase_outputs
from timecoin.selection import RoundRobin
from timecoin.storage.memory import MemoryStore
from timecoin.tx import Transaction, TxOut

KEYS = [key(10 + i) for i in range(4)]
W = DEVNET.service_window


class FourChain:
    """
    A chain of four genesis masternodes on a memory store, driven block by
    block with chosen certificate signers.
    """

    def __init__(self) -> None:
        self.genesis = make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(1)))],
            [Masternode(k.public, f"10.0.0.{i}:1", addr(k), "free")
             for i, k in enumerate(KEYS)])
        self.store = MemoryStore()
        self.chain = self.load()
        self.blocks: list[tuple[Block, CommitCertificate]] = []

    def load(self) -> Chain:
        chain = Chain(DEVNET, self.store, self.genesis, RoundRobin(),
                      CountQuorum(), lambda: 2**62)
        result_of(chain.load())
        return chain

    def block(self, txs: tuple[Transaction, ...] = ()) -> Block:
        chain = self.chain
        height = chain.height + 1
        producer = chain.expected_producer(height, chain.tip.hash, 0)
        signer = next(k for k in KEYS if k.public == producer)
        commit = chain.tip_commit if height > 1 else None
        fees = sum(sum(chain.utxos[i.prevout].value for i in tx.inputs)
                   - sum(o.value for o in tx.outputs) for tx in txs)
        coinbase = Transaction((), coinbase_outputs(
            chain.snapshot_for(height), DEVNET.block_reward, fees),
            "coinbase", {"height": height})
        all_txs = (coinbase, *txs)
        header = BlockHeader(height, chain.tip.hash,
                             merkle_root([t.txid for t in all_txs]),
                             chain.tip.header.timestamp + 2000, producer, 0,
                             commit_hash_of(commit))
        return sign_block(signer, "devnet", header, all_txs, commit)

    def step(self, signers: list[int],
             txs: tuple[Transaction, ...] = ()) -> Block:
        """
        Connect the next block, committed by the precommits of C{signers}
        (indexes into L{KEYS}); the next block carries that certificate.
        """
        block = self.block(txs)
        votes = tuple(sorted((sign_block_vote(KEYS[i], "devnet", block.height,
                                              0, block.hash)
                              for i in signers), key=lambda v: v.voter))
        cert = CommitCertificate(block.height, 0, block.hash, votes)
        result_of(self.chain.connect_block(block, cert))
        self.blocks.append((block, cert))
        return block

    def state(self, i: int) -> str:
        status = self.chain.mn_status(KEYS[i].public)
        assert status is not None
        return status.state

    def members(self) -> list[bytes]:
        return [m.pubkey for m in
                self.chain.snapshot_for(self.chain.height + 1)]


class ProofOfServiceTests(unittest.TestCase):
    """
    Set aside from the certificates on chain, identically everywhere.
    """

    def test_absent_masternode_set_aside(self) -> None:
        """
        A masternode missing from every certificate is judged only once it
        has been active for a whole window; the block that sees more than
        half of the window missing sets it aside (with its reason) and it
        leaves the snapshot, the weights and the rewards from the next
        height; the status is in utxo_hash.
        """
        f = FourChain()
        for _ in range(W):
            f.step([0, 1, 2])
        self.assertEqual(f.state(3), ACTIVE)
        self.assertIn(KEYS[3].public, f.members())
        before = f.chain.utxo_hash()
        f.step([0, 1, 2])
        self.assertEqual(f.chain.height, W + 1)
        status = f.chain.mn_status(KEYS[3].public)
        assert status is not None
        self.assertEqual((status.state, status.since), (SET_ASIDE, W + 1))
        self.assertIn(f"missed {W} of the last {W}", status.reason)
        self.assertNotIn(KEYS[3].public, f.members())
        self.assertEqual(len(f.members()), 3)
        self.assertNotEqual(f.chain.utxo_hash(), before)
        # Three of three now: the chain goes on with the same signers.
        block = f.step([0, 1, 2])
        self.assertEqual(len(block.txs[0].outputs), 3)

    def test_half_missing_stays(self) -> None:
        """
        Missing exactly the allowed number (half of the window) does not
        set a masternode aside; one more does.
        """
        f = FourChain()
        for height in range(1, 2 * W + 1):
            # Absent from the certificates of the first W/2 heights of the
            # second window only.
            absent = W < height <= W + DEVNET.service_max_missed
            f.step([0, 1, 2] if absent else [0, 1, 2, 3])
        self.assertEqual(f.state(3), ACTIVE)
        f.step([0, 1, 2])
        # Heights W+1 .. W+10 and 2W+1 missing, but the window at 2W+2
        # covers W+2 .. 2W+1: 10 missing.
        self.assertEqual(f.state(3), ACTIVE)

    def test_revert_and_reload_are_exact(self) -> None:
        """
        Reverting the block that set a masternode aside makes it active
        again with the same utxo_hash as before; a chain reloaded from
        the store holds the same statuses, snapshots and signers window,
        and sets aside the same masternode on the next block as the live
        chain.
        """
        f = FourChain()
        for _ in range(W):
            f.step([0, 1, 2])
        before = f.chain.utxo_hash()
        f.step([0, 1, 2])
        after = f.chain.utxo_hash()
        result_of(f.chain.disconnect_tip())
        self.assertEqual(f.state(3), ACTIVE)
        self.assertEqual(f.chain.utxo_hash(), before)
        block, cert = f.blocks[-1]
        result_of(f.chain.connect_block(block, cert))
        self.assertEqual(f.chain.utxo_hash(), after)
        again = f.load()
        self.assertEqual(again.utxo_hash(), after)
        self.assertEqual(again.status, f.chain.status)
        self.assertEqual(again.snapshot_for(again.height),
                         f.chain.snapshot_for(f.chain.height))
        self.assertEqual(
            {h: s for h, s in f.chain.signers.items() if h >= W + 1 - W},
            {h: s for h, s in again.signers.items()})

    def test_other_node_agrees(self) -> None:
        """
        A second node connecting the same blocks (as sync does) sets aside
        the same masternode at the same height, with the same utxo_hash
        at every height.
        """
        f = FourChain()
        for i in range(W + 3):
            f.step([0, 1, 2] if i % 5 else [0, 1, 2, 3])
        g = FourChain()
        for block, cert in f.blocks:
            result_of(g.chain.connect_block(block, cert))
        self.assertEqual(g.chain.utxo_hash(), f.chain.utxo_hash())
        self.assertEqual(g.chain.status, f.chain.status)


class ActivationTests(unittest.TestCase):
    """
    Registered, then active through the operator's signed activation.
    """

    def test_activation_admission(self) -> None:
        """
        An activation is refused before the registration is mined, with a
        forged operator signature, naming another state, or while one is
        already waiting; once mined, the masternode is active from the
        next height and another activation is refused as already active.
        """
        h = RegistrationHarness()
        reg = h.register()
        from timecoin.finality import Finality
        engine = Finality(h.chain, h.mempool, h.mn_key, h.clock)
        result_of(engine.submit(reg))

        def refused(tx: Transaction) -> str:
            failure = self.failureResultOf(engine.submit(tx), TxInvalid)
            return str(failure.value)

        early = h.activate(since=0)
        self.assertIn("not a registered masternode", refused(early))
        h.next_block()
        status = h.chain.mn_status(key(5).public)
        assert status is not None
        self.assertEqual(status.state, REGISTERED)
        good = h.activate()
        from timecoin.tx import sign_inputs
        forged = sign_inputs(replace(good, data={**good.data,
                                                 "signature": "00" * 64}),
                             "devnet", [h.payer])
        self.assertIn("bad operator signature", refused(forged))
        self.assertIn("names the state of height 0",
                      refused(h.activate(since=0)))
        result_of(engine.submit(good))
        self.assertIn("already waiting", refused(h.activate()))
        h.next_block()
        self.assertIn(good.txid, [t.txid for t in h.chain.tip.txs])
        self.assertEqual(h.chain.mn_status(key(5).public).since,
                         h.chain.height + 1)
        self.assertIn("already active", refused(h.activate(since=0)))

    def test_duplicate_in_block_changes_nothing(self) -> None:
        """
        Two activations of one masternode in one block (sent from two
        coins) are both valid transactions; only the first activates, and
        the block is valid: a late duplicate can never stall the chain.
        """
        h = RegistrationHarness()
        reg = h.register()
        h.mine(reg)
        from timecoin.tx import OutPoint
        change = OutPoint(reg.txid, 0)
        value = h.chain.utxos[change].value - params.min_fee(0)
        split = h.pay([change], [(addr(h.payer), value // 2),
                                 (addr(h.payer), value - value // 2)])
        h.mine(split)
        first = h.activate(fee_coin=OutPoint(split.txid, 0))
        second = h.activate(fee_coin=OutPoint(split.txid, 1))
        from tests.helpers.chain import cert_for, rebuild
        block = rebuild(h, [first, second])
        result_of(h.chain.connect_block(block, cert_for(h, block)))
        status = h.chain.mn_status(key(5).public)
        assert status is not None
        self.assertEqual((status.state, status.since),
                         (ACTIVE, h.chain.height + 1))

    def test_come_back_after_min_away(self) -> None:
        """
        A masternode set aside may not come back before min_away blocks;
        from then its activation (naming the height it was set aside at)
        makes it active again.
        """
        f = FourChain()
        for _ in range(W + 1):
            f.step([0, 1, 2])
        status = f.chain.mn_status(KEYS[3].public)
        assert status is not None and status.state == SET_ASIDE
        from timecoin.mnstate import activation_refused
        back = status.since + DEVNET.service_min_away
        self.assertIn(f"may return from height {back}", activation_refused(
            status, status.since, back - 1, f.chain.rules) or "")
        self.assertIsNone(activation_refused(status, status.since, back,
                                             f.chain.rules))



class SigningStateTests(unittest.TestCase):
    """
    No double signing across crashes: what a masternode signs and its
    lock are recorded before the message leaves the node.
    """

    def setUp(self) -> None:
        from twisted.internet.task import Clock
        self.f = FourChain()
        self.clock = Clock()
        self.clock.advance(START + 1)
        chain = self.f.chain
        self.proposer = next(k for k in KEYS if k.public ==
                             chain.expected_producer(1, chain.tip.hash, 0))
        self.me = next(k for k in KEYS if k is not self.proposer)

    def consensus(self, store_chain: Chain | None = None):
        """
        Block consensus of C{self.me} on the four-masternode chain, its
        signing state loaded from the store, started; returns it and the
        list its outbox fills.
        """
        from timecoin.consensus import BlockConsensus
        chain = store_chain or self.f.chain
        c = BlockConsensus(chain, self.me, self.clock, 2.0, 2.0,
                           lambda r: self.f.block())
        sent: list = []
        c.outbox.connect(sent.append)
        result_of(c.load_signing_state())
        c.start()
        self.addCleanup(c.stop)
        # Into the round (the slot of height 1 is due).
        self.clock.advance(max(0.0, START + 2 - self.clock.seconds()) + 0.01)
        return c, sent

    def proposal(self):
        from timecoin.consensus import sign_proposal
        return sign_proposal(self.proposer, "devnet", self.f.block(), 0, -1)

    def polka(self, c):
        """
        Show C{c} round 0's proposal and the other three masternodes'
        prevotes for it (a prevote quorum: it precommits and locks);
        returns the proposal.
        """
        from timecoin.consensus import PREVOTE, sign_vote
        proposal = self.proposal()
        c.receive(proposal)
        for k in KEYS:
            if k is not self.me:
                c.receive(sign_vote(k, "devnet", PREVOTE, 1, 0,
                                    proposal.block.hash))
        return proposal

    def test_restart_never_signs_a_second_prevote(self) -> None:
        """
        A node that prevoted a block, restarted, and shown a conflicting
        proposal for the same round (an equivocating proposer) signs
        nothing for it: no second prevote, ever; it keeps its first one
        to send again.
        """
        from timecoin.consensus import PREVOTE, BlockVote
        c, sent = self.consensus()
        first = self.proposal()
        c.receive(first)
        prevotes = [m for m in sent if isinstance(m, BlockVote)
                    and m.phase == PREVOTE]
        self.assertEqual([v.block_hash for v in prevotes],
                         [first.block.hash])
        c.stop()
        again, sent2 = self.consensus()
        self.assertEqual((again.height, again.round), (1, 0))
        # Its prevote is back, to be sent again (it may not sign another).
        self.assertEqual(again._mine, prevotes)
        second = self.proposal()
        other = replace(second.block, header=replace(
            second.block.header, timestamp=second.block.header.timestamp + 7))
        other = sign_block(self.proposer, "devnet", other.header, other.txs,
                           other.commit)
        from timecoin.consensus import sign_proposal
        again.receive(sign_proposal(self.proposer, "devnet", other, 0, -1))
        self.assertEqual([m for m in sent2 if isinstance(m, BlockVote)], [])
        self.assertEqual(again.counters.get("sign-refused"), 1)

    def test_lock_survives_restart(self) -> None:
        """
        A node that saw a prevote quorum precommits and locks the block;
        after a restart it is back in that round, locked on that block,
        and its precommit may be sent again only for that very block.
        """
        from timecoin.consensus import PRECOMMIT, BlockVote
        c, sent = self.consensus()
        proposal = self.polka(c)
        self.assertIn((PRECOMMIT, proposal.block.hash),
                      [(m.phase, m.block_hash) for m in sent
                       if isinstance(m, BlockVote)])
        self.assertEqual(c.locked, (0, proposal.block.hash))
        c.stop()
        again, _ = self.consensus()
        self.assertEqual(again.locked, (0, proposal.block.hash))
        assert again.signed is not None
        self.assertTrue(again.signed.allows(1, 0, 3, proposal.block.hash))
        self.assertFalse(again.signed.allows(1, 0, 3, b"\0" * 32))
        self.assertFalse(again.signed.allows(1, 0, 2, proposal.block.hash))

    def test_restart_sends_every_vote_of_its_height_again(self) -> None:
        """
        A node that prevoted and then precommitted restarts with both
        votes, not only the last: its prevote goes out again (after a
        crash, a peer that missed it would otherwise never see it, and a
        round short of its quorum stalls: the simulator's seeds 818 and
        826).
        """
        from timecoin.consensus import PRECOMMIT, PREVOTE, BlockVote
        c, sent = self.consensus()
        self.polka(c)
        votes = [m for m in sent if isinstance(m, BlockVote)]
        self.assertEqual([v.phase for v in votes], [PREVOTE, PRECOMMIT])
        c.stop()
        again, sent2 = self.consensus()
        self.assertEqual(again._mine, votes)
        self.clock.advance(again.round_timeout + 0.01)
        self.assertEqual([m for m in sent2 if m in votes], votes)

    def test_signing_state_keeps_a_bounded_run_of_votes(self) -> None:
        """
        The signing state keeps the node's votes of one height, newest
        last, at most C{SIGNED_VOTES_KEPT}; a new height starts empty, a
        proposal keeps them; a state written before votes were kept (one
        C{vote}) reads as that vote alone.
        """
        from timecoin.consensus import PRECOMMIT, PREVOTE, SigningState, sign_vote
        from timecoin.consensus.signing import SIGNED_VOTES_KEPT
        from timecoin.encoding import canonical, decode
        state = SigningState(-1, 0, 0, b"")
        votes = [sign_vote(self.me, "devnet", phase, 1, r, b"\x05" * 32)
                 for r in range(6) for phase in (PREVOTE, PRECOMMIT)]
        for vote in votes:
            state = state.then(vote, 2, vote.block_hash, None)
        self.assertEqual(state.votes, tuple(votes[-SIGNED_VOTES_KEPT:]))
        self.assertEqual(SigningState.unpack(state.pack()), state)
        proposal = self.proposal()
        self.assertEqual(state.then(proposal, 1, proposal.block.hash,
                                    None).votes, state.votes)
        later = sign_vote(self.me, "devnet", PREVOTE, 2, 0, b"\x06" * 32)
        self.assertEqual(state.then(later, 2, later.block_hash, None).votes,
                         (later,))
        old = decode(state.pack())
        del old["votes"]
        old["vote"] = votes[-1].to_obj()
        self.assertEqual(SigningState.unpack(canonical(old)).votes,
                         (votes[-1],))

    def test_message_leaves_only_once_recorded(self) -> None:
        """
        A signed vote reaches the outbox only after the store acknowledged
        the signing state; if the write fails it never leaves.
        """
        from twisted.internet import defer

        from timecoin.consensus import SIGNING_STATE_KEY
        writes: list[defer.Deferred[None]] = []
        store = self.f.store
        real = store.put_meta

        def slow(key: str, value: bytes) -> defer.Deferred[None]:
            if key != SIGNING_STATE_KEY:
                return real(key, value)
            d: defer.Deferred[None] = defer.Deferred()
            writes.append(d)
            return d.addCallback(lambda _: real(key, value))

        store.put_meta = slow  # type: ignore[method-assign]
        c, sent = self.consensus()
        c.receive(self.proposal())
        self.assertEqual(len(writes), 1)
        self.assertEqual(sent, [])
        writes[0].callback(None)
        self.assertEqual(len(sent), 1)
        from timecoin.consensus import PREVOTE, sign_vote
        block_hash = sent[0].block_hash
        for k in KEYS:
            if k is not self.me:
                c.receive(sign_vote(k, "devnet", PREVOTE, 1, 0, block_hash))
        self.assertEqual(len(writes), 2)
        writes[1].errback(RuntimeError("disk full"))
        self.assertEqual(len(sent), 1)
        self.assertEqual(c.counters.get("sign-record-failed"), 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_restarted_proposer_proposes_its_locked_block(self) -> None:
        """
        A node locked on a block (it precommitted it) restarts: the block
        comes back from its store as its valid block, and when it
        proposes it proposes that block again, as a new value (valid
        round -1: the prevote quorum behind the lock is gone with the
        restart), which any node locked on it prevotes.
        """
        from timecoin.consensus import Proposal
        c, _ = self.consensus()
        proposal = self.polka(c)
        self.assertEqual(c.locked, (0, proposal.block.hash))
        c.stop()
        again, sent = self.consensus()
        assert again.valid is not None
        self.assertEqual(again.valid[1].hash, proposal.block.hash)
        again._propose(again.round + 1)
        mine = [m for m in sent if isinstance(m, Proposal)]
        self.assertEqual([(p.block.hash, p.valid_round) for p in mine],
                         [(proposal.block.hash, -1)])


class JoinTests(unittest.TestCase):
    """
    Masternodes registered on a running chain take part without a
    restart; absent ones are set aside and come back by themselves.
    """

    def fund_and_register(self, cluster, i: int) -> None:
        """
        Node 0 pays node C{i} a bronze collateral and a fee coin; node
        C{i} registers with them (what RPC registermasternode does).
        """
        from tests.helpers.clusters import IPS, PORT
        from timecoin.wallet import build_registration
        rich = cluster.nodes()[0]
        node = cluster.services[IPS[i]].node
        paid = []
        for amount in (1_500 * params.COIN, 2 * params.COIN):
            paid.append(result_of(rich.send_to_address(
                node.wallet.addresses()[0], amount)))
            cluster.advance(1)
        self.assertEqual([result_of(node.transaction(t))["state"]
                          for t in paid], ["finalized"] * 2)
        from timecoin.tx import OutPoint
        collateral = OutPoint(paid[0], 0)
        tx = build_registration(node.wallet, node.spendable(), node.key,
                                f"{IPS[i]}:{PORT}", node.new_address(),
                                collateral, "devnet")
        result_of(node.submit(tx))

    def max_gap(self, node, since: int) -> float:
        """
        The longest time between two consecutive blocks from C{since}.
        """
        stamps = [result_of(node.block_at(h)).header.timestamp
                  for h in range(since, node.chain.height + 1)]
        return max((b - a) / 1000 for a, b in zip(stamps, stamps[1:]))

    def test_three_join_one_after_another(self) -> None:
        """
        Three nodes join a one-masternode chain, are funded, registered
        and activate by themselves one after the other: the chain never
        stops longer than three block times, total weight reaches 4, each
        new masternode produces blocks, and all nodes agree.
        """
        from tests.helpers.clusters import IPS
        cluster = JoiningCluster(self)
        cluster.start_all()
        cluster.advance(6)
        start = cluster.nodes()[0].chain.height
        for i in (1, 2, 3):
            self.fund_and_register(cluster, i)
            cluster.advance(20)
            node = cluster.services[IPS[i]].node
            self.assertTrue(node.is_masternode, f"node {i} not active")
            self.assertEqual(node.participation.status()["status"],
                             "active")
        cluster.advance(30)
        node0 = cluster.nodes()[0]
        snapshot = node0.chain.snapshot_for(node0.chain.height + 1)
        self.assertEqual(len(snapshot), 4)
        self.assertLessEqual(self.max_gap(node0, start), 6.0)
        producers = {result_of(node0.block_at(h)).header.producer
                     for h in range(node0.chain.height - 8,
                                    node0.chain.height + 1)}
        self.assertEqual(producers, {key(i).public for i in range(4)})
        cluster.assert_agree()
        for n in cluster.nodes():
            self.assertEqual(n.consensus.evidence, [])

    def test_stopped_set_aside_and_back(self) -> None:
        """
        With four active masternodes, one stopped is set aside (the other
        three keep committing), then a second; both restarted, they come
        back by themselves after min_away blocks and produce again; no
        node holds equivocation evidence.
        """
        cluster = JoiningCluster(self)
        cluster.start_all()
        cluster.advance(6)
        for i in (1, 2, 3):
            self.fund_and_register(cluster, i)
            cluster.advance(20)
        cluster.advance(2 * W * 2)
        cluster.stop(3)
        cluster.advance(2 * W * 2)
        node0 = cluster.nodes()[0]
        status = node0.chain.mn_status(key(3).public)
        assert status is not None
        self.assertEqual(status.state, SET_ASIDE)
        cluster.stop(2)
        cluster.advance(2 * W * 2)
        status = node0.chain.mn_status(key(2).public)
        assert status is not None
        self.assertEqual(status.state, SET_ASIDE)
        self.assertEqual(len(node0.chain.snapshot_for(node0.chain.height
                                                      + 1)), 2)
        height = node0.chain.height
        cluster.start(2)
        cluster.start(3)
        cluster.advance(2 * 2 * DEVNET.service_min_away + 30)
        self.assertGreater(node0.chain.height, height + 20)
        for i in (2, 3):
            status = node0.chain.mn_status(key(i).public)
            assert status is not None
            self.assertEqual(status.state, ACTIVE, f"node {i}")
        cluster.advance(20)
        producers = {result_of(node0.block_at(h)).header.producer
                     for h in range(node0.chain.height - 8,
                                    node0.chain.height + 1)}
        self.assertEqual(producers, {key(i).public for i in range(4)})
        cluster.assert_agree()
        for n in cluster.nodes():
            self.assertEqual(n.consensus.evidence, [])


class StallTests(unittest.TestCase):
    """
    A stalled chain is reported: /health, the status page, metrics.
    """

    def test_health_status_page_and_metrics(self) -> None:
        """
        A devnet masternode whose rounds stop: /health stays 200 until
        stall_after (14 s at 2 s blocks), then answers 503 with the reason
        (no commit for how long, the weight heard from and needed) and
        the missing masternode; the status page shows the reason and the
        masternode in red; the stalled gauge is 1 and the round watchdog
        counted; blocks again make it 200.
        """
        from tests.helpers.rpc import RPCTestBase

        class Base(RPCTestBase):
            def runTest(self) -> None:
                pass

        base = Base()
        base.mktemp = self.mktemp  # type: ignore[method-assign]
        base.setUp()
        self.addCleanup(base.doCleanups)
        node = base.node
        base.block()
        self.assertEqual(node.config.stall_after, 14.0)

        def health() -> tuple[int, dict]:
            import json
            status, _, body = base.http(b"", auth=None, method="GET",
                                        url="http://127.0.0.1/health")
            return status, json.loads(body)

        self.assertEqual(health()[0], 200)
        # The masternode's rounds stop (as when the other masternodes of a
        # network are gone): its proposal never commits.
        node.consensus.running = False
        base.clock.advance(10)
        self.assertEqual(health()[0], 200)
        base.clock.advance(6)
        status, body = health()
        self.assertEqual(status, 503)
        self.assertEqual(body["reason"], "stalled: no commit for 16 s, "
                         "weight online 0 of 1, 1 needed")
        self.assertEqual(body["missing"], [node.key.public.hex()])
        _, _, page = base.http(b"", method="GET", url="http://127.0.0.1/")
        self.assertIn(b'id="health-reason">stalled: no commit', page)
        self.assertIn(b'<tr class="bad"><td><code>', page)
        _, _, metrics = base.http(b"", method="GET",
                                  url="http://127.0.0.1/metrics")
        self.assertIn(b"timecoin_chain_stalled 1.0", metrics)
        node.consensus.running = True
        node.consensus.start()
        base.clock.advance(2.1)
        self.assertEqual(health()[0], 200)

    def test_round_watchdog_counts_a_halt(self) -> None:
        """
        A round that waits three times its timeout at one step (votes that
        never come) is counted once per such span.
        """
        from twisted.internet.task import Clock

        from timecoin.consensus import BlockConsensus
        f = FourChain()
        clock = Clock()
        clock.advance(START + 1)
        c = BlockConsensus(f.chain, KEYS[0], clock, 2.0, 2.0,
                           lambda r: f.block())
        c.start()
        self.addCleanup(c.stop)
        clock.pump([0.5] * 40)
        # Alone of four: nothing commits; round 0 waits at prevote.
        self.assertEqual(f.chain.height, 0)
        self.assertEqual(c.counters.get("timeouts-round"), 3)


class CommitteeChain(FourChain):
    """
    Seven genesis masternodes, block consensus by a committee of four per
    epoch of five blocks.
    """

    def __init__(self, size: int = 4, epoch: int = 5) -> None:
        import dataclasses
        self.keys = [key(20 + i) for i in range(7)]
        self.network = dataclasses.replace(DEVNET, committee_size=size,
                                           committee_epoch=epoch)
        self.genesis = make_genesis(
            "devnet", int(START * 1000),
            [TxOut(1_000 * params.COIN, addr(key(1)))],
            [Masternode(k.public, f"10.0.1.{i}:1", addr(k), "free")
             for i, k in enumerate(self.keys)])
        self.store = MemoryStore()
        self.chain = self.load()
        self.blocks = []

    def load(self) -> Chain:
        chain = Chain(self.network, self.store, self.genesis, RoundRobin(),
                      CountQuorum(), lambda: 2**62)
        result_of(chain.load())
        return chain

    def committee(self, height: int | None = None) -> list[bytes]:
        chain = self.chain
        return [m.pubkey for m in chain.committee_for(
            chain.height + 1 if height is None else height)]

    def block(self, txs: tuple[Transaction, ...] = ()) -> Block:
        chain = self.chain
        height = chain.height + 1
        producer = chain.expected_producer(height, chain.tip.hash, 0)
        signer = next(k for k in self.keys if k.public == producer)
        commit = chain.tip_commit if height > 1 else None
        coinbase = Transaction((), coinbase_outputs(
            chain.snapshot_for(height), DEVNET.block_reward, 0),
            "coinbase", {"height": height})
        header = BlockHeader(height, chain.tip.hash,
                             merkle_root([coinbase.txid]),
                             chain.tip.header.timestamp + 2000, producer, 0,
                             commit_hash_of(commit))
        return sign_block(signer, "devnet", header, (coinbase,), commit)

    def step_with(self, skip: frozenset[bytes] = frozenset()) -> Block:
        """
        The next block, committed by its committee but C{skip}.
        """
        block = self.block()
        votes = tuple(sorted(
            (sign_block_vote(k, "devnet", block.height, 0, block.hash)
             for k in self.keys if k.public in self.committee()
             and k.public not in skip), key=lambda v: v.voter))
        cert = CommitCertificate(block.height, 0, block.hash, votes)
        result_of(self.chain.connect_block(block, cert))
        self.blocks.append((block, cert))
        return block


class CommitteeTests(unittest.TestCase):
    """
    Block consensus by a committee drawn per epoch from chain state.
    """

    def test_committee_per_epoch(self) -> None:
        """
        Each height has a committee of four of the seven, the same for
        every height of an epoch, drawn anew (from the hash ending the
        previous epoch) for the next; the proposer is a member; a chain
        reloaded from the store and a second node connecting the same
        blocks name the same committees.
        """
        f = CommitteeChain()
        seen = []
        for height in range(1, 21):
            committee = f.committee()
            self.assertEqual(len(committee), 4)
            self.assertIn(f.chain.expected_producer(
                height, f.chain.tip.hash, 0), committee)
            seen.append(tuple(committee))
            f.step_with()
        for epoch in range(4):
            self.assertEqual(len(set(seen[epoch * 5:epoch * 5 + 5])), 1)
        self.assertGreater(len(set(seen)), 1)
        again = f.load()
        self.assertEqual(again.committee_for(again.height + 1),
                         f.chain.committee_for(f.chain.height + 1))
        g = CommitteeChain()
        for block, cert in f.blocks:
            result_of(g.chain.connect_block(block, cert))
        self.assertEqual(g.chain.utxo_hash(), f.chain.utxo_hash())

    def test_quorum_of_the_committee(self) -> None:
        """
        A certificate needs two thirds of the committee's weight: three
        of its four members commit; the three masternodes outside it
        (plus one member) do not.
        """
        f = CommitteeChain()
        f.step_with()
        block = f.block()
        members = [k for k in f.keys if k.public in f.committee()]
        others = [k for k in f.keys if k.public not in f.committee()]

        def cert(signers):
            return CommitCertificate(block.height, 0, block.hash, tuple(
                sorted((sign_block_vote(k, "devnet", block.height, 0,
                                        block.hash) for k in signers),
                       key=lambda v: v.voter)))

        from timecoin.chain import BlockInvalid
        self.assertRaises(BlockInvalid, f.chain.check_commit,
                          cert(others + members[:1]), block)
        f.chain.check_commit(cert(members[:3]), block)

    def test_proof_of_service_counts_due_certificates(self) -> None:
        """
        A masternode that never signs is set aside from the certificates
        it was due to sign (as a committee member) only; the others, that
        sign whenever they are members, never are.
        """
        f = CommitteeChain()
        absent = f.keys[0].public
        for _ in range(3 * W):
            f.step_with(frozenset({absent}))
            if f.chain.mn_status(absent).state == SET_ASIDE:
                break
        status = f.chain.mn_status(absent)
        self.assertEqual(status.state, SET_ASIDE, "never set aside")
        self.assertIn("commit certificates", status.reason)
        for k in f.keys[1:]:
            self.assertEqual(f.chain.mn_status(k.public).state, ACTIVE)
        self.assertNotIn(absent, f.committee())
        again = f.load()
        self.assertEqual(again.expected, {h: e for h, e in
                                          f.chain.expected.items()
                                          if h >= f.chain.height - W})

