"""
Chain builders shared by the tests: L{rebuild} (a signed block on a
L{Harness}'s tip), L{cert_for} (its certificate),
L{RegistrationHarness} (a devnet with a collateral coin) and
L{payment} (a signed payment from test key 1).
"""

from __future__ import annotations

from tests.helpers import DEVNET, Harness, addr, key, result_of
from timecoin import params
from timecoin.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    commit_hash_of,
    merkle_root,
    sign_block,
    sign_block_vote,
)
from timecoin.registration import make_registration_data
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs


def rebuild(h: Harness, txs: list[Transaction], *, producer=None,
            commit="auto", timestamp=None, coinbase=None,
            height=None) -> Block:
    """
    A block on h's tip with C{txs}, signed, with the right coinbase unless
    told otherwise.
    """
    chain = h.chain
    producer = producer or h.mn_key
    height = chain.height + 1 if height is None else height
    if coinbase is None:
        from timecoin.rewards import coinbase_outputs
        fees = 0
        outputs = {op: e.value for op, e in chain.utxos.items()}
        for tx in txs:
            spent = sum(outputs.get(i.prevout, 0) for i in tx.inputs)
            fees += spent - sum(o.value for o in tx.outputs)
            for vout, out in enumerate(tx.outputs):
                outputs[OutPoint(tx.txid, vout)] = out.value
        coinbase = Transaction((), coinbase_outputs(
            chain.snapshot_for(height), DEVNET.block_reward, fees),
            "coinbase", {"height": height})
    if commit == "auto":
        commit = chain.tip_commit if height > 1 else None
    all_txs = (coinbase, *txs)
    header = BlockHeader(height, chain.tip.hash,
                         merkle_root([t.txid for t in all_txs]),
                         timestamp or chain.tip.header.timestamp + 1000,
                         producer.public, 0, commit_hash_of(commit))
    return sign_block(producer, "devnet", header, all_txs, commit)


def cert_for(h: Harness, block: Block) -> CommitCertificate:
    """
    The one-vote certificate the devnet masternode gives C{block}.
    """
    vote = sign_block_vote(h.mn_key, "devnet", block.height,
                           block.header.round, block.hash)
    return CommitCertificate(block.height, block.header.round, block.hash,
                             (vote,))


COIN = params.COIN


class RegistrationHarness(Harness):
    """
    A devnet whose payer holds a 10,000 TIME coin (a silver collateral)
    and a small coin for fees.
    """

    def __init__(self, **kw) -> None:
        super().__init__(funds=[10_000 * COIN, 5 * COIN], **kw)

    def register(self, operator=None, collateral=None, fee_coin=None,
                 owner=None, reward=None) -> Transaction:
        operator = operator or key(5)
        collateral = collateral or self.funding(0)
        fee_coin = fee_coin or self.funding(1)
        owner = owner or self.payer
        data = make_registration_data(
            "devnet", operator, owner, "127.0.0.5:24200",
            reward or addr(operator), collateral)
        value = self.chain.utxos[fee_coin].value \
            if fee_coin in self.chain.utxos \
            else self.mempool.outputs[fee_coin].value
        tx = Transaction((TxIn(fee_coin, self.payer.public),),
                         (TxOut(value - params.min_fee(0),
                                addr(self.payer)),), "mn_register", data)
        return sign_inputs(tx, "devnet", [self.payer])

    def activate(self, operator=None, fee_coin=None,
                 since=None) -> Transaction:
        """
        An activation of C{operator} (default key 5) leaving the state of
        C{since} (default: its status now), its fee paid by the payer from
        C{fee_coin} (default: the payer's smallest coin).
        """
        from timecoin.mnstate import KIND, make_activation_data
        operator = operator or key(5)
        if since is None:
            since = self.chain.mn_status(operator.public).since
        if fee_coin is None:
            mine = [(op, e) for op, e in [*self.chain.utxos.items(),
                                          *self.mempool.outputs.items()]
                    if e.address == addr(self.payer)
                    and op not in self.mempool.locks
                    and op not in self.chain.collaterals]
            fee_coin = min(mine, key=lambda c: (c[1].value, c[0]))[0]
        value = self.chain.utxos[fee_coin].value \
            if fee_coin in self.chain.utxos \
            else self.mempool.outputs[fee_coin].value
        tx = Transaction((TxIn(fee_coin, self.payer.public),),
                         (TxOut(value - params.min_fee(0),
                                addr(self.payer)),), KIND,
                         make_activation_data("devnet", operator, since))
        return sign_inputs(tx, "devnet", [self.payer])

    def mine(self, tx: Transaction) -> None:
        """
        Admit, finalize (the devnet masternode's vote) and mine C{tx}.
        """
        from timecoin.finality import Finality
        engine = Finality(self.chain, self.mempool, self.mn_key, self.clock)
        result_of(engine.submit(tx))
        assert self.mempool.state_of(tx.txid) == "finalized"
        self.next_block()


def payment(n: int, value: int = 5_000) -> Transaction:
    """
    A payment signed by test key 1 spending output 0 of the made-up
    transaction C{n}: C{value} to test key 2, 1,000,000 back to key 1.
    """
    tx = Transaction(
        (TxIn(OutPoint(n.to_bytes(32, "big"), 0), key(1).public),),
        (TxOut(value, addr(key(2))), TxOut(1_000_000, addr(key(1)))))
    return sign_inputs(tx, "devnet", [key(1)])
