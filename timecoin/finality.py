"""
Instant finality: masternodes vote on transactions; 2/3 of the snapshot's
weight approving finalizes one, more than 1/3 rejecting (or the vote
timeout) rejects it.

A vote is signed over (network, txid, decision, height).  Votes are checked
against the snapshot for their height, deduplicated per voter, and tallied
through the network's L{IQuorumRule} over the snapshot's *total* weight.

Before a transaction is reported finalized, its finality record (the
transaction and the votes that finalized it) is written to the store, so a
node killed right after acknowledging finality still has it on restart and
puts it in a block.  Records are deleted atomically with the block that
archives their transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.chain import Chain, TxInvalid
from timecoin.encoding import (
    canonical,
    decode,
    need_dict,
    need_int,
    need_str,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.mempool import FINALIZED, PENDING, REJECTED, Mempool
from timecoin.tx import Transaction

log = Logger()

TX_VOTE_DOMAIN = b"TIMECOIN/tx-vote"
APPROVE = "approve"
REJECT = "reject"
VOTE_HEIGHT_WINDOW = 10
"""Votes stamped more than this many blocks away from our tip are
dropped (replay protection)."""


@dataclass(frozen=True)
class TxVote:
    """
    A masternode's signed decision on one transaction.
    """

    txid: bytes
    decision: str
    height: int
    voter: bytes
    signature: bytes

    def to_obj(self) -> dict[str, Any]:
        return {"txid": self.txid.hex(), "decision": self.decision,
                "height": self.height, "voter": self.voter.hex(),
                "signature": self.signature.hex()}

    @classmethod
    def from_obj(cls, obj: Any) -> TxVote:
        need_dict(obj, "tx vote",
                  {"txid", "decision", "height", "voter", "signature"})
        decision = need_str(obj["decision"], "decision", 8)
        if decision not in (APPROVE, REJECT):
            raise ValueError(f"unknown decision {decision!r}")
        return cls(unhex(obj["txid"], 32, "txid"), decision,
                   need_int(obj["height"], "height"),
                   unhex(obj["voter"], 32, "voter"),
                   unhex(obj["signature"], 64, "signature"))


def tx_vote_message(network: str, txid: bytes, decision: str,
                    height: int) -> bytes:
    """
    What a masternode signs to vote C{decision} on C{txid}.
    """
    return canonical({"network": network, "txid": txid.hex(),
                      "decision": decision, "height": height})


def sign_tx_vote(key: PrivateKey, network: str, txid: bytes, decision: str,
                 height: int) -> TxVote:
    """
    A vote signed by C{key}.
    """
    sig = key.sign(TX_VOTE_DOMAIN,
                   tx_vote_message(network, txid, decision, height))
    return TxVote(txid, decision, height, key.public, sig)


def tx_vote_ok(vote: TxVote, network: str) -> bool:
    """
    Whether C{vote}'s signature verifies.
    """
    return verify(vote.voter, TX_VOTE_DOMAIN,
                  tx_vote_message(network, vote.txid, vote.decision,
                                  vote.height), vote.signature)


class Finality:
    """
    The transaction-finality engine of one node.

    @ivar vote_cast: callbacks given every vote this node signs (the P2P
        layer gossips them).
    @ivar finalized: callbacks given (txid, seconds from acceptance to
        finality) for every transaction this node finalizes.
    @ivar tx_accepted: callbacks given every transaction admitted to the
        mempool (the P2P layer relays them).
    """

    def __init__(self, chain: Chain, mempool: Mempool, key: PrivateKey | None,
                 clock: IReactorTime, vote_timeout: float = 10.0) -> None:
        self.chain = chain
        self.mempool = mempool
        self.key = key
        self.clock = clock
        self.vote_timeout = vote_timeout
        self._timeouts: dict[bytes, Any] = {}
        self._waiters: dict[bytes, list[defer.Deferred[str]]] = {}
        self._finalizing: set[bytes] = set()
        self.vote_cast: list[Callable[[TxVote], None]] = []
        self.counters = {"finalized": 0, "rejected": 0, "votes_invalid": 0,
                         "votes_received": 0}
        self.finalized: list[Callable[[bytes, float], None]] = []
        self.tx_accepted: list[Callable[[Transaction], None]] = []
        self.synced: Callable[[], bool] = lambda: True
        """Whether the node has caught up with the network; block sync
        replaces it, and a node that is behind does not vote."""

    @property
    def network(self) -> str:
        return self.chain.network.name

    def submit(self, tx: Transaction) -> defer.Deferred[bytes]:
        """
        Accept C{tx} into the mempool and start its vote.  Fires with the
        txid once accepted; fails with L{TxInvalid} (reason code) when it
        is refused.
        """
        try:
            fee = self.mempool.check(tx)
        except TxInvalid as e:
            if e.reason != "already-known":
                self.mempool.refuse(tx.txid, e.reason)
            log.info("tx {txid} refused: {reason} {detail}",
                     txid=tx.txid.hex(), reason=e.reason, detail=e.detail)
            return defer.fail(e)
        self.mempool.add(tx, fee)
        for accepted in list(self.tx_accepted):
            accepted(tx)
        self._timeouts[tx.txid] = self.clock.callLater(
            self.vote_timeout, self._timed_out, tx.txid)
        if self._is_masternode():
            assert self.key is not None
            vote = sign_tx_vote(self.key, self.network, tx.txid, APPROVE,
                                self.chain.height)
            for callback in list(self.vote_cast):
                callback(vote)
            self.receive_vote(vote)
        return defer.succeed(tx.txid)

    def _is_masternode(self) -> bool:
        if self.key is None or not self.synced():
            return False
        snapshot = self.chain.snapshot_for(self.chain.height + 1)
        return any(m.pubkey == self.key.public for m in snapshot)

    def receive_vote(self, vote: TxVote) -> str | None:
        """
        Check and tally one vote.  Returns a reason code when the vote is
        dropped, else C{None}.
        """
        self.counters["votes_received"] += 1
        reason = self._vote_problem(vote)
        if reason is not None:
            self.counters["votes_invalid"] += 1
            log.debug("vote dropped: {reason}", reason=reason)
            return reason
        entry = self.mempool.entries[vote.txid]
        entry.votes[vote.voter] = vote
        self._tally(vote.txid)
        return None

    def _vote_problem(self, vote: TxVote) -> str | None:
        if abs(vote.height - self.chain.height) > VOTE_HEIGHT_WINDOW:
            return "vote-height-out-of-window"
        snapshot = self.chain.snapshot_for(vote.height + 1)
        if not any(m.pubkey == vote.voter for m in snapshot):
            return "vote-not-masternode"
        entry = self.mempool.entries.get(vote.txid)
        if entry is None or entry.state != PENDING:
            return "vote-unknown-or-decided-tx"
        if vote.voter in entry.votes:
            return "vote-duplicate"
        if not tx_vote_ok(vote, self.network):
            return "vote-bad-signature"
        return None

    def _tally(self, txid: bytes) -> None:
        if txid in self._finalizing:
            return
        entry = self.mempool.entries[txid]
        snapshot = self.chain.snapshot_for(self.chain.height + 1)
        members = {m.pubkey: m for m in snapshot}
        total = self.chain.total_weight(snapshot)
        weights = {APPROVE: 0, REJECT: 0}
        for voter, vote in entry.votes.items():
            if voter in members and isinstance(vote, TxVote):
                weights[vote.decision] += self.chain.quorum.weight(
                    members[voter])
        if self.chain.quorum.approved(weights[APPROVE], total):
            self._finalize(txid)
        elif self.chain.quorum.rejected(weights[REJECT], total):
            self._reject(txid, "rejected-by-vote")

    def _finalize(self, txid: bytes) -> None:
        self._finalizing.add(txid)
        entry = self.mempool.entries[txid]
        record = canonical({
            "state": FINALIZED, "seq": entry.seq,
            "tx": entry.tx.to_obj(),
            "votes": [v.to_obj() for v in entry.votes.values()
                      if isinstance(v, TxVote)]})
        d = self.chain.store.put_tx_record(txid, record)

        def stored(_: object) -> None:
            self._finalizing.discard(txid)
            if txid not in self.mempool.entries:
                return
            self.mempool.finalize(txid)
            self._cancel_timeout(txid)
            self.counters["finalized"] += 1
            latency = self.clock.seconds() - entry.received
            for callback in list(self.finalized):
                callback(txid, latency)
            log.info("tx {txid} finalized", txid=txid.hex())
            self._fire(txid, FINALIZED)

        def failed(failure: Any) -> None:
            self._finalizing.discard(txid)
            log.failure("could not store finality record of {txid}",
                        failure, txid=txid.hex())

        d.addCallbacks(stored, failed)

    def _reject(self, txid: bytes, reason: str) -> None:
        self._cancel_timeout(txid)
        self.mempool.reject(txid, reason)
        self.counters["rejected"] += 1
        self._fire(txid, REJECTED)

    def _timed_out(self, txid: bytes) -> None:
        self._timeouts.pop(txid, None)
        entry = self.mempool.entries.get(txid)
        if entry is not None and entry.state == PENDING and \
                txid not in self._finalizing:
            self._reject(txid, "vote-timeout")

    def _cancel_timeout(self, txid: bytes) -> None:
        call = self._timeouts.pop(txid, None)
        if call is not None and call.active():
            call.cancel()

    def _fire(self, txid: bytes, state: str) -> None:
        for waiter in self._waiters.pop(txid, []):
            waiter.callback(state)

    def wait(self, txid: bytes, timeout: float) -> defer.Deferred[str]:
        """
        Fire with the transaction's state once it is decided (finalized or
        rejected), or with its current state after C{timeout} seconds.
        """
        state = self.mempool.state_of(txid)
        if state in (FINALIZED, REJECTED):
            return defer.succeed(state)
        def cancelled(d: defer.Deferred[str]) -> None:
            waiters = self._waiters.get(txid, [])
            if d in waiters:
                waiters.remove(d)

        d: defer.Deferred[str] = defer.Deferred(cancelled)
        self._waiters.setdefault(txid, []).append(d)

        def expire() -> None:
            waiters = self._waiters.get(txid, [])
            if d in waiters:
                waiters.remove(d)
                d.callback(self.mempool.state_of(txid) or "unknown")

        call = self.clock.callLater(timeout, expire)

        def settled(result: object) -> object:
            if call.active():
                call.cancel()
            return result

        d.addBoth(settled)
        return d

    def block_connected(self, block: Any) -> None:
        """
        Forget timers of transactions the block archived or conflicted.
        """
        for txid in self.mempool.block_connected(block):
            self._cancel_timeout(txid)
            self._fire(txid, REJECTED)
        for tx in block.txs:
            self._cancel_timeout(tx.txid)
            self._fire(tx.txid, "confirmed")

    @defer.inlineCallbacks
    def recover(self) -> Any:
        """
        Re-admit the finalized transactions whose records survived a
        restart, in finalization order; drop records of transactions
        already in a block.
        """
        records = yield self.chain.store.load_tx_records()
        parsed = []
        for txid, raw in records:
            obj = decode(raw)
            parsed.append((obj["seq"], txid, obj))
        restored = 0
        self.mempool._seq = max((seq for seq, _, _ in parsed), default=0)
        for _, txid, obj in sorted(parsed):
            tx = Transaction.from_obj(obj["tx"])
            location = yield self.chain.store.get_tx_location(txid)
            if location is not None or obj["state"] != FINALIZED:
                yield self.chain.store.delete_tx_record(txid)
                continue
            try:
                fee = self.mempool.check(tx)
            except TxInvalid as e:
                log.error("finalized tx {txid} no longer valid after "
                          "restart: {reason}", txid=txid.hex(),
                          reason=e.reason)
                continue
            entry = self.mempool.add(tx, fee)
            for vote in obj["votes"]:
                parsed_vote = TxVote.from_obj(vote)
                entry.votes[parsed_vote.voter] = parsed_vote
            self.mempool.finalize(txid)
            restored += 1
        if restored:
            log.info("restored {n} finalized transactions", n=restored)
