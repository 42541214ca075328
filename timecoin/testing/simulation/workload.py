"""
The workload: L{Workload}, signed payments between the workload wallets
with deliberate double spends, submitted to random running nodes.

Imports L{world}, L{config}, L{hosts} and L{adversary} from the rest of
the simulator.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from timecoin import params
from timecoin.block import Block
from timecoin.testing.simulation.adversary import Adversary
from timecoin.testing.simulation.config import SimConfig
from timecoin.testing.simulation.hosts import SimNode
from timecoin.testing.simulation.world import (
    NETWORK,
    WALLETS,
    address,
    wallet_key,
)
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs

__all__ = ["Workload"]


@dataclass
class _Coin:
    outpoint: OutPoint
    value: int
    owner: int


@dataclass
class _InFlight:
    tx: Transaction
    at: float
    pair: bytes | None = None


class Workload:
    """
    Signed payments between the workload wallets, submitted to random
    running nodes at the config's C{tx_rate} per second; a fraction
    (C{double_spends}) are double spends (two payments of one coin
    submitted to two nodes at once), which every adversary hears of.  It
    spends genesis coins and the outputs of payments it saw finalized.
    """

    def __init__(self, rng: random.Random, config: SimConfig,
                 nodes: list[SimNode], adversaries: list[Adversary]) -> None:
        self.rng = rng
        self.rate = config.tx_rate
        self.double_spends = config.double_spends
        self.vote_timeout = config.vote_timeout
        self.nodes = nodes
        self.adversaries = adversaries
        self.keys = [wallet_key(i) for i in range(WALLETS)]
        self.addresses = [address(k) for k in self.keys]
        self.coins: list[_Coin] = []
        self.inflight: dict[bytes, _InFlight] = {}
        self.counters: Counter[str] = Counter()
        self._budget = 0.0

    def fund(self, genesis: Block) -> None:
        """
        Take the genesis outputs paid to the workload wallets.
        """
        coinbase = genesis.txs[0]
        for vout, out in enumerate(coinbase.outputs):
            if out.address in self.addresses:
                self.coins.append(_Coin(OutPoint(coinbase.txid, vout),
                                        out.value,
                                        self.addresses.index(out.address)))

    def tick(self, now: float, step: float,
             finalized: Collection[bytes]) -> None:
        """
        Learn which payments finalized (C{finalized} anywhere), then submit
        this step's share.
        """
        for txid in list(self.inflight):
            flight = self.inflight[txid]
            if txid in finalized:
                del self.inflight[txid]
                self.counters["finalized"] += 1
                for vout, out in enumerate(flight.tx.outputs):
                    self.coins.append(_Coin(
                        OutPoint(txid, vout), out.value,
                        self.addresses.index(out.address)))
            elif now - flight.at > self.vote_timeout + 10:
                del self.inflight[txid]
                self.counters["never-finalized"] += 1
        self._budget += self.rate * step
        while self._budget >= 1:
            self._budget -= 1
            self._submit_one(now)

    def _payment(self, coin: _Coin) -> Transaction:
        to = self.rng.randrange(WALLETS)
        amount = self.rng.randint(1, 20) * 100_000
        fee = params.min_fee(amount if to != coin.owner else 0)
        outputs = [TxOut(amount, self.addresses[to])]
        change = coin.value - amount - fee
        if change >= params.DUST_LIMIT:
            outputs.append(TxOut(change, self.addresses[coin.owner]))
        key = self.keys[coin.owner]
        tx = Transaction((TxIn(coin.outpoint, key.public),), tuple(outputs))
        return sign_inputs(tx, NETWORK.name, [key])

    def _submit_one(self, now: float) -> None:
        targets = [n for n in self.nodes if n.up]
        usable = [c for c in self.coins if c.value > 3_000_000]
        if not targets or not usable:
            self.counters["starved"] += 1
            return
        coin = usable[self.rng.randrange(len(usable))]
        self.coins.remove(coin)
        first = self._payment(coin)
        self.inflight[first.txid] = _InFlight(first, now)
        self._to(self.rng.choice(targets), first)
        self.counters["payments"] += 1
        if self.rng.random() < self.double_spends:
            second = self._payment(coin)
            if second.txid == first.txid:
                return
            self.inflight[second.txid] = _InFlight(second, now, first.txid)
            self.inflight[first.txid].pair = second.txid
            self._to(self.rng.choice(targets), second)
            self.counters["double-spends"] += 1
            for adversary in self.adversaries:
                adversary.double_spend(first, second)

    def _to(self, host: SimNode, tx: Transaction) -> None:
        assert host.node is not None
        d = host.node.submit(tx)
        d.addCallbacks(lambda _: self.counters.update(["accepted"]),
                       lambda f: self.counters.update(
                           [f"refused:{getattr(f.value, 'reason', '?')}"]))
