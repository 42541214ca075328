"""
A run's parameters: L{SimConfig} and the preset of the lifecycle runs,
L{LIFECYCLE}.

Imports nothing from the rest of the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LIFECYCLE", "SimConfig"]


@dataclass(frozen=True)
class SimConfig:
    """
    One run's parameters (all but C{seed} shared by a batch).

    @ivar duration: seconds of faults and workload.
    @ivar calm: fault-free seconds after them.
    @ivar liveness_bound: within this many calm seconds every honest
        node must pass the highest height reached under faults.
    @ivar step: seconds per step (invariants are checked after each).
    @ivar tx_rate: payments per second during C{duration}.
    @ivar double_spends: fraction of payments that get a conflicting twin.
    @ivar faults: whether the fault plan injects network and crash faults
        (Byzantine nodes misbehave regardless).
    @ivar group_commit: seconds finality records wait for their group
        commit, as on SQLite (L{GroupCommitStore}); 0 for a plain memory
        store whose writes are done at once.
    @ivar joiners: honest hosts outside the genesis (they register when
        C{lifecycle} is on, else they only follow the chain).
    @ivar lifecycle: registrations, a masternode stopped for good, one
        coming back (L{LifecyclePlan}).
    @ivar step_crashes: at most this many crashes inside a consensus step.
    @ivar service: (window, max_missed, min_away) proof-of-service rules
        of every node, instead of the devnet's.
    @ivar max_outage: the longest plain crash or partition, instead of
        20 s and 25 s.
    """

    seed: int = 0
    nodes: int = 4
    byzantine: int = 0
    duration: float = 40.0
    calm: float = 40.0
    liveness_bound: float = 30.0
    step: float = 0.1
    block_time: float = 2.0
    round_timeout: float = 1.0
    vote_timeout: float = 10.0
    tx_rate: float = 3.0
    double_spends: float = 0.2
    faults: bool = True
    max_skew: float = 3.0
    group_commit: float = 0.02
    joiners: int = 0
    lifecycle: bool = False
    step_crashes: int = 0
    service: tuple[int, int, int] | None = None
    max_outage: float | None = None
    committee: int = 0
    """Block consensus by a committee of this many per epoch (0: all)."""

    @property
    def hosts(self) -> int:
        """
        Genesis masternodes plus joiners.
        """
        return self.nodes + self.joiners


LIFECYCLE = SimConfig(nodes=7, byzantine=2, joiners=3, lifecycle=True,
                      step_crashes=3, service=(10, 5, 8), block_time=1.0,
                      duration=35.0, calm=25.0, liveness_bound=20.0,
                      tx_rate=0.5, max_outage=4.0, max_skew=1.0)
"""The lifecycle runs (C{--lifecycle}): 7 genesis masternodes (2
Byzantine) and 3 hosts that register mid-run; one honest masternode stops
for good, another comes back; in-step crashes; 1 s blocks and proof of
service over windows of 10 blocks (set aside when missing from more than
5, back after 8), so that all of it fits in 35 s of faults and 25 s of
calm; other outages (crashes, partitions, step crashes) at most 4 s and
clock skews at most 1 s, so that mostly the planned ones are set aside.
Three joiners keep the honest running weight at a quorum of the active
weight while one masternode is down and not yet set aside, and the
Byzantine weight under a third of the active weight at every height."""

