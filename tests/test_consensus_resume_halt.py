"""
The lasting halt of issue 14 item 1, reproduced without any peer: block
consensus stays stopped after its nodes were not synced for a while, even
once every node is synced again and L{BlockConsensus.resume} was called.

It failed before the fix (the consensus re-signs, as nil, the votes of
the current round it stepped past while not synced:
C{CatchUp.sign_missed}, from C{resume()} and every re-broadcast tick).
The cause, seen in the stuck states this test printed:

- C{_vote} drops a vote while the node is not synced, but its callers have
  already moved C{step} on (C{_timeout_propose}, C{_timeout_prevote},
  C{RoundRules._evaluate_round}): the node is in the precommit step of a round
  without having signed its precommit (or in the prevote step without its
  prevote);
- C{resume()} re-enters the round only if the node signed nothing in it
  and no timer is active, so a node that signed its prevote and skipped
  its precommit (or whose useless propose timer was still pending) is
  never re-entered and never signs the vote it skipped;
- the prevote and precommit timeouts are armed only once 2/3 of the
  weight's prevotes / precommits (for anything) are seen; with the skipped
  votes missing that never happens, so no timer runs on any node and no
  round changes: all four sit at round 0 "precommit" for good (restarting
  a node re-enters the round and unsticks it).
"""

from __future__ import annotations

import random

from twisted.trial import unittest

from tests.helpers.clusters import IPS, MasternodeCluster


class ResumeAfterUnsyncedTests(unittest.TestCase):
    """
    Four masternodes whose C{synced} predicate flips on and off (as a
    height liar made it before the sync fix) must commit again once all
    are synced.
    """

    def test_commits_again_after_flapping_sync(self) -> None:
        """
        For ten seeded schedules, the synced predicate of two or four
        masternodes flips at seeded random times for 60 s (resume() is
        called whenever it turns true, as sync does); afterwards, with all
        synced, every schedule commits new blocks within 60 s.
        """
        stuck = []
        for seed in range(10):
            rng = random.Random(seed)
            cluster = MasternodeCluster(self)
            cluster.start_all()
            cluster.advance(10)
            flags = dict.fromkeys(IPS, True)
            for ip in IPS:
                service = cluster.services[ip]
                service.sync.stop()
                service.node.consensus.synced = \
                    (lambda ip=ip, flags=flags: flags[ip])  # type: ignore[misc]
            victims = IPS[:2] if seed % 2 else IPS
            elapsed = 0.0
            while elapsed < 60:
                dt = rng.choice([0.05, 0.3, 1.0, 2.5, 5.0])
                cluster.net.advance(dt, step=0.05)
                elapsed += dt
                ip = rng.choice(victims)
                flags[ip] = not flags[ip]
                if flags[ip]:
                    cluster.services[ip].node.consensus.resume()
            for ip in IPS:
                if not flags[ip]:
                    flags[ip] = True
                    cluster.services[ip].node.consensus.resume()
            before = min(cluster.heights())
            cluster.advance(60)
            if min(cluster.heights()) == before:
                stuck.append((seed, [
                    (c.height, c.round, c.step,
                     sorted((m.round, getattr(m, "phase", "proposal"))
                            for m in c._mine if m.height == c.height))
                    for c in (s.node.consensus
                              for s in cluster.services.values())]))
            cluster.stop_all()
        self.assertEqual(stuck, [])
