"""
The masternode lifecycle of a run: L{Lifecycle} carries out the
L{LifecyclePlan} as the chain allows (joiners funded and registered, one
masternode stopped for good, one stopped until set aside and restarted).

Imports L{world}, L{clock}, L{plan} and L{hosts} from the rest of the
simulator.
"""

from __future__ import annotations

from timecoin import params
from timecoin.block import Block
from timecoin.mnstate import ACTIVE, SET_ASIDE, MnStatus
from timecoin.node import Node
from timecoin.testing.simulation.clock import Journal
from timecoin.testing.simulation.hosts import Hosts, reference
from timecoin.testing.simulation.plan import LifecyclePlan
from timecoin.testing.simulation.world import (
    BANK_COIN,
    COLLATERAL,
    FEE_COIN,
    NETWORK,
    PORT,
    address,
    bank_key,
    short,
)
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from timecoin.wallet import WalletError, build_registration

__all__ = ["Lifecycle"]


class Lifecycle:
    """
    Carries out a L{LifecyclePlan} as the chain allows: funds each joiner
    from its genesis bank coin and has its node register (the real
    L{build_registration} and C{submit}; the node then activates by
    itself), stops one masternode for good once every joiner is active,
    and stops another until the chain has set it aside and it may come
    back, then restarts it (its node activates it again by itself).

    @ivar stopped_at: the honest tip height when the stopped-for-good
        masternode stopped.
    @ivar back_at: the honest tip height when the returning one restarted.
    """

    def __init__(self, plan: LifecyclePlan, hosts: Hosts, genesis: Block,
                 journal: Journal, duration: float) -> None:
        self.plan = plan
        self.hosts = hosts
        self.nodes = hosts.nodes
        self.genesis = genesis
        self.journal = journal
        self.duration = duration
        self.state = {j: "waiting" for j in plan.joiners}
        self.sent: dict[int, float] = {}
        self.funding: dict[int, Transaction] = {}
        self.stopped_at: int | None = None
        self.crashed_back: int | None = None
        self.back_at: int | None = None
        self.aside: dict[int, int] = {}
        """Hosts the plan did not stop, set aside by the chain: since."""
        self.counters = journal.counters

    @property
    def away(self) -> set[int]:
        """
        Hosts down until the chain sets them aside (the returning
        masternode).
        """
        return self.hosts.away

    def reference(self) -> Node | None:
        """
        The honest running node with the highest committed tip.
        """
        return reference(self.nodes)

    def status(self, i: int) -> MnStatus | None:
        """
        Host C{i}'s masternode status at the reference tip.
        """
        ref = self.reference()
        return None if ref is None else \
            ref.chain.mn_status(self.nodes[i].key.public)

    def _log(self, text: str) -> None:
        self.journal.note(text)

    def tick(self, now: float) -> None:  # noqa: C901
        """
        One step of the plan.
        """
        plan = self.plan
        for j, at in zip(plan.joiners, plan.join_at):
            if now >= at:
                self._join(j, now)
        joined = all(self.state[j] == "active" for j in plan.joiners)
        hosts = self.hosts
        late = now >= self.duration - 5
        if self.crashed_back is None and joined and now >= plan.back_at \
                and not late:
            host = self.nodes[plan.back]
            ref = self.reference()
            self.crashed_back = ref.chain.height if ref else 0
            self.away.add(plan.back)
            hosts.down.discard(plan.back)
            self._disarm_back()
            self._log(f"lifecycle: {host.name} stops, to come back once set "
                      "aside")
            self.counters["stopped-to-return"] += 1
            hosts.crash(host)
        back = self.status(plan.back)
        back_aside = back is not None and back.state == SET_ASIDE
        if self.stopped_at is None and back_aside and now >= plan.stop_at \
                and not late and plan.stop not in hosts.gone:
            host = self.nodes[plan.stop]
            ref = self.reference()
            self.stopped_at = ref.chain.height if ref else 0
            hosts.gone.add(plan.stop)
            hosts.down.discard(plan.stop)
            self._log(f"lifecycle: {host.name} stops for good at height "
                      f"{self.stopped_at}")
            self.counters["stopped-for-good"] += 1
            hosts.crash(host)
        if plan.back in self.away:
            back = self.status(plan.back)
            ref = self.reference()
            rules = ref.chain.rules if ref else None
            if back is not None and back.state == SET_ASIDE and \
                    ref is not None and rules is not None and \
                    ref.chain.height >= back.since + rules.min_away \
                    + plan.back_extra:
                self.restart_back(f"set aside at {back.since}")
        ref = self.reference()
        if ref is not None:
            for host in self.nodes:
                status = ref.chain.mn_status(host.key.public)
                if status is None or status.state != SET_ASIDE or \
                        host.index in (plan.stop, plan.back):
                    continue
                if self.aside.get(host.index) != status.since:
                    self.aside[host.index] = status.since
                    self.counters["unplanned-set-aside"] += 1
                    self._log(f"lifecycle: {host.name} set aside at "
                              f"{status.since} (unplanned): "
                              f"{status.reason}")
        for j in plan.joiners:
            if self.state[j] != "active":
                status = self.status(j)
                if status is not None and status.state == ACTIVE:
                    self.state[j] = "active"
                    self.counters["joiner-active"] += 1
                    self._log(f"lifecycle: {self.nodes[j].name} is active "
                              f"from height {status.since}")

    def calm(self) -> None:
        """
        Faults stop: the returning masternode, if still away and not set
        aside, restarts.
        """
        if self.plan.back in self.away:
            status = self.status(self.plan.back)
            if status is None or status.state != SET_ASIDE:
                self.restart_back("calm: never set aside")

    def _disarm_back(self) -> None:
        self.hosts.disarm(self.nodes[self.plan.back])

    def restart_back(self, why: str) -> None:
        """
        Start the returning masternode again.
        """
        host = self.nodes[self.plan.back]
        self.away.discard(self.plan.back)
        ref = self.reference()
        self.back_at = ref.chain.height if ref else 0
        self._log(f"lifecycle: {host.name} restarts ({why}) at height "
                  f"{self.back_at}")
        self.counters["returned" if why.startswith("set aside")
                      else "restarted-never-set-aside"] += 1
        if not host.up and host.starting is None:
            self.hosts.start(host)

    def _join(self, j: int, now: float) -> None:
        host = self.nodes[j]
        state = self.state[j]
        node = host.node
        if state == "waiting":
            self.funding[j] = self._funding_tx(j)
            self._submit(j, self.funding[j], "funding", now)
            self.state[j] = "funding"
            return
        if state == "funding" and node is not None:
            fund = self.funding[j].txid
            mine = {op for op, _ in node.spendable()}
            collateral = OutPoint(fund, 0)
            if collateral in mine and OutPoint(fund, 1) in mine:
                try:
                    tx = build_registration(
                        node.wallet, node.spendable(), node.key,
                        f"{host.ip}:{PORT}", node.wallet.addresses()[0],
                        collateral, NETWORK.name)
                except WalletError as e:
                    self.counters[f"registration-error:{e}"] += 1
                    return
                self._submit(j, tx, "registration", now)
                self.state[j] = "registering"
            elif now - self.sent[j] > 15:
                self._submit(j, self.funding[j], "funding again", now)
            return
        if state == "registering":
            status = self.status(j)
            if status is not None:
                self.state[j] = "registered"
                self._log(f"lifecycle: {host.name} registered at height "
                          f"{status.since}")
                self.counters["joiner-registered"] += 1
            elif now - self.sent[j] > 20:
                self.state[j] = "funding"
                self.sent[j] = now

    def _funding_tx(self, j: int) -> Transaction:
        coinbase = self.genesis.txs[0]
        bank = address(bank_key())
        vouts = [v for v, out in enumerate(coinbase.outputs)
                 if out.address == bank]
        vout = vouts[self.plan.joiners.index(j)]
        to = address(self.nodes[j].key)
        fee = params.min_fee(COLLATERAL + FEE_COIN)
        tx = Transaction(
            (TxIn(OutPoint(coinbase.txid, vout), bank_key().public),),
            (TxOut(COLLATERAL, to), TxOut(FEE_COIN, to),
             TxOut(BANK_COIN - COLLATERAL - FEE_COIN - fee, bank)))
        return sign_inputs(tx, NETWORK.name, [bank_key()])

    def _submit(self, j: int, tx: Transaction, what: str,
                now: float) -> None:
        self.sent[j] = now
        host = self.nodes[j]
        if host.node is None:
            targets = [h for h in self.nodes if h.up and not h.byzantine]
            if not targets:
                return
            host = targets[int(now * 10) % len(targets)]
        assert host.node is not None
        self._log(f"lifecycle: {what} of {self.nodes[j].name} "
                  f"{short(tx.txid)} to {host.name}")
        d = host.node.submit(tx)
        d.addErrback(lambda f: self.counters.update(
            [f"lifecycle-refused:{getattr(f.value, 'reason', '?')}"]))
