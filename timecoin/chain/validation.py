"""
Full validation of the next block: L{BlockValidator} checks a block
against the tip, the UTXO set and the masternode state, in a fixed order
with stable reason codes, and computes the L{BlockChange} the store
writes to connect it (spent and created entries, masternode state
written, undo data, tx index, archived finality records).  It changes
nothing itself.

Imports the core (C{params}, C{rewards}, C{block}, C{tx}, C{interfaces},
C{mnstate}, C{registration}, C{storage}), C{finalized}, and L{errors},
L{transfer}, L{undo}, L{utxo}, L{masternode_state}, L{history}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from timecoin import params, rewards
from timecoin.block import (
    Block,
    CommitCertificate,
    block_signature_ok,
    commit_hash_of,
    merkle_root,
)
from timecoin.chain.errors import BlockInvalid, TxInvalid
from timecoin.chain.history import MasternodeHistory
from timecoin.chain.masternode_state import MasternodeState
from timecoin.chain.transfer import check_transfer
from timecoin.chain.undo import BlockUndo
from timecoin.chain.utxo import BlockView
from timecoin.finalized import FinalizedSet
from timecoin.interfaces import IQuorumRule
from timecoin.masternodes import Snapshot
from timecoin.mnstate import KIND as ACTIVATE_KIND
from timecoin.mnstate import MnStatus
from timecoin.mnstate import state_key as status_key
from timecoin.registration import KIND as REGISTER_KIND
from timecoin.registration import Registration, state_key
from timecoin.storage import BlockChange
from timecoin.tx import OutPoint, UtxoEntry

__all__ = ["BlockValidator"]


class BlockValidator:
    """
    The block rules of one chain.

    @ivar quorum: the rule a commit certificate's weight must pass.
    @ivar verified: the L{timecoin.chain.transfer.verified_key}s of
        transactions whose signatures were checked (shared with the
        chain and the mempool).
    """

    def __init__(self, network: params.Network, state: MasternodeState,
                 history: MasternodeHistory, quorum: IQuorumRule,
                 finalized: FinalizedSet, verified: set[bytes]) -> None:
        self.network = network
        self.state = state
        self.history = history
        self.quorum = quorum
        self.finalized = finalized
        self.verified = verified

    def total_weight(self, snapshot: Snapshot) -> int:
        """
        The total voting weight of C{snapshot} under the quorum rule.
        """
        return sum(self.quorum.weight(m) for m in snapshot)

    def check_commit(self, cert: CommitCertificate | None,
                     block: Block) -> frozenset[bytes]:
        """
        Check that C{cert} commits C{block}: it names the block and the
        valid signatures of its voters reach the approval quorum of the
        snapshot for its height.  Returns the voters whose signatures
        verify (what proof of service reads).

        @raise BlockInvalid: with reason C{bad-commit}.
        """
        if block.height == 0:
            if cert is not None:
                raise BlockInvalid("bad-commit", "genesis needs no commit")
            return frozenset()
        if cert is None:
            raise BlockInvalid("bad-commit", "missing commit certificate")
        if (cert.height, cert.block_hash) != (block.height, block.hash) \
                or cert.round < block.header.round:
            # The round may be later than the block's own: a block
            # proposed in round r can be re-proposed and committed in a
            # later round (its votes sign the round they were cast in).
            raise BlockInvalid("bad-commit", "certificate for another block")
        snapshot = self.history.committee_for(block.height)
        members = {m.pubkey: m for m in snapshot}
        signers = frozenset(cert.valid_votes(self.network.name))
        weight = sum(self.quorum.weight(members[v])
                     for v in signers if v in members)
        if not self.quorum.approved(weight, self.total_weight(snapshot)):
            raise BlockInvalid("bad-commit", f"weight {weight} short of "
                               "quorum")
        return signers

    def validate(self, block: Block, tip: Block,
                 utxos: Mapping[OutPoint, UtxoEntry],
                 now_ms: Callable[[], int]) -> BlockChange:
        """
        Fully validate C{block} as the block after C{tip} (whose UTXO set
        is C{utxos}; C{now_ms} the clock) and compute its change.

        @raise BlockInvalid: with a reason code.
        """
        signers = self._check_header(block, tip, now_ms)
        view = BlockView(utxos)
        registered: dict[bytes, Registration] = {}
        deregistered: dict[bytes, Registration] = {}
        activations: list[tuple[bytes, int]] = []
        fees = self._check_transactions(block, view, registered,
                                        deregistered, activations)
        header, coinbase = block.header, block.txs[0]
        reward = rewards.coinbase_outputs(
            self.history.snapshot_for(header.height),
            self.network.block_reward, fees)
        if coinbase.outputs != reward:
            raise BlockInvalid("bad-coinbase", "outputs differ from the "
                               "reward rule")
        for vout, out in enumerate(coinbase.outputs):
            view.create(OutPoint(coinbase.txid, vout), UtxoEntry(
                out.value, out.address, header.height, True))
        if any(utxos.get(op) is not None for op in view.created):
            raise BlockInvalid("duplicate-output")
        statuses = self.history.status_changes(
            header.height, activations, deregistered,
            {**self.history.signers, **signers})
        return self._change(block, view, registered, deregistered,
                            statuses)

    def _check_header(self, block: Block, tip: Block,  # noqa: C901
                      now_ms: Callable[[], int]
                      ) -> dict[int, frozenset[bytes]]:
        """
        Everything but the transactions' spending, in order: size,
        height, parent, time, producer, signature, the parent's commit,
        coinbase, merkle root.  Returns the signers of the parent's
        certificate, by its height.
        """
        header = block.header
        if block.size > params.MAX_BLOCK_BYTES:
            raise BlockInvalid("block-too-large", str(block.size))
        if header.height != tip.height + 1:
            raise BlockInvalid("bad-height", f"{header.height} after "
                               f"{tip.height}")
        if header.prev_hash != tip.hash:
            raise BlockInvalid("bad-prev-hash")
        if header.timestamp <= tip.header.timestamp:
            raise BlockInvalid("time-too-old")
        if header.timestamp > now_ms() + params.MAX_FUTURE_BLOCK_MS:
            raise BlockInvalid("time-too-new")
        expected = self.history.expected_producer(
            header.height, header.prev_hash, header.round)
        if expected is None or header.producer != expected:
            raise BlockInvalid("wrong-producer", f"round {header.round}")
        if not block_signature_ok(block, self.network.name):
            raise BlockInvalid("bad-block-signature")
        if header.commit_hash != commit_hash_of(block.commit):
            raise BlockInvalid("bad-commit-hash")
        signers: dict[int, frozenset[bytes]] = {}
        if header.height > 1:
            signers[header.height - 1] = self.check_commit(block.commit, tip)
        elif block.commit is not None:
            raise BlockInvalid("bad-commit", "block 1 follows genesis")
        if not block.txs or not block.txs[0].is_coinbase:
            raise BlockInvalid("no-coinbase")
        if header.merkle_root != merkle_root([t.txid for t in block.txs]):
            raise BlockInvalid("bad-merkle-root")
        if block.txs[0].data != {"height": header.height}:
            raise BlockInvalid("bad-coinbase", "data must be the height")
        return signers

    def _check_transactions(self, block: Block, view: BlockView,
                            registered: dict[bytes, Registration],
                            deregistered: dict[bytes, Registration],
                            activations: list[tuple[bytes, int]]) -> int:
        """
        Check the block's transactions after the coinbase, in order,
        each against C{view} (which they update), gathering the
        registrations, deregistrations and activations they carry.
        Returns their fees.
        """
        height = block.header.height
        seen: set[bytes] = {block.txs[0].txid}
        fees = 0
        for tx in block.txs[1:]:
            if tx.txid in seen:
                raise BlockInvalid("duplicate-tx", tx.txid.hex())
            seen.add(tx.txid)
            holder = self.finalized.conflict(tx)
            if holder is not None:
                raise BlockInvalid("conflicts-finalized", f"{tx.txid.hex()} "
                                   f"double-spends {holder.hex()}")
            try:
                fees += check_transfer(tx, self.network, view.lookup,
                                       self.verified)
                if tx.kind == REGISTER_KIND:
                    masternode = self.state.check_new_registration(
                        tx, view.lookup, registered, deregistered)
                    registered[masternode.pubkey] = Registration(
                        masternode, OutPoint(
                            bytes.fromhex(tx.data["collateral"]["txid"]),
                            tx.data["collateral"]["vout"]), height)
                elif tx.kind == ACTIVATE_KIND:
                    activations.append(self.state.check_activation_shape(tx))
            except TxInvalid as e:
                raise BlockInvalid("bad-tx", f"{tx.txid.hex()}: {e}") from e
            for txin in tx.inputs:
                self.state.collateral_spent(txin.prevout, registered,
                                            deregistered)
                view.spend(txin.prevout)
            for vout, out in enumerate(tx.outputs):
                view.create(OutPoint(tx.txid, vout),
                            UtxoEntry(out.value, out.address, height))
        return fees

    def _change(self, block: Block, view: BlockView,
                registered: dict[bytes, Registration],
                deregistered: dict[bytes, Registration],
                statuses: dict[bytes, MnStatus]) -> BlockChange:
        """
        The store write that connects C{block}, with its undo data.
        """
        height = block.header.height
        status = self.state.status
        removed = [(state_key(pk), r.pack()) for pk, r in deregistered.items()]
        removed += [(status_key(pk), status[pk].pack())
                    for pk in deregistered if pk in status]
        overwritten = [(status_key(pk), status[pk].pack())
                       for pk in statuses if pk in status]
        written = [state_key(pk) for pk in registered] + \
            [status_key(pk) for pk in statuses]
        committee = self.history.committee_for(height)
        undo = BlockUndo([(op.key(), e.pack()) for op, e in view.spent.items()]
                         + removed + overwritten, None, written,
                         None if len(committee) == len(
                             self.history.snapshot_for(height))
                         else [m.pubkey for m in committee])
        txids = [t.txid for t in block.txs]
        return BlockChange(
            height, block.hash, block.header.prev_hash, block.encode(),
            undo.encode(),
            [op.key() for op in view.spent] + [k for k, _ in removed],
            [(op.key(), e.pack()) for op, e in view.created.items()]
            + [(state_key(pk), r.pack()) for pk, r in registered.items()]
            + [(status_key(pk), s.pack()) for pk, s in statuses.items()],
            txids, [t for t in txids[1:] if t not in self.finalized])
