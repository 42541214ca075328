"""
The masternodes at the tip of the chain: L{MasternodeState} holds the
genesis masternodes, the registrations on chain (with the collaterals
backing them) and the explicit status records, answers who is a
masternode and in which status, builds the active snapshot, and checks
new registrations and activations against that state.

What it holds per height (snapshots, committees, proof-of-service
signers) is L{timecoin.chain.history}'s.  Imports the core
(C{masternodes}, C{mnstate}, C{registration}, C{tx}, C{block},
C{encoding}, C{params}) and L{errors}, L{transfer}, L{undo}.
"""

from __future__ import annotations

from timecoin import params
from timecoin.block import Block
from timecoin.chain.errors import TxInvalid
from timecoin.chain.transfer import UtxoLookup
from timecoin.chain.undo import BlockUndo
from timecoin.encoding import EncodingError
from timecoin.masternodes import Masternode, Snapshot, make_snapshot
from timecoin.mnstate import (
    ACTIVE,
    REGISTERED,
    MnStatus,
    ServiceRules,
    activation_refused,
    parse_activation,
)
from timecoin.mnstate import is_state_key as is_status_key
from timecoin.mnstate import state_key as status_key
from timecoin.registration import KIND as REGISTER_KIND
from timecoin.registration import (
    Registration,
    check_registration,
    is_state_key,
    state_key,
)
from timecoin.tx import OutPoint, Transaction

__all__ = ["MasternodeState"]


class MasternodeState:
    """
    Who the masternodes are at the tip, and in which status.

    @ivar registry: the registrations on chain, by operator key.
    @ivar status: the explicit status records (see L{mn_status}).
    """

    def __init__(self, network: params.Network, genesis: Snapshot) -> None:
        self.network = network
        self.genesis = genesis
        """The masternodes the genesis block registers."""
        self.genesis_keys = frozenset(m.pubkey for m in genesis)
        self.registry: dict[bytes, Registration] = {}
        self.status: dict[bytes, MnStatus] = {}
        self.collateral: dict[OutPoint, bytes] = {}
        """The outpoints backing registrations, with their operator keys."""
        self._current: tuple[tuple[int, int], Snapshot] | None = None

    # The state, mirrored from the store ---------------------------------

    def reset(self) -> None:
        """
        Forget every registration and status (before loading the store).
        """
        self.registry = {}
        self.status = {}
        self.collateral = {}

    def changed(self) -> None:
        """
        Drop the cached snapshot: the state is about to change.
        """
        self._current = None

    def remove(self, key: bytes) -> bool:
        """
        Mirror the deletion of stored C{key} if it is a registration or a
        status; returns whether it was one.
        """
        if is_state_key(key):
            self._deregister(key[2:])
        elif is_status_key(key):
            self.status.pop(key[2:], None)
        else:
            return False
        return True

    def add(self, key: bytes, value: bytes) -> bool:
        """
        Mirror the write of stored C{key} if it is a registration or a
        status; returns whether it was one.
        """
        if is_state_key(key):
            self._register(Registration.unpack(
                value, self.network.address_prefix))
        elif is_status_key(key):
            self.status[key[2:]] = MnStatus.unpack(value)
        else:
            return False
        return True

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """
        The registrations then the statuses as stored, unsorted.
        """
        pairs = [(state_key(pk), r.pack()) for pk, r in self.registry.items()]
        pairs += [(status_key(pk), s.pack()) for pk, s in self.status.items()]
        return pairs

    def _register(self, registration: Registration) -> None:
        self.registry[registration.masternode.pubkey] = registration
        self.collateral[registration.collateral] = \
            registration.masternode.pubkey

    def _deregister(self, pubkey: bytes) -> None:
        registration = self.registry.pop(pubkey, None)
        if registration is not None:
            self.collateral.pop(registration.collateral, None)

    # Questions -----------------------------------------------------------

    def is_known_masternode(self, pubkey: bytes) -> bool:
        """
        Whether C{pubkey} is a masternode of the genesis or registered on
        chain (whatever its status).
        """
        return pubkey in self.genesis_keys or pubkey in self.registry

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
        if pubkey in self.genesis_keys:
            return MnStatus(ACTIVE, 1)
        registration = registry.get(pubkey)
        if registration is None:
            return None
        return MnStatus(REGISTERED, registration.height)

    def all_masternodes(self) -> Snapshot:
        """
        Every masternode at the tip, active or not, sorted.
        """
        return make_snapshot([*self.genesis,
                              *(r.masternode for r in self.registry.values())])

    def snapshot_of(self, registry: dict[bytes, Registration],
                    status: dict[bytes, MnStatus]) -> Snapshot:
        """
        The active masternodes of the state C{registry} and C{status}.
        """
        members = [*self.genesis,
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
            self._current = (key, self.snapshot_of(self.registry,
                                                   self.status))
        return self._current[1]

    def snapshot_before(self, block: Block, undo: BlockUndo) -> Snapshot:
        """
        The snapshot of the state before C{block} (the tip), rebuilt from
        its undo data: what a restart knows of the tip's own height.
        """
        written = set(self.state_keys_written(block, undo))
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
        return self.snapshot_of(registry, status)

    @staticmethod
    def state_keys_written(block: Block, undo: BlockUndo) -> list[bytes]:
        """
        The masternode state keys C{block} wrote: from its undo data, or
        for blocks stored before it recorded them, its registrations.
        """
        if undo.state is not None:
            return undo.state
        return [state_key(bytes.fromhex(t.data["pubkey"]))
                for t in block.txs if t.kind == REGISTER_KIND]

    # Admission -----------------------------------------------------------

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

    def check_new_activation(self, tx: Transaction, height: int,
                             rules: ServiceRules,
                             pending: frozenset[bytes] = frozenset()
                             ) -> bytes:
        """
        Admission of an activation: well formed, of a masternode on chain,
        that it would activate in block C{height}, and not one already
        waiting (C{pending} operator keys).  Returns the operator key.

        @raise TxInvalid: reason C{bad-activation}.
        """
        pubkey, since = self.check_activation_shape(tx)
        status = self.mn_status(pubkey)
        if status is None:
            raise TxInvalid("bad-activation", "not a registered masternode")
        refused = activation_refused(status, since, height, rules)
        if refused is not None:
            raise TxInvalid("bad-activation", refused)
        if pubkey in pending:
            raise TxInvalid("bad-activation", "an activation of this "
                            "masternode is already waiting")
        return pubkey

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
        genesis_keys = {m.pubkey for m in self.genesis}

        def registered(pubkey: bytes) -> bool:
            return pubkey in genesis_keys or pubkey in pending or (
                pubkey in self.registry and pubkey not in leaving)

        def collateral_used(outpoint: OutPoint) -> bool:
            holder = self.collateral.get(outpoint)
            return (holder is not None and holder not in leaving) or any(
                r.collateral == outpoint for r in pending.values())

        try:
            return check_registration(
                tx, self.network.name, self.network.address_prefix, lookup,
                registered, collateral_used)
        except ValueError as e:
            reason, _, detail = str(e).partition(": ")
            raise TxInvalid(reason, detail) from e

    def collateral_spent(self, outpoint: OutPoint,
                         registered: dict[bytes, Registration],
                         deregistered: dict[bytes, Registration]) -> None:
        """
        Spending a collateral deregisters its masternode: one registered
        earlier in the block (C{registered}) or one on chain (added to
        C{deregistered}).
        """
        for pubkey, registration in list(registered.items()):
            if registration.collateral == outpoint:
                del registered[pubkey]
        holder = self.collateral.get(outpoint)
        if holder is not None and holder not in deregistered:
            deregistered[holder] = self.registry[holder]
