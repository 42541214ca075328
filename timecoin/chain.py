"""
Chain state: the best chain, its UTXO set and masternode snapshot, and the
full validation of blocks before they are connected.

The UTXO set is held in memory (loaded from the store at start) so that
validation never waits on disk; every change reaches the store first, as
one atomic L{BlockChange}, and only then the memory copy, so memory never
runs ahead of what a restart would find.

Connecting a block spends every input it consumes and creates every output
it produces, in the same atomic write (the seeds' nodes only ever added
UTXOs, and diverged by 336 of them).  The undo data stored with each block
records the spent entries so a block can be reverted exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin import params, rewards
from timecoin.address import decode_address, payload_of
from timecoin.block import (
    Block,
    CommitCertificate,
    block_signature_ok,
    commit_hash_of,
    merkle_root,
)
from timecoin.encoding import EncodingError, canonical, decode, sha256, unhex
from timecoin.finalized import FinalizedSet
from timecoin.genesis import genesis_masternodes
from timecoin.interfaces import IChainStore, IQuorumRule, ISelectionPolicy
from timecoin.masternodes import Masternode, Snapshot, make_snapshot
from timecoin.mnstate import (
    ACTIVE,
    REGISTERED,
    SET_ASIDE,
    MnStatus,
    ServiceRules,
    activation_refused,
    missed,
    parse_activation,
    set_aside_reason,
)
from timecoin.mnstate import KIND as ACTIVATE_KIND
from timecoin.mnstate import is_state_key as is_status_key
from timecoin.mnstate import state_key as status_key
from timecoin.registration import KIND as REGISTER_KIND
from timecoin.registration import (
    Registration,
    check_registration,
    is_state_key,
    state_key,
)
from timecoin.storage import BlockChange, BlockRevert, StoreError
from timecoin.tx import (
    OutPoint,
    Transaction,
    UtxoEntry,
    check_shape,
    input_signature_ok,
)

log = Logger()


class BlockInvalid(Exception):
    """
    A block failed validation; C{reason} is a stable reason code.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TxInvalid(Exception):
    """
    A transaction failed validation; C{reason} is a stable reason code.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


UtxoLookup = Callable[[OutPoint], "UtxoEntry | None"]


def verified_key(tx: Transaction) -> bytes:
    """
    The key under which a transaction's verified signatures are cached:
    its txid and the exact signatures it carries (a txid alone does not
    cover the signatures).
    """
    return tx.txid + b"".join(i.signature for i in tx.inputs)


def sent_amount(tx: Transaction, spent: list[UtxoEntry]) -> int:
    """
    The amount a transaction sends to others: its outputs to addresses
    that none of its inputs came from (change is not "sent").
    """
    own = {entry.address for entry in spent}
    return sum(o.value for o in tx.outputs if o.address not in own)


def check_transfer(tx: Transaction, network: params.Network,
                   lookup: UtxoLookup,
                   verified: set[bytes] | None = None) -> int:
    """
    Validate a non-coinbase transaction against the outputs C{lookup}
    finds; return its fee.

    @param verified: L{verified_key}s of transactions whose signatures
        were already checked (and are added here once checked).
    @raise TxInvalid: with a reason code.
    """
    if tx.is_coinbase:
        raise TxInvalid("unexpected-coinbase")
    reason = check_shape(tx, network.address_prefix)
    if reason:
        raise TxInvalid(reason)
    spent = []
    for txin in tx.inputs:
        entry = lookup(txin.prevout)
        if entry is None:
            raise TxInvalid("missing-or-spent-input", str(txin.prevout))
        if payload_of(txin.pubkey) != decode_address(entry.address):
            raise TxInvalid("pubkey-address-mismatch", str(txin.prevout))
        spent.append(entry)
    total_in = sum(e.value for e in spent)
    total_out = sum(o.value for o in tx.outputs)
    if total_in < total_out:
        raise TxInvalid("outputs-exceed-inputs")
    fee = total_in - total_out
    if fee < params.min_fee(sent_amount(tx, spent)):
        raise TxInvalid("fee-too-low",
                        f"{fee} < {params.min_fee(sent_amount(tx, spent))}")
    key = verified_key(tx)
    if verified is None or key not in verified:
        for index in range(len(tx.inputs)):
            if not input_signature_ok(tx, network.name, index):
                raise TxInvalid("bad-signature", f"input {index}")
        if verified is not None:
            verified.add(key)
    return fee


@dataclass
class BlockUndo:
    """
    What reverting a block needs: the entries it deleted or overwrote
    (C{spent}, restored on revert), the masternode state keys it wrote
    (C{state}: registrations and statuses, deleted on revert before the
    old values come back), and its own commit certificate.
    """

    spent: list[tuple[bytes, bytes]]
    commit: CommitCertificate | None
    state: list[bytes] | None = None
    committee: list[bytes] | None = None
    """With committees: the members due to vote this block."""

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "spent": [[k.hex(), v.hex()] for k, v in self.spent],
            "commit": None if self.commit is None else self.commit.to_obj(),
            "state": [k.hex() for k in self.state or []]}
        if self.committee is not None:
            obj["committee"] = [k.hex() for k in self.committee]
        return canonical(obj)

    @staticmethod
    def with_commit(raw: bytes, commit: CommitCertificate) -> bytes:
        """
        The encoding of undo data C{raw} (encoded without a commit) with
        C{commit} put in: the same bytes as decoding, setting the commit
        and encoding again, without re-encoding the spent entries
        (thousands in a full block).
        """
        head = b'{"commit":null,'
        assert raw.startswith(head), raw[:32]
        return (b'{"commit":' + canonical(commit.to_obj()) + b","
                + raw[len(head):])

    @classmethod
    def decode(cls, raw: bytes) -> BlockUndo:
        obj = decode(raw)
        commit = obj["commit"]
        state, committee = obj.get("state"), obj.get("committee")
        return cls([(unhex(k), unhex(v)) for k, v in obj["spent"]],
                   None if commit is None
                   else CommitCertificate.from_obj(commit),
                   None if state is None else [unhex(k) for k in state],
                   None if committee is None
                   else [unhex(k) for k in committee])


def undo_commit(raw: bytes) -> CommitCertificate | None:
    """
    The block's own commit certificate, from its stored undo record (what
    P2P serves with an old block, and what a replay of the chain needs).
    """
    return BlockUndo.decode(raw).commit


class Chain:
    """
    The best chain of one network.

    @ivar utxos: the UTXO set at the tip.
    @ivar tip: the tip block.
    """

    def __init__(self, network: params.Network, store: IChainStore,
                 genesis: Block, policy: ISelectionPolicy,
                 quorum: IQuorumRule, now_ms: Callable[[], int],
                 finalized: FinalizedSet | None = None) -> None:
        self.network = network
        self.store = store
        self.genesis = genesis
        self.policy = policy
        self.quorum = quorum
        self._now_ms = now_ms
        self.utxos: dict[OutPoint, UtxoEntry] = {}
        self.tip: Block = genesis
        self.tip_commit: CommitCertificate | None = None
        self._masternodes = make_snapshot(
            genesis_masternodes(genesis, network.name))
        self._genesis_keys = frozenset(m.pubkey for m in self._masternodes)
        self.registry: dict[bytes, Registration] = {}
        self.status: dict[bytes, MnStatus] = {}
        """The explicit status records (see L{mn_status})."""
        self._current: tuple[tuple[int, int], Snapshot] | None = None
        self._committees: dict[int, tuple[Any, Snapshot]] = {}
        self._epoch_hashes: dict[int, bytes] = {}
        """Hashes of the blocks that end committee epochs, by height."""
        self.expected: dict[int, frozenset[bytes]] = {}
        """With committees: who was to sign the certificate of each recent
        block (its committee), for proof of service."""
        self.rules = ServiceRules(network.service_window,
                                  network.service_max_missed,
                                  network.service_min_away)
        self.signers: dict[int, frozenset[bytes]] = {}
        """Proof of service: the valid signers of the commit certificate of
        each recent block, by its height (from the certificate the next
        block carries)."""
        self._collateral: dict[OutPoint, bytes] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._utxo_hash: tuple[bytes, bytes] | None = None
        self.verified: set[bytes] = set()
        self.block_connected: list[Callable[[Block], None]] = []
        self.finalized = finalized if finalized is not None \
            else FinalizedSet()
        """The transactions finalized here and not yet mined, shared with
        the finality engine that fills it.  A block double-spending one is
        invalid (C{conflicts-finalized}); a mined one keeps its finality
        record (its certificate), every other record of a mined
        transaction is deleted by the block's own write.  Empty (no rule
        applies) unless a finality engine finalizes on this chain."""
        self._validated: tuple[bytes, bytes, BlockChange] | None = None
        """The last block validated: (tip hash then, block hash,
        change), reused by L{connect_block} while the tip is the same."""
        self.retired: frozenset[bytes] = frozenset()
        """The txids whose records the last connected block's write
        deleted."""

    @property
    def height(self) -> int:
        return self.tip.height

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
        self.registry = {}
        self.status = {}
        self._collateral = {}
        self._apply_state([], pairs)
        self._snapshots = {}
        if undo and self.tip.height > 0:
            self._remember_tip_snapshot(BlockUndo.decode(undo))
        yield self._load_signers()
        self._utxo_hash = None
        log.info("chain loaded at height {height} ({utxos} UTXOs)",
                 height=height, utxos=len(self.utxos))

    @defer.inlineCallbacks
    def _load_signers(self) -> Any:
        """
        Read the signers of the certificates in the proof-of-service
        window from the stored blocks that carry them.
        """
        self.signers = {}
        self.expected = {}
        first = max(1, self.height - self.rules.window)
        for height in range(first, self.height + 1):
            block_hash = yield self.store.get_block_hash(height)
            raw = None if block_hash is None else \
                (yield self.store.get_block(block_hash))
            if raw is None:
                raise StoreError(f"block {height} missing from the store")
            commit = Block.decode(raw).commit
            if commit is not None and height >= 2:
                self.signers[height - 1] = frozenset(
                    commit.valid_votes(self.network.name))
            undo = yield self.store.get_undo(block_hash)
            committee = BlockUndo.decode(undo).committee if undo else None
            if committee is not None:
                self.expected[height] = frozenset(committee)
        epoch = self.network.committee_epoch
        self._epoch_hashes = {}
        for boundary in range(max(epoch, (first - 2) // epoch * epoch),
                              self.height + 1, epoch):
            block_hash = yield self.store.get_block_hash(boundary)
            if block_hash is not None:
                self._epoch_hashes[boundary] = block_hash

    def _connect_genesis(self) -> defer.Deferred[None]:
        coinbase = self.genesis.txs[0]
        created = [(OutPoint(coinbase.txid, i).key(),
                    UtxoEntry(o.value, o.address, 0, True).pack())
                   for i, o in enumerate(coinbase.outputs)]
        change = BlockChange(0, self.genesis.hash, self.genesis.header.prev_hash,
                             self.genesis.encode(), BlockUndo([], None).encode(),
                             [], created, [coinbase.txid], [])
        return self.store.apply_block(change)

    def _register(self, registration: Registration) -> None:
        self.registry[registration.masternode.pubkey] = registration
        self._collateral[registration.collateral] = \
            registration.masternode.pubkey

    def _deregister(self, pubkey: bytes) -> None:
        registration = self.registry.pop(pubkey, None)
        if registration is not None:
            self._collateral.pop(registration.collateral, None)

    @property
    def collaterals(self) -> dict[OutPoint, bytes]:
        """
        The outpoints backing registered masternodes, with their operator
        keys: a wallet must not spend them by accident (that deregisters).
        """
        return self._collateral

    def is_known_masternode(self, pubkey: bytes) -> bool:
        """
        Whether C{pubkey} is a masternode of the genesis or registered on
        chain (whatever its status).
        """
        return pubkey in self._genesis_keys or pubkey in self.registry

    def mn_status(self, pubkey: bytes,
                  registry: dict[bytes, Registration] | None = None,
                  status: dict[bytes, MnStatus] | None = None
                  ) -> MnStatus | None:
        """
        The lifecycle status of masternode C{pubkey} at the tip (or in the
        given state), or C{None} if it is not one: its record if it has
        one, else active since height 1 for a genesis masternode, else
        registered since its registration height.
        """
        registry = self.registry if registry is None else registry
        status = self.status if status is None else status
        record = status.get(pubkey)
        if record is not None:
            return record
        if pubkey in self._genesis_keys:
            return MnStatus(ACTIVE, 1)
        registration = registry.get(pubkey)
        if registration is None:
            return None
        return MnStatus(REGISTERED, registration.height)

    def all_masternodes(self) -> Snapshot:
        """
        Every masternode at the tip, active or not, sorted.
        """
        return make_snapshot([*self._masternodes,
                              *(r.masternode for r in self.registry.values())])

    def _snapshot_of(self, registry: dict[bytes, Registration],
                     status: dict[bytes, MnStatus]) -> Snapshot:
        members = [*self._masternodes,
                   *(r.masternode for r in registry.values())]
        return make_snapshot([
            m for m in members
            if (s := self.mn_status(m.pubkey, registry, status)) is not None
            and s.state == ACTIVE])

    def current_snapshot(self) -> Snapshot:
        """
        The active masternodes at the tip, sorted: genesis and registered
        ones, neither waiting for activation nor set aside.  Cached until
        the masternode state changes (consensus asks for it per vote).
        """
        key = (len(self.registry), len(self.status))
        if self._current is None or self._current[0] != key:
            self._current = (key, self._snapshot_of(self.registry,
                                                    self.status))
        return self._current[1]

    def _remember_tip_snapshot(self, undo: BlockUndo) -> None:
        """
        After a restart, reconstruct the snapshot of the tip's own height
        (the masternode state before the tip block) from its undo data.
        """
        written = set(self._state_keys_written(self.tip, undo))
        registry = {p: r for p, r in self.registry.items()
                    if state_key(p) not in written}
        status = {p: s for p, s in self.status.items()
                  if status_key(p) not in written}
        for key, value in undo.spent:
            if is_state_key(key):
                registration = Registration.unpack(
                    value, self.network.address_prefix)
                registry[registration.masternode.pubkey] = registration
            elif is_status_key(key):
                status[key[2:]] = MnStatus.unpack(value)
        self._snapshots[self.tip.height] = self._snapshot_of(registry, status)

    def _state_keys_written(self, block: Block, undo: BlockUndo) -> list[bytes]:
        """
        The masternode state keys C{block} wrote: from its undo data, or
        for blocks stored before it recorded them, its registrations.
        """
        if undo.state is not None:
            return undo.state
        return self._state_keys_created(block)

    @staticmethod
    def _state_keys_created(block: Block) -> list[bytes]:
        return [state_key(bytes.fromhex(t.data["pubkey"]))
                for t in block.txs if t.kind == REGISTER_KIND]

    def snapshot_for(self, height: int) -> Snapshot:
        """
        The masternode snapshot that produces and votes at C{height}: the
        registry as of block C{height - 1} (genesis masternodes plus those
        registered on chain and not deregistered), sorted canonically.
        Kept for the next height and the last 200.
        """
        if height > self.height:
            return self.current_snapshot()
        known = self._snapshots.get(height)
        # Blocks are validated only at the tip, whose snapshot is always
        # kept; older heights (vote replay windows) fall back to the
        # current set.
        return known if known is not None else self.current_snapshot()

    def known_snapshot(self, height: int) -> Snapshot | None:
        """
        The snapshot of C{height} if this node knows it exactly (the next
        height's, and those of the heights connected since the chain was
        loaded or the tip's, the last 200), else C{None}: after a restart
        L{snapshot_for} answers older heights with the current set, which
        differs once masternodes were set aside or activated since.
        """
        if height > self.height:
            return self.current_snapshot()
        return self._snapshots.get(height)

    def total_weight(self, snapshot: Snapshot) -> int:
        """
        The total voting weight of C{snapshot} under the quorum rule.
        """
        return sum(self.quorum.weight(m) for m in snapshot)

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
            return self.genesis.hash
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

    def check_commit(self, cert: CommitCertificate | None,
                     block: Block) -> frozenset[bytes]:
        """
        Check that C{cert} commits C{block}: it names the block and the
        valid signatures of its voters reach the approval quorum of the
        snapshot for its height.  Returns the voters whose signatures
        verify (what proof of service reads).

        @raise BlockInvalid: with reason C{bad-commit}.
        """
        if block.height == 0:
            if cert is not None:
                raise BlockInvalid("bad-commit", "genesis needs no commit")
            return frozenset()
        if cert is None:
            raise BlockInvalid("bad-commit", "missing commit certificate")
        if (cert.height, cert.block_hash) != (block.height, block.hash) \
                or cert.round < block.header.round:
            # The round may be later than the block's own: a block
            # proposed in round r can be re-proposed and committed in a
            # later round (its votes sign the round they were cast in).
            raise BlockInvalid("bad-commit", "certificate for another block")
        snapshot = self.committee_for(block.height)
        members = {m.pubkey: m for m in snapshot}
        signers = frozenset(cert.valid_votes(self.network.name))
        weight = sum(self.quorum.weight(members[v])
                     for v in signers if v in members)
        if not self.quorum.approved(weight, self.total_weight(snapshot)):
            raise BlockInvalid("bad-commit", f"weight {weight} short of "
                               "quorum")
        return signers

    def lookup(self, outpoint: OutPoint) -> UtxoEntry | None:
        """
        The unspent entry of C{outpoint} at the tip, or C{None}.
        """
        return self.utxos.get(outpoint)

    def validate_block(self, block: Block) -> BlockChange:
        """
        Fully validate C{block} as the next block and compute its change.

        @raise BlockInvalid: with a reason code.
        """
        header = block.header
        if block.size > params.MAX_BLOCK_BYTES:
            raise BlockInvalid("block-too-large", str(block.size))
        if header.height != self.height + 1:
            raise BlockInvalid("bad-height", f"{header.height} after "
                               f"{self.height}")
        if header.prev_hash != self.tip.hash:
            raise BlockInvalid("bad-prev-hash")
        if header.timestamp <= self.tip.header.timestamp:
            raise BlockInvalid("time-too-old")
        if header.timestamp > self._now_ms() + params.MAX_FUTURE_BLOCK_MS:
            raise BlockInvalid("time-too-new")
        expected = self.expected_producer(header.height, header.prev_hash,
                                          header.round)
        if expected is None or header.producer != expected:
            raise BlockInvalid("wrong-producer", f"round {header.round}")
        if not block_signature_ok(block, self.network.name):
            raise BlockInvalid("bad-block-signature")
        if header.commit_hash != commit_hash_of(block.commit):
            raise BlockInvalid("bad-commit-hash")
        signers: dict[int, frozenset[bytes]] = {}
        if header.height > 1:
            signers[header.height - 1] = self.check_commit(block.commit,
                                                           self.tip)
        elif block.commit is not None:
            raise BlockInvalid("bad-commit", "block 1 follows genesis")
        if not block.txs or not block.txs[0].is_coinbase:
            raise BlockInvalid("no-coinbase")
        if header.merkle_root != merkle_root([t.txid for t in block.txs]):
            raise BlockInvalid("bad-merkle-root")
        coinbase = block.txs[0]
        if coinbase.data != {"height": header.height}:
            raise BlockInvalid("bad-coinbase", "data must be the height")

        created: dict[OutPoint, UtxoEntry] = {}
        spent: dict[OutPoint, UtxoEntry] = {}
        seen: set[bytes] = {coinbase.txid}

        def lookup(outpoint: OutPoint) -> UtxoEntry | None:
            if outpoint in spent:
                return None
            entry = created.get(outpoint)
            return entry if entry is not None else self.utxos.get(outpoint)

        fees = 0
        registered: dict[bytes, Registration] = {}
        deregistered: dict[bytes, Registration] = {}
        activations: list[tuple[bytes, int]] = []
        for tx in block.txs[1:]:
            if tx.txid in seen:
                raise BlockInvalid("duplicate-tx", tx.txid.hex())
            seen.add(tx.txid)
            holder = self.finalized.conflict(tx)
            if holder is not None:
                raise BlockInvalid("conflicts-finalized", f"{tx.txid.hex()} "
                                   f"double-spends {holder.hex()}")
            try:
                fees += check_transfer(tx, self.network, lookup,
                                       self.verified)
                if tx.kind == REGISTER_KIND:
                    masternode = self.check_new_registration(
                        tx, lookup, registered, deregistered)
                    registered[masternode.pubkey] = Registration(
                        masternode, OutPoint(
                            bytes.fromhex(tx.data["collateral"]["txid"]),
                            tx.data["collateral"]["vout"]), header.height)
                elif tx.kind == ACTIVATE_KIND:
                    activations.append(self.check_activation_shape(tx))
            except TxInvalid as e:
                raise BlockInvalid("bad-tx", f"{tx.txid.hex()}: {e}") from e
            for txin in tx.inputs:
                self._collateral_spent(txin.prevout, registered,
                                       deregistered)
                entry = created.pop(txin.prevout, None)
                if entry is None:
                    spent[txin.prevout] = self.utxos[txin.prevout]
            for vout, out in enumerate(tx.outputs):
                created[OutPoint(tx.txid, vout)] = UtxoEntry(
                    out.value, out.address, header.height)
        reward = rewards.coinbase_outputs(
            self.snapshot_for(header.height), self.network.block_reward, fees)
        if coinbase.outputs != reward:
            raise BlockInvalid("bad-coinbase", "outputs differ from the "
                               "reward rule")
        for vout, out in enumerate(coinbase.outputs):
            created[OutPoint(coinbase.txid, vout)] = UtxoEntry(
                out.value, out.address, header.height, True)
        if any(self.utxos.get(op) is not None for op in created):
            raise BlockInvalid("duplicate-output")
        statuses = self._status_changes(header.height, activations,
                                        deregistered, {**self.signers,
                                                       **signers})
        removed = [(state_key(pk), r.pack()) for pk, r in deregistered.items()]
        removed += [(status_key(pk), self.status[pk].pack())
                    for pk in deregistered if pk in self.status]
        overwritten = [(status_key(pk), self.status[pk].pack())
                       for pk in statuses if pk in self.status]
        written = [state_key(pk) for pk in registered] + \
            [status_key(pk) for pk in statuses]
        committee = self.committee_for(header.height)
        undo = BlockUndo([(op.key(), e.pack()) for op, e in spent.items()]
                     + removed + overwritten, None, written,
                     None if len(committee) == len(
                         self.snapshot_for(header.height))
                     else [m.pubkey for m in committee])
        txids = [t.txid for t in block.txs]
        change = BlockChange(
            header.height, block.hash, header.prev_hash, block.encode(),
            undo.encode(), [op.key() for op in spent] + [k for k, _ in removed],
            [(op.key(), e.pack()) for op, e in created.items()]
            + [(state_key(pk), r.pack()) for pk, r in registered.items()]
            + [(status_key(pk), s.pack()) for pk, s in statuses.items()],
            txids, [t for t in txids[1:] if t not in self.finalized])
        self._validated = (self.tip.hash, block.hash, change)
        return change

    def check_activation_shape(self, tx: Transaction) -> tuple[bytes, int]:
        """
        Check an activation's data and operator signature; return (pubkey,
        since).  Whether it changes anything is decided by the block that
        carries it (L{activation_refused}), never a reason to refuse it.

        @raise TxInvalid: reason C{bad-activation}.
        """
        try:
            return parse_activation(tx, self.network.name)
        except EncodingError as e:
            raise TxInvalid("bad-activation", str(e)) from e

    def check_new_activation(self, tx: Transaction,
                             pending: frozenset[bytes] = frozenset()
                             ) -> bytes:
        """
        Admission of an activation: well formed, of a masternode on chain,
        that it would activate in the next block, and not one already
        waiting (C{pending} operator keys).  Returns the operator key.

        @raise TxInvalid: reason C{bad-activation}.
        """
        pubkey, since = self.check_activation_shape(tx)
        status = self.mn_status(pubkey)
        if status is None:
            raise TxInvalid("bad-activation", "not a registered masternode")
        refused = activation_refused(status, since, self.height + 1,
                                     self.rules)
        if refused is not None:
            raise TxInvalid("bad-activation", refused)
        if pubkey in pending:
            raise TxInvalid("bad-activation", "an activation of this "
                            "masternode is already waiting")
        return pubkey

    def _status_changes(self, height: int,
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
            status = self.mn_status(pubkey)
            if status is None or pubkey in deregistered or \
                    pubkey in changes or activation_refused(
                        status, since, height, self.rules) is not None:
                continue
            changes[pubkey] = MnStatus(ACTIVE, height + 1)
        rules = self.rules
        for m in self.snapshot_for(height):
            status = self.mn_status(m.pubkey)
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

    def check_new_registration(
            self, tx: Transaction, lookup: UtxoLookup,
            pending: dict[bytes, Registration] | None = None,
            leaving: dict[bytes, Registration] | None = None) -> Masternode:
        """
        Validate registration C{tx} against the registry (plus the
        registrations C{pending} and deregistrations C{leaving} of the block
        or mempool being checked); return the masternode with its tier.

        @raise TxInvalid: reason C{bad-registration}.
        """
        pending = pending or {}
        leaving = leaving or {}
        genesis_keys = {m.pubkey for m in self._masternodes}

        def registered(pubkey: bytes) -> bool:
            return pubkey in genesis_keys or pubkey in pending or (
                pubkey in self.registry and pubkey not in leaving)

        def collateral_used(outpoint: OutPoint) -> bool:
            holder = self._collateral.get(outpoint)
            return (holder is not None and holder not in leaving) or any(
                r.collateral == outpoint for r in pending.values())

        try:
            return check_registration(
                tx, self.network.name, self.network.address_prefix, lookup,
                registered, collateral_used)
        except ValueError as e:
            reason, _, detail = str(e).partition(": ")
            raise TxInvalid(reason, detail) from e

    def _collateral_spent(self, outpoint: OutPoint,
                          registered: dict[bytes, Registration],
                          deregistered: dict[bytes, Registration]) -> None:
        """
        Spending a collateral deregisters its masternode.
        """
        for pubkey, registration in list(registered.items()):
            if registration.collateral == outpoint:
                del registered[pubkey]
        holder = self._collateral.get(outpoint)
        if holder is not None and holder not in deregistered:
            deregistered[holder] = self.registry[holder]

    @defer.inlineCallbacks
    def connect_block(self, block: Block,
                      commit: CommitCertificate | None = None) -> Any:
        """
        Validate C{block}, write it durably with its UTXO changes, then
        update memory.  C{commit} is the block's own commit certificate,
        checked and kept with it (the next block carries it).

        @raise BlockInvalid: nothing is written.
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
        self._snapshots[block.height] = self.snapshot_for(block.height)
        for old in [h for h in self._snapshots if h < block.height - 200]:
            del self._snapshots[old]
        if block.commit is not None:
            self.signers[block.height - 1] = frozenset(
                block.commit.valid_votes(self.network.name))
        committee = self.committee_for(block.height)
        if len(committee) < len(self._snapshots[block.height]):
            self.expected[block.height] = frozenset(
                m.pubkey for m in committee)
        if block.height % self.network.committee_epoch == 0:
            self._epoch_hashes[block.height] = block.hash
        keep = block.height - 4 * self.rules.window
        for table in (self.signers, self.expected):
            for old in [h for h in table if h < keep]:
                del table[old]
        self._apply_state(change.spent, change.created)
        self.retired = frozenset(change.archived)
        for tx in block.txs:
            self.finalized.discard(tx.txid)
            self.verified.discard(verified_key(tx))
        self.tip = block
        self.tip_commit = commit
        self._utxo_hash = None
        for callback in list(self.block_connected):
            callback(block)
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
        removed += [k for k in self._state_keys_written(block, undo)
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
        self._snapshots.pop(block.height, None)
        self.signers.pop(block.height - 1, None)
        self.expected.pop(block.height, None)
        self._epoch_hashes.pop(block.height, None)
        self._committees.clear()
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
        self._current = None
        for key in delete:
            if is_state_key(key):
                self._deregister(key[2:])
            elif is_status_key(key):
                self.status.pop(key[2:], None)
            else:
                self.utxos.pop(OutPoint.from_key(key), None)
        for key, value in add:
            if is_state_key(key):
                self._register(Registration.unpack(
                    value, self.network.address_prefix))
            elif is_status_key(key):
                self.status[key[2:]] = MnStatus.unpack(value)
            else:
                self.utxos[OutPoint.from_key(key)] = UtxoEntry.unpack(value)

    def state_pairs(self) -> list[tuple[bytes, bytes]]:
        """
        The whole chain state as stored: every unspent output and every
        registration, as (key, value) pairs in key order.
        """
        pairs = [(op.key(), e.pack()) for op, e in self.utxos.items()]
        pairs += [(state_key(pk), r.pack()) for pk, r in self.registry.items()]
        pairs += [(status_key(pk), s.pack()) for pk, s in self.status.items()]
        pairs.sort()
        return pairs

    def utxo_hash(self) -> bytes:
        """
        SHA-256 over the whole UTXO set in outpoint order (key ‖ packed
        entry for each), so two nodes at one height can be compared.
        Cached until the tip changes.
        """
        if self._utxo_hash is None or self._utxo_hash[0] != self.tip.hash:
            digest = sha256(b"".join(k + v for k, v in self.state_pairs()))
            self._utxo_hash = (self.tip.hash, digest)
        return self._utxo_hash[1]

    def total_amount(self) -> int:
        """
        The sum of all unspent outputs.
        """
        return sum(e.value for e in self.utxos.values())
