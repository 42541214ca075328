"""
The mempool: transactions accepted but not yet in a block.

Each entry is ``pending`` (its inputs are Locked while masternodes vote) or
``finalized`` (quorum reached: inputs SpentFinalized, outputs spendable at
once, waiting for a block).  Limits are enforced in count *and* bytes
(the seeds tracked only a count); every refusal raises L{TxInvalid} with a
reason code, and the last refusals are remembered for RPC.

Outputs of pending transactions are not spendable; outputs of finalized
ones are, so chains of payments finalize without waiting for blocks.

A valid transaction whose inputs are already locked by another *pending*
transaction is not refused: it becomes a *contender*, a vote subject kept
apart from the spendable view (it locks nothing, its outputs are not
spendable, it is not counted in the pool's size).  Masternodes vote reject
on it, and if the quorum finalizes it anyway (it reached most masternodes
first) L{Mempool.lock} moves it in and the local loser is rejected.
Contenders are bounded on their own (``max_contenders``,
``max_contender_bytes``).  A spender of an input locked by a *finalized*
transaction can never finalize and is refused as ``double-spend``.

Eviction policy: none.  A full pool refuses newcomers (``mempool-full``)
and never evicts: a pending entry carries this node's vote (dropping it
would break the rule that a node decides each transaction the same way as
the quorum), and a finalized one must reach a block.  The pool drains on
its own: pending entries are decided within the vote timeout, finalized
ones leave with the next block.  A transaction that finalizes (a contender
promoted, a late certificate) is always taken in, even past the limits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain, TxInvalid, check_transfer, verified_key
from timecoin.masternodes import Masternode
from timecoin.mnstate import KIND as ACTIVATE_KIND
from timecoin.registration import KIND as REGISTER_KIND
from timecoin.registration import Registration
from timecoin.tx import OutPoint, Transaction, UtxoEntry
from timecoin.txcache import MAX_CACHED

log = Logger()

PENDING = "pending"
FINALIZED = "finalized"
REJECTED = "rejected"


@dataclass(frozen=True)
class MempoolSettings:
    """
    Named mempool limits (SPEC §3): the config section C{[mempool]}
    (C{config.mempool}; documented in ``etc/timecoin.toml``).

    @ivar max_count: pending and finalized transactions held at most.
    @ivar max_bytes: their encoded sizes together, at most.
    @ivar max_rejected_remembered: refused txids remembered with their
        reason (RPC C{gettransaction}).
    @ivar max_contenders: conflicting transactions tracked as vote
        subjects at most.
    @ivar max_contender_bytes: their sizes together, at most.
    @ivar parsed_cache: transactions kept parsed (L{timecoin.txcache}), so
        that one seen again in a proposal or a block is not parsed again.
    """

    max_count: int = 10_000
    max_bytes: int = 300_000_000
    max_rejected_remembered: int = 10_000
    max_contenders: int = 1_000
    max_contender_bytes: int = 30_000_000
    parsed_cache: int = MAX_CACHED


@dataclass
class Entry:
    """
    One mempool transaction and its finality state.

    @ivar conflict: a contender (its inputs are locked by another pending
        transaction); it locks nothing.
    @ivar query_at: when peers are next asked for its votes if it is still
        undecided.
    @ivar queries: how many times they were asked.
    """

    tx: Transaction
    fee: int
    seq: int
    received: float
    state: str = PENDING
    finalized_at: float | None = None
    votes: dict[bytes, object] = field(default_factory=dict)
    conflict: bool = False
    query_at: float = 0.0
    queries: int = 0


class Mempool:
    """
    Pending and finalized transactions over the chain's UTXO set, and the
    contenders that conflict with pending ones.

    @ivar finalized_count: finalized entries, waiting for a block.
    """

    def __init__(self, chain: Chain, limits: MempoolSettings,
                 seconds: Callable[[], float]) -> None:
        self.chain = chain
        self.limits = limits
        self._seconds = seconds
        self.entries: dict[bytes, Entry] = {}
        self.locks: dict[OutPoint, bytes] = {}
        self.outputs: dict[OutPoint, UtxoEntry] = {}
        self.total_bytes = 0
        self.finalized_count = 0
        self.contenders: OrderedDict[bytes, Entry] = OrderedDict()
        self.contended: dict[OutPoint, set[bytes]] = {}
        self.contender_bytes = 0
        self.rejected: OrderedDict[bytes, str] = OrderedDict()
        self.rejections: dict[str, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, outpoint: OutPoint) -> UtxoEntry | None:
        """
        A spendable output: unspent on chain or created by a finalized
        transaction, and not locked by any mempool transaction.
        """
        if outpoint in self.locks:
            return None
        entry = self.outputs.get(outpoint)
        return entry if entry is not None else self.chain.utxos.get(outpoint)

    def unlocked_lookup(self, outpoint: OutPoint) -> UtxoEntry | None:
        """
        An output that exists and is not spent for good: like L{lookup}
        but looking through locks of *pending* transactions (a contender is
        checked as if the pending spender were not there).
        """
        holder = self.locks.get(outpoint)
        if holder is not None and self.entries[holder].state != PENDING:
            return None
        entry = self.outputs.get(outpoint)
        return entry if entry is not None else self.chain.utxos.get(outpoint)

    def holders(self, tx: Transaction) -> set[bytes]:
        """
        The other mempool transactions locking inputs of C{tx}.
        """
        found = set()
        for txin in tx.inputs:
            holder = self.locks.get(txin.prevout)
            if holder is not None and holder != tx.txid:
                found.add(holder)
        return found

    def knows(self, txid: bytes) -> bool:
        """
        Whether C{txid} is held, as an entry or a contender.
        """
        return txid in self.entries or txid in self.contenders

    def held(self, txid: bytes) -> Entry | None:
        """
        The entry or contender C{txid}, if held.
        """
        return self.entries.get(txid) or self.contenders.get(txid)

    def check(self, tx: Transaction, allow_conflict: bool = False) -> int:
        """
        Validate C{tx} for admission; return its fee.  A registration is
        also checked against the registry and the registrations already in
        the pool.

        @param allow_conflict: accept a spender of inputs locked by a
            pending transaction (as a contender, see L{add_contender}).
        @raise TxInvalid: with a reason code.
        """
        if self.knows(tx.txid):
            raise TxInvalid("already-known")
        holders = self.holders(tx)
        final = sorted(h for h in holders
                       if self.entries[h].state != PENDING)
        if final or (holders and not allow_conflict):
            holder = (final or sorted(holders))[0]
            raise TxInvalid("double-spend", f"an input is locked by "
                            f"{holder.hex()}")
        if holders:
            if len(self.contenders) >= self.limits.max_contenders:
                raise TxInvalid("too-many-conflicts", "count limit")
            if self.contender_bytes + tx.size > \
                    self.limits.max_contender_bytes:
                raise TxInvalid("too-many-conflicts", "byte limit")
            lookup = self.unlocked_lookup
        else:
            if len(self.entries) >= self.limits.max_count:
                raise TxInvalid("mempool-full", "count limit")
            if self.total_bytes + tx.size > self.limits.max_bytes:
                raise TxInvalid("mempool-full", "byte limit")
            lookup = self.lookup
        fee = check_transfer(tx, self.chain.network, lookup,
                             self.chain.verified)
        if tx.kind == REGISTER_KIND:
            self.chain.check_new_registration(
                tx, lookup, self._pending_registrations())
        elif tx.kind == ACTIVATE_KIND:
            self.chain.check_new_activation(tx, self.pending_activations())
        return fee

    def pending_activations(self) -> frozenset[bytes]:
        """
        The operator keys of the activations held in the pool (pending or
        finalized): a second one would change nothing.
        """
        found = set()
        for entry in self.entries.values():
            if entry.tx.kind == ACTIVATE_KIND:
                try:
                    found.add(bytes.fromhex(entry.tx.data["pubkey"]))
                except (KeyError, TypeError, ValueError):
                    continue
        return frozenset(found)

    def _pending_registrations(self) -> dict[bytes, Registration]:
        """
        The registrations held in the pool (pending or finalized), by
        operator key: a second one of the same operator or collateral could
        not go into a block with them.
        """
        found = {}
        for entry in self.entries.values():
            tx = entry.tx
            if tx.kind != REGISTER_KIND:
                continue
            try:
                pubkey = bytes.fromhex(tx.data["pubkey"])
                collateral = OutPoint(
                    bytes.fromhex(tx.data["collateral"]["txid"]),
                    tx.data["collateral"]["vout"])
            except (KeyError, TypeError, ValueError):
                continue
            found[pubkey] = Registration(
                Masternode(pubkey, tx.data.get("p2p_address", ""),
                           tx.data.get("reward_address", ""), "free"),
                collateral, 0)
        return found

    def resume_numbering(self, last: int) -> None:
        """
        Number the next admitted transaction C{last + 1}: after a restart,
        past the sequence numbers of the recovered finality records (their
        order is the finalization order blocks follow).
        """
        self._seq = last

    def add(self, tx: Transaction, fee: int) -> Entry:
        """
        Admit a checked C{tx} as pending and lock its inputs.
        """
        self._seq += 1
        entry = Entry(tx, fee, self._seq, self._seconds())
        self._insert(entry)
        return entry

    def _insert(self, entry: Entry) -> None:
        tx = entry.tx
        entry.state = PENDING
        entry.conflict = False
        self.entries[tx.txid] = entry
        self.total_bytes += tx.size
        for txin in tx.inputs:
            self.locks[txin.prevout] = tx.txid

    def add_contender(self, tx: Transaction, fee: int) -> Entry:
        """
        Track a checked C{tx} that conflicts with a pending transaction as
        a vote subject: no locks, no spendable outputs.
        """
        self._seq += 1
        entry = Entry(tx, fee, self._seq, self._seconds(), conflict=True)
        self.contenders[tx.txid] = entry
        self.contender_bytes += tx.size
        for txin in tx.inputs:
            self.contended.setdefault(txin.prevout, set()).add(tx.txid)
        return entry

    def _drop_contender(self, txid: bytes) -> Entry | None:
        entry = self.contenders.pop(txid, None)
        if entry is None:
            return None
        self.contender_bytes -= entry.tx.size
        for txin in entry.tx.inputs:
            others = self.contended.get(txin.prevout)
            if others is not None:
                others.discard(txid)
                if not others:
                    del self.contended[txin.prevout]
        return entry

    def lock(self, entry: Entry) -> None:
        """
        Make C{entry} (a contender, or a rejected entry the quorum
        finalized late) a pending entry holding its inputs' locks.  The
        caller has released every conflicting lock; limits do not apply
        (a transaction about to be finalized is never refused).
        """
        txid = entry.tx.txid
        self._drop_contender(txid)
        assert not self.holders(entry.tx), "inputs still locked"
        self._insert(entry)
        self.rejected.pop(txid, None)

    def finalize(self, txid: bytes) -> Entry:
        """
        Mark a pending transaction finalized; its outputs become
        spendable.
        """
        entry = self.entries[txid]
        if entry.state != FINALIZED:
            self.finalized_count += 1
        entry.state = FINALIZED
        entry.finalized_at = self._seconds()
        for vout, out in enumerate(entry.tx.outputs):
            self.outputs[OutPoint(txid, vout)] = UtxoEntry(
                out.value, out.address, 0)
        return entry

    def refuse(self, txid: bytes, reason: str) -> None:
        """
        Record that C{txid} was refused or rejected, with C{reason}.
        """
        self.rejected[txid] = reason
        self.rejected.move_to_end(txid)
        while len(self.rejected) > self.limits.max_rejected_remembered:
            self.rejected.popitem(last=False)
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def reject(self, txid: bytes, reason: str) -> Entry | None:
        """
        Drop a pending transaction (unlocking its inputs) or a contender;
        returns the dropped entry.
        """
        entry = self.entries.get(txid)
        if entry is not None and entry.state == PENDING:
            self._remove(entry)
        else:
            entry = self._drop_contender(txid)
            if entry is None:
                return None
        self.chain.verified.discard(verified_key(entry.tx))
        # Counted by reason here; the finality engine logs (rate-limited).
        self.refuse(txid, reason)
        return entry

    def _remove(self, entry: Entry, archived: bool = False) -> None:
        txid = entry.tx.txid
        del self.entries[txid]
        self.total_bytes -= entry.tx.size
        for txin in entry.tx.inputs:
            if self.locks.get(txin.prevout) == txid:
                del self.locks[txin.prevout]
            if archived:
                # The block spent it: a finalized parent's output is gone.
                self.outputs.pop(txin.prevout, None)
        if entry.state == FINALIZED:
            self.finalized_count -= 1
            for vout in range(len(entry.tx.outputs)):
                self.outputs.pop(OutPoint(txid, vout), None)

    def conflicting_with(self, tx: Transaction) -> list[bytes]:
        """
        The pending entries and contenders (other than C{tx}) spending an
        input of C{tx}.
        """
        found: list[bytes] = []
        for txin in tx.inputs:
            holder = self.locks.get(txin.prevout)
            if holder is not None and holder != tx.txid and \
                    holder not in found:
                found.append(holder)
            for other in sorted(self.contended.get(txin.prevout, ())):
                if other != tx.txid and other not in found:
                    found.append(other)
        return found

    def block_connected(self, block: Block) -> list[bytes]:
        """
        Retire the transactions C{block} archived; reject pending ones and
        contenders it conflicts with.  Returns the txids of rejected
        conflicts.
        """
        conflicts = []
        for tx in block.txs:
            entry = self.entries.get(tx.txid)
            if entry is not None:
                self._remove(entry, archived=True)
            else:
                self._drop_contender(tx.txid)
            for txin in tx.inputs:
                holder = self.locks.get(txin.prevout)
                if holder is not None and holder != tx.txid and \
                        self.entries[holder].state != PENDING:
                    log.critical(
                        "block {block} conflicts with finalized tx {txid}",
                        block=block.hash.hex(), txid=holder.hex())
                    continue
                losers = sorted(self.contended.get(txin.prevout, ()))
                if holder is not None:
                    losers.insert(0, holder)
                for loser in losers:
                    if loser != tx.txid and self.reject(
                            loser, "conflict-in-block") is not None:
                        conflicts.append(loser)
        return conflicts

    def block_candidates(self, max_bytes: int) -> list[Transaction]:
        """
        Finalized transactions in finalization order (parents before
        children) fitting in C{max_bytes}.
        """
        chosen = []
        used = 0
        included: set[bytes] = set()
        for entry in sorted((e for e in self.entries.values()
                             if e.state == FINALIZED),
                            key=lambda e: (e.finalized_at, e.seq)):
            tx = entry.tx
            if used + tx.size + 1 > max_bytes:
                break
            if any(txin.prevout.txid in self.entries and
                   txin.prevout.txid not in included for txin in tx.inputs):
                continue
            chosen.append(tx)
            included.add(tx.txid)
            used += tx.size + 1
        return chosen

    def state_of(self, txid: bytes) -> str | None:
        """
        C{pending} (contenders included), C{finalized}, C{rejected}, or
        C{None} if unknown here.
        """
        entry = self.entries.get(txid)
        if entry is not None:
            return entry.state
        if txid in self.contenders:
            return PENDING
        if txid in self.rejected:
            return REJECTED
        return None
