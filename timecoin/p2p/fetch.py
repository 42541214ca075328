"""
Transactions known here only by their votes, asked of the peers that sent
the votes (C{get_txs}, protocol 5).

A vote may come before its transaction; it is kept as an orphan
(L{timecoin.p2p.orphans.OrphanVotes}) and counted when the transaction
arrives, normally a few milliseconds later.  But nothing made it arrive:
a transaction travels only by relay, and in a dense mesh a node relays a
transaction a peer that reaches every masternode sent it to no
masternode (L{timecoin.p2p.reach}).  A Byzantine masternode that a client
gave a payment, and that lied about its reach, sent the payment to half
of its peers: they finalized it, and three honest masternodes never
learned of it until a block carried it -- and none did in the twenty
seconds the simulator waited (twelve masternodes, seed 4 once block sync
changed its timing).  Undecided transactions are announced again
(L{timecoin.p2p.gossip.Gossip.query_stalled}); a finalized one is not.

So a transaction whose votes came here as orphans and that is still
unknown C{fetch_after} seconds after the first of them is asked for,
with C{get_txs}, of the signer of its latest orphan vote if it is a
peer (it voted, so it holds the transaction, unless it lies), then of
the peer that sent that vote, then of those of earlier votes, at most
C{fetch_tries} times, the wait doubling from C{fetch_after} between
asks.  The answer is an ordinary C{txs} line with those of the asked
transactions the peer holds (pending, contending or final, not yet in a
block), admitted and relayed like any other; one that came in a block
since is in that block.  What is wanted is bounded by C{orphan_votes} and
lives at most C{orphan_ttl}, as the orphans that made it wanted.

It stays wanted when the answer is refused: a transaction whose parent
is not here yet is refused (C{missing-or-spent-input}) until the parent
comes, and the doubling wait reaches past the next block or two at a
few asks' cost.  (What it does not reach: a transaction refused that way
when it came by relay, before any of its votes, is remembered as
refused, so its votes are no orphans and it is not wanted;
C{docs/finality.md}, "Known limits".)

Imports only L{timecoin.encoding}, L{timecoin.p2p.dependencies},
L{timecoin.p2p.messages} and L{timecoin.p2p.settings} (and
L{timecoin.node} for its types).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.interfaces import IReactorTime

from timecoin.encoding import need_list, unhex
from timecoin.p2p.dependencies import Connection, Handler, PeerSet
from timecoin.p2p.messages import (
    MAX_TXIDS_PER_QUERY,
    Message,
    TxsMsg,
    _field,
    register,
)
from timecoin.p2p.settings import P2PSettings

if TYPE_CHECKING:
    from timecoin.node import Node

FETCH_VERSION = 5
"""The protocol version that has C{get_txs}."""
MAX_FETCH_REPLY_BYTES = 500_000
"""Transaction bytes one C{get_txs} answer carries at most (half a
C{txs} line's cap: every answer fits one line)."""


@register
@dataclass(frozen=True)
class GetTxs(Message):
    """
    Asks the peer for up to L{MAX_TXIDS_PER_QUERY} transactions; it
    answers with one C{txs} line holding those it has (no answer if none).
    """

    name: ClassVar[str] = "get_txs"
    max_bytes: ClassVar[int] = MAX_TXIDS_PER_QUERY * 67 + 64

    txids: tuple[bytes, ...]

    def fields(self) -> dict[str, Any]:
        return {"txids": [t.hex() for t in self.txids]}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> GetTxs:
        txids = need_list(_field(obj, "txids"), "txids", MAX_TXIDS_PER_QUERY)
        return cls(tuple(unhex(t, 32, "txid") for t in txids))


def speaks_fetch(conn: Connection) -> bool:
    """
    Whether C{conn}'s peer understands C{get_txs}.
    """
    return conn.hello is not None and conn.hello.version >= FETCH_VERSION


@dataclass
class _Wanted:
    """
    A transaction known by its votes: since when, the peers that sent
    them (latest last), when it is next asked for, and how often it was.
    """

    since: float
    sources: list[str] = field(default_factory=list)
    due: float = 0.0
    asked: int = 0


class TxFetch:
    """
    Asks peers for the transactions only their votes told us of, and
    answers their C{get_txs}.

    @ivar wanted: txid → what we know of who holds it, oldest first.
    @ivar known: whether a txid is seen or held here (admitted, waiting
        for admission, or in the mempool): not wanted.
    @ivar counters: the gossip's counters (C{tx-fetch-asked},
        C{tx-fetch-gave-up}, C{tx-fetch-served}).
    """

    def __init__(self, node: Node, peerset: PeerSet, clock: IReactorTime,
                 settings: P2PSettings, counters: Counter[str],
                 known: Callable[[bytes], bool]) -> None:
        self.node = node
        self.peerset = peerset
        self.clock = clock
        self.settings = settings
        self.counters = counters
        self.known = known
        self.wanted: OrderedDict[bytes, _Wanted] = OrderedDict()

    def handlers(self) -> dict[str, Handler]:
        return {"get_txs": self.requested}

    def voted(self, txid: bytes, conn: Connection, voter: bytes) -> None:
        """
        C{conn} sent C{voter}'s vote on C{txid}, which the mempool does
        not hold.  Both are sources, the voter (if a peer) the latest: it
        voted, so it holds the transaction; a relay such as an aggregator
        may have passed the vote on without.
        """
        wanted = self.wanted.get(txid)
        if wanted is None:
            if self.known(txid):
                return
            if len(self.wanted) >= self.settings.orphan_votes:
                self.wanted.popitem(last=False)
            now = self.clock.seconds()
            wanted = self.wanted[txid] = _Wanted(
                now, due=now + self.settings.fetch_after)
        signer = self.peerset.by_pubkey(voter)
        for key in (conn.peer_key,
                    signer.peer_key if signer is not None else None):
            if key is not None:
                if key in wanted.sources:
                    wanted.sources.remove(key)
                wanted.sources.append(key)

    def arrived(self, txid: bytes) -> None:
        """
        C{txid} is known here now.
        """
        self.wanted.pop(txid, None)

    def ask_due(self) -> None:
        """
        Ask for each wanted transaction that is due (L{timecoin.p2p.fetch}),
        at most L{MAX_TXIDS_PER_QUERY} of them of one peer in a
        C{get_txs}; forget those asked for C{fetch_tries} times or wanted
        longer than C{orphan_ttl}.  Runs every C{relay_interval} (0.2 s):
        one C{get_txs} per peer at most, within its rate limit (5/s); the
        rest wait for the next run.
        """
        if not self.wanted:
            return
        now = self.clock.seconds()
        settings = self.settings
        knows = self.known
        ready = self.peerset.ready
        asks: defaultdict[str, list[bytes]] = defaultdict(list)
        for txid, wanted in list(self.wanted.items()):
            if knows(txid):
                del self.wanted[txid]
                continue
            if wanted.asked >= settings.fetch_tries or \
                    now - wanted.since > settings.orphan_ttl:
                self.counters["tx-fetch-gave-up"] += 1
                del self.wanted[txid]
                continue
            if wanted.due > now:
                continue
            sources = [key for key in wanted.sources
                       if key in ready and speaks_fetch(ready[key])]
            if not sources:
                continue
            # The latest source first, then those before it in turn.
            key = sources[-1 - wanted.asked % len(sources)]
            if len(asks[key]) < MAX_TXIDS_PER_QUERY:
                asks[key].append(txid)
                wanted.due = now + settings.fetch_after * 2 ** wanted.asked
                wanted.asked += 1
        for key, txids in asks.items():
            self.counters["tx-fetch-asked"] += len(txids)
            ready[key].send(GetTxs(tuple(txids)))

    def requested(self, conn: Connection, msg: GetTxs) -> None:
        """
        A peer asked for some transactions: send those we hold, not yet in
        a block, in one C{txs} line (at most L{MAX_FETCH_REPLY_BYTES} of
        them).
        """
        held = self.node.mempool.held
        txs = []
        size = 0
        for txid in msg.txids:
            entry = held(txid)
            if entry is None:
                continue
            size += entry.tx.size
            if size > MAX_FETCH_REPLY_BYTES:
                break
            txs.append(entry.tx)
        if txs:
            self.counters["tx-fetch-served"] += len(txs)
            conn.send(TxsMsg.of(txs))
