"""
This node's part in consensus, read from the chain at every height.

A node takes part (block rounds, transaction votes, heartbeats) exactly
while its key is active in the snapshot: genesis or registered on chain,
without a restart.  L{Participation} follows its key through the lifecycle
of L{timecoin.mnstate} at every block, logs each change with its reason,
and, once the node is synced, puts the activation of its masternode on
chain by itself: after its registration is mined, and when it may come
back after being set aside.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.chain import Chain, TxInvalid
from timecoin.keys import PrivateKey
from timecoin.logs import RateLimitedLog
from timecoin.mnstate import ACTIVE, REGISTERED, SET_ASIDE, activation_refused
from timecoin.tx import Transaction
from timecoin.wallet import WalletError

log = Logger()

NOT_A_MASTERNODE = "not-a-masternode"
WAITING = "waiting-for-activation"
ACTIVATING = "activating"
RETRY_BLOCKS = 5
"""Blocks between two activations this node sends by itself while the
first is neither mined nor refused."""
WARN_SECONDS = 60.0


class Participation:
    """
    Where this node's key stands, and its activations.

    @ivar activation: the txid of the last activation this node sent, or
        C{None}.
    """

    def __init__(self, chain: Chain, key: PrivateKey, clock: IReactorTime,
                 build: Callable[[int], Transaction],
                 submit: Callable[[Transaction], defer.Deferred[bytes]],
                 synced: Callable[[], bool], pending: Callable[[], Any],
                 automatic: bool = True) -> None:
        """
        @param build: builds a signed activation leaving the state of the
            given height (raises L{WalletError}).
        @param submit: submits a transaction for finality.
        @param synced: whether the node caught up with its peers.
        @param pending: the operator keys of activations in the mempool.
        """
        self.chain = chain
        self.key = key
        self.clock = clock
        self._build = build
        self._submit = submit
        self.synced = synced
        self._pending = pending
        self.automatic = automatic
        self.activation: bytes | None = None
        self._sent_at: int | None = None
        self._last: tuple[str, int] | None = None
        self._warn = RateLimitedLog(log, clock, WARN_SECONDS)

    def status(self) -> dict[str, Any]:
        """
        This node's masternode status: C{status} (active, registered,
        waiting-for-activation, activating, set-aside, not-a-masternode),
        C{detail} (why, in words), C{since} and, when set aside, the
        C{reason} and C{return_height}.
        """
        chain = self.chain
        record = chain.mn_status(self.key.public)
        out: dict[str, Any] = {"status": NOT_A_MASTERNODE, "since": None,
                               "detail": "this node's key is not a "
                               "registered masternode"}
        if record is None:
            return out
        out["since"] = record.since
        if record.state == ACTIVE:
            out.update(status=ACTIVE, detail=f"active since height "
                       f"{record.since}")
            return out
        activating = self.key.public in self._pending()
        if record.state == REGISTERED:
            out.update(
                status=ACTIVATING if activating else WAITING,
                detail=f"registered at height {record.since}; "
                + ("its activation waits for a block" if activating else
                   "the node activates it once synced"))
            return out
        back = record.since + chain.rules.min_away
        out.update(status=ACTIVATING if activating else SET_ASIDE,
                   reason=record.reason, return_height=back,
                   detail=f"set aside at height {record.since}: "
                   f"{record.reason}; may return from height {back}")
        return out

    def block_connected(self, block: Any) -> None:
        """
        Log a change of this node's state; send an activation if due.
        """
        record = self.chain.mn_status(self.key.public)
        now = None if record is None else (record.state, record.since)
        if now != self._last:
            self._changed(now)
            self._last = now
        if self.automatic:
            self.maybe_activate()

    def _changed(self, now: tuple[str, int] | None) -> None:
        height = self.chain.height
        if now is None:
            if self._last is not None:
                log.warn("this node is no longer a masternode at height "
                         "{height} (its collateral was spent)", height=height)
            return
        state, since = now
        if state == ACTIVE:
            log.info("this node is an active masternode from height {since}: "
                     "it votes and produces", since=since)
        elif state == REGISTERED:
            log.info("this node's masternode is registered (height {since}) "
                     "and waits for its activation", since=since)
        elif state == SET_ASIDE:
            record = self.chain.mn_status(self.key.public)
            log.warn("this node's masternode was set aside at height "
                     "{since}: {reason}; it may return from height {back}",
                     since=since, reason=record.reason if record else "",
                     back=since + self.chain.rules.min_away)

    def due(self) -> str | None:
        """
        Why no activation is due now, or C{None} when this node should
        send one.
        """
        chain = self.chain
        record = chain.mn_status(self.key.public)
        if record is None:
            return "not a registered masternode"
        refused = activation_refused(record, record.since, chain.height + 1,
                                     chain.rules)
        if refused is not None:
            return refused
        if not self.synced():
            return "not synced"
        if self.key.public in self._pending():
            return "an activation is already waiting for a block"
        return None

    def maybe_activate(self) -> None:
        """
        Send an activation if one is due and none was sent in the last
        L{RETRY_BLOCKS} blocks.
        """
        if self.due() is not None:
            return
        if self._sent_at is not None and \
                self.chain.height < self._sent_at + RETRY_BLOCKS:
            return
        d = self.activate()
        d.addErrback(lambda f: self._warn.warn(
            "activation", "could not activate this masternode: {why}",
            why=f.getErrorMessage()))

    def activate(self) -> defer.Deferred[bytes]:
        """
        Build and submit an activation now (RPC C{activatemasternode});
        fires with its txid.

        @raise TxInvalid: C{bad-activation} with the reason none is due.
        @raise WalletError: no coin for the fee.
        """
        chain = self.chain
        record = chain.mn_status(self.key.public)
        if record is None:
            return defer.fail(TxInvalid("bad-activation",
                                        "not a registered masternode"))
        try:
            tx = self._build(record.since)
        except WalletError as e:
            return defer.fail(e)
        self._sent_at = chain.height
        log.info("sending the activation {txid} of this masternode "
                 "({state} since {since})", txid=tx.txid.hex(),
                 state=record.state, since=record.since)
        d = self._submit(tx)

        def sent(txid: bytes) -> bytes:
            self.activation = txid
            return txid

        return d.addCallback(sent)
