"""
What the chain remembers of its masternodes per height: L{MasternodeHistory}
holds the snapshot of each recent height, the committees and the hashes
that seed them, and for proof of service who signed (C{signers}) and who
was due to sign (C{expected}) each recent certificate; it decides the
status changes (activations, set-asides) a block writes.

Imports the core (C{block}, C{interfaces}, C{masternodes}, C{mnstate},
C{registration}, C{storage}) and L{masternode_state}, L{undo}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from timecoin import params
from timecoin.block import Block
from timecoin.chain.masternode_state import MasternodeState
from timecoin.chain.undo import BlockUndo
from timecoin.interfaces import IChainStore, ISelectionPolicy
from timecoin.masternodes import Snapshot
from timecoin.mnstate import (
    ACTIVE,
    SET_ASIDE,
    MnStatus,
    ServiceRules,
    activation_refused,
    missed,
    set_aside_reason,
)
from timecoin.registration import Registration
from timecoin.storage import StoreError

__all__ = ["MasternodeHistory"]


class MasternodeHistory:
    """
    The masternode snapshots, committees and proof-of-service records of
    the recent heights of one chain.

    @ivar height: the chain's tip height (the chain sets it as its tip
        moves).
    @ivar signers: the valid signers of the commit certificate of each
        recent block, by its height (from the certificate the next block
        carries).
    @ivar expected: with committees, who was to sign the certificate of
        each recent block (its committee).
    """

    def __init__(self, network: params.Network, genesis_hash: bytes,
                 policy: ISelectionPolicy, rules: ServiceRules,
                 state: MasternodeState) -> None:
        self.network = network
        self.genesis_hash = genesis_hash
        self.policy = policy
        self.rules = rules
        self.state = state
        self.height = 0
        self.signers: dict[int, frozenset[bytes]] = {}
        self.expected: dict[int, frozenset[bytes]] = {}
        self.snapshots: dict[int, Snapshot] = {}
        self._committees: dict[int, tuple[Any, Snapshot]] = {}
        self._epoch_hashes: dict[int, bytes] = {}
        """Hashes of the blocks that end committee epochs, by height."""

    @defer.inlineCallbacks
    def load(self, store: IChainStore) -> Any:
        """
        Read the signers of the certificates in the proof-of-service
        window from the stored blocks that carry them, the committees due
        for them, and the hashes that seed the committees.
        """
        self.signers = {}
        self.expected = {}
        first = max(1, self.height - self.rules.window)
        for height in range(first, self.height + 1):
            block_hash = yield store.get_block_hash(height)
            raw = None if block_hash is None else \
                (yield store.get_block(block_hash))
            if raw is None:
                raise StoreError(f"block {height} missing from the store")
            commit = Block.decode(raw).commit
            if commit is not None and height >= 2:
                self.signers[height - 1] = frozenset(
                    commit.valid_votes(self.network.name))
            undo = yield store.get_undo(block_hash)
            committee = BlockUndo.decode(undo).committee if undo else None
            if committee is not None:
                self.expected[height] = frozenset(committee)
        epoch = self.network.committee_epoch
        self._epoch_hashes = {}
        for boundary in range(max(epoch, (first - 2) // epoch * epoch),
                              self.height + 1, epoch):
            block_hash = yield store.get_block_hash(boundary)
            if block_hash is not None:
                self._epoch_hashes[boundary] = block_hash

    def block_connected(self, block: Block) -> None:
        """
        Remember what block C{block} (connected, the state not yet
        changed by it) fixes: the snapshot of its height, the signers of
        the certificate it carries, its committee, an epoch's hash.
        """
        self.snapshots[block.height] = self.snapshot_for(block.height)
        for old in [h for h in self.snapshots if h < block.height - 200]:
            del self.snapshots[old]
        if block.commit is not None:
            self.signers[block.height - 1] = frozenset(
                block.commit.valid_votes(self.network.name))
        committee = self.committee_for(block.height)
        if len(committee) < len(self.snapshots[block.height]):
            self.expected[block.height] = frozenset(
                m.pubkey for m in committee)
        if block.height % self.network.committee_epoch == 0:
            self._epoch_hashes[block.height] = block.hash
        keep = block.height - 4 * self.rules.window
        for table in (self.signers, self.expected):
            for old in [h for h in table if h < keep]:
                del table[old]

    def block_disconnected(self, height: int) -> None:
        """
        Forget what the block of C{height}, reverted, fixed.
        """
        self.snapshots.pop(height, None)
        self.signers.pop(height - 1, None)
        self.expected.pop(height, None)
        self._epoch_hashes.pop(height, None)
        self._committees.clear()

    def snapshot_for(self, height: int) -> Snapshot:
        """
        The masternode snapshot that produces and votes at C{height}: the
        registry as of block C{height - 1} (genesis masternodes plus those
        registered on chain and not deregistered), sorted canonically.
        Kept for the next height and the last 200.
        """
        if height > self.height:
            return self.state.current_snapshot()
        known = self.snapshots.get(height)
        # Blocks are validated only at the tip, whose snapshot is always
        # kept; older heights (vote replay windows) fall back to the
        # current set.
        return known if known is not None else self.state.current_snapshot()

    def known_snapshot(self, height: int) -> Snapshot | None:
        """
        The snapshot of C{height} if this node knows it exactly (the next
        height's, and those of the heights connected since the chain was
        loaded or the tip's, the last 200), else C{None}: after a restart
        L{snapshot_for} answers older heights with the current set, which
        differs once masternodes were set aside or activated since.
        """
        if height > self.height:
            return self.state.current_snapshot()
        return self.snapshots.get(height)

    def committee_for(self, height: int) -> Snapshot:
        """
        The masternodes that propose and vote block C{height}: the whole
        snapshot, unless the network sets a C{committee_size} smaller than
        it.  Then the first C{committee_size} of the selection policy's
        order of the snapshot for the epoch (C{policy.candidates(snapshot,
        epoch, seed, 0)}, where the seed is the hash of the block that
        ends the previous epoch): a function of chain state only, the same
        on every node, stake-weighted under C{stake-weighted}.  A member
        that leaves the snapshot mid-epoch is replaced by the next in that
        order.
        """
        snapshot = self.snapshot_for(height)
        size = self.network.committee_size
        if not size or len(snapshot) <= size:
            return snapshot
        epoch = (height - 1) // self.network.committee_epoch
        key = (epoch, snapshot)
        cached = self._committees.get(height)
        if cached is not None and cached[0] == key:
            return cached[1]
        seed = self._epoch_seed(epoch)
        if seed is None:
            # An epoch whose seed is not on chain yet (sync weighing a
            # certificate shown for a height ahead): the whole snapshot,
            # of which the committee is a part.
            return snapshot
        order = self.policy.candidates(snapshot, epoch, seed, 0)
        chosen = set(order[:size])
        committee = tuple(m for m in snapshot if m.pubkey in chosen)
        self._committees[height] = (key, committee)
        for old in [h for h in self._committees if h < self.height - 8]:
            del self._committees[old]
        return committee

    def _epoch_seed(self, epoch: int) -> bytes | None:
        """
        The hash of the block that ends the epoch before C{epoch} (the
        genesis for epoch 0), or C{None} when that block is not on chain
        (a later epoch).
        """
        if epoch == 0:
            return self.genesis_hash
        return self._epoch_hashes.get(epoch * self.network.committee_epoch)

    def expected_producer(self, height: int, prev_hash: bytes,
                          round: int) -> bytes | None:
        """
        The producer the selection policy names for (height, round), from
        the committee of that height.
        """
        committee = self.committee_for(height)
        if not committee:
            return None
        return self.policy.candidates(committee, height, prev_hash, round)[0]

    def status_changes(self, height: int,
                       activations: list[tuple[bytes, int]],
                       deregistered: dict[bytes, Registration],
                       signers: dict[int, frozenset[bytes]]
                       ) -> dict[bytes, MnStatus]:
        """
        The status records block C{height} writes: activations that take
        effect (active from the next height), and proof of service --
        every masternode active for a whole window and missing from more
        than C{max_missed} of its last W certificates is set aside.
        """
        changes: dict[bytes, MnStatus] = {}
        for pubkey, since in activations:
            status = self.state.mn_status(pubkey)
            if status is None or pubkey in deregistered or \
                    pubkey in changes or activation_refused(
                        status, since, height, self.rules) is not None:
                continue
            changes[pubkey] = MnStatus(ACTIVE, height + 1)
        rules = self.rules
        for m in self.snapshot_for(height):
            status = self.state.mn_status(m.pubkey)
            if status is None or status.state != ACTIVE or \
                    m.pubkey in deregistered:
                continue
            counts = missed(signers, m.pubkey, status.since, height, rules,
                            self.expected)
            reason = None if counts is None else set_aside_reason(*counts,
                                                                   rules)
            if reason is not None:
                changes[m.pubkey] = MnStatus(SET_ASIDE, height, reason)
        return changes
