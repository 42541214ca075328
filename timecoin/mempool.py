"""
The mempool: transactions accepted but not yet in a block.

Each entry is ``pending`` (its inputs are Locked while masternodes vote) or
``finalized`` (quorum reached: inputs SpentFinalized, outputs spendable at
once, waiting for a block).  Limits are enforced in count *and* bytes
(the seeds tracked only a count); every refusal raises L{TxInvalid} with a
reason code, and the last refusals are remembered for RPC.

Outputs of pending transactions are not spendable; outputs of finalized
ones are, so chains of payments finalize without waiting for blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.logger import Logger

from timecoin.block import Block
from timecoin.chain import Chain, TxInvalid, check_transfer, verified_key
from timecoin.tx import OutPoint, Transaction, UtxoEntry

log = Logger()

PENDING = "pending"
FINALIZED = "finalized"
REJECTED = "rejected"


@dataclass(frozen=True)
class MempoolLimits:
    """
    Named mempool limits (SPEC §3), each a config setting.
    """

    max_count: int = 10_000
    max_bytes: int = 300_000_000
    max_rejected_remembered: int = 10_000


@dataclass
class Entry:
    """
    One mempool transaction and its finality state.
    """

    tx: Transaction
    fee: int
    seq: int
    received: float
    state: str = PENDING
    finalized_at: float | None = None
    votes: dict[bytes, object] = field(default_factory=dict)


class Mempool:
    """
    Pending and finalized transactions over the chain's UTXO set.
    """

    def __init__(self, chain: Chain, limits: MempoolLimits,
                 seconds: Callable[[], float]) -> None:
        self.chain = chain
        self.limits = limits
        self._seconds = seconds
        self.entries: dict[bytes, Entry] = {}
        self.locks: dict[OutPoint, bytes] = {}
        self.outputs: dict[OutPoint, UtxoEntry] = {}
        self.total_bytes = 0
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

    def check(self, tx: Transaction) -> int:
        """
        Validate C{tx} for admission; return its fee.

        @raise TxInvalid: with a reason code.
        """
        if tx.txid in self.entries:
            raise TxInvalid("already-known")
        if len(self.entries) >= self.limits.max_count:
            raise TxInvalid("mempool-full", "count limit")
        if self.total_bytes + tx.size > self.limits.max_bytes:
            raise TxInvalid("mempool-full", "byte limit")
        for txin in tx.inputs:
            holder = self.locks.get(txin.prevout)
            if holder is not None:
                raise TxInvalid("double-spend",
                                f"{txin.prevout} locked by {holder.hex()}")
        return check_transfer(tx, self.chain.network, self.lookup,
                              self.chain.verified)

    def add(self, tx: Transaction, fee: int) -> Entry:
        """
        Admit a checked C{tx} as pending and lock its inputs.
        """
        self._seq += 1
        entry = Entry(tx, fee, self._seq, self._seconds())
        self.entries[tx.txid] = entry
        self.total_bytes += tx.size
        for txin in tx.inputs:
            self.locks[txin.prevout] = tx.txid
        return entry

    def finalize(self, txid: bytes) -> Entry:
        """
        Mark a pending transaction finalized; its outputs become
        spendable.
        """
        entry = self.entries[txid]
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

    def reject(self, txid: bytes, reason: str) -> None:
        """
        Drop a pending transaction and unlock its inputs.
        """
        entry = self.entries.get(txid)
        if entry is None or entry.state != PENDING:
            return
        self._remove(entry)
        self.chain.verified.discard(verified_key(entry.tx))
        self.refuse(txid, reason)
        log.info("tx {txid} rejected: {reason}", txid=txid.hex(),
                 reason=reason)

    def _remove(self, entry: Entry) -> None:
        txid = entry.tx.txid
        del self.entries[txid]
        self.total_bytes -= entry.tx.size
        for txin in entry.tx.inputs:
            if self.locks.get(txin.prevout) == txid:
                del self.locks[txin.prevout]
            self.outputs.pop(txin.prevout, None)
        if entry.state == FINALIZED:
            for vout in range(len(entry.tx.outputs)):
                self.outputs.pop(OutPoint(txid, vout), None)

    def block_connected(self, block: Block) -> list[bytes]:
        """
        Retire the transactions C{block} archived; reject pending ones it
        conflicts with.  Returns the txids of rejected conflicts.
        """
        conflicts = []
        for tx in block.txs:
            entry = self.entries.get(tx.txid)
            if entry is not None:
                self._remove(entry)
                continue
            for txin in tx.inputs:
                holder = self.locks.get(txin.prevout)
                if holder is not None and holder != tx.txid:
                    other = self.entries[holder]
                    if other.state == PENDING:
                        self.reject(holder, "conflict-in-block")
                        conflicts.append(holder)
                    else:
                        log.critical(
                            "block {block} conflicts with finalized tx "
                            "{txid}", block=block.hash.hex(),
                            txid=holder.hex())
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
        C{pending}, C{finalized}, C{rejected}, or C{None} if unknown here.
        """
        entry = self.entries.get(txid)
        if entry is not None:
            return entry.state
        if txid in self.rejected:
            return REJECTED
        return None
