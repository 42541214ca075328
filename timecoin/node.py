"""
The node: one object wiring chain, mempool, finality, production, wallet
and storage together, and the operations RPC and P2P call on it.  Its
admission control lives in L{timecoin.admission}, its stall report in
L{timecoin.stall}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin import params
from timecoin.address import address_of
from timecoin.admission import Admission
from timecoin.block import Block
from timecoin.chain import Chain, undo_commit
from timecoin.config import Config
from timecoin.consensus import BlockConsensus
from timecoin.encoding import decode
from timecoin.finality import Finality
from timecoin.finalized import FinalizedSet
from timecoin.genesis import (
    GenesisError,
    load_genesis,
    make_genesis,
    write_genesis,
)
from timecoin.interfaces import IChainStore
from timecoin.liveness import Liveness
from timecoin.masternodes import Masternode
from timecoin.mempool import FINALIZED, PENDING, Mempool
from timecoin.participation import Participation
from timecoin.producer import BlockBuilder
from timecoin.quorum import QUORUM_RULES
from timecoin.selection import load_policy
from timecoin.stall import StallWatch
from timecoin.syncstatus import SyncStatus
from timecoin.tx import OutPoint, Transaction, TxOut, UtxoEntry
from timecoin.txcache import CACHE as TX_CACHE
from timecoin.wallet import (
    InsufficientFunds,
    Wallet,
    build_activation,
    load_or_create_key,
)
from timecoin.wallettxs import WalletTxLog

log = Logger()

DEVNET_FUNDS = 1_000_000 * params.COIN
"""What a generated devnet genesis pays to the node's wallet."""



def find_genesis(config: Config) -> Path:
    """
    Where the genesis of C{config.network} is: C{--genesis}, else the data
    dir's C{genesis.json} (devnet), else the file shipped as package data
    (C{timecoin/data/}, found with C{importlib.resources} however the
    package is installed).
    """
    if config.genesis:
        return Path(config.genesis)
    if config.network == "devnet":
        return Path(config.datadir) / "genesis.json"
    name = f"genesis-{config.network}.json"
    shipped = resources.files("timecoin") / "data" / name
    if shipped.is_file():
        return Path(str(shipped))
    raise GenesisError(f"no genesis file {name} found in the timecoin "
                       f"package; pass --genesis")


def open_store(config: Config, clock: IReactorTime) -> IChainStore:
    """
    The chain store the config names (SQLite group-commits finality
    records on C{clock}; Redis connects through it, the reactor).
    """
    if config.storage == "memory":
        from timecoin.storage.memory import MemoryStore
        return MemoryStore()
    if config.storage == "redis":
        from timecoin.storage.redis import RedisStore
        return RedisStore(config.redis_url, config.network, clock)
    from timecoin.storage.sqlite import SqliteStore
    return SqliteStore(str(Path(config.datadir) / "chain.sqlite"), clock)


class SyncView(Protocol):
    """
    What is read of the P2P layer's block sync (L{timecoin.p2p.sync}).
    """

    def is_synced(self) -> bool:
        """Whether this node is at the network's tip."""

    def info(self) -> dict[str, Any]:
        """State, usable peers, blocks in flight and rate."""


class PeerNetwork(Protocol):
    """
    What the node, RPC, metrics and notifications read of the node's P2P
    service (L{timecoin.p2p.service.P2PService}, which imports this module:
    the node cannot import it).  L{timecoin.wiring.build} attaches it.
    """

    @property
    def sync(self) -> SyncView:
        """Its block sync."""

    @property
    def waiting(self) -> int:
        """Transactions from peers waiting for admission."""

    def peer_info(self) -> list[dict[str, Any]]:
        """One object per connected peer (C{getpeerinfo})."""


class Node(Service):
    """
    A TIME Coin node as a Twisted service.

    The listeners of C{chain.block_connected} (a L{timecoin.signal.Signal},
    called in connection order) run in this order, which matters:

      1. block consensus (connected in its constructor, so first): it
         moves to the next height and takes the messages buffered for it
         before anything else reacts to the block;
      2. finality (connected here): it retires the block's transactions
         from the mempool and rejects their conflicts;
      3. participation (here): it reads that mempool (pending
         activations, spendable outputs) to send an activation;
      4. the wallet's transaction log (here, last of the node's own);
      5. then those wired later: notifications (L{timecoin.wiring}), the
         status page (RPC), and block sync once P2P starts, which may tell
         consensus to resume -- at the new height, as it moved first.

    @ivar ready: fires once the chain is loaded and the node runs.
    """

    def __init__(self, config: Config, clock: IReactorTime,
                 store: IChainStore | None = None,
                 stop_process: Callable[[], None] | None = None) -> None:
        self.config = config
        self.clock = clock
        self.network = params.NETWORKS[config.network]
        if config.committee_size or config.committee_epoch:
            self.network = dataclasses.replace(
                self.network,
                committee_size=config.committee_size
                or self.network.committee_size,
                committee_epoch=config.committee_epoch
                or self.network.committee_epoch)
        self.datadir = Path(config.datadir)
        self.datadir.mkdir(parents=True, exist_ok=True)
        private = self.datadir / "private"
        self.key = load_or_create_key(private / "node_key")
        self.wallet = Wallet(private / "wallet.json",
                             self.network.address_prefix)
        self.wallet.load()
        self.genesis = self._genesis()
        self.store = store if store is not None else open_store(config,
                                                                clock)
        policy = load_policy(config.policy, tuple(config.plugin_dirs))
        if config.quorum not in QUORUM_RULES:
            raise ValueError(f"unknown quorum rule {config.quorum!r}; "
                             f"available: {', '.join(sorted(QUORUM_RULES))}")
        # What finality holds final, the rules the chain checks blocks
        # against: the chain reads it, the finality engine built on the
        # chain below fills it (Finality.finalized_set).
        self.chain = Chain(self.network, self.store, self.genesis, policy,
                           QUORUM_RULES[config.quorum],
                           lambda: int(clock.seconds() * 1000),
                           FinalizedSet())
        self.mempool = Mempool(self.chain, config.mempool, clock.seconds)
        # The process's parsed-transaction cache (shared by the nodes of
        # one process, which share a config in tests and the simulator).
        TX_CACHE.resize(config.mempool.parsed_cache)
        self.sync_status = SyncStatus()
        """Whether the node caught up: block sync answers for it while P2P
        runs; consensus, voting and activation ask it."""
        self.finality = Finality(self.chain, self.mempool, self.key, clock,
                                 config.vote_timeout,
                                 config.finality,
                                 synced=self.sync_status.is_synced)
        self.builder = BlockBuilder(self.chain, self.mempool, self.key,
                                    clock)
        self.consensus = BlockConsensus(
            self.chain, self.key, clock, config.block_time,
            config.round_timeout, self.builder.build_block,
            synced=self.sync_status.is_synced)
        # After consensus, before participation: see the class docstring.
        self.chain.block_connected.connect(self.finality.block_connected)
        self.liveness = Liveness(self.chain, clock)
        self.participation = Participation(
            self.chain, self.key, clock,
            lambda since: build_activation(
                self.wallet, self.spendable(), self.key, since,
                self.network.name),
            self.submit, self.sync_status.is_synced,
            self.mempool.pending_activations, config.auto_activate)
        self.chain.block_connected.connect(
            self.participation.block_connected)
        self._stop_process = stop_process
        self.p2p: PeerNetwork | None = None
        """The P2P service, once L{timecoin.wiring.build} attaches it."""
        self.started_at = clock.seconds()
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.admission = Admission(
            config, self.finality, self.mempool, clock,
            lambda: 0 if self.p2p is None else self.p2p.waiting)
        """Admission control of clients' new transactions."""
        self.stall_watch = StallWatch(self.chain, clock, config,
                                      self.consensus.online,
                                      self.sync_status.is_synced)
        """The tip's age and whether the chain is stalled."""
        self.wallet_txs = WalletTxLog.attach(self)

    def _genesis(self) -> Block:
        path = find_genesis(self.config)
        if self.config.network == "devnet" and not self.config.genesis \
                and not path.exists():
            genesis = make_genesis(
                "devnet", int(self.clock.seconds() * 1000),
                [TxOut(DEVNET_FUNDS, self.wallet.addresses()[0])],
                [Masternode(self.key.public,
                            f"127.0.0.1:{self.config.p2p.port}",
                            self.wallet.addresses()[0], "free")])
            write_genesis(path, genesis)
            log.info("wrote a new devnet genesis {hash} to {path}",
                     hash=genesis.hash.hex(), path=str(path))
        return load_genesis(path, self.config.network)

    @property
    def is_masternode(self) -> bool:
        """
        Whether this node's key is active in the next height's snapshot:
        it votes and produces (genesis or registered on chain).
        """
        return any(m.pubkey == self.key.public
                   for m in self.chain.snapshot_for(self.chain.height + 1))

    def startService(self) -> None:
        super().startService()
        d = self._start()
        d.addCallbacks(self.ready.callback, self._start_failed)

    def _start_failed(self, failure: Any) -> None:
        log.failure("node failed to start", failure)
        self.ready.errback(failure)
        if self._stop_process is not None:
            self._stop_process()

    @defer.inlineCallbacks
    def _start(self) -> Any:
        yield self.chain.load()
        yield self.finality.recover()
        yield self.wallet_txs.start_for(self)
        yield self.consensus.load_signing_state()
        # Every node follows the rounds and heartbeats; what it signs
        # follows its key's status in the snapshot at each height.
        self.consensus.start()
        self.liveness.start(self.key)
        self.participation.block_connected(self.chain.tip)
        log.info("node started on {network} at height {height}, genesis "
                 "{genesis}, masternode={mn}", network=self.network.name,
                 height=self.chain.height, genesis=self.genesis.hash.hex(),
                 mn=self.is_masternode)

    def stopService(self) -> Any:
        super().stopService()
        self.consensus.stop()
        self.liveness.stop()
        self.wallet_txs.close()
        return self.store.close()

    def stop(self) -> None:
        """
        Stop the whole process (RPC C{stop}), shortly, so the reply is sent
        first.
        """
        if self._stop_process is not None:
            self.clock.callLater(0.2, self._stop_process)

    # Queries -------------------------------------------------------------

    def health(self) -> tuple[bool, dict[str, Any]]:
        """
        Whether the node is ready to serve (C{GET /health}): started,
        connected to a peer unless it is its network's only masternode,
        and, once synced, its chain not stalled (L{StallWatch.stall}).
        The detail says why when it is not.
        """
        started = bool(self.ready.called)
        peers = len(self.p2p.peer_info()) if self.p2p is not None else 0
        snapshot = self.chain.snapshot_for(self.chain.height + 1)
        alone = self.is_masternode and len(snapshot) == 1
        ok = started and (peers > 0 or alone)
        tip_age = self.stall_watch.tip_age()
        detail: dict[str, Any] = {"started": started, "peers": peers,
                                  "height": self.chain.height,
                                  "tip_age": round(tip_age, 1)}
        if not started:
            detail["reason"] = "starting"
        elif not ok:
            detail["reason"] = "no peers"
        stall = self.stall_watch.stall() if started else None
        if stall is not None:
            ok = False
            detail["reason"] = stall["reason"]
            detail["missing"] = stall["missing"]
        return ok, detail

    def uptime(self) -> int:
        return int(self.clock.seconds() - self.started_at)

    @defer.inlineCallbacks
    def block_at(self, height: int) -> Any:
        """
        The main-chain block at C{height}, or C{None}.
        """
        block_hash = yield self.store.get_block_hash(height)
        if block_hash is None:
            return None
        block = yield self.block_by_hash(block_hash)
        return block

    @defer.inlineCallbacks
    def block_by_hash(self, block_hash: bytes) -> Any:
        """
        The block with C{block_hash}, or C{None}.
        """
        if block_hash == self.chain.tip.hash:
            return self.chain.tip
        raw = yield self.store.get_block(block_hash)
        return None if raw is None else Block.decode(raw)

    @defer.inlineCallbacks
    def transaction(self, txid: bytes) -> Any:
        """
        What the node knows of C{txid}: a dict with C{tx} (or C{None}),
        C{state} (pending, finalized, rejected), C{height} and
        C{block_hash} once in a block, C{votes}, C{reason} if rejected;
        or C{None} if the node never saw it.
        """
        entry = self.mempool.entries.get(txid)
        if entry is not None:
            return {"tx": entry.tx, "state": entry.state, "height": None,
                    "block_hash": None, "fee": entry.fee,
                    "votes": list(entry.votes.values())}
        location = yield self.store.get_tx_location(txid)
        if location is not None:
            height, block_hash = location
            block = yield self.block_by_hash(block_hash)
            tx = next(t for t in block.txs if t.txid == txid)
            return {"tx": tx, "state": FINALIZED, "height": height,
                    "block_hash": block_hash, "fee": None, "votes": []}
        reason = self.mempool.rejected.get(txid)
        if reason is not None:
            return {"tx": None, "state": "rejected", "height": None,
                    "block_hash": None, "reason": reason, "votes": []}
        return None

    def spendable(self) -> list[tuple[OutPoint, UtxoEntry]]:
        """
        Outputs the wallet may spend now: unspent on chain or finalized in
        the mempool, not locked by a mempool transaction.
        """
        coins = []
        collaterals = self.chain.collaterals
        for source in (self.chain.utxos, self.mempool.outputs):
            for outpoint, entry in source.items():
                if self.wallet.owns(entry.address) and \
                        outpoint not in self.mempool.locks and \
                        outpoint not in collaterals:
                    coins.append((outpoint, entry))
        return coins

    def balance(self) -> int:
        """
        The wallet's spendable balance in units.
        """
        return sum(e.value for _, e in self.spendable())

    # Actions -------------------------------------------------------------

    def submit(self, tx: Transaction) -> defer.Deferred[bytes]:
        """
        Submit a signed transaction; fires with its txid once accepted for
        voting, fails with L{timecoin.chain.TxInvalid}.
        """
        return self.finality.submit(tx)

    def send_to_address(self, address: str, amount: int) -> defer.Deferred[bytes]:
        """
        Pay C{amount} units to C{address} from the wallet, unless
        admission control refuses it.

        @raise timecoin.wallet.WalletError: if it cannot be funded.
        @raise TxInvalid: C{node-busy} (L{Admission.check}).
        """
        self.admission.check()
        try:
            tx = self.wallet.build_payment(self.spendable(), address, amount,
                                           self.network.name)
        except InsufficientFunds as e:
            waiting = self.awaiting_finality()
            if not waiting:
                raise
            raise InsufficientFunds(
                f"Insufficient funds: {params.format_amount(waiting)} TIME of this "
                "wallet's outputs await finality; retry once they are final"
            ) from e
        return self.submit(tx)

    def awaiting_finality(self) -> int:
        """
        Units paid to the wallet by pending mempool transactions (change
        of its own payments, mostly): not spendable until they finalize.
        """
        return sum(out.value for entry in self.mempool.entries.values()
                   if entry.state == PENDING
                   for out in entry.tx.outputs
                   if self.wallet.owns(out.address))

    def new_address(self) -> str:
        return self.wallet.new_address()

    def node_address(self) -> str:
        return address_of(self.key.public, self.network.address_prefix)

    def decode_tx(self, raw_hex: str) -> Transaction:
        """
        Parse a hex-encoded canonical transaction.
        """
        return Transaction.decode(bytes.fromhex(raw_hex))

    def genesis_obj(self) -> Any:
        return decode(self.genesis.encode())

    # P2P -----------------------------------------------------------------

    @defer.inlineCallbacks
    def committed_block(self, height: int) -> Any:
        """
        The main-chain block at C{height} with its own commit certificate
        (kept in its undo record; the tip's is C{chain.tip_commit}), as a
        C{(block, commit)} pair, or C{None}.  P2P serves these in C{blocks}
        replies.
        """
        chain = self.chain
        if height == chain.height:
            return (chain.tip, chain.tip_commit)
        block_hash = yield self.store.get_block_hash(height)
        if block_hash is None:
            return None
        raw = yield self.store.get_block(block_hash)
        if raw is None:
            return None
        undo = yield self.store.get_undo(block_hash)
        commit = undo_commit(undo) if undo else None
        return (Block.decode(raw), commit)
