"""
The C{chain} area of the RPC: blocks, headers, the chain's state and the
UTXO set at its tip, and C{verifychain} (a replay of the stored chain
through L{timecoin.rpc.pinned.PinnedStore}).

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin import params
from timecoin.block import Block
from timecoin.chain import BlockInvalid
from timecoin.encoding import canonical
from timecoin.rpc.errors import (
    RPC_DATABASE_ERROR,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPCError,
)
from timecoin.rpc.params import ignored_bool, to_flag, to_hash, to_int
from timecoin.rpc.pinned import PinnedStore, StoredChainBroken
from timecoin.rpc.shapes import block_header_json, confirmations_at, tx_to_json
from timecoin.storage import StoreError
from timecoin.tx import OutPoint
from timecoin.verify import replay

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

MEDIAN_TIME_SPAN = 11
"""Blocks whose timestamps give C{mediantime}, as in Bitcoin."""


class ChainMethods:
    """
    The RPC methods about the chain of one node: C{getblock*},
    C{getblockchaininfo}, C{gettxout*}, C{getchaintips}, C{verifychain}.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._median_cache: tuple[bytes, int] | None = None

    @defer.inlineCallbacks
    def _median_time(self) -> Any:
        tip = self.node.chain.tip
        if self._median_cache and self._median_cache[0] == tip.hash:
            return self._median_cache[1]
        times = [tip.header.timestamp]
        for height in range(max(0, tip.height - MEDIAN_TIME_SPAN + 1),
                            tip.height):
            block = yield self.node.block_at(height)
            if block is not None:
                times.append(block.header.timestamp)
        times.sort()
        median = times[len(times) // 2] // 1000
        self._median_cache = (tip.hash, median)
        return median

    @defer.inlineCallbacks
    def rpc_getblockchaininfo(self) -> Any:
        """
        getblockchaininfo

        The state of the chain: chain (network name), blocks, headers (the
        best height usable peers report, at least blocks), bestblockhash,
        mediantime (median of the last 11 block times, in seconds),
        verificationprogress (blocks / headers), initialblockdownload (true
        until block sync counts the node as synced), utxo_hash (SHA-256 of
        the UTXO set, comparable across nodes), genesishash, and sync:
        {state (idle, catching-up or synced), peers (usable for sync),
        in_flight (block requests), blocks_per_s (over the last 10 s)}.
        """
        chain = self.node.chain
        median = yield self._median_time()
        p2p = self.node.p2p
        sync = p2p.sync if p2p is not None else None
        if sync is not None:
            info = sync.info()
            headers = max(chain.height, info["headers"])
            ibd = not sync.is_synced()
        else:
            info = {"state": "synced", "peers": 0, "in_flight": 0,
                    "blocks_per_s": 0.0}
            headers, ibd = chain.height, False
        return {
            "chain": chain.network.name, "blocks": chain.height,
            "headers": headers, "bestblockhash": chain.tip.hash.hex(),
            "mediantime": median,
            "verificationprogress": chain.height / headers if headers
            else 1.0,
            "initialblockdownload": ibd,
            "utxo_hash": chain.utxo_hash().hex(),
            "genesishash": chain.genesis.hash.hex(),
            "sync": {k: info[k] for k in ("state", "peers", "in_flight",
                                          "blocks_per_s")},
        }

    def rpc_getblockcount(self) -> int:
        """
        getblockcount

        The height of the best block.
        """
        return self.node.chain.height

    def rpc_getbestblockhash(self) -> str:
        """
        getbestblockhash

        The hash of the best (tip) block.
        """
        return self.node.chain.tip.hash.hex()

    @defer.inlineCallbacks
    def rpc_getblockhash(self, height: Any) -> Any:
        """
        getblockhash height

        The hash of the main-chain block at height; error -8 if out of
        range.
        """
        height = to_int(height, "height", -(2**63), 2**63 - 1)
        if not 0 <= height <= self.node.chain.height:
            raise RPCError(RPC_INVALID_PARAMETER, "Block height out of range")
        block_hash = yield self.node.store.get_block_hash(height)
        if block_hash is None:
            raise RPCError(RPC_INVALID_PARAMETER, "Block height out of range")
        return block_hash.hex()

    @defer.inlineCallbacks
    def _header_with_position(self, block: Block) -> Any:
        """
        C{block_header_json} of C{block} with its place in the main chain:
        confirmations (-1 off the main chain) and nextblockhash.
        """
        obj = block_header_json(block)
        main = yield self.node.store.get_block_hash(block.height)
        if main == block.hash:
            obj["confirmations"] = confirmations_at(self.node.chain,
                                                    block.height)
            if block.height < self.node.chain.height:
                following = yield self.node.store.get_block_hash(
                    block.height + 1)
                if following is not None:
                    obj["nextblockhash"] = following.hex()
        else:
            obj["confirmations"] = -1
        return obj

    @defer.inlineCallbacks
    def rpc_getblock(self, blockhash: Any, verbosity: Any = 1) -> Any:
        """
        getblock "blockhash" ( verbosity )

        The block with this hash.  verbosity 0: hex of its canonical
        encoding; 1 (default): header fields (hash, height, version,
        merkleroot, time, time_ms, producer, round, commit_hash, size,
        nTx, previousblockhash, nextblockhash), confirmations, the commit
        certificate it carries, and tx as a list of txids; 2: as 1 with tx
        as decoded transactions.  Error -5 if unknown.
        """
        block_hash = to_hash(blockhash, "blockhash")
        level = to_flag(verbosity, "verbosity", 1, 2)
        block = yield self.node.block_by_hash(block_hash)
        if block is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        if level == 0:
            return block.encode().hex()
        obj = yield self._header_with_position(block)
        obj["commit"] = None if block.commit is None else {
            "height": block.commit.height, "round": block.commit.round,
            "block_hash": block.commit.block_hash.hex(),
            "voters": [v.voter.hex() for v in block.commit.votes]}
        obj["tx"] = [tx_to_json(t) if level == 2 else t.txid.hex()
                     for t in block.txs]
        return obj

    @defer.inlineCallbacks
    def rpc_getblockheader(self, blockhash: Any, verbose: Any = True) -> Any:
        """
        getblockheader "blockhash" ( verbose )

        The header of the block with this hash: with verbose true (the
        default) its fields as getblock shows them (hash, height,
        version, merkleroot, time, time_ms, producer, round,
        commit_hash, size, nTx, previousblockhash, nextblockhash) and
        confirmations (-1 off the main chain); with false the hex of the
        header's canonical encoding.  Error -5 if unknown.
        """
        block_hash = to_hash(blockhash, "blockhash")
        level = to_flag(verbose, "verbose", 1, 1)
        block = yield self.node.block_by_hash(block_hash)
        if block is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        if level == 0:
            return canonical(block.header.to_obj()).hex()
        obj = yield self._header_with_position(block)
        return obj

    def rpc_getchaintips(self) -> list[dict[str, Any]]:
        """
        getchaintips

        The chain's tips, as Bitcoin Core's: [{height, hash, branchlen,
        status}].  Blocks are final once committed (a commit certificate
        of two thirds of the masternodes' weight), so there is one tip,
        the active one: [{height, hash, branchlen: 0, status: "active"}].
        """
        tip = self.node.chain.tip
        return [{"height": tip.height, "hash": tip.hash.hex(),
                 "branchlen": 0, "status": "active"}]

    def rpc_gettxoutsetinfo(self) -> dict[str, Any]:
        """
        gettxoutsetinfo

        Statistics of the UTXO set at the tip: height, bestblock, txouts,
        total_amount (TIME), utxo_hash.
        """
        chain = self.node.chain
        return {"height": chain.height, "bestblock": chain.tip.hash.hex(),
                "txouts": len(chain.utxos),
                "total_amount": params.format_amount(chain.total_amount()),
                "utxo_hash": chain.utxo_hash().hex()}

    def rpc_gettxout(self, txid: Any, n: Any,
                     include_mempool: Any = True) -> Any:
        """
        gettxout "txid" n ( include_mempool )

        The unspent output txid:n: {bestblock, confirmations (0 for an
        output of a finalized transaction not yet in a block), value,
        address, scriptPubKey: {address}, coinbase}, or null if it is
        spent or unknown.  With include_mempool true (the default) outputs
        created by finalized mempool transactions are included and
        outputs a mempool transaction spends are null; with false only
        the chain's UTXO set at the tip counts.
        """
        outpoint = OutPoint(to_hash(txid, "txid"),
                            to_int(n, "n", 0, 2**32 - 1))
        mempool = include_mempool is None or ignored_bool(
            include_mempool, "include_mempool")
        node = self.node
        entry = node.chain.utxos.get(outpoint)
        confirmations = None if entry is None else \
            confirmations_at(self.node.chain, entry.height)
        if mempool:
            if outpoint in node.mempool.locks:
                return None
            if entry is None:
                entry = node.mempool.outputs.get(outpoint)
                confirmations = 0
        if entry is None:
            return None
        return {"bestblock": node.chain.tip.hash.hex(),
                "confirmations": confirmations,
                "value": params.format_amount(entry.value),
                "address": entry.address,
                "scriptPubKey": {"address": entry.address},
                "coinbase": entry.coinbase}

    @defer.inlineCallbacks
    def rpc_verifychain(self) -> Any:
        """
        verifychain

        Replay every stored block from genesis on a fresh in-memory chain,
        with full validation, and compare the resulting UTXO set with the
        one the store holds; returns {height (the stored tip replayed to),
        utxo_hash_replayed, utxo_hash_stored, ok, reason (null when ok),
        failed_height (when a stored block fails), seconds}.  A stored
        block that is missing or invalid gives ok false with the reason, as
        does a UTXO set that differs from the replay.  This reads and
        re-validates the whole chain: it takes about as long as a full
        sync from local disk and holds a second copy of the UTXO set in
        memory while it runs; the node keeps running meanwhile (the replay
        pauses every 64 blocks to let it).  Error -20 if the store cannot
        be read.
        """
        started = self.node.clock.seconds()
        pinned = PinnedStore(self.node.store, self.node.clock)
        out: dict[str, Any] = {"height": None, "utxo_hash_replayed": None,
                               "utxo_hash_stored": None, "ok": False,
                               "reason": None}
        try:
            result = yield replay(pinned, self.node.chain)
        except (BlockInvalid, StoredChainBroken) as e:
            out["failed_height"] = pinned.reading
            out["reason"] = f"block {pinned.reading}: {e}"
        except StoreError as e:
            raise RPCError(RPC_DATABASE_ERROR,
                           f"cannot read the store: {e}") from None
        except (ValueError, KeyError, TypeError) as e:
            # Undecodable bytes (EncodingError is a ValueError), a field
            # missing or of the wrong type: the stored data is bad.
            out["failed_height"] = pinned.reading
            out["reason"] = f"block {pinned.reading}: unreadable: {e!r}"
        else:
            out["ok"] = result.ok
            out["utxo_hash_replayed"] = result.replayed_hash.hex()
            if not result.ok:
                out["reason"] = "utxo-hash-mismatch"
        if pinned.pinned is not None:
            out["height"] = pinned.pinned[0]
            out["utxo_hash_stored"] = pinned.stored_hash().hex()
        out["seconds"] = round(self.node.clock.seconds() - started, 3)
        log.info("verifychain at height {height}: ok={ok} reason={reason}",
                 height=out["height"], ok=out["ok"], reason=out["reason"])
        return out
