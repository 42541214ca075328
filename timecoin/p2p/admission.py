"""
Admission of the transactions peers send: at most C{admit_slice} are
handed to finality per reactor turn, the rest wait in order (parents
before children) in a queue of at most C{admit_queue}, and nothing from a
connection closed meanwhile is verified.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from timecoin.chain import TxInvalid
from timecoin.p2p.caches import SeenCache
from timecoin.p2p.dependencies import Connection, PeerSet
from timecoin.p2p.settings import P2PSettings
from timecoin.tx import Transaction

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

MALICIOUS_TX_REASONS = frozenset({
    "bad-signature", "pubkey-address-mismatch", "tx-too-large",
    "unexpected-coinbase", "coinbase-has-inputs", "no-inputs",
    "unexpected-data", "duplicate-input", "no-outputs", "bad-address",
    "zero-output", "dust-output", "value-out-of-range",
    "outputs-exceed-inputs", "fee-too-low",
})
"""Refusals no honest relay causes (consensus rules every node shares);
others (double spends, inputs we have not seen yet, a full mempool) are
races or local state and cost the sender nothing."""

Admitted = Callable[[Transaction, Connection], None]
"""Called with a transaction from a peer once finality admitted it."""


class TxAdmission:
    """
    The queue of peers' transactions waiting to be handed to finality.

    @ivar source: the connection whose transaction finality is admitting
        right now (so that the node's admission hook knows it came from a
        peer), else C{None}.
    @ivar seen: the gossip's seen-cache of transactions (a refusal as
        C{already-known} marks one seen).
    @ivar counters: the gossip's counters.
    """

    def __init__(self, node: Node, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings, seen: SeenCache,
                 counters: Counter[str], admitted: Admitted) -> None:
        self.node = node
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.seen = seen
        self.counters = counters
        self.admitted = admitted
        self.source: Connection | None = None
        self._admit: deque[tuple[Connection, Transaction]] = deque()
        self._admitting: set[bytes] = set()
        """The txids in L{_admit}."""
        self._admit_call: IDelayedCall | None = None
        self._direct = 0
        """Transactions from peers admitted this reactor turn."""

    def stop(self) -> None:
        """
        Drop the waiting transactions and the timer.
        """
        if self._admit_call is not None and self._admit_call.active():
            self._admit_call.cancel()
        self._admit_call = None
        self._admit.clear()
        self._admitting.clear()

    def holds(self, txid: bytes) -> bool:
        """
        Whether C{txid} waits for admission.
        """
        return txid in self._admitting

    @property
    def waiting(self) -> int:
        """
        Transactions from peers queued for admission.
        """
        return len(self._admit)

    def admit(self, conn: Connection, tx: Transaction) -> None:
        """
        Admit C{tx} from C{conn} now if none wait and this reactor turn
        has admitted fewer than L{P2PSettings.admit_slice}; else queue it
        behind the others (in order: parents before children), to be
        admitted a slice per reactor turn.  Nothing from a connection
        closed meanwhile (banned, dropped) is admitted: it is counted as
        C{tx-dropped:peer-gone} instead.
        """
        if conn.close_reason is not None:
            self.dropped_gone(conn, 1)
            return
        if not self._admit and self._direct < self.settings.admit_slice:
            self._direct += 1
            if self._admit_call is None:
                # Next turn starts a new slice.
                self._admit_call = self.clock.callLater(0, self._admit_some)
            self._submit(conn, tx)
            return
        if len(self._admit) >= self.settings.admit_queue:
            self.counters["tx-dropped:admission-queue-full"] += 1
            return
        self._admit.append((conn, tx))
        self._admitting.add(tx.txid)
        if self._admit_call is None:
            self._admit_call = self.clock.callLater(0, self._admit_some)

    def dropped_gone(self, conn: Connection, n: int) -> None:
        """
        C{n} transactions from C{conn}, closed since they came, are
        dropped unverified: counted per transaction here, and once in the
        peer set's counters and its (rate-limited) log.
        """
        self.counters["tx-dropped:peer-gone"] += n
        self.peerset.offence(conn, "tx-dropped:peer-gone",
                             f"{n} transactions of a closed connection", 0)

    def _admit_some(self) -> None:
        """
        A new reactor turn: admit the next slice of queued transactions,
        and come back next turn for the rest.
        """
        self._admit_call = None
        self._direct = 0
        gone: Counter[Connection] = Counter()
        while self._admit and self._direct < self.settings.admit_slice:
            conn, tx = self._admit.popleft()
            self._admitting.discard(tx.txid)
            if conn.close_reason is not None:
                # Its sender was banned or dropped since: not verified.
                gone[conn] += 1
                continue
            self._direct += 1
            self._submit(conn, tx)
        for conn, n in gone.items():
            self.dropped_gone(conn, n)
        if self._admit:
            self.counters["tx-admission-deferred"] += 1
        if self._admit or self._direct:
            self._admit_call = self.clock.callLater(0, self._admit_some)

    def _submit(self, conn: Connection, tx: Transaction) -> None:
        self.source = conn
        try:
            d = self.node.finality.submit(tx)
        finally:
            self.source = None
        d.addCallbacks(self._tx_admitted, self._tx_refused,
                       callbackArgs=(tx, conn), errbackArgs=(tx, conn))
        d.addErrback(self._failed)

    def _failed(self, failure: Failure) -> None:
        self.counters["errors"] += 1
        log.failure("gossip failed {what}", failure,
                    what="handling a transaction")

    def _tx_admitted(self, _: Any, tx: Transaction,
                     conn: Connection) -> None:
        self.admitted(tx, conn)

    def _tx_refused(self, failure: Failure, tx: Transaction,
                    conn: Connection) -> None:
        failure.trap(TxInvalid)
        error = failure.value
        assert isinstance(error, TxInvalid)
        reason = error.reason
        self.counters[f"tx-refused:{reason}"] += 1
        if reason == "already-known":
            self.seen.add(tx.txid)
        elif reason in MALICIOUS_TX_REASONS:
            conn.misbehaved("invalid-tx", f"{tx.txid.hex()}: {reason}")
