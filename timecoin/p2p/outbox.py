"""
The queue of admitted transactions waiting to go out in C{txs} batches.

Each admitted transaction (from RPC or a peer) is queued and sent to every
ready peer but those known to hold it already (the peer it came from, and
any that sent it while it waited) after C{tx_batch_delay} seconds, or at
once when the queue holds C{tx_batch_count} transactions or
C{tx_batch_bytes} bytes.  In a dense mesh (more than C{relay_fanout}
ready peers) a transaction from a peer goes to at most
C{relay_fanout_direct} of the others, chosen at random: the node that
admitted it first sent it to all its peers, so a relay only repairs a
loss (as for votes: L{timecoin.p2p.registry.PeerRegistry.relay}); and
only to peers that are not masternodes when the peer it came from said it
reaches every masternode (L{timecoin.p2p.reach}).
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from timecoin.p2p.dependencies import Connection, PeerSet
from timecoin.p2p.messages import (
    MAX_TXS_PER_MSG,
    TXS_ENVELOPE_BYTES,
    TxsMsg,
    txs_entry,
    txs_line,
)
from timecoin.p2p.reach import not_masternodes
from timecoin.p2p.settings import P2PSettings
from timecoin.tx import Transaction


class _Queued:
    """
    A transaction waiting in the C{txs} queue: its line entry, the
    peer set's C{ready_serial} when it was queued (peers that became ready
    later do not get it), the peers known to hold it already, and, for a
    relay in a dense mesh, the only peers it goes to.
    """

    __slots__ = ("entry", "at", "have", "only")

    def __init__(self, entry: bytes, at: int, have: set[Connection],
                 only: set[Connection] | None) -> None:
        self.entry = entry
        self.at = at
        self.have = have
        self.only = only


class TxOutbox:
    """
    Batches admitted transactions into C{txs} lines for the ready peers.

    @ivar counters: the gossip's counters (C{txs-sent}, C{txs-sent-txs}).
    """

    def __init__(self, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings, counters: Counter[str]) -> None:
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.counters = counters
        self._queue: dict[bytes, _Queued] = {}
        self._queued_bytes = 0
        self._flush_call: IDelayedCall | None = None

    def stop(self) -> None:
        """
        Drop the transactions waiting to be sent and their timer.
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._queue = {}
        self._queued_bytes = 0

    def holder(self, txid: bytes, conn: Connection) -> None:
        """
        C{conn} is known to hold C{txid}: it does not get it from us.
        """
        queued = self._queue.get(txid)
        if queued is not None:
            queued.have.add(conn)

    def enqueue(self, tx: Transaction, source: Connection | None) -> None:
        """
        Queue C{tx} for the next C{txs} batch (not to C{source}).
        """
        if tx.txid in self._queue:
            return
        entry = txs_entry(tx)
        self._queue[tx.txid] = _Queued(
            entry, self.peerset.ready_serial,
            set() if source is None else {source}, self._fanout(source))
        self._queued_bytes += len(entry) + 1
        settings = self.settings
        if len(self._queue) >= settings.tx_batch_count or \
                self._queued_bytes >= settings.tx_batch_bytes:
            self.flush()
        elif self._flush_call is None:
            # A delay of 0 still batches: everything admitted in this
            # reactor turn (lines read together, an RPC batch) goes out
            # together in the next.
            self._flush_call = self.clock.callLater(
                settings.tx_batch_delay, self.flush)

    def _fanout(self, source: Connection | None) -> set[Connection] | None:
        """
        The peers a transaction from C{source} is relayed to in a dense
        mesh (C{None}: every peer).
        """
        settings = self.settings
        ready = self.peerset.ready
        if source is None or not self.peerset.dense():
            return None
        others = [c for c in ready.values() if c is not source]
        if source.reaches:
            # The peer that sent it reached every masternode: only peers
            # that are not masternodes may lack it (timecoin.p2p.reach).
            outside = not_masternodes(others, self.peerset.masternodes())
            self.counters["txs-relay-skipped:reached"] += \
                len(others) - len(outside)
            others = outside
        picked = self.peerset.rng.sample(
            others, min(settings.relay_fanout_direct, len(others)))
        self.counters["txs-relay-skipped:fanout"] += len(others) - len(picked)
        return set(picked)

    def flush(self) -> None:
        """
        Send the queued transactions to every ready peer, in C{txs} lines
        of at most C{tx_batch_count} transactions and C{tx_batch_bytes}
        bytes (one transaction alone may be longer: the line cap fits
        the largest), each peer without those it is known to hold and
        those queued before it was ready (as an immediate broadcast would
        have: a peer that connects later learns of a stalled transaction
        from L{timecoin.p2p.gossip.Gossip.query_stalled}).
        """
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        queue, self._queue = self._queue, {}
        self._queued_bytes = 0
        if not queue:
            return
        budget = min(self.settings.tx_batch_bytes, TxsMsg.max_bytes)
        count = min(self.settings.tx_batch_count, MAX_TXS_PER_MSG)
        for conn in list(self.peerset.ready.values()):
            batch: list[bytes] = []
            size = TXS_ENVELOPE_BYTES
            serial = conn.ready_serial
            for queued in queue.values():
                if conn in queued.have or serial > queued.at or (
                        queued.only is not None and conn not in queued.only):
                    continue
                entry = queued.entry
                if batch and (len(batch) >= count
                              or size + len(entry) + 1 > budget):
                    self._send(conn, batch)
                    batch = []
                    size = TXS_ENVELOPE_BYTES
                batch.append(entry)
                size += len(entry) + 1
            if batch:
                self._send(conn, batch)

    def _send(self, conn: Connection, batch: list[bytes]) -> None:
        if conn.send_line(TxsMsg.name, txs_line(batch)):
            self.counters["txs-sent"] += 1
            self.counters["txs-sent-txs"] += len(batch)
