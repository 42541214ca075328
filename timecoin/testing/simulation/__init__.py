"""
A deterministic simulator of a whole TIME Coin network in one process.

N complete nodes (L{timecoin.node.Node} with its chain, mempool, finality
and block consensus, and L{timecoin.p2p.service.P2PService} speaking the
real line protocol) run on in-memory stores (committing finality
records in groups, late, as SQLite does: L{GroupCommitStore}) over one
L{SimNetwork} (the fake TCP of L{timecoin.p2p.testing} with per-link
faults) and one clock (L{HeapClock}, a L{twisted.internet.task.Clock}
that scales to thousands of timers).  Everything random comes
from one seed: C{random.Random(seed)} hands out independent streams to the
network, the fault plan, the workload, each node's P2P layer and each
adversary, so a seed replays the same run exactly (run the command with
C{PYTHONHASHSEED=0}; it re-executes itself so).

A run has two phases.  For C{duration} seconds a L{FaultPlan} (drawn from
the seed) drops, delays, duplicates and reorders gossip messages per link,
partitions and heals groups of nodes, crashes honest nodes and restarts
them on the same store, while nodes run with skewed clocks, Byzantine
masternodes (L{Adversary}) equivocate, double-vote, forge, replay and spam,
and a L{Workload} submits signed payments, with deliberate double spends,
to random nodes.  Then every fault stops (Byzantine nodes go on
misbehaving) for C{calm} seconds.

L{Checker} checks the invariants after every step and at the end, each
violation naming the seed, the nodes, heights and hashes:

- C{fork}: no two different committed blocks at one height, across nodes
  and over time (a node's block at a height never changes).
- C{finality}: no honest node rejects (by vote, timeout or conflict) a
  transaction it finalized, or reports one finalized twice; once faults
  stop, every transaction finalized
  on one honest node is final (finalized or in the chain) on every honest
  node, so none is finalized on one and rejected on another.  (A node may
  finalize a transaction it rejected earlier: late votes win over a
  timeout or a reject quorum that a double voter helped form, see
  L{timecoin.finality}.)
- C{double-spend}: no two different finalized or confirmed transactions
  spend one output.
- C{utxo}: equal C{chain.utxo_hash()} at equal committed heights.
- C{liveness}: once faults stop, if the honest running masternodes hold a
  quorum of the weight active then (Byzantine ones may stay silent; one
  stopped for good counts until the chain sets it aside), every honest
  node passes the highest height of the fault phase within
  C{liveness_bound} seconds.
- C{equivocation}: no honest node ever sends two different proposals or
  votes for one (height, round, step), across its crashes (checked on
  what leaves each node), and no node holds equivocation evidence
  against an honest masternode (block votes and proposals, and
  transaction votes within the vote window).
- C{status}: every honest node holds the same masternode statuses
  (registered, active, set aside, since when, why) and active set at
  each height it reaches.
- C{lifecycle} (at the end, lifecycle runs): a joiner whose registration
  was mined is active; the masternode stopped for good is set aside; a
  running honest masternode set aside is back once it may be, given
  L{SLACK} blocks.
- C{critical-log}: no node logs a critical event (a conflicting
  certificate, a block conflicting with a finalized transaction).
- C{bookkeeping} (at the end): each honest node's count of finalized
  mempool entries, which admission control reads, equals the entries.

Honest nodes are the ones checked: a Byzantine node runs the same code but
what it tells others is not its state.  Its own view is not an invariant.
Should the chain set aside so many honest masternodes that the Byzantine
ones hold a third of the active weight, safety is no longer promised: the
run reports it (C{beyond-model}) and keeps failing only on equivocation.

Lifecycle runs (C{--lifecycle}, L{LIFECYCLE}) add hosts outside the
genesis that are funded and register mid-run (their nodes activate by
themselves), a masternode stopped for good, one that stops until the
chain sets it aside and comes back, and crashes inside a consensus step
(C{step-crash}: before signing, or after signing with the signing-state
write lost or kept, before the message leaves).

C{python -m timecoin.testing.simulation --seeds 1000 --nodes 7
--byzantine 2} runs many seeds over worker processes and prints each
failure with the command reproducing it, then one summary line.

What lives where.  Each module imports only those above it in this list
(none imports this C{__init__}), the node's packages (C{timecoin.*}) and
Twisted, never C{tests}.  Beyond the node's public names, the hosts and
adversaries replace a few private hooks on their own node's objects (the
consensus engine's C{_may_sign} for a crash before signing; the P2P
manager's C{local_hello}, C{_serve_tip}, C{_serve_peers} and the sync's
block server's C{serve_blocks} for the hostile peers).

- L{world}: the start time, network, port, deterministic keys and
  genesis coins; L{fork} of random streams.
- L{clock}: L{HeapClock} and the run's L{Journal} (timeline, counters).
- L{config}: L{SimConfig} and the L{LIFECYCLE} preset.
- L{network}: L{SimNetwork}, L{LinkFaults}, partitions, L{CopyCounter}.
- L{plan}: L{FaultPlan}, L{Event}, L{LifecyclePlan} and the Byzantine
  behaviours' names.
- L{stores}: L{GroupCommitStore}.
- L{hosts}: L{SimNode} and L{Hosts} (start, crash, restart, step
  crashes).
- L{adversary}: L{Adversary}.
- L{workload}: L{Workload}.
- L{lifecycle}: L{Lifecycle}.
- L{invariants}: L{Checker} (with L{EquivocationCheck} and
  L{LifecycleCheck}), L{Liveness}, L{Violation}.
- L{runner}: L{Simulation}, L{SimResult}, L{run_seed}, L{repro}.
- L{cli} (and C{__main__}): the command line, L{main}.
"""

from timecoin.testing.simulation.adversary import HEIGHT_LIE, Adversary
from timecoin.testing.simulation.cli import LIFECYCLE_EVENTS, main
from timecoin.testing.simulation.clock import HeapClock, Journal
from timecoin.testing.simulation.config import LIFECYCLE, SimConfig
from timecoin.testing.simulation.hosts import Hosts, SimNode
from timecoin.testing.simulation.invariants import (
    DECISIONS,
    NOT_PROMISED,
    NOTED,
    SLACK,
    Checker,
    EquivocationCheck,
    LifecycleCheck,
    Liveness,
    Violation,
)
from timecoin.testing.simulation.lifecycle import Lifecycle
from timecoin.testing.simulation.network import (
    GOSSIP,
    CopyCounter,
    LinkFaults,
    SimNetwork,
)
from timecoin.testing.simulation.plan import (
    BEHAVIOURS,
    CONSENSUS_BEHAVIOURS,
    P2P_BEHAVIOURS,
    STEP_CRASH_MODES,
    STEP_CRASH_STEPS,
    Event,
    FaultPlan,
    LifecyclePlan,
)
from timecoin.testing.simulation.runner import (
    SimResult,
    Simulation,
    repro,
    run_seed,
)
from timecoin.testing.simulation.stores import GroupCommitStore
from timecoin.testing.simulation.workload import Workload
from timecoin.testing.simulation.world import (
    NETWORK,
    PORT,
    START,
    bank_key,
    fork,
    masternode_key,
    wallet_key,
)

__all__ = [
    "BEHAVIOURS", "CONSENSUS_BEHAVIOURS", "DECISIONS", "GOSSIP",
    "HEIGHT_LIE", "LIFECYCLE", "LIFECYCLE_EVENTS", "NETWORK", "NOTED",
    "NOT_PROMISED", "P2P_BEHAVIOURS", "PORT", "SLACK", "START",
    "STEP_CRASH_MODES", "STEP_CRASH_STEPS", "Adversary", "Checker",
    "CopyCounter", "EquivocationCheck", "Event", "FaultPlan",
    "GroupCommitStore", "HeapClock", "Hosts", "Journal", "Lifecycle",
    "LifecycleCheck", "LifecyclePlan", "LinkFaults", "Liveness",
    "SimConfig", "SimNetwork", "SimNode", "SimResult", "Simulation",
    "Violation", "Workload", "bank_key", "fork", "main", "masternode_key",
    "repro", "run_seed", "wallet_key",
]
