"""
The whole-network simulator: a fixed set of seeded runs with faults and a
Byzantine masternode breaks no invariant, runs replay exactly, a
deliberately broken quorum rule is caught, and the bugs it found stay
fixed.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface import implementer

from tests.helpers import START, Harness, addr, key, result_of, widen_snapshot
from timecoin import params
from timecoin.consensus import SIGNING_STATE_KEY, BlockConsensus
from timecoin.finality import (
    APPROVE,
    REJECT,
    Finality,
    FinalitySettings,
    sign_tx_vote,
    sign_tx_votes,
)
from timecoin.finality.records import decode_record
from timecoin.interfaces import IQuorumRule
from timecoin.masternodes import Masternode, make_snapshot
from timecoin.mempool import FINALIZED
from timecoin.mnstate import SET_ASIDE, MnStatus
from timecoin.quorum import CountQuorum
from timecoin.testing.simulation import (
    LIFECYCLE,
    P2P_BEHAVIOURS,
    FaultPlan,
    GroupCommitStore,
    HeapClock,
    LinkFaults,
    Liveness,
    SimConfig,
    SimResult,
    Simulation,
    repro,
    run_seed,
)

SWEEP = SimConfig(nodes=4, byzantine=1, duration=30.0, calm=30.0,
                  liveness_bound=25.0)
"""The schedule of the fixed seed sweep: 30 s of faults, 30 s of calm."""
SEEDS = range(20)
PINNED = {0: (12, 36), 1: (17, 84), 2: (15, 51), 3: (20, 87), 4: (16, 74),
          5: (24, 90), 6: (22, 86), 7: (28, 85), 8: (25, 87), 9: (21, 90),
          10: (20, 83), 11: (14, 79), 12: (12, 81), 13: (16, 62),
          14: (26, 79), 15: (22, 86), 16: (18, 86), 17: (12, 56),
          18: (24, 80), 19: (4, 67)}
"""Blocks committed and payments finalized by each seed of L{SEEDS} (the
same with any C{PYTHONHASHSEED}), recorded before the structural
refactor of issue 17: a change of structure must replay them exactly.  A
change of behaviour (a new rule, a different timer) may change them;
record the new figures in the same commit and say why.  Re-recorded
three times since: lifecycle seed 796's fix (votes count in the snapshot
of their height: seed 8, 25 to 26 blocks), seed 102's (the periodic
re-broadcast sends every vote held of the current round: most seeds; in
all, 375 to 377 blocks and 1,536 to 1,550 payments) and seeds 818 and
826's (a restarted node sends again every vote it signed at its height:
seed 0, 38 to 40 payments) and seed 183's of seven/two (peers are asked
again for the votes on recently rejected transactions: the extra
queries move every seed's schedule; in all, 377 to 368 blocks and 1,552
to 1,517 payments) and issue 19's final-only queries (a node asks for
the votes on the transactions it rejected only of peers that hold them
final, so fewer query replies move every seed's schedule; in all, 368
blocks again and 1,517 to 1,538 payments; then not at all about one that
lost to a payment final here: 368 to 366 blocks, 1,538 to 1,541
payments) and the eighth session's connect query (a peer that connects
is asked for the approvals it holds final on the recently rejected
transactions, not for every vote on them: fewer replies move seeds 0, 5,
15 and 19; 366 blocks again, 1,541 to 1,534 payments, seed 0's workload
drawing two more double spends) and fifty-masternode seed 53's (a
contender's reject vote waits for the stored lock of the transaction
it loses to: the later votes move most seeds; 366 to 359 blocks, 1,534
to 1,545 payments; its other half, inputs kept after a rejection this
node never voted on, alone moves none) and fifty-masternode seed 3's (a
new approval of a rejected transaction starts its queries over: seeds
1, 5, 6, 7, 9, 11, 15, 17 and 18 move; 359 to 376 blocks, 1,545 to
1,542 payments) and fifty-masternode seed 53's second failure (orphan
votes count on contenders, and one dropped uncounted is no longer seen:
eleven seeds move, 376 to 359 blocks, 1,542 to 1,512 payments; over 80
other seeds of this schedule it gave 1,404 blocks before and 1,388
after, 5,965 payments before and 5,975 after, and over 40 seeds of seven
masternodes 964 and 965 blocks: these twenty moved down by chance)
and twelve-masternode seed 4's (a transaction known only by its orphan
votes is asked of their senders, C{get_txs}, the wait doubling: the asks
and answers move nine seeds; 359 to 368 blocks, 1,512 to 1,529
payments; without the doubling, over the 60 seeds after these, 1,045
blocks before and 1,038 after, 4,456 payments before and 4,442 after:
by chance again)."""
LIFECYCLE_SEEDS = (3, 7)
"""Lifecycle seeds of C{make test} (7 masternodes, 2 Byzantine, 3
joiners): in each, every joiner registers and activates, a masternode
comes back after being set aside, another is stopped for good and set
aside, and step crashes hit.  (Seed 1 was one until the eighth
session's connect query moved its schedule: its masternode set aside
then came back too late for the stop for good to happen in the run, no
invariant broken; seeds 3 and 6 play the whole plan on the code before
and after, and after the tenth session's C{reach}, which acts here:
ten nodes are a dense mesh.  Seed 6 was one until the eleventh
session's finality changes (contender votes wait for the lock, a new
approval of a rejected payment asks again) moved its schedule: no
invariant broken, but its stop for good did not happen within the
run; seed 7 plays the whole plan.)"""


@implementer(IQuorumRule)
class VotesReceivedQuorum(CountQuorum):
    """
    The seeds' bug: two thirds of the votes *received* instead of the
    snapshot's total weight.  Only approvals are counted into C{approving},
    so against the votes received any approval is a two-thirds majority:
    the first vote finalizes a transaction, the proposer's own prevote
    makes a quorum.
    """

    name = "votes-received"

    def approved(self, approving: int, total: int) -> bool:
        received = approving
        return approving > 0 and 3 * approving >= 2 * received

    def rejected(self, rejecting: int, total: int) -> bool:
        received = rejecting
        return rejecting > 0 and 3 * rejecting > received


def _report(results: list[SimResult], config: SimConfig) -> str:
    lines = []
    for result in results:
        if not result.ok:
            lines.append(f"seed {result.seed}: reproduce with "
                         f"{repro(replace(config, seed=result.seed))}")
            lines += [f"  {v}" for v in result.violations[:5]]
    return "\n".join(lines)


class SeedSweepTests(unittest.TestCase):
    """
    The fixed seed set that runs in C{make test}.
    """

    def test_seeds_keep_every_invariant(self) -> None:
        """
        Twenty seeded runs of four masternodes, one of them Byzantine,
        under dropped, delayed, duplicated and reordered messages,
        partitions, crashes with restarts and clock skew, with payments
        and double spends, break no invariant: no fork, no double spend,
        no conflicting finality, equal UTXO hashes, progress once faults
        stop; and each commits the blocks and finalizes the payments
        pinned in L{PINNED}.
        """
        results = [run_seed(replace(SWEEP, seed=s)) for s in SEEDS]
        self.assertEqual(_report(results, SWEEP), "")
        self.assertEqual({r.seed: (r.stats["committed"],
                                   r.stats["finalized_txs"])
                          for r in results}, PINNED)
        # Not vacuous: blocks were committed and payments finalized, and
        # the faults happened.
        self.assertGreater(sum(r.stats["committed"] for r in results),
                           10 * len(results))
        self.assertGreater(sum(r.stats["finalized_txs"] for r in results),
                           20 * len(results))
        self.assertGreater(sum(r.stats["workload"].get("double-spends", 0)
                               for r in results), len(results))
        events = sum(sum(r.stats["events"].values()) for r in results)
        self.assertGreater(events, 2 * len(results))
        self.assertGreater(sum(r.stats["network"].get("dropped", 0)
                               for r in results), 0)


class LifecycleSweepTests(unittest.TestCase):
    """
    The lifecycle seeds that run in C{make test}.
    """

    def test_lifecycle_seeds_keep_every_invariant(self) -> None:
        """
        Seeded lifecycle runs (masternodes register mid-run and activate by
        themselves, one stops for good, one comes back, honest nodes crash
        inside consensus steps) break no invariant: no honest node
        equivocates, every node holds the same statuses at every height,
        progress where the honest running weight is a quorum of the
        active weight; and all of it happened.
        """
        results = [run_seed(replace(LIFECYCLE, seed=s))
                   for s in LIFECYCLE_SEEDS]
        self.assertEqual(_report(results, LIFECYCLE), "")
        for result in results:
            events = result.stats["events"]
            self.assertEqual(events.get("joiner-active"), 3, result.seed)
            self.assertEqual(events.get("stopped-for-good"), 1, result.seed)
            self.assertEqual(events.get("returned"), 1, result.seed)
            self.assertNotIn("beyond-model", result.stats)
            states = result.stats["lifecycle"]
            self.assertTrue(states[f"n{plan_index(result, 'for good')}"]
                            .startswith("set-aside"), result.seed)
            self.assertTrue(states[f"n{plan_index(result, 'until set')}"]
                            .startswith("active"), result.seed)
        self.assertGreater(sum(r.stats["events"].get("step-crash-hit", 0)
                               for r in results), 0)


def plan_index(result: SimResult, what: str) -> int:
    """
    The index of the masternode a lifecycle run stopped for good
    (C{what} "for good") or until set aside ("until set"), from its plan.
    """
    import re
    line = next(p for p in result.plan if f"stops {what}" in p)
    found = re.search(r"n(\d+) stops " + what, line)
    assert found is not None
    return int(found.group(1))


class ReplayTests(unittest.TestCase):
    """
    A seed is a complete description of a run.
    """

    def test_same_seed_same_run(self) -> None:
        """
        Two runs of one seed commit the same blocks, finalize the same
        transactions and move the same bytes; another seed differs.
        """
        config = replace(SWEEP, seed=3, duration=15.0, calm=15.0,
                         liveness_bound=12.0)
        first, second = run_seed(config), run_seed(config)
        self.assertEqual(first.digest, second.digest)
        self.assertEqual(first.plan, second.plan)
        other = run_seed(replace(config, seed=4))
        self.assertNotEqual(first.digest, other.digest)

    def test_repro_names_every_option_set(self) -> None:
        """
        The command printed for a failed seed replays it: options that
        differ from the defaults are in it, the committee too (a
        fifty-masternode failure was printed without its committee, so its
        command ran a different network).
        """
        config = replace(SimConfig(), seed=53, nodes=50, byzantine=12,
                         committee=20)
        command = repro(config)
        self.assertIn("--seed 53 --nodes 50 --byzantine 12", command)
        self.assertIn("--committee 20", command)
        self.assertNotIn("--committee", repro(SimConfig()))


class BrokenRuleTests(unittest.TestCase):
    """
    The simulator catches a quorum bug.
    """

    def test_votes_received_quorum_is_caught(self) -> None:
        """
        With every node counting the quorum over the votes it received,
        the double spends of the workload are finalized on both sides (or
        two blocks commit at one height), and each seed reports it with
        the nodes and hashes involved.
        """
        config = replace(SWEEP, duration=15.0, calm=10.0,
                         liveness_bound=8.0)
        for seed in range(3):
            result = run_seed(replace(config, seed=seed),
                              VotesReceivedQuorum())
            kinds = {v.invariant for v in result.violations}
            self.assertTrue(kinds & {"double-spend", "fork"},
                            f"seed {seed}: {kinds}")
            spend = [v for v in result.violations
                     if v.invariant == "double-spend"]
            if spend:
                self.assertIn("spent by tx", spend[0].detail)
                self.assertIn("finalized on n", spend[0].detail)


class ForgetfulStore(GroupCommitStore):
    """
    A store that says it recorded the signing state and does not: what a
    node without L{timecoin.consensus.SigningState} did.
    """

    def put_meta(self, key, value):
        if key == SIGNING_STATE_KEY:
            return defer.succeed(None)
        return super().put_meta(key, value)


class BrokenSigningStateTests(unittest.TestCase):
    """
    The simulator catches a node that forgets what it signed.
    """

    def test_forgotten_signing_state_is_caught(self) -> None:
        """
        With stores that drop the signing state, seed 3 (4 honest nodes,
        step crashes) has a node crash inside a step after its prevote
        left and, restarted, prevote something else in the same round:
        the wire check and the others' evidence both report it.
        """
        config = SimConfig(nodes=4, byzantine=0, step_crashes=3,
                           duration=20.0, calm=10.0, liveness_bound=8.0,
                           tx_rate=0.5, seed=3)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            for host in sim.nodes:
                host.store = ForgetfulStore(sim.clock, 0.02)
            try:
                result = sim.run()
            finally:
                sim.stop()
        found = [v.detail for v in result.violations
                 if v.invariant == "equivocation"]
        self.assertTrue(any("sent two prevotes" in d for d in found), found)
        self.assertTrue(any("holds evidence against honest" in d
                            for d in found), found)


class PieceTests(unittest.TestCase):
    """
    The simulator's parts.
    """

    def test_liveness_bound_follows_the_round_schedule(self) -> None:
        """
        Progress is promised within the configured bound when the faults
        leave the honest nodes in round 0 (seven masternodes, two
        Byzantine: 30 s, four rounds of 1, 2, 3 and 4 s timeouts), and
        within the schedule of byzantine + 2 rounds from the latest round
        an honest node is in otherwise (round 4: 5+6+7+8 s, three steps
        each); a down or Byzantine node's round does not count.  Seed 53
        of seven/two, which committed in round 6 one second after a
        fixed 30 s, keeps every invariant.
        """
        engines = [BlockConsensus.__new__(BlockConsensus) for _ in range(3)]
        for engine, round in zip(engines, (0, 1, 9)):
            engine.round_timeout = 1.0
            engine.round = round
        hosts = [SimpleNamespace(node=SimpleNamespace(consensus=e), up=up,
                                 byzantine=byz)
                 for e, up, byz in zip(engines, (True, True, True),
                                       (False, False, True))]
        checker = SimpleNamespace(hosts=SimpleNamespace(nodes=hosts),
                                  journal=None)
        liveness = Liveness(checker, 30.0, 2)  # type: ignore[arg-type]
        engines[1].round = 0
        self.assertEqual(liveness.bound_now(), 30.0)
        engines[1].round = 4
        self.assertEqual(liveness.bound_now(), 3 * (5 + 6 + 7 + 8))
        hosts[1].up = False
        self.assertEqual(liveness.bound_now(), 30.0)
        config = SimConfig(nodes=7, byzantine=2, seed=53)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_held_signing_state_write_kept_or_lost(self) -> None:
        """
        An armed store holds the signing-state write its trap picks and
        every meta write after it (their Deferreds unfired); released, the
        writes are done (kept) or not (lost), and writes go through again.
        """
        for keep in (True, False):
            store = GroupCommitStore(Clock(), 0.02)
            result_of(store.put_meta(SIGNING_STATE_KEY, b"old"))
            store.trap = lambda value: value == b"new"
            result_of(store.put_meta(SIGNING_STATE_KEY, b"other"))
            self.assertIsNotNone(store.trap)
            held = store.put_meta(SIGNING_STATE_KEY, b"new")
            later = store.put_meta("x", b"1")
            self.assertFalse(held.called or later.called)
            self.assertEqual(result_of(store.get_meta(SIGNING_STATE_KEY)),
                             b"other")
            store.release(keep)
            self.assertEqual(result_of(store.get_meta(SIGNING_STATE_KEY)),
                             b"new" if keep else b"other")
            self.assertEqual(result_of(store.get_meta("x")),
                             b"1" if keep else None)
            result_of(store.put_meta("y", b"2"))
            self.assertEqual(result_of(store.get_meta("y")), b"2")

    def test_default_plans_unchanged_by_lifecycle_options(self) -> None:
        """
        Without the lifecycle and step-crash options a seed draws the
        plan it drew before them (pinned seeds keep replaying); with them
        the plan has a lifecycle and step crashes of honest nodes, never
        of the two lifecycle masternodes.
        """
        import random
        plain = FaultPlan.draw(random.Random(5), 7, 2, 40.0)
        # What the code before the lifecycle options drew for seed 5.
        self.assertEqual((len(plain.events), plain.events[0].kind,
                          round(plain.events[0].at, 6)),
                         (12, "partition", 6.224564))
        self.assertEqual(round(plain.skew[4], 6), -2.125789)
        self.assertIsNone(plain.lifecycle)
        self.assertNotIn("step-crash", {e.kind for e in plain.events})
        again = FaultPlan.draw(random.Random(5), 7, 2, 40.0)
        self.assertEqual(plain, again)
        full = FaultPlan.draw(random.Random(5), 7, 2, 35.0, joiners=3,
                              lifecycle=True, step_crashes=3,
                              max_outage=6.0)
        assert full.lifecycle is not None
        self.assertEqual(full.lifecycle.joiners, (7, 8, 9))
        self.assertEqual(len(full.skew), 10)
        crashed = {e.nodes[0] for e in full.events
                   if e.kind in ("step-crash", "crash")}
        self.assertTrue(crashed)
        self.assertFalse(crashed & ({full.lifecycle.stop,
                                     full.lifecycle.back}
                                    | set(full.byzantine)))

    def test_p2p_behaviours_happen(self) -> None:
        """
        A Byzantine node that draws the height liar, the non-reader and
        the address poisoner does each: its hello and tip lie, it leaves
        get_blocks unanswered, it stops reading for spells while peers'
        output to it waits, and honest nodes' address tables hold its
        unreachable addresses.  The consensus behaviours' plan draw is
        unchanged by them (see the test above).
        """
        config = replace(SWEEP, seed=2, nodes=7, byzantine=2, faults=False,
                         duration=25.0, calm=0.0, liveness_bound=0.0,
                         tx_rate=0.5)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            try:
                self.assertLessEqual(P2P_BEHAVIOURS, sim.plan.byzantine[0])
                sim.run()
                manager = sim.nodes[1].service.manager  # type: ignore
                junk = [k for k in manager.peers.table.entries
                        if k.startswith("10.99.")]
            finally:
                sim.stop()
        counters = sim.adversaries[0].counters
        for name in ("lied-hellos", "lied-tips", "unanswered-get-blocks",
                     "deaf-spells", "unread-bytes-max", "poisoned-replies"):
            self.assertGreater(counters[name], 0, (name, counters))
        self.assertTrue(junk)

    def test_reach_liar_breaks_nothing(self) -> None:
        """
        Twelve masternodes (a dense mesh: eleven peers each), three
        Byzantine, two of them reach liars (seed 4): they say they reach
        every masternode and send their own proposals and votes to half of
        their peers, which then relay them to nobody.  No invariant
        breaks, honest nodes hold the liars' claims, and the chain goes
        on.  (In a small network a liar does nothing of the kind: the
        pinned sweep above replays exactly.)
        """
        config = replace(SWEEP, seed=4, nodes=12, byzantine=3,
                         duration=20.0, calm=20.0)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            try:
                liars = [a for a in sim.adversaries
                         if "reach-liar" in a.behaviours]
                self.assertEqual(len(liars), 2)
                result = sim.run()
                honest = [h for h in sim.nodes if h.service is not None
                          and all(h is not a.host for a in sim.adversaries)]
                held = sum(1 for h in honest for liar in liars
                           if (c := h.service.manager.peers.by_pubkey(
                               liar.host.key.public)) is not None
                           and c.reaches)
            finally:
                sim.stop()
        self.assertEqual(_report([result], config), "")
        self.assertGreater(sum(a.counters["reach-lied"] for a in liars), 0)
        self.assertGreater(held, 0)
        self.assertGreater(result.stats["committed"], 5)

    def test_status_disagreement_is_caught(self) -> None:
        """
        A node whose masternode statuses differ from the others' at the
        same height is reported (statuses and active set per height).
        """
        config = replace(SWEEP, seed=1, faults=False, duration=6.0,
                         calm=0.0, liveness_bound=0.0, tx_rate=0.0)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            try:
                sim.run()
                odd = sim.nodes[1]
                assert odd.node is not None
                chain = odd.node.chain
                chain.status[sim.nodes[2].key.public] = MnStatus(
                    SET_ASIDE, chain.height, "made up")
                sim.checker.check()
            finally:
                sim.stop()
        found = [v.detail for v in sim.checker.violations
                 if v.invariant == "status"]
        self.assertTrue(found, sim.checker.violations)
        self.assertIn("n1", found[0])
        self.assertIn("n2 set-aside", found[0])

    def test_heap_clock_orders_like_clock(self) -> None:
        """
        L{HeapClock} runs calls in the order L{Clock} does: by time, then
        by scheduling order, with cancelled calls skipped and reset calls
        moved.
        """
        def trace(clock: Clock) -> list[str]:
            seen: list[str] = []
            clock.callLater(2, seen.append, "b")
            clock.callLater(1, seen.append, "a")
            clock.callLater(2, seen.append, "c")
            gone = clock.callLater(1.5, seen.append, "cancelled")
            moved = clock.callLater(5, seen.append, "moved-early")
            later = clock.callLater(0.5, seen.append, "moved-late")
            gone.cancel()
            moved.reset(0.7)
            later.reset(3)
            clock.callLater(0, lambda: clock.callLater(0, seen.append, "0"))
            for _ in range(10):
                clock.advance(0.5)
            return seen

        self.assertEqual(trace(HeapClock()), trace(Clock()))
        self.assertEqual(trace(HeapClock()), ["0", "moved-early", "a", "b",
                                              "c", "moved-late"])

    def test_gossip_faults_spare_control_lines(self) -> None:
        """
        A link that drops every gossip line still carries the handshake,
        pings and requests: two nodes connect over it, but no block
        announcement or vote gets through, so only sync moves blocks.
        """
        config = replace(SWEEP, seed=1, nodes=4, byzantine=0, faults=False,
                         duration=0.0, calm=0.0, tx_rate=0.0)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            self.addCleanup(sim.stop)
            a, b = sim.nodes[0].ip, sim.nodes[1].ip
            sim.net.faults[(a, b)] = LinkFaults(drop=1.0)
            sim.net.faults[(b, a)] = LinkFaults(drop=1.0)
            for host in sim.nodes:
                sim.start(host)
            sim.net.advance(10, 0.1)
            self.assertEqual(len(sim.nodes[0].service.manager.peers.ready), 3)
            self.assertGreater(sim.net.counters["dropped"], 0)
            self.assertGreater(sim.nodes[0].node.chain.height, 0)

    def test_finalized_miscount_is_caught(self) -> None:
        """
        The end check compares each honest node's count of finalized
        mempool entries (the admission-control figure) with the entries
        it holds: right after a calm run, and caught when it is off.
        """
        config = replace(SWEEP, seed=2, byzantine=0, faults=False,
                         duration=4.0, calm=2.0, liveness_bound=1.0,
                         tx_rate=20.0, block_time=60.0)
        with tempfile.TemporaryDirectory() as tmp:
            sim = Simulation(config, Path(tmp))
            self.addCleanup(sim.stop)
            sim.run()
            node = sim.nodes[0].node
            assert node is not None
            self.assertGreater(node.mempool.finalized_count, 0)
            sim.checker.final()
            self.assertEqual(
                [v for v in sim.checker.violations
                 if v.invariant == "bookkeeping"], [])
            node.mempool.finalized_count += 1
            sim.checker.final()
            self.assertEqual(
                [v.invariant for v in sim.checker.violations
                 if "finalized mempool entries" in v.detail],
                ["bookkeeping"])


def _engine(h: Harness, settings: FinalitySettings) -> Finality:
    engine = Finality(h.chain, h.mempool, h.mn_key, h.clock, 10.0, settings)
    h.chain.block_connected.disconnect(h.mempool.block_connected)
    h.chain.block_connected.connect(engine.block_connected)
    return engine


def _engine_restarted(h: Harness, settings: FinalitySettings) -> Finality:
    engine = Finality(h.chain, h.mempool, h.mn_key, h.clock, 10.0, settings)
    h.chain.block_connected.connect(engine.block_connected)
    return engine


class FoundBugTests(unittest.TestCase):
    """
    The bugs the simulator found, pinned by direct tests (and by the seeds
    that found them).
    """

    def test_orphan_votes_finalizing_during_submit(self) -> None:
        """
        Votes that arrived before their transaction (orphans, replayed when
        it is announced) can finalize it inside C{submit}: its stored record
        stays the finalized one, so a restart brings it back finalized (it
        was overwritten by the pending record, and the restarted node voted
        against its own finality).
        """
        h = Harness(funds=[10 * params.COIN])
        widen_snapshot(h.chain, (5, 6))
        engine = _engine(h, FinalitySettings())
        tx = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        orphans = [sign_tx_vote(key(i), "devnet", tx.txid, APPROVE, 0)
                   for i in (5, 6)]
        engine.tx_accepted.connect(
            lambda _: [engine.receive_vote(v) for v in orphans])
        result_of(engine.submit(tx))
        self.assertEqual(h.mempool.state_of(tx.txid), FINALIZED)
        record = decode_record(result_of(h.store.get_tx_record(tx.txid)))
        self.assertEqual(record["state"], FINALIZED)

    def test_queued_approval_signed_before_rejection(self) -> None:
        """
        A transaction rejected while this masternode's approval waits in
        the batch queue: the approval is signed first, so the rejection
        protects its inputs, and a conflicting spender gets this node's
        reject (it got approve, and both sides of a double spend could be
        finalized).
        """
        h = Harness(funds=[10 * params.COIN])
        widen_snapshot(h.chain, (5, 6, 7))
        engine = _engine(h, FinalitySettings(batch_delay=0.5))
        a = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        b = h.pay([h.funding()], [(addr(key(3)), 9 * params.COIN)])
        result_of(engine.submit(a))
        self.assertNotIn(h.mn_key.public, h.mempool.entries[a.txid].votes)
        for i in (5, 6):
            engine.receive_vote(sign_tx_vote(key(i), "devnet", a.txid,
                                             REJECT, 0))
        self.assertEqual(h.mempool.rejected[a.txid], "rejected-by-vote")
        result_of(engine.submit(b))
        h.clock.advance(1)
        mine = h.mempool.entries[b.txid].votes[h.mn_key.public]
        self.assertEqual(mine.decision, REJECT)

    def test_approved_then_rejected_tx_gets_approve_after_restart(
            self) -> None:
        """
        A transaction this masternode approved, then saw rejected (its
        inputs kept for it), met again after a restart behind a
        conflicting spender that came first: it gets approve again, never
        a reject contradicting the approval the others hold; the
        conflicting spender gets reject.
        """
        from timecoin.mempool import Mempool, MempoolSettings
        h = Harness(funds=[10 * params.COIN])
        widen_snapshot(h.chain, (5, 6, 7))
        settings = FinalitySettings(batch_delay=0)
        engine = _engine(h, settings)
        a = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        b = h.pay([h.funding()], [(addr(key(3)), 9 * params.COIN)])
        result_of(engine.submit(a))
        mine = h.mempool.entries[a.txid].votes[h.mn_key.public]
        self.assertEqual(mine.decision, APPROVE)
        for i in (5, 6):
            engine.receive_vote(sign_tx_vote(key(i), "devnet", a.txid,
                                             REJECT, 0))
        self.assertEqual(h.mempool.rejected[a.txid], "rejected-by-vote")
        # The node restarts: a new mempool and engine on the same store.
        h.chain.block_connected.disconnect(engine.block_connected)
        h.mempool = Mempool(h.chain, MempoolSettings(), h.clock.seconds)
        engine = _engine_restarted(h, settings)
        result_of(engine.recover())
        result_of(engine.submit(b))
        self.assertEqual(
            h.mempool.entries[b.txid].votes[h.mn_key.public].decision,
            REJECT)
        engine.submit(a).addErrback(lambda f: None)
        entry = h.mempool.entries.get(a.txid) or \
            h.mempool.contenders.get(a.txid)
        assert entry is not None
        self.assertEqual(entry.votes[h.mn_key.public].decision, APPROVE)

    def test_finalized_once_when_votes_flush_meanwhile(self) -> None:
        """
        A contender reaching the approval quorum rejects the locked spender
        of its input, which signs this masternode's queued votes, its own
        on the contender among them; that vote must not finalize the
        contender a second time (it was reported finalized twice).
        """
        h = Harness(funds=[10 * params.COIN])
        widen_snapshot(h.chain, (5, 6, 7))
        engine = _engine(h, FinalitySettings(batch_delay=0.5))
        reported: list[bytes] = []
        engine.finalized.connect(lambda done: reported.append(done.txid))
        a = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        b = h.pay([h.funding()], [(addr(key(3)), 9 * params.COIN)])
        result_of(engine.submit(a))
        result_of(engine.submit(b))
        for i in (5, 6, 7):
            engine.receive_vote(sign_tx_vote(key(i), "devnet", b.txid,
                                             APPROVE, 0))
        h.clock.advance(1)
        self.assertEqual(reported, [b.txid])
        self.assertEqual(h.mempool.state_of(b.txid), FINALIZED)
        self.assertEqual(h.mempool.rejected[a.txid], "conflict-finalized")

    def test_slow_clock_starts_rounds_in_time(self) -> None:
        """
        A masternode whose clock runs 10 s behind the tip's timestamp
        starts the next height's first round one block time after it
        starts, not 12 s later (it missed every propose timeout).
        """
        h = Harness()
        slow = Clock()
        slow.advance(START - 10)
        engine = BlockConsensus(h.chain, h.mn_key, slow, 2.0, 2.0,
                                h.builder.build_block)
        engine.start()
        self.addCleanup(engine.stop)
        slow.advance(1.9)
        self.assertEqual(h.chain.height, 0)
        slow.advance(0.2)
        self.assertEqual(h.chain.height, 1)

    def test_equivocators_approval_counts_over_its_rejection(self) -> None:
        """
        A masternode that signed both reject and approve on one
        transaction has its approval counted, whichever came first: every
        node holding both counts the same, so an approval quorum formed
        with it on one node forms on the others too (counting the first
        one received finalized a payment on one node and rejected it on
        four others: seed 71, seven masternodes, two Byzantine).  Its
        rejection after its approval changes nothing.
        """
        h = Harness(funds=[10 * params.COIN])
        widen_snapshot(h.chain, (5, 6))
        engine = _engine(h, FinalitySettings(batch_delay=0.5))
        tx = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        result_of(engine.submit(tx))
        reject = sign_tx_vote(key(5), "devnet", tx.txid, REJECT, 0)
        approve = sign_tx_vote(key(5), "devnet", tx.txid, APPROVE, 0)
        self.assertIsNone(engine.receive_vote(reject))
        self.assertIsNone(engine.receive_vote(approve))
        self.assertEqual(h.mempool.entries[tx.txid].votes[key(5).public],
                         approve)
        self.assertEqual(engine.receive_vote(reject), "vote-equivocation")
        self.assertEqual(len(engine.equivocations), 1)
        # key(6) by batch, approve after reject: counted too.
        engine.receive_batch(sign_tx_votes(key(6), "devnet", 0,
                                           [(tx.txid, REJECT)]))
        result = engine.receive_batch(sign_tx_votes(key(6), "devnet", 0,
                                                    [(tx.txid, APPROVE)]))
        self.assertEqual(result.tallied, 1)
        engine.flush_votes()
        self.assertEqual(h.mempool.state_of(tx.txid), FINALIZED)

    def test_seeds_that_found_split_finality(self) -> None:
        """
        The seeds on which a payment finalized on one node only keep every
        invariant: 71 (an equivocator's approval counted on one node only)
        and 628 (votes that finalized payments on a node cut off by a
        partition never reached the others, whose vote queries were used
        up before it healed: a new connection now asks for them).
        """
        config = SimConfig(nodes=7, byzantine=2)
        results = [run_seed(replace(config, seed=s)) for s in (71, 628)]
        self.assertEqual(_report(results, config), "")

    def test_seeds_that_found_stalls(self) -> None:
        """
        Seeds on which block consensus stalls for good after the faults
        stop without the two consensus fixes -- a restarted node lacking
        the prevote quorum behind the others' lock, an equivocating voter
        hiding one -- keep every invariant (the other bugs have direct
        tests above).
        """
        config = SimConfig(nodes=4, byzantine=1)
        results = [run_seed(replace(config, seed=s)) for s in (3, 12)]
        self.assertEqual(_report(results, config), "")

    def test_lifecycle_seed_of_the_tx_vote_after_restart(self) -> None:
        """
        Lifecycle seed 188 (7 masternodes, 2 Byzantine, 3 joiners): a
        masternode approved a payment, saw it rejected, crashed inside a
        consensus step and, restarted, met the payment again behind its
        double-spend twin and voted reject: every node held equivocation
        evidence against it.  It keeps every invariant.
        """
        config = replace(LIFECYCLE, seed=188)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_lifecycle_seed_of_the_old_snapshot_after_restart(self) -> None:
        """
        Lifecycle seed 443 (7 masternodes, 2 Byzantine, 3 joiners): a
        Byzantine masternode set aside at height 11 approved a payment at
        height 13, refused everywhere (not a masternode then); it came
        back, and a node restarted since -- which no longer knew the
        snapshot of height 14 and answered with the current set -- counted
        the replayed approval, reached the quorum alone and finalized a
        payment every other node had rejected.  A vote whose height's
        snapshot a node does not know is now refused.  It keeps every
        invariant.
        """
        config = replace(LIFECYCLE, seed=443)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_untimely_vote_handled_when_it_comes_again(self) -> None:
        """
        Seed 367 (4 nodes, 1 Byzantine): a node that restarted got an
        equivocator's prevote for a later height while catching up and
        refused it; the relay kept its id as seen, so every rebroadcast of
        it (the proof of lock behind the others' re-proposal) was dropped
        as a duplicate and block consensus stalled for good.  A refusal
        for now (wrong height, round too far) no longer marks it seen.
        """
        config = SimConfig(nodes=4, byzantine=1, seed=367)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_round_votes_rebroadcast_to_late_peers(self) -> None:
        """
        Seed 102 of four masternodes, one Byzantine (deaf, lying): a node
        prevoted nil, crashed and restarted with only its precommit; the
        round's proposer, back from a partition, never got that prevote,
        so no node saw two thirds of the prevotes or precommits of any
        kind, no timeout was armed, and round 0 waited 30 s for the
        Byzantine node's votes.  The periodic re-broadcast now sends every
        vote held of the current round to peers not known to hold it: the
        seed keeps every invariant, liveness included.
        """
        config = SimConfig(nodes=4, byzantine=1, seed=102)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_rejected_transactions_votes_asked_again(self) -> None:
        """
        Seed 183 of seven masternodes, two Byzantine (double voters): a
        payment was finalized on one node with the approvals of both
        equivocators, while the four other honest nodes had their
        rejections and rejected it (a reject quorum); a node asked its
        peers for the votes on a rejected transaction only when a peer
        connected, so they never learned the approvals (which win over
        rejections) and kept it rejected for good.  Peers are now asked
        again, as for undecided ones: the seed keeps every invariant.
        """
        config = SimConfig(nodes=7, byzantine=2, seed=183)
        self.assertEqual(_report([run_seed(config)], config), "")

    def test_restarted_nodes_send_all_their_votes_again(self) -> None:
        """
        Seeds 818 and 826 of four masternodes, one Byzantine: two honest
        nodes prevoted, precommitted nil on their timeout and crashed;
        restarted with only their last vote, they had taken their
        prevotes with them, and the third honest node, which had missed
        those prevotes (link faults), never saw two thirds of any kind:
        no timeout fired and every honest node waited for the deaf
        Byzantine one for good.  The signing state now keeps every vote
        a node signed at its height, and a restarted node sends them all
        again: both seeds keep every invariant, liveness included.
        """
        for seed in (818, 826):
            config = SimConfig(nodes=4, byzantine=1, seed=seed)
            self.assertEqual(_report([run_seed(config)], config), "")

    def test_rejection_then_late_finality_is_not_a_violation(self) -> None:
        """
        Seeds 584 and 683 of seven masternodes, two Byzantine: a node
        rejected a payment on its vote timeout and, later, a late
        approval quorum finalized it (approvals win).  The checker read
        rejections by scanning the newest entries of the mempool's
        rejected list; a transaction refused again (moved to the end,
        counted again) made the scan re-read the older rejection after
        the finality and report "rejected after finalizing it".  It now
        sees each rejection as it happens: both seeds keep every
        invariant.
        """
        for seed in (584, 683):
            config = SimConfig(nodes=7, byzantine=2, seed=seed)
            self.assertEqual(_report([run_seed(config)], config), "")

    def test_votes_count_in_the_snapshot_of_their_height(self) -> None:
        """
        Lifecycle seed 796 (7 masternodes, 2 Byzantine, 3 joiners): a
        restarted node one block ahead counted five approvals stamped at
        height 17 in the set of height 19, where a masternode had just
        been set aside (5 of 7), and finalized a payment the others, at
        height 17 (5 of 8), rejected.  A vote counts in the snapshot of
        the height it is stamped with: approvals of the larger, older set
        that are not two thirds of it finalize nothing, whatever this
        node's own set is now; the same approvals stamped in the current
        set do (another payment).
        """
        h = Harness(funds=[10 * params.COIN, 10 * params.COIN])
        h.next_block()
        engine = _engine(h, FinalitySettings(batch_delay=0.0))
        mn = h.chain.snapshot_for(1)[0]
        old = make_snapshot([mn, *(Masternode(key(i).public, "x:1",
                                              addr(key(i)), "free")
                                   for i in (5, 6, 7))])
        now = make_snapshot([m for m in old if m.pubkey != key(7).public])

        def snapshot(height: int) -> Any:
            return old if height <= 1 else now

        h.chain.snapshot_for = snapshot  # type: ignore[method-assign]
        h.chain.known_snapshot = snapshot  # type: ignore[method-assign]
        tx = h.pay([h.funding()], [(addr(key(2)), 9 * params.COIN)])
        result_of(engine.submit(tx))
        for i in (5, 6):
            engine.receive_vote(sign_tx_vote(key(i), "devnet", tx.txid,
                                             APPROVE, 0))
        # Three approvals of three members now, but two of them count in
        # the set of height 1, where they are two of four.
        self.assertNotEqual(h.mempool.state_of(tx.txid), FINALIZED)
        other = h.pay([h.funding(1)], [(addr(key(2)), 9 * params.COIN)])
        result_of(engine.submit(other))
        self.assertIsNone(engine.receive_vote(sign_tx_vote(
            key(5), "devnet", other.txid, APPROVE, 1)))
        self.assertEqual(h.mempool.state_of(other.txid), FINALIZED)
        self.assertNotEqual(h.mempool.state_of(tx.txid), FINALIZED)

    def test_lock_on_a_block_no_node_holds(self) -> None:
        """
        Seed 36 (4 nodes, 1 Byzantine height liar, non-reader and address
        poisoner), on this branch merged with main's P2P defences: the
        three honest masternodes prevoted a round-0 block of height 10 and
        locked on it, then each crashed (t=22.7, 27.8, 33.0) before a
        precommit quorum.  Each came back with the lock from its signing
        state -- C{(0, hash)} only -- but without the block: no node holds
        the round-0 proposal any more, C{valid} is empty, so every later
        proposer proposes a new block, which every locked node prevotes
        nil, and no proof of lock for a later round can ever form: the
        chain stalled for good (rounds 6, 7, 8... all nil).  Fixed: the
        locked block is stored with the signing state and restored as the
        valid block, which a proposer proposes again (as a new value) and
        every node locked on it prevotes.
        """
        config = SimConfig(nodes=4, byzantine=1, seed=36)
        self.assertEqual(_report([run_seed(config)], config), "")
