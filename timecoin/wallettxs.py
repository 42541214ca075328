"""
The wallet's transaction history: which transactions paid or spent the
wallet, for C{listtransactions}, C{listsinceblock},
C{getreceivedbyaddress}, C{gettransaction}'s C{details} and
C{walletnotify}.

A wallet transaction is recorded when it becomes final: when the node
finalizes it (votes reach the quorum, before any block holds it) or, for
one the node first sees in a block (catching up, a payment finalized by
other masternodes while this node was down), when that block connects.
Its block (height, hash, time, index) is recorded when it is mined.
Pending transactions (still being voted on) are not listed: they may yet
be rejected.  Nothing recorded is ever removed: a final transaction cannot
be reversed.

Each transaction is summarised once, at first sight, against the
wallet's addresses of that moment: the outputs paying the wallet
(C{receive}, or C{change} when they return to an address one of its inputs
came from, or C{generate} for a coinbase), the outputs paying others when
the wallet funded it (C{send}), the wallet value its inputs spent
(C{debit}, from the wallet outputs recorded before), and its fee.

The log is cheap: an append-only JSON-lines file
(C{DATADIR/wallettxs.jsonl}) of one line per wallet transaction, one per
mining, and a C{scanned} height mark every L{SCAN_MARK_EVERY} blocks; it
is read whole at start, then the blocks after the last mark are scanned
again (a crash loses at most that many blocks' lines, found again by this
scan; duplicates are ignored).  Without the file (a new node, a wiped data
dir restored from a wallet backup) the whole chain is scanned once at
start.  Keys imported later do not rescan the chain.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from twisted.internet import defer
from twisted.logger import Logger

from timecoin import params
from timecoin.encoding import canonical
from timecoin.finality import Finalized
from timecoin.signal import Signal
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, UtxoEntry, sign_inputs

log = Logger()

SCAN_MARK_EVERY = 100
"""Blocks between two C{scanned} marks in the log (what a crash may make
the start-up scan read again)."""
FILE_NAME = "wallettxs.jsonl"

FINAL = "final"
MINED = "mined"
"""The two events of a wallet transaction (L{WalletTxLog.observers})."""


@dataclass
class WalletTx:
    """
    One wallet transaction as recorded.

    @ivar outputs: C{(vout, address, value, category)} for each output of
        interest: C{receive}, C{change}, C{generate} (paying the wallet)
        or C{send} (paying others from the wallet's coins).
    @ivar debit: wallet value its inputs spent (0 if none).
    @ivar fee: its fee when the wallet funded every input, else C{None}.
    """

    txid: bytes
    time: int
    outputs: list[tuple[int, str, int, str]]
    debit: int
    fee: int | None
    height: int | None = None
    block_hash: bytes | None = None
    block_time: int | None = None
    block_index: int | None = None
    seq: int = 0
    spends: list[tuple[bytes, int]] = field(default_factory=list)
    """The wallet outputs its inputs spent."""

    @property
    def credit(self) -> int:
        """
        Value its outputs pay the wallet.
        """
        return sum(v for _, _, v, c in self.outputs if c != "send")

    @property
    def amount(self) -> int:
        """
        Bitcoin Core's C{amount}: the net change of the wallet's balance,
        fee excluded (negative for a payment to others).
        """
        if self.from_me:
            return -sum(v for _, _, v, c in self.outputs if c == "send")
        return self.credit

    @property
    def from_me(self) -> bool:
        """
        Whether the wallet funded it (it pays others or its fee is known).
        """
        return self.fee is not None or any(
            c == "send" for _, _, _, c in self.outputs)

    def to_line(self) -> dict[str, Any]:
        return {"txid": self.txid.hex(), "time": self.time,
                "outputs": [list(o) for o in self.outputs],
                "debit": self.debit, "fee": self.fee,
                "spends": [[t.hex(), n] for t, n in self.spends]}


class WalletTxEvent(NamedTuple):
    """
    What L{WalletTxLog.observers} emits.

    @ivar wtx: the wallet transaction.
    @ivar event: L{FINAL} or L{MINED}.
    """

    wtx: WalletTx
    event: str


@dataclass
class WalletTxLog:
    """
    The wallet's transactions, in the order they were first seen.

    @ivar observers: emitted (L{WalletTxEvent}) when a wallet
        transaction becomes final (L{FINAL}, not yet in a block) or is
        mined (L{MINED}); not during the start-up scan.
    """

    path: Path
    wallet: Any
    prefix: str
    clock: Any
    txs: dict[bytes, WalletTx] = field(default_factory=dict)
    order: list[WalletTx] = field(default_factory=list)
    observers: Signal[WalletTxEvent] = field(
        default_factory=lambda: Signal("wallet_txs.observers"))
    scanned: int = -1
    _owned: dict[OutPoint, tuple[str, int]] = field(default_factory=dict)
    _since_mark: int = 0
    _scanning: bool = False
    _file: io.BufferedWriter | None = None

    @classmethod
    def attach(cls, node: Any) -> WalletTxLog:
        """
        The log of C{node}'s wallet in its data dir, loaded, fed by its
        chain's connected blocks and its finality's finalized
        transactions.
        """
        history = cls(Path(node.datadir) / FILE_NAME, node.wallet,
                      node.network.address_prefix, node.clock)
        history.load()
        node.chain.block_connected.connect(history.block_connected)

        def finalized(event: Finalized) -> None:
            entry = node.mempool.entries.get(event.txid)
            if entry is not None:
                history.tx_finalized(entry.tx)

        node.finality.finalized.connect(finalized)
        return history

    def start_for(self, node: Any) -> defer.Deferred[None]:
        """
        L{start} on C{node}'s chain and finalized mempool transactions.
        """
        from timecoin.mempool import FINALIZED
        entries = sorted(node.mempool.entries.values(), key=lambda e: e.seq)
        return self.start(node.chain.height, node.block_at,
                          [e.tx for e in entries if e.state == FINALIZED])

    # Loading -----------------------------------------------------------

    def load(self) -> None:
        """
        Read the log file, if any.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        for line in text.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue  # a line torn by a crash
            if "scanned" in obj:
                self.scanned = max(self.scanned, obj["scanned"])
            elif "mined" in obj:
                wtx = self.txs.get(bytes.fromhex(obj["mined"]))
                if wtx is not None:
                    wtx.height = obj["height"]
                    wtx.block_hash = bytes.fromhex(obj["block"])
                    wtx.block_time = obj["blocktime"]
                    wtx.block_index = obj["index"]
                    self.scanned = max(self.scanned, obj["height"] - 1)
            elif "txid" in obj:
                txid = bytes.fromhex(obj["txid"])
                if txid not in self.txs:
                    self._add(WalletTx(txid, obj["time"], [
                        (o[0], o[1], o[2], o[3]) for o in obj["outputs"]],
                        obj["debit"], obj["fee"], spends=[
                            (bytes.fromhex(t), n)
                            for t, n in obj.get("spends", ())]))

    @defer.inlineCallbacks
    def start(self, height: int, block_at: Callable[[int], Any],
              finalized: list[Transaction]) -> Any:
        """
        Scan the blocks after the loaded log's last mark up to C{height}
        (read with C{block_at}), then record the C{finalized} mempool
        transactions; no observer is called meanwhile.
        """
        self._scanning = True
        try:
            start = self.scanned + 1
            for h in range(start, height + 1):
                block = yield block_at(h)
                if block is not None:
                    self.block_connected(block)
            for tx in finalized:
                self.tx_finalized(tx)
        finally:
            self._scanning = False
        if height >= start:
            log.info("wallet history scanned blocks {start} to {end}: "
                     "{count} wallet transactions", start=start, end=height,
                     count=len(self.order))
            self._mark(height)

    # Events ------------------------------------------------------------

    def tx_finalized(self, tx: Transaction) -> None:
        """
        C{tx} was finalized (not yet mined): record it if it is the
        wallet's.
        """
        if tx.txid in self.txs:
            return
        wtx = self._summarise(tx)
        if wtx is not None:
            self._append(wtx.to_line())
            self._notify(wtx, FINAL)

    def block_connected(self, block: Any) -> None:
        """
        C{block} connected: record its wallet transactions and their
        block.
        """
        mined, lines = self._mined(block)
        self._write(b"".join(lines))
        for wtx in mined:
            self._notify(wtx, MINED)
        self.scanned = max(self.scanned, block.height)
        self._since_mark += 1
        if self._since_mark >= SCAN_MARK_EVERY:
            self._mark(block.height)

    def close(self) -> None:
        """
        Close the log file (the node stops); a later line opens it again.
        """
        if self._file is not None:
            self._file.close()
            self._file = None

    # Internals ---------------------------------------------------------

    def _mined(self, block: Any) -> tuple[list[WalletTx], list[bytes]]:
        """
        Record C{block}'s wallet transactions and their block in memory:
        the ones newly mined, in block order, and the log lines saying
        so.
        """
        block_time = block.header.timestamp // 1000
        mined = []
        lines = []
        for index, tx in enumerate(block.txs):
            wtx = self.txs.get(tx.txid)
            if wtx is None:
                wtx = self._summarise(tx)
                if wtx is None:
                    continue
                lines.append(_line(wtx.to_line()))
            elif wtx.block_hash == block.hash:
                continue
            wtx.height, wtx.block_hash = block.height, block.hash
            wtx.block_time, wtx.block_index = block_time, index
            lines.append(_line({"mined": tx.txid.hex(),
                                "height": block.height,
                                "block": block.hash.hex(),
                                "blocktime": block_time, "index": index}))
            mined.append(wtx)
        return mined, lines

    def _summarise(self, tx: Transaction) -> WalletTx | None:
        """
        The L{WalletTx} of C{tx} if it pays or spends the wallet (then
        recorded in memory), else C{None}.  An input is the wallet's when
        it spends an output the history recorded as paying the wallet (no
        public-key hashing on the finality path); such outputs are
        forgotten once spent, so the map stays the size of the wallet's
        unspent outputs.
        """
        owns = self.wallet.owns
        debit = 0
        funded = 0
        from_addresses = set()
        owned = self._owned
        spends = []
        for txin in tx.inputs:
            spent = owned.get(txin.prevout)
            if spent is not None:
                spends.append((txin.prevout.txid, txin.prevout.vout))
                funded += 1
                debit += spent[1]
                from_addresses.add(spent[0])
        outputs: list[tuple[int, str, int, str]] = []
        for vout, out in enumerate(tx.outputs):
            if owns(out.address):
                category = "generate" if tx.is_coinbase else (
                    "change" if funded and out.address in from_addresses
                    else "receive")
                outputs.append((vout, out.address, out.value, category))
            elif funded:
                outputs.append((vout, out.address, out.value, "send"))
        if not outputs and not funded:
            return None
        fee = None
        if funded and funded == len(tx.inputs):
            fee = max(0, debit - sum(o.value for o in tx.outputs))
        wtx = WalletTx(tx.txid, int(self.clock.seconds()), outputs, debit,
                       fee, spends=spends)
        self._add(wtx)
        return wtx

    def _add(self, wtx: WalletTx) -> None:
        wtx.seq = len(self.order)
        self.txs[wtx.txid] = wtx
        self.order.append(wtx)
        for txid, vout in wtx.spends:
            self._owned.pop(OutPoint(txid, vout), None)
        for vout, address, value, category in wtx.outputs:
            if category != "send":
                self._owned[OutPoint(wtx.txid, vout)] = (address, value)

    def _notify(self, wtx: WalletTx, event: str) -> None:
        if self._scanning:
            return
        self.observers.emit(WalletTxEvent(wtx, event))

    def _mark(self, height: int) -> None:
        self._since_mark = 0
        self._append({"scanned": height})

    def _append(self, obj: dict[str, Any]) -> None:
        self._write(_line(obj))

    def _write(self, data: bytes) -> None:
        """
        Append C{data} to the file, opened (and its directory made) at the
        first write and kept open (closed by L{close}, or when the log is
        dropped): one C{write} a call, no C{fsync} (a crash loses at most
        what the start-up scan finds again).
        """
        if not data:
            return
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(
                self.path, "ab",
                opener=lambda path, flags: os.open(path, flags, 0o600))
        self._file.write(data)
        self._file.flush()


def _line(obj: dict[str, Any]) -> bytes:
    """
    C{obj} as one line of the log.
    """
    return canonical(obj) + b"\n"


def build_sendmany(wallet: Any, coins: list[tuple[OutPoint, UtxoEntry]],
                   amounts: list[tuple[str, int]], network: str) -> Transaction:
    """
    One payment to several addresses (C{sendmany}) from the wallet's
    C{coins}, chosen largest first as L{timecoin.wallet.Wallet.build_payment}
    does, with the minimum fee (on what goes to addresses none of the
    chosen coins came from) and the change back to the first coin's
    address.

    @raise timecoin.wallet.WalletError: insufficient funds (-6) or an
        amount below the dust limit (-3).
    """
    from timecoin.wallet import WalletError

    for _, amount in amounts:
        if amount < params.DUST_LIMIT:
            raise WalletError(f"amount below the dust limit of "
                              f"{params.DUST_LIMIT} units", -3)
    mine = sorted(((op, e) for op, e in coins if wallet.owns(e.address)),
                  key=lambda c: (-c[1].value, c[0]))
    chosen: list[tuple[OutPoint, UtxoEntry]] = []
    total = 0
    wanted = sum(a for _, a in amounts)
    for coin in mine:
        chosen.append(coin)
        total += coin[1].value
        own = {e.address for _, e in chosen}
        fee = params.min_fee(sum(a for to, a in amounts if to not in own))
        if total >= wanted + fee:
            break
    else:
        raise WalletError("Insufficient funds", -6)
    change_address = chosen[0][1].address
    change = total - wanted - fee
    outputs = [TxOut(a, to) for to, a in amounts]
    if change >= params.DUST_LIMIT:
        for n, out in enumerate(outputs):
            if out.address == change_address:
                outputs[n] = TxOut(out.value + change, out.address)
                break
        else:
            outputs.append(TxOut(change, change_address))
    unsigned = Transaction(
        tuple(TxIn(op, wallet.key_for(e.address).public) for op, e in chosen),
        tuple(outputs))
    return sign_inputs(unsigned, network,
                       [wallet.key_for(e.address) for _, e in chosen])
