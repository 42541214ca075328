"""
Tests for the mempool and instant finality: admission with reason codes,
limits in count and bytes, locks, signed votes tallied over the snapshot's
total weight, vote timeouts, durable finality records, block inclusion,
and the wallet building payments with the right fee and change.
"""

from __future__ import annotations

import os
import sqlite3
from collections import Counter
from dataclasses import replace

from twisted.trial import unittest

from tests.helpers import DEVNET, Harness, addr, key, result_of
from timecoin import params
from timecoin.chain import TxInvalid
from timecoin.encoding import canonical, decode
from timecoin.finality import (
    APPROVE,
    REJECT,
    Finality,
    TxVote,
    sign_tx_vote,
    sign_tx_votes,
    tx_vote_ok,
)
from timecoin.finality.compact import COMPACT
from timecoin.finality.records import (
    Certificates,
    RecordWriter,
    archived_json,
    archived_record,
    decode_record,
    finalized_json,
    pending_json,
)
from timecoin.masternodes import Masternode, make_snapshot
from timecoin.mempool import FINALIZED, PENDING, REJECTED, MempoolSettings
from timecoin.quorum import CountQuorum, TierWeightedQuorum, approval_threshold
from timecoin.registration import Registration
from timecoin.storage.memory import MemoryStore
from timecoin.storage.sqlite import SqliteStore
from timecoin.tx import OutPoint
from timecoin.wallet import Wallet, WalletError


def finality(h: Harness, masternode: bool = True,
             timeout: float = 10.0) -> Finality:
    """
    A finality engine on h, voting with the devnet masternode key.
    """
    engine = Finality(h.chain, h.mempool, h.mn_key if masternode else None,
                      h.clock, timeout)
    h.chain.block_connected.disconnect(h.mempool.block_connected)
    h.chain.block_connected.connect(engine.block_connected)
    return engine


class MempoolTests(unittest.TestCase):
    """
    Admission rules and limits.
    """

    def refused(self, h: Harness, engine: Finality, tx, reason: str) -> None:
        failure = self.failureResultOf(engine.submit(tx), TxInvalid)
        self.assertEqual(failure.value.reason, reason)

    def test_reason_codes(self) -> None:
        """
        Low fee, dust, missing input, forged signature and a wrong-network
        signature are refused with their reason codes and remembered.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        total = 1_000 * params.COIN
        low_fee = h.pay([h.funding()], [(addr(key(2)), total - 1_000)])
        self.refused(h, engine, low_fee, "fee-too-low")
        self.assertEqual(h.mempool.state_of(low_fee.txid), REJECTED)
        self.assertEqual(h.mempool.rejected[low_fee.txid], "fee-too-low")
        dust = h.pay([h.funding()], [(addr(key(2)), 100)])
        self.refused(h, engine, dust, "dust-output")
        missing = h.pay([OutPoint(b"\x01" * 32, 0)],
                        [(addr(key(2)), params.COIN)])
        self.refused(h, engine, missing, "missing-or-spent-input")
        good = h.pay([h.funding()], [(addr(key(2)), params.COIN),
                                     (addr(h.payer), 998 * params.COIN)])
        forged = type(good)(
            (replace(good.inputs[0], signature=bytes(64)),), good.outputs)
        self.refused(h, engine, forged, "bad-signature")
        from timecoin.tx import sign_inputs
        other_net = sign_inputs(type(good)(
            (replace(good.inputs[0], signature=b""),), good.outputs),
            "testnet", [h.payer])
        self.refused(h, engine, other_net, "bad-signature")
        self.assertEqual(len(h.mempool), 0)

    def test_fee_excludes_change(self) -> None:
        """
        The proportional fee is on the amount sent to others: change back
        to the input's address is free.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        sent = 10 * params.COIN
        fee = params.min_fee(sent)
        tx = h.pay([h.funding()],
                   [(addr(key(2)), sent),
                    (addr(h.payer), 1_000 * params.COIN - sent - fee)])
        self.assertEqual(result_of(engine.submit(tx)), tx.txid)
        self.assertEqual(h.mempool.entries[tx.txid].fee, fee)

    def test_double_spend_locked(self) -> None:
        """
        A second spender of an input a pending transaction locked is kept
        as a contender: a vote subject that locks nothing and is outside
        the pool; both are then already known.  A spender of an input a
        finalized transaction locked is refused as a double spend.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        t1 = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        t2 = h.pay([h.funding()], [(addr(key(3)), 999 * params.COIN)])
        result_of(engine.submit(t1))
        self.assertEqual(result_of(engine.submit(t2)), t2.txid)
        self.assertEqual(h.mempool.state_of(t2.txid), PENDING)
        self.assertEqual(list(h.mempool.entries), [t1.txid])
        self.assertEqual(set(h.mempool.locks.values()), {t1.txid})
        self.assertEqual(list(h.mempool.contenders), [t2.txid])
        self.refused(h, engine, t1, "already-known")
        self.refused(h, engine, t2, "already-known")
        engine.receive_vote(sign_tx_vote(h.mn_key, "devnet", t1.txid,
                                         APPROVE, 0))
        self.assertEqual(h.mempool.state_of(t1.txid), FINALIZED)
        self.assertEqual(h.mempool.rejected[t2.txid], "conflict-finalized")
        t3 = h.pay([h.funding()], [(addr(key(4)), 999 * params.COIN)])
        self.refused(h, engine, t3, "double-spend")

    def test_count_and_byte_limits(self) -> None:
        """
        The mempool refuses beyond its count limit and its byte limit, and
        tracks bytes exactly as entries come and go.
        """
        h = Harness(funds=[10 * params.COIN] * 4)
        h.mempool.limits = MempoolSettings(max_count=2, max_bytes=10**9)
        engine = finality(h, masternode=False, timeout=5)
        txs = [h.pay([h.funding(i)], [(addr(key(2)), 9 * params.COIN)])
               for i in range(4)]
        result_of(engine.submit(txs[0]))
        result_of(engine.submit(txs[1]))
        self.assertEqual(h.mempool.total_bytes, txs[0].size + txs[1].size)
        self.refused(h, engine, txs[2], "mempool-full")
        h.mempool.limits = MempoolSettings(max_count=100,
                                         max_bytes=h.mempool.total_bytes + 10)
        self.refused(h, engine, txs[3], "mempool-full")
        h.clock.advance(6)  # vote timeout: both rejected, bytes released
        self.assertEqual((len(h.mempool), h.mempool.total_bytes), (0, 0))
        self.assertEqual(h.mempool.locks, {})


class VoteTests(unittest.TestCase):
    """
    Signed votes and quorum over the snapshot's total weight.
    """

    def test_single_masternode_finalizes_at_once(self) -> None:
        """
        On a 1-of-1 devnet the node's own signed vote finalizes a payment
        immediately, its outputs become spendable, and a record of it is
        stored before it is reported final.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(key(2)), params.COIN),
                                   (addr(h.payer), 998 * params.COIN)])
        result_of(engine.submit(tx))
        self.assertEqual(h.mempool.state_of(tx.txid), FINALIZED)
        self.assertIn(tx.txid, dict(result_of(h.store.load_tx_records())))
        self.assertEqual(h.mempool.lookup(OutPoint(tx.txid, 1)).value,
                         998 * params.COIN)
        # A child spending the finalized change finalizes too, before any
        # block.
        child = h.pay([OutPoint(tx.txid, 1)],
                      [(addr(key(3)), params.COIN),
                       (addr(h.payer), 996 * params.COIN)])
        result_of(engine.submit(child))
        self.assertEqual(h.mempool.state_of(child.txid), FINALIZED)

    def test_block_includes_finalized_in_order(self) -> None:
        """
        The next block carries finalized transactions, parent before child;
        the block archives their records and empties the mempool.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        child = h.pay([OutPoint(tx.txid, 0)],
                      [(addr(h.payer), 998 * params.COIN)])
        result_of(engine.submit(child))
        block = h.next_block()
        self.assertEqual([t.txid for t in block.txs[1:]],
                         [tx.txid, child.txid])
        self.assertEqual(len(h.mempool), 0)
        # The records now hold only the certificates of the mined pair:
        # their finalized records, kept by the block's write.
        records = dict(result_of(h.store.load_tx_records()))
        self.assertEqual(set(records), {tx.txid, child.txid})
        self.assertEqual({decode_record(r)["state"] for r in records.values()},
                         {"finalized"})
        self.assertIn(OutPoint(child.txid, 0), h.chain.utxos)
        fee = 2 * params.COIN
        self.assertEqual(block.txs[0].outputs[0].value,
                         DEVNET.block_reward + fee)

    def test_vote_checks(self) -> None:
        """
        Votes from non-masternodes, with bad signatures, duplicates, for
        unknown transactions, or stamped far from our height are dropped
        with reason codes and counted.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        net = "devnet"
        outsider = sign_tx_vote(key(9), net, tx.txid, APPROVE, 0)
        self.assertEqual(engine.receive_vote(outsider), "vote-not-masternode")
        good = sign_tx_vote(h.mn_key, net, tx.txid, APPROVE, 0)
        forged = replace(good, signature=bytes(64))
        self.assertEqual(engine.receive_vote(forged), "vote-bad-signature")
        wrong_net = sign_tx_vote(h.mn_key, "testnet", tx.txid, APPROVE, 0)
        self.assertEqual(engine.receive_vote(wrong_net), "vote-bad-signature")
        far = sign_tx_vote(h.mn_key, net, tx.txid, APPROVE, 50)
        self.assertEqual(engine.receive_vote(far),
                         "vote-height-out-of-window")
        unknown = sign_tx_vote(h.mn_key, net, b"\x05" * 32, APPROVE, 0)
        self.assertEqual(engine.receive_vote(unknown),
                         "vote-unknown-or-decided-tx")
        self.assertEqual(h.mempool.state_of(tx.txid), PENDING)
        self.assertIsNone(engine.receive_vote(good))
        self.assertEqual(h.mempool.state_of(tx.txid), FINALIZED)
        self.assertEqual(engine.receive_vote(good),
                         "vote-unknown-or-decided-tx")
        self.assertEqual(engine.counters["votes_invalid"], 6)
        self.assertTrue(tx_vote_ok(good, net))
        self.assertEqual(TxVote.from_obj(good.to_obj()), good)

    def test_reject_vote_unlocks(self) -> None:
        """
        A rejecting vote from the only masternode (> 1/3 of the weight)
        rejects the transaction and unlocks its inputs for another spender.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        waiter = engine.wait(tx.txid, 5)
        engine.receive_vote(sign_tx_vote(h.mn_key, "devnet", tx.txid,
                                         REJECT, 0))
        self.assertEqual(result_of(waiter), REJECTED)
        self.assertEqual(h.mempool.rejected[tx.txid], "rejected-by-vote")
        other = h.pay([h.funding()], [(addr(key(3)), 999 * params.COIN)])
        self.assertEqual(result_of(engine.submit(other)), other.txid)

    def test_rejected_transaction_votes_asked_again(self) -> None:
        """
        A transaction rejected by vote keeps collecting votes, and peers
        are asked for them again: L{Finality.late_due} names it at once,
        then every C{query_after} seconds, C{max_queries} times in all
        (simulator, seed 183 of seven masternodes with two Byzantine: a
        node rejected on a reject quorum two equivocators helped form and
        never heard the approvals another node finalized with).
        """
        h = Harness()
        engine = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        self.assertEqual(engine.late_due(), [])
        h.clock.advance(1.0)
        engine.receive_vote(sign_tx_vote(h.mn_key, "devnet", tx.txid,
                                         REJECT, 0))
        self.assertEqual(h.mempool.rejected[tx.txid], "rejected-by-vote")
        settings = engine.settings
        asked = []
        for _ in range(4 * settings.max_queries):
            asked.append(len(engine.late_due()))
            h.clock.advance(settings.query_after / 2)
        self.assertEqual(sum(asked), settings.max_queries)
        self.assertEqual(asked[0], 1)

    def test_rejected_loser_of_a_final_payment_not_asked(self) -> None:
        """
        A rejected transaction whose input a payment final here spends
        is not asked about: two conflicting payments cannot both be final
        (less than a third of the weight Byzantine), so no peer holds it
        final (issue 19: these queries were most query lines at 30
        masternodes).
        """
        h = Harness()
        engine = finality(h, masternode=False)
        loser = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(loser))
        engine.receive_vote(sign_tx_vote(h.mn_key, "devnet", loser.txid,
                                         REJECT, 0))
        winner = h.pay([h.funding()], [(addr(key(3)), 999 * params.COIN)])
        result_of(engine.submit(winner))
        engine.receive_vote(sign_tx_vote(h.mn_key, "devnet", winner.txid,
                                         APPROVE, 0))
        self.assertEqual(h.mempool.entries[winner.txid].state, FINALIZED)
        asked = []
        for _ in range(4 * engine.settings.max_queries):
            asked.extend(engine.late_due())
            h.clock.advance(engine.settings.query_after / 2)
        self.assertEqual(asked, [])
        self.assertEqual(engine.open_txids(10), ([], []))

    def test_undecided_with_every_vote_not_asked(self) -> None:
        """
        An undecided transaction holding a vote of every masternode of the
        next height's snapshot is not asked about (a peer can only hold
        the votes we hold: a split double spend waiting for its vote
        timeout); one missing a masternode's vote is.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        members = [h.mn_key, key(5), key(6)]
        self.patch(h.chain, "snapshot_for", lambda height: [
            Masternode(k.public, "127.0.0.1:24200", addr(k), "free")
            for k in members])
        entry = h.mempool.entries[tx.txid]
        entry.votes.update({k.public: object() for k in members[:2]})
        h.clock.advance(engine.settings.query_after)
        self.assertEqual([t.txid for t in engine.stalled()], [tx.txid])
        entry.votes[members[2].public] = object()
        h.clock.advance(engine.settings.query_after)
        self.assertEqual(engine.stalled(), [])
        self.assertEqual(entry.state, PENDING)

    def test_timeout_rejects(self) -> None:
        """
        With no quorum within the vote timeout, the transaction is rejected
        with reason vote-timeout and its waiters learn it.
        """
        h = Harness()
        engine = finality(h, masternode=False, timeout=3)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        waiter = engine.wait(tx.txid, 60)
        h.clock.advance(2.9)
        self.assertNoResult(waiter)
        h.clock.advance(0.2)
        self.assertEqual(result_of(waiter), REJECTED)
        self.assertEqual(h.mempool.rejected[tx.txid], "vote-timeout")
        self.assertEqual(engine.open_txids(10), ([], [tx.txid]))

    def test_quorum_arithmetic(self) -> None:
        """
        Approval needs ceil(2n/3) of the total weight, rejection more than
        the rest; the two never both hold, and votes received never stand in
        for the total.
        """
        rule = CountQuorum()
        self.assertEqual([approval_threshold(n) for n in (1, 3, 4, 7, 10)],
                         [1, 2, 3, 5, 7])
        for total in range(1, 40):
            for approving in range(total + 1):
                # Each voter votes once, so approvals + rejections <= total.
                self.assertFalse(rule.approved(approving, total)
                                 and rule.rejected(total - approving, total))
        self.assertFalse(rule.approved(1, 4))  # one vote of four
        self.assertFalse(rule.approved(0, 0))
        tiered = TierWeightedQuorum()
        gold = Masternode(key(1).public, "x:1", addr(key(1)), "gold")
        free = Masternode(key(2).public, "x:1", addr(key(2)), "free")
        snapshot = make_snapshot([gold, free])
        self.assertEqual(tiered.total(snapshot), 1_001)
        self.assertTrue(tiered.approved(tiered.weight(gold), 1_001))
        self.assertFalse(tiered.approved(tiered.weight(free), 1_001))

    def test_recover_after_restart(self) -> None:
        """
        A node restarted after finalizing (but before a block) restores the
        finalized transaction from its record and puts it in the next block.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        again = Harness(store=h.store)
        self.assertEqual(again.genesis.hash, h.genesis.hash)
        engine2 = finality(again)
        result_of(engine2.recover())
        self.assertEqual(again.mempool.state_of(tx.txid), FINALIZED)
        block = again.next_block()
        self.assertIn(tx.txid, [t.txid for t in block.txs])


class RecordTests(unittest.TestCase):
    """
    Finality records, spliced from kept encodings, and the cached
    snapshot weights.
    """

    def test_certificate_kept_across_mining_and_restart(self) -> None:
        """
        The finalized record of a mined payment stays as its certificate
        (no second write): the votes are served after mining and, after a
        restart, the certificate index is rebuilt from it without
        rewriting it; a pending record of a mined transaction is deleted.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        final = result_of(h.store.get_tx_record(tx.txid))
        self.assertEqual(decode_record(final)["state"], FINALIZED)
        h.next_block()
        self.assertEqual(result_of(h.store.get_tx_record(tx.txid)), final)
        votes = result_of(engine.votes_for(tx.txid))
        self.assertEqual([v.voter for v in votes], [h.mn_key.public])
        again = Harness(store=h.store)
        engine2 = finality(again)
        result_of(engine2.recover())
        self.assertEqual(result_of(again.store.get_tx_record(tx.txid)), final)
        self.assertEqual(result_of(engine2.votes_for(tx.txid)), votes)
        self.assertIsNone(again.mempool.state_of(tx.txid))

    def test_finalized_during_block_write_gets_archived_copy(self) -> None:
        """
        A payment finalized after the block mining it was validated (its
        record deleted by that block's write) gets its votes written back
        as an archived certificate.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        h.chain.finalized.discard(tx.txid)
        h.next_block()
        self.assertIn(tx.txid, h.chain.retired)
        record = decode_record(result_of(h.store.get_tx_record(tx.txid)))
        self.assertEqual(record["state"], "archived")
        self.assertEqual(record["height"], 1)
        self.assertEqual(len(result_of(engine.votes_for(tx.txid))), 1)

    def test_records_are_compact_with_the_canonical_meaning(self) -> None:
        """
        The pending, finalized and archived records are stored compact,
        and read back as exactly the objects of their canonical JSON
        (which, spliced from the transaction's and the votes' own
        encodings, is the canonical encoding of those objects).
        """
        h = Harness()
        observer = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(observer.submit(tx))
        entry = h.mempool.entries[tx.txid]
        pending = result_of(h.store.get_tx_record(tx.txid))
        self.assertEqual(pending[:1], COMPACT)
        as_json = pending_json(entry)
        self.assertEqual(canonical(decode(as_json)), as_json)
        self.assertEqual(decode_record(pending), decode(as_json))
        self.assertEqual(decode_record(pending)["state"], PENDING)
        vote = sign_tx_votes(h.mn_key, "devnet", 0, [
            (tx.txid, APPROVE), (b"\x01" * 32, REJECT),
            (b"\xff" * 32, APPROVE)]).votes([1])[0]
        self.assertEqual(vote.txid, tx.txid)
        self.assertEqual(vote.encode(), canonical(vote.to_obj()))
        self.assertIsNone(observer.receive_vote(vote))
        final = result_of(h.store.get_tx_record(tx.txid))
        self.assertEqual(final[:1], COMPACT)
        as_json = finalized_json(entry)
        self.assertEqual(canonical(decode(as_json)), as_json)
        self.assertEqual(decode_record(final), decode(as_json))
        self.assertEqual(decode_record(final)["votes"], [vote.to_obj()])
        self.assertEqual(decode_record(final)["tx"], tx.to_obj())
        h.next_block()
        # Mined: the finalized record stays, unchanged, as the certificate.
        self.assertEqual(result_of(h.store.get_tx_record(tx.txid)), final)
        record = archived_record(1, [vote])
        self.assertEqual(record[:1], COMPACT)
        as_json = archived_json(1, [vote])
        self.assertEqual(canonical(decode(as_json)), as_json)
        self.assertEqual(decode_record(record), decode(as_json))
        self.assertEqual(decode_record(record)["state"], "archived")
        alone = sign_tx_vote(h.mn_key, "devnet", tx.txid, REJECT, 3)
        self.assertEqual(alone.encode(), canonical(alone.to_obj()))

    def test_json_records_of_an_earlier_node_load(self) -> None:
        """
        A store written by a node before the compact form (canonical JSON
        records) loads: a finalized record restores its payment with its
        votes, and a mined one is indexed as a certificate whose votes are
        served.
        """
        h = Harness()
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        entry = h.mempool.entries[tx.txid]
        votes = result_of(engine.votes_for(tx.txid))
        self.assertEqual(len(votes), 1)
        result_of(h.store.put_tx_record(tx.txid, finalized_json(entry)))
        again = Harness(store=h.store)
        engine2 = finality(again)
        result_of(engine2.recover())
        self.assertEqual(again.mempool.state_of(tx.txid), FINALIZED)
        self.assertEqual(list(again.mempool.entries[tx.txid].votes.values()),
                         votes)
        again.next_block()
        self.assertEqual(result_of(again.store.get_tx_record(tx.txid)),
                         finalized_json(entry))
        third = Harness(store=h.store)
        engine3 = finality(third)
        result_of(engine3.recover())
        self.assertIsNone(third.mempool.state_of(tx.txid))
        self.assertEqual(result_of(engine3.votes_for(tx.txid)), votes)

    def test_sqlite_store_of_an_earlier_node_loads(self) -> None:
        """
        A node upgraded in place on the SQLite file an earlier node wrote
        (schema version 1, canonical JSON records keyed by txid) migrates
        it on open and restores its finalized payment with its votes.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "chain.sqlite")
        store = SqliteStore(path)
        h = Harness(store=store)  # type: ignore[arg-type]
        engine = finality(h)
        tx = h.pay([h.funding()], [(addr(h.payer), 999 * params.COIN)])
        result_of(engine.submit(tx))
        entry = h.mempool.entries[tx.txid]
        votes = result_of(engine.votes_for(tx.txid))
        result_of(store.close())
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE finality_records")
            conn.execute("CREATE TABLE tx_records (txid BLOB PRIMARY KEY,"
                         " record BLOB NOT NULL) WITHOUT ROWID")
            conn.execute("INSERT INTO tx_records VALUES (?, ?)",
                         (tx.txid, finalized_json(entry)))
            conn.execute("UPDATE schema SET value = ? WHERE key = ?",
                         (b"1", "schema_version"))
        conn.close()
        reopened = SqliteStore(path)
        self.addCleanup(reopened.close)
        again = Harness(store=reopened)  # type: ignore[arg-type]
        result_of(finality(again).recover())
        self.assertEqual(again.mempool.state_of(tx.txid), FINALIZED)
        self.assertEqual(list(again.mempool.entries[tx.txid].votes.values()),
                         votes)
        block = again.next_block()
        self.assertIn(tx.txid, [t.txid for t in block.txs])

    def test_snapshot_cache_follows_registry_and_tip(self) -> None:
        """
        The cached members and weights are rebuilt when the registry
        changes or the tip moves (a block connected or reverted): a
        masternode registered since is counted, and a vote from it is no
        longer refused as not a masternode.
        """
        h = Harness()
        engine = finality(h, masternode=False)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        newcomer = sign_tx_vote(key(7), "devnet", tx.txid, REJECT, 0)
        self.assertEqual(engine.receive_vote(newcomer), "vote-not-masternode")
        self.assertEqual(engine.electorate.members()[1], 1)
        from timecoin.mnstate import ACTIVE, MnStatus
        h.chain.status[key(7).public] = MnStatus(ACTIVE, 1)
        h.chain.registry[key(7).public] = Registration(
            Masternode(key(7).public, "x:1", addr(key(7)), "free"),
            OutPoint(b"\x07" * 32, 0), 0)
        self.assertEqual(engine.electorate.members()[1], 2)
        self.assertIsNone(engine.receive_vote(newcomer))
        del h.chain.registry[key(7).public]
        del h.chain.status[key(7).public]
        h.next_block()
        self.assertEqual(engine.electorate.members()[1], 1)
        self.assertIs(engine.electorate._key[0], h.chain.tip)
        result_of(h.chain.disconnect_tip())
        engine.electorate.members()
        self.assertIs(engine.electorate._key[0], h.chain.tip)


class CertificateIndexTests(unittest.TestCase):
    """
    L{Certificates}: which archived certificates it keeps and deletes.
    """

    def index(self, blocks: int, limit: int) -> tuple[Certificates,
                                                      MemoryStore]:
        store = MemoryStore()
        return Certificates(RecordWriter(store, Counter()), blocks,
                            limit), store

    def fill(self, index: Certificates, store: MemoryStore,
             heights: list[int]) -> list[bytes]:
        txids = []
        for i, height in enumerate(heights):
            txid = bytes([i]) * 32
            result_of(store.put_tx_record(txid, b"{}"))
            index.archive(txid, None, height,  # type: ignore[arg-type]
                          frozenset())
            txids.append(txid)
        return txids

    def test_oldest_blocks_and_excess_deleted_first(self) -> None:
        """
        Pruning drops whole blocks older than C{blocks}, then the oldest
        certificates past C{limit} (part of a block), deleting their
        records; the rest stay.
        """
        index, store = self.index(blocks=10, limit=4)
        txids = self.fill(index, store, [1, 1, 5, 5, 5, 6])
        index.prune(12)
        self.assertEqual(len(index), 4)
        self.assertEqual([t in index for t in txids],
                         [False, False, True, True, True, True])
        self.assertIsNone(result_of(store.get_tx_record(txids[0])))
        self.assertIsNotNone(result_of(store.get_tx_record(txids[2])))
        index.prune(16)
        self.assertEqual([t in index for t in txids],
                         [False, False, False, False, False, True])
        index.limit = 0
        index.prune(16)
        self.assertEqual(len(index), 0)

    def test_archived_again_moves_to_its_new_block(self) -> None:
        """
        A certificate archived again (mined anew after a reorg) is kept
        with its newer block: pruning the older one leaves it.
        """
        index, store = self.index(blocks=10, limit=100)
        first, second = self.fill(index, store, [1, 1])
        index.archive(first, None, 8,  # type: ignore[arg-type]
                      frozenset())
        index.prune(12)
        self.assertNotIn(second, index)
        self.assertIn(first, index)
        self.assertIsNotNone(result_of(store.get_tx_record(first)))
        self.assertEqual(len(index), 1)


class WalletTests(unittest.TestCase):
    """
    Payments built and signed by the wallet.
    """

    def test_payment_fee_and_change(self) -> None:
        """
        A payment pays the amount, the minimum fee, and returns the change
        to the first input's address, to the unit; it validates.
        """
        h = Harness()
        wallet = Wallet(self.mktemp_path(), "TIME0")
        wallet.load()
        wallet._remember(h.payer)
        coins = list(h.chain.utxos.items())
        amount = 150_000_000
        tx = wallet.build_payment(coins, addr(key(2)), amount, "devnet")
        self.assertEqual(tx.outputs[0].value, amount)
        self.assertEqual(tx.outputs[1].address, addr(h.payer))
        self.assertEqual(sum(o.value for o in tx.outputs),
                         1_000 * params.COIN - params.min_fee(amount))
        engine = finality(h)
        result_of(engine.submit(tx))
        self.assertEqual(h.mempool.state_of(tx.txid), FINALIZED)

    def test_insufficient_and_dust(self) -> None:
        """
        Paying more than the wallet holds, or a dust amount, is refused
        with the Bitcoin error codes -6 and -3.
        """
        h = Harness()
        wallet = Wallet(self.mktemp_path(), "TIME0")
        wallet.load()
        wallet._remember(h.payer)
        coins = list(h.chain.utxos.items())
        e = self.assertRaises(WalletError, wallet.build_payment, coins,
                              addr(key(2)), 1_000 * params.COIN, "devnet")
        self.assertEqual(e.code, -6)
        e = self.assertRaises(WalletError, wallet.build_payment, coins,
                              addr(key(2)), 10, "devnet")
        self.assertEqual(e.code, -3)

    def test_keys_private_and_persistent(self) -> None:
        """
        The wallet file is mode 0600 in a 0700 directory and reloads the
        same addresses.
        """
        path = self.mktemp_path()
        wallet = Wallet(path, "TIME0")
        wallet.load()
        wallet.new_address()
        self.assertEqual(path.stat().st_mode & 0o777, 0o600)
        self.assertEqual(path.parent.stat().st_mode & 0o777, 0o700)
        again = Wallet(path, "TIME0")
        again.load()
        self.assertEqual(again.addresses(), wallet.addresses())
        self.assertEqual(len(again.addresses()), 2)

    def mktemp_path(self):
        from pathlib import Path
        return Path(self.mktemp()) / "private" / "wallet.json"


class WaitTests(unittest.TestCase):
    """
    Waiting for a decision.
    """

    def test_cancelled_waiter_is_forgotten(self) -> None:
        """
        Cancelling one waiter (an RPC client hanging up) removes it; the
        other waiters still learn the decision, and no timer is left.
        """
        from twisted.internet.defer import CancelledError
        h = Harness()
        engine = finality(h, masternode=False, timeout=3)
        tx = h.pay([h.funding()], [(addr(key(2)), 999 * params.COIN)])
        result_of(engine.submit(tx))
        first = engine.wait(tx.txid, 60)
        second = engine.wait(tx.txid, 60)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        h.clock.advance(3.1)
        self.assertEqual(result_of(second), REJECTED)
        self.assertEqual(h.clock.getDelayedCalls(), [])
