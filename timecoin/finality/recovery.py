"""
Restart: the finality state a node rebuilds from its records
(``docs/finality.md``, "Restart mid-vote").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.chain import Chain, TxInvalid
from timecoin.finality.records import (
    ARCHIVED,
    RELEASED,
    Certificates,
    ReleasedApprovals,
    group_records,
)
from timecoin.finality.votes import TxVote
from timecoin.finalized import FinalizedSet
from timecoin.mempool import FINALIZED, PENDING, Mempool
from timecoin.tx import Transaction

log = Logger(namespace="timecoin.finality")
"""The finality engine's log lines keep the namespace they always had."""


class Recovery:
    """
    Restores the state kept in finality records into the mempool, the
    released approvals, the certificate index and the finalized set; each
    pending transaction restored is handed to C{resume} (which arms its
    vote timeout and votes, if this node has not).
    """

    def __init__(self, chain: Chain, mempool: Mempool,
                 released: ReleasedApprovals, certificates: Certificates,
                 finalized_set: FinalizedSet,
                 resume: Callable[[bytes], None]) -> None:
        self.chain = chain
        self.mempool = mempool
        self.released = released
        self.certificates = certificates
        self.finalized_set = finalized_set
        self._resume = resume

    @defer.inlineCallbacks
    def run(self) -> Any:
        """
        Restore finalized transactions (in finalization order), then
        pending ones with their locks, the inputs this masternode approved
        for rejected spenders, and the index of archived certificates.
        Records no longer of use are deleted.
        """
        records = yield self.chain.store.load_tx_records()
        by_state = group_records(records)
        seqs = [o for state in (FINALIZED, PENDING)
                for o, _, _ in by_state.get(state, [])]
        self.mempool.resume_numbering(max(seqs, default=0))
        yield self.released.recover(by_state.get(RELEASED, []),
                                    self.chain.height)
        restored = {FINALIZED: 0, PENDING: 0}
        certs = [(height, txid) for height, txid, _ in
                 by_state.get(ARCHIVED, [])]
        for state in (FINALIZED, PENDING):
            for _, txid, obj in sorted(by_state.get(state, [])):
                done = yield self._transaction(txid, obj, certs)
                restored[state] += done
        self.certificates.restore(certs)
        self.certificates.prune(self.chain.height)
        if restored[FINALIZED] or restored[PENDING]:
            log.info("restored {finalized} finalized and {pending} pending "
                     "transactions", finalized=restored[FINALIZED],
                     pending=restored[PENDING])

    @defer.inlineCallbacks
    def _transaction(self, txid: bytes, obj: dict[str, Any],
                     certs: list[tuple[int, bytes]]) -> Any:
        """
        Restore one pending or finalized record; fire with 1 if it is
        back in the mempool, else 0 (mined, or no longer valid).
        """
        store = self.chain.store
        location = yield store.get_tx_location(txid)
        if location is not None:
            if obj["state"] == FINALIZED:
                # Mined: its finalized record is its certificate.
                certs.append((location[0], txid))
            else:
                yield store.delete_tx_record(txid)
            return 0
        tx = Transaction.from_obj(obj["tx"])
        votes = [TxVote.from_obj(v) for v in obj.get("votes", [])]
        try:
            fee = self.mempool.check(tx)
        except TxInvalid as e:
            log.error("{state} tx {txid} no longer valid after restart: "
                      "{reason}", state=obj["state"], txid=txid.hex(),
                      reason=e.reason)
            yield store.delete_tx_record(txid)
            return 0
        entry = self.mempool.add(tx, fee)
        entry.seq = obj["seq"]
        for vote in votes:
            entry.votes[vote.voter] = vote
        if obj["state"] == FINALIZED:
            self.mempool.finalize(txid)
            self.finalized_set.add(tx)
            return 1
        self._resume(txid)
        return 1
