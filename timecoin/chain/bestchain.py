"""
The best chain of one network: L{Chain}, the coordinator that loads the
chain from the store, connects and reverts blocks, and answers for the
tip.  It owns the UTXO set at the tip and the objects that do the work:
L{MasternodeState} (who the masternodes are), L{MasternodeHistory}
(snapshots, committees and proof of service per height) and
L{BlockValidator} (the block rules).

The UTXO set is held in memory (loaded from the store at start) so that
validation never waits on disk; every change reaches the store first, as
one atomic L{BlockChange}, and only then the memory copy, so memory never
runs ahead of what a restart would find.

Connecting a block spends every input it consumes and creates every output
it produces, in the same atomic write (the seeds' nodes only ever added
UTXOs, and diverged by 336 of them).  The undo data stored with each block
(L{BlockUndo}) records the spent entries so a block can be reverted
exactly.

Imports the core, C{finalized}, C{storage}, and every module of this
package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin import params
from timecoin.block import Block, CommitCertificate
from timecoin.chain.history import MasternodeHistory
from timecoin.chain.masternode_state import MasternodeState
from timecoin.chain.transfer import UtxoLookup, verified_key
from timecoin.chain.undo import BlockUndo
from timecoin.chain.utxo import state_hash, utxo_pairs
from timecoin.chain.validation import BlockValidator
from timecoin.finalized import FinalizedSet
from timecoin.genesis import genesis_masternodes
from timecoin.interfaces import IChainStore, IQuorumRule, ISelectionPolicy
from timecoin.masternodes import Masternode, Snapshot, make_snapshot
from timecoin.mnstate import MnStatus, ServiceRules
from timecoin.mnstate import is_state_key as is_status_key
from timecoin.registration import Registration
from timecoin.signal import Signal
from timecoin.storage import BlockChange, BlockRevert, StoreError
from timecoin.tx import OutPoint, Transaction, UtxoEntry

__all__ = ["Chain"]

log = Logger()


class Chain:
    """
    The best chain of one network.

    @ivar utxos: the UTXO set at the tip.
    @ivar tip: the tip block.
    @ivar masternodes: the masternode state at the tip.
    @ivar history: the masternode snapshots, committees and proof of
        service of the recent heights.
    @ivar validator: the block rules.
    """

    def __init__(self, network: params.Network, store: IChainStore,
                 genesis: Block, policy: ISelectionPolicy,
                 quorum: IQuorumRule, now_ms: Callable[[], int],
                 finalized: FinalizedSet | None = None) -> None:
        self.network = network
        self.store = store
        self.genesis = genesis
        self._now_ms = now_ms
        self.utxos: dict[OutPoint, UtxoEntry] = {}
        self.masternodes = MasternodeState(network, make_snapshot(
            genesis_masternodes(genesis, network.name)))
        self.history = MasternodeHistory(
            network, genesis.hash, policy,
            ServiceRules(network.service_window, network.service_max_missed,
                         network.service_min_away),
            self.masternodes)
        self.tip = genesis
        self.tip_commit: CommitCertificate | None = None
        self._utxo_hash: tuple[bytes, bytes] | None = None
        self.verified: set[bytes] = set()
        self.block_connected: Signal[Block] = Signal("chain.block_connected")
        """Emitted with every block connected (its state applied).  The
        order of its listeners is the node's (L{timecoin.node.Node}):
        block consensus first, then finality, then the rest."""
        self.finalized = finalized if finalized is not None \
            else FinalizedSet()
        """The transactions finalized here and not yet mined, shared with
        the finality engine that fills it.  A block double-spending one is
        invalid (C{conflicts-finalized}); a mined one keeps its finality
        record (its certificate), every other record of a mined
        transaction is deleted by the block's own write.  Empty (no rule
        applies) unless a finality engine finalizes on this chain."""
        self.validator = BlockValidator(network, self.masternodes,
                                        self.history, quorum, self.finalized,
                                        self.verified)
        self._validated: tuple[bytes, bytes, BlockChange] | None = None
        """The last block validated: (tip hash then, block hash,
        change), reused by L{connect_block} while the tip is the same."""
        self.retired: frozenset[bytes] = frozenset()
        """The txids whose records the last connected block's write
        deleted."""

    # The tip and the objects the chain owns ------------------------------

    @property
    def tip(self) -> Block:
        return self._tip

    @tip.setter
    def tip(self, block: Block) -> None:
        self._tip = block
        self.history.height = block.height

    @property
    def height(self) -> int:
        return self.tip.height

    @property
    def policy(self) -> ISelectionPolicy:
        """The selection policy naming producers and committees."""
        return self.history.policy

    @property
    def quorum(self) -> IQuorumRule:
        """The quorum rule of certificates and votes (settable)."""
        return self.validator.quorum

    @quorum.setter
    def quorum(self, quorum: IQuorumRule) -> None:
        self.validator.quorum = quorum

    @property
    def rules(self) -> ServiceRules:
        """The proof-of-service rules (settable)."""
        return self.history.rules

    @rules.setter
    def rules(self, rules: ServiceRules) -> None:
        self.history.rules = rules

    @property
    def registry(self) -> dict[bytes, Registration]:
        """The registrations on chain, by operator key."""
        return self.masternodes.registry

    @property
    def status(self) -> dict[bytes, MnStatus]:
        """The explicit status records (see L{mn_status})."""
        return self.masternodes.status

    @property
    def signers(self) -> dict[int, frozenset[bytes]]:
        """Proof of service: see L{MasternodeHistory.signers}."""
        return self.history.signers

    @property
    def expected(self) -> dict[int, frozenset[bytes]]:
        """Proof of service: see L{MasternodeHistory.expected}."""
        return self.history.expected

    @property
    def collaterals(self) -> dict[OutPoint, bytes]:
        """
        The outpoints backing registered masternodes, with their operator
        keys: a wallet must not spend them by accident (that deregisters).
        """
        return self.masternodes.collateral

    # Loading -------------------------------------------------------------

    @defer.inlineCallbacks
    def load(self) -> Any:
        """
        Open the store; write genesis into an empty one, or check that the
        stored chain starts from our genesis; load the UTXO set and tip.
        """
        yield self.store.open()
        stored = yield self.store.get_meta("genesis_hash")
        if stored is None:
            tip = yield self.store.tip()
            if tip is not None:
                raise StoreError("store has blocks but no genesis record")
            yield self._connect_genesis()
            yield self.store.put_meta("genesis_hash", self.genesis.hash)
        elif stored != self.genesis.hash:
            raise StoreError(
                f"data dir holds the chain of genesis {stored.hex()}, not "
                f"{self.genesis.hash.hex()}; use another --datadir")
        height, tip_hash = yield self.store.tip()
        raw = yield self.store.get_block(tip_hash)
        self.tip = Block.decode(raw)
        undo = yield self.store.get_undo(tip_hash)
        self.tip_commit = BlockUndo.decode(undo).commit if undo else None
        pairs = yield self.store.load_utxos()
        self.utxos = {}
        self.masternodes.reset()
        self._apply_state([], pairs)
        self.history.snapshots = {}
        if undo and self.tip.height > 0:
            self.history.snapshots[self.tip.height] = \
                self.masternodes.snapshot_before(self.tip,
                                                 BlockUndo.decode(undo))
        yield self.history.load(self.store)
        self._utxo_hash = None
        log.info("chain loaded at height {height} ({utxos} UTXOs)",
                 height=height, utxos=len(self.utxos))

    def _connect_genesis(self) -> defer.Deferred[None]:
        coinbase = self.genesis.txs[0]
        created = [(OutPoint(coinbase.txid, i).key(),
                    UtxoEntry(o.value, o.address, 0, True).pack())
                   for i, o in enumerate(coinbase.outputs)]
        change = BlockChange(0, self.genesis.hash, self.genesis.header.prev_hash,
                             self.genesis.encode(), BlockUndo([], None).encode(),
                             [], created, [coinbase.txid], [])
        return self.store.apply_block(change)

    # Masternodes (L{MasternodeState}, L{MasternodeHistory}) ---------------

    def is_known_masternode(self, pubkey: bytes) -> bool:
        """See L{MasternodeState.is_known_masternode}."""
        return self.masternodes.is_known_masternode(pubkey)

    def mn_status(self, pubkey: bytes,
                  registry: dict[bytes, Registration] | None = None,
                  status: dict[bytes, MnStatus] | None = None
                  ) -> MnStatus | None:
        """See L{MasternodeState.mn_status}."""
        return self.masternodes.mn_status(pubkey, registry, status)

    def all_masternodes(self) -> Snapshot:
        """Every masternode at the tip, active or not, sorted."""
        return self.masternodes.all_masternodes()

    def current_snapshot(self) -> Snapshot:
        """See L{MasternodeState.current_snapshot}."""
        return self.masternodes.current_snapshot()

    def snapshot_for(self, height: int) -> Snapshot:
        """See L{MasternodeHistory.snapshot_for}."""
        return self.history.snapshot_for(height)

    def known_snapshot(self, height: int) -> Snapshot | None:
        """See L{MasternodeHistory.known_snapshot}."""
        return self.history.known_snapshot(height)

    def total_weight(self, snapshot: Snapshot) -> int:
        """The total voting weight of C{snapshot} under the quorum rule."""
        return self.validator.total_weight(snapshot)

    def committee_for(self, height: int) -> Snapshot:
        """See L{MasternodeHistory.committee_for}."""
        return self.history.committee_for(height)

    def expected_producer(self, height: int, prev_hash: bytes,
                          round: int) -> bytes | None:
        """See L{MasternodeHistory.expected_producer}."""
        return self.history.expected_producer(height, prev_hash, round)

    def check_activation_shape(self, tx: Transaction) -> tuple[bytes, int]:
        """See L{MasternodeState.check_activation_shape}."""
        return self.masternodes.check_activation_shape(tx)

    def check_new_activation(self, tx: Transaction,
                             pending: frozenset[bytes] = frozenset()
                             ) -> bytes:
        """
        Admission of an activation: well formed, of a masternode on chain,
        that it would activate in the next block, and not one already
        waiting (C{pending} operator keys).  Returns the operator key.

        @raise timecoin.chain.TxInvalid: reason C{bad-activation}.
        """
        return self.masternodes.check_new_activation(
            tx, self.height + 1, self.rules, pending)

    def check_new_registration(
            self, tx: Transaction, lookup: UtxoLookup,
            pending: dict[bytes, Registration] | None = None,
            leaving: dict[bytes, Registration] | None = None) -> Masternode:
        """See L{MasternodeState.check_new_registration}."""
        return self.masternodes.check_new_registration(tx, lookup, pending,
                                                       leaving)

    # Blocks (L{BlockValidator}) ------------------------------------------

    def check_commit(self, cert: CommitCertificate | None,
                     block: Block) -> frozenset[bytes]:
        """See L{BlockValidator.check_commit}."""
        return self.validator.check_commit(cert, block)

    def lookup(self, outpoint: OutPoint) -> UtxoEntry | None:
        """The unspent entry of C{outpoint} at the tip, or C{None}."""
        return self.utxos.get(outpoint)

    def validate_block(self, block: Block) -> BlockChange:
        """
        Fully validate C{block} as the next block and compute its change.

        @raise timecoin.chain.BlockInvalid: with a reason code.
        """
        change = self.validator.validate(block, self.tip, self.utxos,
                                         self._now_ms)
        self._validated = (self.tip.hash, block.hash, change)
        return change

    @defer.inlineCallbacks
    def connect_block(self, block: Block,
                      commit: CommitCertificate | None = None) -> Any:
        """
        Validate C{block}, write it durably with its UTXO changes, then
        update memory.  C{commit} is the block's own commit certificate,
        checked and kept with it (the next block carries it).

        @raise timecoin.chain.BlockInvalid: nothing is written.
        """
        validated, self._validated = self._validated, None
        if validated is not None and validated[:2] == (self.tip.hash,
                                                       block.hash):
            # Validated against this very tip already (consensus checks a
            # proposal before voting for it): the chain has not moved, so
            # the change stands.
            change = validated[2]
        else:
            change = self.validate_block(block)
        if commit is not None:
            self.check_commit(commit, block)
            change = BlockChange(
                change.height, change.block_hash, change.prev_hash,
                change.block, BlockUndo.with_commit(change.undo, commit),
                change.spent, change.created, change.txids, change.archived)
        try:
            yield self.store.apply_block(change)
        except StoreError:
            # The write may have landed with its reply lost (a Redis
            # connection dropped after EXEC): the store's tip tells.
            tip = yield self.store.tip()
            if tip != (change.height, change.block_hash):
                raise
            log.warn("block {height} was stored though the store reported "
                     "an error; continuing from it", height=change.height)
        self.history.block_connected(block)
        self._apply_state(change.spent, change.created)
        self.retired = frozenset(change.archived)
        for tx in block.txs:
            self.finalized.discard(tx.txid)
            self.verified.discard(verified_key(tx))
        self.tip = block
        self.tip_commit = commit
        self._utxo_hash = None
        self.block_connected.emit(block)
        return change

    @defer.inlineCallbacks
    def disconnect_tip(self) -> Any:
        """
        Revert the tip block exactly, using its undo data.
        """
        block = self.tip
        if block.height == 0:
            raise StoreError("cannot revert genesis")
        undo_raw = yield self.store.get_undo(block.hash)
        undo = BlockUndo.decode(undo_raw)
        spent_keys = {k for k, _ in undo.spent}
        removed = []
        in_block_spent = {txin.prevout for tx in block.txs
                          for txin in tx.inputs}
        for tx in block.txs:
            for vout in range(len(tx.outputs)):
                op = OutPoint(tx.txid, vout)
                if op not in in_block_spent:
                    removed.append(op.key())
        removed += [k for k in self.masternodes.state_keys_written(block, undo)
                    if is_status_key(k) or bytes(k[2:]) in self.registry]
        assert not {k for k in spent_keys & set(removed)
                    if not is_status_key(k)}
        raw_prev = yield self.store.get_block(block.header.prev_hash)
        prev = Block.decode(raw_prev)
        prev_undo = yield self.store.get_undo(prev.hash)
        yield self.store.revert_block(BlockRevert(
            block.height, block.hash, block.header.prev_hash, removed,
            undo.spent, [t.txid for t in block.txs]))
        self._apply_state(removed, undo.spent)
        self.history.block_disconnected(block.height)
        self.tip = prev
        self.tip_commit = BlockUndo.decode(prev_undo).commit if prev_undo \
            else None
        self._utxo_hash = None
        return block

    def _apply_state(self, delete: list[bytes],
                     add: list[tuple[bytes, bytes]]) -> None:
        """
        Mirror a stored change in memory: outpoints and registrations.
        """
        self.masternodes.changed()
        for key in delete:
            if not self.masternodes.remove(key):
                self.utxos.pop(OutPoint.from_key(key), None)
        for key, value in add:
            if not self.masternodes.add(key, value):
                self.utxos[OutPoint.from_key(key)] = UtxoEntry.unpack(value)

    # The state as a whole ------------------------------------------------

    def state_pairs(self) -> list[tuple[bytes, bytes]]:
        """
        The whole chain state as stored: every unspent output and every
        registration, as (key, value) pairs in key order.
        """
        pairs = utxo_pairs(self.utxos) + self.masternodes.pairs()
        pairs.sort()
        return pairs

    def utxo_hash(self) -> bytes:
        """
        SHA-256 over the whole UTXO set in outpoint order (key ‖ packed
        entry for each), so two nodes at one height can be compared.
        Cached until the tip changes.
        """
        if self._utxo_hash is None or self._utxo_hash[0] != self.tip.hash:
            digest = state_hash(self.state_pairs())
            self._utxo_hash = (self.tip.hash, digest)
        return self._utxo_hash[1]

    def total_amount(self) -> int:
        """
        The sum of all unspent outputs.
        """
        return sum(e.value for e in self.utxos.values())
