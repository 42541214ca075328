"""
The node's JSON-RPC server: Bitcoin-compatible, on Klein, at C{POST /}.

Framing
=======
JSON-RPC 1.0 and 2.0 requests are served.  A request without C{"jsonrpc"}
(or with C{"1.0"}) gets a 1.0 reply, C{{"result", "error", "id"}}, both
members present, with Bitcoin Core's HTTP status: 200, or 400 for an
invalid request, 404 for an unknown method, 500 for other errors.  A
C{"2.0"} request gets C{{"jsonrpc": "2.0", "result" | "error", "id"}} with
HTTP 200, and a 2.0 notification (no C{id} member) gets no reply (HTTP
204).  The C{id} is echoed whatever its JSON type.  A batch (array of up
to L{MAX_BATCH} requests) runs its requests in order and answers an array
(HTTP 200).  Params may be positional (array) or named (object).  A body
that is not JSON, or nests deeper than L{MAX_JSON_DEPTH}, is a parse error.
One exception to the 2.0 shape: python-bitcoinrpc's C{batch_} (see
L{LEGACY_REPLY_AGENTS}) gets C{"error": null} in its successful 2.0 batch
replies, which it cannot read otherwise.

Optional positional arguments that Bitcoin clients send and that mean
nothing here (C{getbalance "*" 1}, C{sendtoaddress}'s comments, fee
estimation modes, C{sendrawtransaction}'s C{maxfeerate}, ...) are accepted,
checked for their JSON type, and ignored; each method's help says which.

Errors use the JSON-RPC codes (-32700 parse error, -32600 invalid request,
-32601 method not found, -32602 invalid params, -32603 internal error,
logged and never shown) and Bitcoin's (-5 invalid address or unknown
object, -6 insufficient funds, -3 bad amount, -8 invalid parameter, -22
undecodable transaction, -26 transaction refused, with the reason code
such as C{double-spend} in the message, -27 already in the chain, -28 node
still starting).  Every response, including 401, 404, 405 and 413, is JSON.

Authentication
==============
HTTP Basic, with the cookie C{__cookie__:SECRET} that L{build_rpc_site}
writes to C{DATADIR/.cookie} (a fresh secret at each start, mode 0600), or
with C{rpc_user}/C{rpc_password} when both are configured, or as a user
of an C{rpc_auth} line (Bitcoin's C{rpcauth}, see L{timecoin.rpcauth}).  A
failed attempt gets 401 with C{WWW-Authenticate: Basic realm="jsonrpc"}
and a JSON body carrying L{UNAUTHORIZED}.  Clients outside loopback and
C{rpc_allow_ip} get 403 on every path.

Pages
=====
C{GET /} is the status page and C{GET /status.json} its data (both need
the same credentials as RPC; see L{timecoin.status}); C{GET /metrics}
needs them too unless C{rpc_metrics_open}; C{GET /health} needs none.

Limits
======
Connections, idle and request deadlines, failed logins and long-polls
are bounded as L{timecoin.rpclimits} describes; L{RPCServer} applies the
login throttle, the long-poll cap and the C{/metrics} rule, L{RPCSite}
the rest.

Methods
=======
Each method is an C{rpc_NAME} method of L{RPCMethods}; its docstring is
its C{help} text (usage line first).  Amounts are TIME decimals written as
JSON numbers with 8 decimals; hashes are lowercase hex.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import inspect
import itertools
import json
import os
import secrets
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from klein import Klein
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException
from zope.interface import implementer

from timecoin import params
from timecoin.address import AddressError, address_of, decode_address
from timecoin.block import Block
from timecoin.chain import BlockInvalid, TxInvalid
from timecoin.cli import encode_json
from timecoin.config import Config
from timecoin.encoding import canonical, sha256
from timecoin.finality import TxVote
from timecoin.interfaces import IChainStore
from timecoin.mempool import FINALIZED, PENDING
from timecoin.node import NODE_BUSY
from timecoin.rpcauth import (
    AllowIPResource,
    AllowList,
    RPCAuthLine,
    check_credentials,
    client_host,
)
from timecoin.rpclimits import (
    LOGIN_THROTTLED,
    LONG_POLLS,
    TOO_MANY_WAITING,
    ConnectionLimiter,
    LoginThrottle,
    Refusals,
    RPCChannel,
    RPCLimits,
    source_of,
)
from timecoin.status import (
    CONTENT_SECURITY_POLICY,
    StatusHistory,
    consensus_info,
    masternode_rows,
    masternode_status,
    render_page,
    status_data,
)
from timecoin.storage import BlockChange, BlockRevert, StoreError
from timecoin.tx import (
    SIG_DOMAIN,
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    input_signature_ok,
    sighash,
)
from timecoin.verify import replay
from timecoin.wallet import WalletError
from timecoin.wallettxs import WalletTx, build_sendmany

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
"""Code of the JSON body of a 401 (JSON-RPC 2.0's server-error range)."""

RPC_TYPE_ERROR = -3
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_DATABASE_ERROR = -20
RPC_CLIENT_P2P_DISABLED = -31
RPC_METHOD_DEPRECATED = -32
"""Bitcoin Core's code for a dummy argument given another value."""

MAX_BATCH = 1_000
"""Most requests one batch may hold."""
MAX_JSON_DEPTH = 128
"""Deepest nesting of arrays and objects a request body may have; deeper
is a parse error (Bitcoin Core's limit is 512: ours is lower so that an
echoed C{id} always encodes within Python's recursion limit)."""
MAX_WAIT_SECONDS = 3_600.0
"""Longest C{waitfortransaction} timeout accepted."""
MAX_FINALIZED_FEED = 100_000
"""Finalized txids C{listfinalizedsince} remembers."""
MEDIAN_TIME_SPAN = 11
"""Blocks whose timestamps give C{mediantime}, as in Bitcoin."""
VERIFY_YIELD_EVERY = 64
"""Blocks C{verifychain} replays before letting the reactor run."""
VERIFY_PIN_ATTEMPTS = 10
"""Times C{verifychain} tries to read the UTXO set and tip together."""
COOKIE_USER = "__cookie__"
COOKIE_NAME = ".cookie"

_LEGACY = "1.0"
_V2 = "2.0"


class RPCError(Exception):
    """
    A JSON-RPC error to return: C{code} and C{message}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _NeedsDecimals(Exception):
    """
    Raised by L{_fast_default}: the object holds a value (a Decimal) only
    L{encode_json} writes.
    """


def _fast_default(value: Any) -> Any:
    raise _NeedsDecimals()


_fast_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                                default=_fast_default).encode


def dumps(obj: Any) -> bytes:
    """
    Compact JSON with Decimal amounts as numbers, newline-terminated.

    Objects of plain JSON types (most replies: txids, counts, hashes) go
    through the C encoder, which writes what L{encode_json} writes for
    them; one holding a Decimal through L{encode_json}.
    """
    try:
        text = _fast_encode(obj)
    except _NeedsDecimals:
        text = encode_json(obj)
    return text.encode("utf-8") + b"\n"


def error_body(code: int, message: str, request_id: Any = None) -> bytes:
    """
    A JSON-RPC 1.0-shaped error response body.
    """
    return dumps({"result": None, "error": {"code": code, "message": message},
                  "id": request_id})


# Cookie and credentials ------------------------------------------------


def write_cookie(datadir: Path) -> tuple[Path, str]:
    """
    Write a fresh C{__cookie__:SECRET} to C{datadir/.cookie} atomically,
    with mode 0600; return the path and the secret.
    """
    secret = secrets.token_hex(32)
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir / COOKIE_NAME
    tmp = datadir / (COOKIE_NAME + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(f"{COOKIE_USER}:{secret}".encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path, secret


def remove_cookie(path: Path, secret: str) -> None:
    """
    Delete the cookie file at C{path} if it still holds C{secret} (a newer
    node using the same data dir may have replaced it).
    """
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii") == f"{COOKIE_USER}:{secret}":
            path.unlink()


class BasicAuth:
    """
    Checks HTTP Basic credentials against the accepted C{user:password}
    pairs, in constant time.
    """

    def __init__(self, pairs: list[tuple[str, str]],
                 rpcauth: list[RPCAuthLine] | None = None) -> None:
        self._accepted = [f"{u}:{p}".encode() for u, p in pairs]
        self._rpcauth = list(rpcauth or ())

    @staticmethod
    def credentials(header: bytes | None) -> bytes | None:
        """
        The decoded C{USER:PASSWORD} of a Basic C{Authorization} header
        value, or C{None} if it carries none (missing, another scheme, bad
        base64, no colon): such a header can never be accepted, so it is
        no password guess.
        """
        if not header:
            return None
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return given if b":" in given else None

    def check(self, header: bytes | None) -> bool:
        """
        Whether an C{Authorization} header value carries accepted
        credentials.
        """
        given = self.credentials(header)
        return given is not None and self.accepts(given)

    def accepts(self, given: bytes) -> bool:
        """
        Whether decoded credentials C{USER:PASSWORD} are accepted.
        """
        ok = False
        for expected in self._accepted:
            ok |= hmac.compare_digest(given, expected)
        if self._rpcauth:
            ok |= check_credentials(self._rpcauth, given)
        return ok


# Parameter checks ------------------------------------------------------


def _int(value: Any, name: str, low: int = 0,
         high: int = 2**63 - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise RPCError(INVALID_PARAMS, f"{name} must be an integer")
    if not low <= value <= high:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} out of range [{low}, {high}]")
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RPCError(INVALID_PARAMS, f"{name} must be a string")
    return value


def _flag(value: Any, name: str, default: int, high: int) -> int:
    """
    A verbosity: an integer in [0, high], or a boolean (true is 1).
    """
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    return _int(value, name, 0, high)


def _hash(value: Any, name: str) -> bytes:
    text = _str(value, name)
    if len(text) != 64:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be of length 64 (not {len(text)})")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} must be hexadecimal") from None


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise RPCError(RPC_TYPE_ERROR, "Amount is not a number or string")
    try:
        return params.parse_amount(value)
    except ValueError as e:
        raise RPCError(RPC_TYPE_ERROR, f"Invalid amount: {e}") from None


def _seconds(value: Any, name: str, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise RPCError(INVALID_PARAMS, f"{name} must be a number")
    if not 0 <= value <= high:
        raise RPCError(RPC_INVALID_PARAMETER,
                       f"{name} out of range [0, {high:g}]")
    return float(value)


def _dummy_star(value: Any) -> None:
    """
    Bitcoin Core's dummy first argument of C{getbalance}: absent, null or
    C{"*"}.
    """
    if value is not None and value != "*":
        raise RPCError(RPC_METHOD_DEPRECATED, 'dummy first argument must be '
                       'excluded or set to "*".')


def _ignored_bool(value: Any, name: str) -> bool:
    """
    An optional boolean a Bitcoin client may send: checked for its type
    (null is false) and returned.
    """
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RPCError(INVALID_PARAMS, f"{name} must be a boolean")
    return value


def _ignored_int(value: Any, name: str) -> int | None:
    """
    An optional integer a Bitcoin client may send and the node ignores:
    checked for its type (null passes) and returned.
    """
    if value is None:
        return None
    return _int(value, name, -(2**63), 2**63 - 1)


def _shielded(d: defer.Deferred[Any]) -> defer.Deferred[Any]:
    """
    A Deferred firing with C{d}'s result whose cancellation (a client
    hanging up) leaves C{d} alone.
    """
    out: defer.Deferred[Any] = defer.Deferred()

    def forward(result: Any) -> None:
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)

    d.addBoth(forward)
    return out


def _settle(d: defer.Deferred[Any]) -> Any:
    """
    C{d}'s result if it has fired already (its value, or its L{Failure},
    which is then handled), else a Deferred of it: most of the node's
    Deferreds fire at once, and a method that does not wait answers
    without the cost of one.
    """
    box: list[Any] = []
    d.addBoth(box.append)
    if box:
        return box[0]
    return d.addCallback(lambda _: box[0])


def _then(d: defer.Deferred[Any], f: Callable[..., Any], *args: Any) -> Any:
    """
    C{f(result, *args)} once C{d} has a result: at once if it has fired
    (raising its failure), else as a Deferred.
    """
    result = _settle(d)
    if isinstance(result, defer.Deferred):
        return result.addCallback(f, *args)
    if isinstance(result, Failure):
        result.raiseException()
    return f(result, *args)


def _hex(txid: bytes) -> str:
    return txid.hex()


# Object shapes ---------------------------------------------------------


def tx_to_json(tx: Transaction) -> dict[str, Any]:
    """
    A transaction decoded for RPC (C{getrawtransaction} verbose,
    C{getblock} verbosity 2).
    """
    return {
        "txid": tx.txid.hex(), "version": tx.version, "kind": tx.kind,
        "size": tx.size, "locktime": tx.lock_time, "data": tx.data,
        "vin": [{"txid": i.prevout.txid.hex(), "vout": i.prevout.vout,
                 "pubkey": i.pubkey.hex(), "signature": i.signature.hex()}
                for i in tx.inputs],
        "vout": [{"value": params.format_amount(o.value), "n": n,
                  "address": o.address} for n, o in enumerate(tx.outputs)],
        "hex": tx.encode().hex(),
    }


def block_header_json(block: Block) -> dict[str, Any]:
    """
    The header fields of C{block} as C{getblock} shows them.
    """
    header = block.header
    obj: dict[str, Any] = {
        "hash": block.hash.hex(), "height": header.height,
        "version": header.version, "merkleroot": header.merkle_root.hex(),
        "time": header.timestamp // 1000, "time_ms": header.timestamp,
        "producer": header.producer.hex(), "round": header.round,
        "commit_hash": header.commit_hash.hex(), "size": block.size,
        "nTx": len(block.txs),
    }
    if header.height > 0:
        obj["previousblockhash"] = header.prev_hash.hex()
    return obj


def vote_json(vote: Any) -> dict[str, Any] | None:
    """
    A finality vote as C{gettransaction} lists it.
    """
    if not isinstance(vote, TxVote):
        return None
    return {"voter": vote.voter.hex(), "decision": vote.decision,
            "height": vote.height}


# Methods ---------------------------------------------------------------


def _any_time(method: Callable[..., Any]) -> Callable[..., Any]:
    """
    Mark an RPC method as callable while the node is still starting.
    """
    method.any_time = True  # type: ignore[attr-defined]
    return method


class RPCMethods:
    """
    The RPC methods of one node.  L{registry} maps each method name to
    its callable; positional and named params bind to its signature.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self._median_cache: tuple[bytes, int] | None = None
        self.history = StatusHistory(node)
        """Recent blocks and latencies (status page, masternodestatus)."""
        self._finalized: deque[bytes] = deque(maxlen=MAX_FINALIZED_FEED)
        self._finalized_count = 0
        node.finality.finalized.append(self._tx_finalized)

    def _tx_finalized(self, txid: bytes, seconds: float) -> None:
        self._finalized.append(txid)
        self._finalized_count += 1

    def registry(self) -> dict[str, Callable[..., Any]]:
        """
        Method name → bound callable, for every C{rpc_NAME} method.
        """
        return {name[4:]: getattr(self, name) for name in dir(type(self))
                if name.startswith("rpc_")}

    def _confirmations(self, height: int) -> int:
        return self.node.chain.height - height + 1

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
    def _mined_fee(self, tx: Transaction) -> Any:
        """
        The fee of a transaction archived in a block, from the outputs its
        inputs spent, or C{None} if one cannot be found.
        """
        if tx.is_coinbase:
            return None
        blocks: dict[bytes, Block] = {}
        total_in = 0
        for txin in tx.inputs:
            location = yield self.node.store.get_tx_location(
                txin.prevout.txid)
            if location is None:
                return None
            block = blocks.get(location[1])
            if block is None:
                block = yield self.node.block_by_hash(location[1])
                if block is None:
                    return None
                blocks[location[1]] = block
            prev = next((t for t in block.txs if t.txid == txin.prevout.txid),
                        None)
            if prev is None or txin.prevout.vout >= len(prev.outputs):
                return None
            total_in += prev.outputs[txin.prevout.vout].value
        return total_in - sum(o.value for o in tx.outputs)

    # Blockchain

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
        sync = getattr(self.node.p2p, "sync", None)
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
        height = _int(height, "height", -(2**63), 2**63 - 1)
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
            obj["confirmations"] = self._confirmations(block.height)
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
        block_hash = _hash(blockhash, "blockhash")
        level = _flag(verbosity, "verbosity", 1, 2)
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

    # Transactions

    @defer.inlineCallbacks
    def rpc_gettransaction(self, txid: Any, include_watchonly: Any = None,
                           verbose: Any = None) -> Any:
        """
        gettransaction "txid" ( include_watchonly verbose )

        What the node knows of a transaction: txid, state (pending,
        finalized, rejected), confirmations (0 until in a block), and once
        in a block blockheight, blockhash and blocktime; fee (TIME), votes
        ([{voter, decision, height}] held, also after it is mined while
        its certificate is kept), weights ({approve, reject, total} of the
        votes over the masternode snapshot), certificate (the signed
        approving votes with their Merkle branches, once they reach the
        quorum), conflict (true while it contends with a pending spender
        of its inputs), reason (if rejected), hex.  Error -5 if the node
        never saw it.  For a wallet transaction (one listtransactions
        lists: final, paying or spending the wallet) also Bitcoin Core's
        amount (the net change of the wallet's balance, fee excluded:
        negative for a payment to others), details (its entries as
        listtransactions shows them, without the transaction fields),
        time, timereceived, blockindex once mined and trusted (true) until
        then; for any other transaction amount is 0 and details empty
        (Bitcoin Core refuses them; this node answers for any it knows).
        fee stays the transaction's fee, positive (Bitcoin Core's is
        negative and for the wallet's payments only; details' send
        entries carry that one).  confirmations counts blocks: a finalized
        transaction not yet in a block has 0 and is final all the same.
        include_watchonly (a boolean) is accepted and
        ignored (no watch-only addresses); verbose true adds decoded (the
        transaction as decoderawtransaction shows it).
        """
        tx_hash = _hash(txid, "txid")
        _ignored_bool(include_watchonly, "include_watchonly")
        decoded = _ignored_bool(verbose, "verbose")
        info = yield self.node.transaction(tx_hash)
        if info is None or (info["state"] == "rejected"
                            and info.get("tx") is None):
            info = self.node.finality.info(tx_hash) or info
        if info is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "No such mempool or blockchain transaction")
        tx = info.get("tx")
        obj: dict[str, Any] = {"txid": tx_hash.hex(), "state": info["state"]}
        fee = info.get("fee")
        if info.get("height") is not None:
            obj["blockheight"] = info["height"]
            obj["blockhash"] = info["block_hash"].hex()
            obj["confirmations"] = self._confirmations(info["height"])
            block = yield self.node.block_by_hash(info["block_hash"])
            if block is not None:
                obj["blocktime"] = block.header.timestamp // 1000
            if fee is None and tx is not None:
                fee = yield self._mined_fee(tx)
        else:
            obj["confirmations"] = 0
        if fee is not None:
            obj["fee"] = params.format_amount(fee)
        cert = yield self.node.finality.certificate(tx_hash)
        votes = info.get("votes") or (cert["votes"] if cert else [])
        obj["votes"] = [v for v in map(vote_json, votes) if v is not None]
        if cert is not None:
            obj["weights"] = {"approve": cert["approve_weight"],
                              "reject": cert["reject_weight"],
                              "total": cert["total_weight"]}
            if cert["certificate"] is not None:
                obj["certificate"] = [v.to_obj() for v in cert["certificate"]]
        if info.get("conflict"):
            obj["conflict"] = True
        if info.get("reason"):
            obj["reason"] = info["reason"]
        if tx is not None:
            obj["hex"] = tx.encode().hex()
            if decoded:
                obj["decoded"] = tx_to_json(tx)
        wtx = self.node.wallet_txs.txs.get(tx_hash)
        obj["amount"] = params.format_amount(0 if wtx is None else wtx.amount)
        obj["details"] = [] if wtx is None else self._history_entries(
            wtx, common=False)
        if wtx is not None:
            obj["time"] = obj["timereceived"] = wtx.time
            if wtx.block_index is not None:
                obj["blockindex"] = wtx.block_index
            if wtx.height is None:
                obj["trusted"] = True
        return obj

    @defer.inlineCallbacks
    def rpc_getrawtransaction(self, txid: Any, verbose: Any = False) -> Any:
        """
        getrawtransaction "txid" ( verbose )

        The transaction as hex of its canonical encoding, or with verbose
        true decoded (txid, version, kind, size, locktime, data, vin, vout,
        hex) plus state, and blockhash, confirmations, blocktime once in a
        block.  Error -5 if the node does not hold it.
        """
        tx_hash = _hash(txid, "txid")
        level = _flag(verbose, "verbose", 0, 1)
        info = yield self.node.transaction(tx_hash)
        if info is None or info.get("tx") is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "No such mempool or blockchain transaction")
        tx = info["tx"]
        if level == 0:
            return tx.encode().hex()
        obj = tx_to_json(tx)
        obj["state"] = info["state"]
        if info.get("height") is not None:
            obj["blockhash"] = info["block_hash"].hex()
            obj["confirmations"] = self._confirmations(info["height"])
            block = yield self.node.block_by_hash(info["block_hash"])
            if block is not None:
                obj["blocktime"] = block.header.timestamp // 1000
        else:
            obj["confirmations"] = 0
        return obj

    def rpc_sendrawtransaction(self, hexstring: Any, maxfeerate: Any = None,
                               maxburnamount: Any = None) -> Any:
        """
        sendrawtransaction "hexstring" ( maxfeerate maxburnamount )

        Submit a signed transaction (hex of its canonical encoding) for
        finality voting; returns its txid.  Error -22 if it does not
        decode, -27 if already in a block, -26 with the reason code (e.g.
        double-spend, fee-too-low, missing-or-spent-input) if refused.
        Submitting a transaction the mempool already holds returns its
        txid.  While the node is busy ([rpc] max_undecided transactions
        undecided, or [rpc] max_unmined finalized ones waiting for a
        block) every call gets -26 with the reason node-busy at once,
        whatever its params, before the transaction is even decoded: not a
        verdict on the transaction, send it again later.  (-26 as Bitcoin
        Core refuses with "mempool full": a refusal of this transaction
        now, with its reason code; -28 would tell clients the whole node
        is starting.)  maxfeerate and maxburnamount (amounts, as Bitcoin
        clients send them) are accepted and ignored: the fee rule of
        docs/rules.md bounds nothing from above and no output burns.
        """
        node = self.node
        node.check_admission()
        for value in (maxfeerate, maxburnamount):
            if value is not None:
                _amount(value)
        tx = self._decode_tx(hexstring)
        txid = tx.txid
        if txid in node.mempool.entries:
            return txid.hex()
        if tx.inputs and all(txin.prevout in node.chain.utxos
                             for txin in tx.inputs):
            # Its inputs are unspent on chain, so no block holds it: no
            # store read (an SQLite query on a persistent node).
            return self._submit(tx)
        return _then(node.store.get_tx_location(txid),
                     self._submit_unless_mined, tx)

    def _submit_unless_mined(self, location: Any, tx: Transaction) -> Any:
        if location is not None:
            raise RPCError(RPC_VERIFY_ALREADY_IN_CHAIN,
                           "Transaction already in block chain")
        return self._submit(tx)

    def _submit(self, tx: Transaction) -> Any:
        return _then(self.node.submit(tx), _hex)

    def _decode_tx(self, hexstring: Any) -> Transaction:
        text = _str(hexstring, "hexstring")
        try:
            return self.node.decode_tx(text)
        except ValueError as e:
            raise RPCError(RPC_DESERIALIZATION_ERROR,
                           f"TX decode failed: {e}") from None

    def rpc_createrawtransaction(self, inputs: Any, outputs: Any,
                                 locktime: Any = 0) -> str:
        """
        createrawtransaction [{"txid","vout"},...] {"address":amount,...} ( locktime )

        An unsigned transaction spending the given outpoints ({"txid":
        hex, "vout": n}) and paying the given amounts (TIME) to the given
        addresses (plus locktime, default 0), as hex of its
        canonical encoding, to sign with signrawtransactionwithwallet and
        send with sendrawtransaction.  Outputs is an object address →
        amount (kept in its order) or an array of such objects.  Each input
        names the public key of the output it spends; the node takes it
        from the wallet key owning that output, so every outpoint must be
        an output paying this wallet, unspent on chain or created by a
        finalized transaction: otherwise error -8.  No fee or change is
        added: the fee is the inputs' total minus the outputs' and must
        meet the minimum of docs/rules.md.  Errors: -8 malformed,
        duplicated or unknown input, or duplicated address; -5 bad
        address; -3 bad amount.
        """
        if not isinstance(inputs, list):
            raise RPCError(INVALID_PARAMS, "inputs must be an array")
        lock_time = _int(0 if locktime is None else locktime, "locktime",
                         0, 2**32 - 1)
        txins: list[TxIn] = []
        seen: set[OutPoint] = set()
        for item in inputs:
            if not isinstance(item, dict):
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, input must be an object")
            if "vout" not in item:
                raise RPCError(RPC_INVALID_PARAMETER,
                               "Invalid parameter, missing vout key")
            outpoint = OutPoint(_hash(item.get("txid"), "txid"),
                                _int(item["vout"], "vout", 0, 2**32 - 1))
            if outpoint in seen:
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, duplicated input "
                               f"{outpoint}")
            seen.add(outpoint)
            entry = self.node.chain.utxos.get(outpoint) or \
                self.node.mempool.outputs.get(outpoint)
            if entry is None or not self.node.wallet.owns(entry.address):
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, input {outpoint} is not "
                               f"an unspent output of this wallet (its "
                               f"public key is unknown)")
            txins.append(TxIn(outpoint, self.node.wallet.pubkey_for(
                entry.address)))
        if isinstance(outputs, dict):
            pairs = list(outputs.items())
        elif isinstance(outputs, list) and all(
                isinstance(o, dict) and len(o) == 1 for o in outputs):
            pairs = [next(iter(o.items())) for o in outputs]
        else:
            raise RPCError(INVALID_PARAMS, "outputs must be an object "
                           "address → amount, or an array of such objects "
                           "with one key each")
        txouts: list[TxOut] = []
        addresses: set[str] = set()
        for address, amount in pairs:
            self._check_address(address)
            if address in addresses:
                raise RPCError(RPC_INVALID_PARAMETER,
                               f"Invalid parameter, duplicated address: "
                               f"{address}")
            addresses.add(address)
            units = _amount(amount)
            if units <= 0:
                raise RPCError(RPC_TYPE_ERROR, "Invalid amount")
            txouts.append(TxOut(units, address))
        tx = Transaction(tuple(txins), tuple(txouts), lock_time=lock_time)
        return tx.encode().hex()

    def rpc_decoderawtransaction(self, hexstring: Any) -> dict[str, Any]:
        """
        decoderawtransaction "hexstring"

        The transaction a hex string encodes (signed or not), decoded as
        getrawtransaction verbose shows it: txid, version, kind, size,
        locktime, data, vin, vout, hex.  It is not looked up or checked
        against the chain.  Error -22 if it does not decode.
        """
        return tx_to_json(self._decode_tx(hexstring))

    @defer.inlineCallbacks
    def rpc_waitfortransaction(self, txid: Any,
                               timeout_seconds: Any = 10) -> Any:
        """
        waitfortransaction "txid" ( timeout_seconds )

        Wait until the transaction is decided (finalized or rejected) or
        the timeout (default 10 s, at most 3600) passes; returns {txid,
        state, reason (if rejected)} where state is finalized, rejected,
        pending (still voting at the timeout) or unknown (never seen).
        """
        tx_hash = _hash(txid, "txid")
        timeout = _seconds(10 if timeout_seconds is None else timeout_seconds,
                           "timeout_seconds", MAX_WAIT_SECONDS)
        info = yield self.node.transaction(tx_hash)
        if info is None or info["state"] == PENDING:
            yield _shielded(self.node.finality.wait(tx_hash, timeout))
            info = yield self.node.transaction(tx_hash)
        if info is None:
            return {"txid": tx_hash.hex(), "state": "unknown"}
        obj = {"txid": tx_hash.hex(), "state": info["state"]}
        if info.get("reason"):
            obj["reason"] = info["reason"]
        return obj

    def rpc_listfinalizedsince(self, cursor: Any = 0) -> dict[str, Any]:
        """
        listfinalizedsince ( cursor )

        The txids this node finalized since cursor (a count of
        finalizations since the node started; 0 for all it remembers, the
        newest 100,000), in finalization order: {cursor (pass it to the
        next call), txids, missed (how many after the given cursor were
        forgotten already)}.  A cheap finality feed for wallets and load
        generators: no query per transaction.
        """
        since = _int(cursor, "cursor")
        count = self._finalized_count
        since = min(since, count)
        oldest = count - len(self._finalized)
        start = max(since, oldest)
        txids = list(itertools.islice(self._finalized, start - oldest, None))
        return {"cursor": count, "txids": [t.hex() for t in txids],
                "missed": start - since}

    def rpc_getmempoolinfo(self) -> dict[str, Any]:
        """
        getmempoolinfo

        The mempool: size (transactions), bytes, pending and finalized
        counts, total_fee (TIME), maxmempool (byte limit), maxcount (count
        limit), rejections (count per reason code since start; node-busy
        counts the refusals of admission control), undecided (transactions
        admitted and not yet finalized or rejected, contenders included),
        maxundecided (the bound at which sendrawtransaction and
        sendtoaddress refuse with node-busy; 0: none), maxunmined (the
        bound on finalized transactions waiting for a block at which they
        refuse too; 0: none), busy (whether the node refuses now, and why
        in busyreason).
        """
        node = self.node
        mempool = node.mempool
        undecided = node.undecided()
        why = node.backlog()
        states = [e.state for e in mempool.entries.values()]
        busy: dict[str, Any] = {"busy": why is not None}
        if why is not None:
            busy["busyreason"] = why
        return {
            "loaded": True, "size": len(mempool), "bytes": mempool.total_bytes,
            "pending": states.count(PENDING),
            "finalized": states.count(FINALIZED),
            "total_fee": params.format_amount(
                sum(e.fee for e in mempool.entries.values())),
            "maxmempool": mempool.limits.max_bytes,
            "maxcount": mempool.limits.max_count,
            "rejections": dict(sorted(mempool.rejections.items())),
            "undecided": undecided,
            "maxundecided": node.config.rpc_max_undecided,
            "maxunmined": node.config.rpc_max_unmined, **busy,
        }

    def rpc_getrawmempool(self, verbose: Any = False) -> Any:
        """
        getrawmempool ( verbose )

        The txids in the mempool, oldest first; with verbose true an
        object txid → {size, fee, state, time, votes}.
        """
        level = _flag(verbose, "verbose", 0, 1)
        entries = sorted(self.node.mempool.entries.values(),
                         key=lambda e: e.seq)
        if level == 0:
            return [e.tx.txid.hex() for e in entries]
        return {e.tx.txid.hex(): {
            "size": e.tx.size, "fee": params.format_amount(e.fee),
            "state": e.state, "time": int(e.received), "votes": len(e.votes)}
            for e in entries}

    # Wallet

    def rpc_getnewaddress(self) -> str:
        """
        getnewaddress

        A new receiving address of the node's wallet: the next of its
        keypool (addresses derived ahead from its HD seed), so it works
        while the wallet is locked; error -12 when a locked wallet's
        keypool ran out (unlock it, or keypoolrefill).
        """
        return self.node.new_address()

    def rpc_getbalance(self, dummy: Any = None, minconf: Any = None,
                       include_watchonly: Any = None,
                       avoid_reuse: Any = None) -> Decimal:
        """
        getbalance ( "*" minconf include_watchonly avoid_reuse )

        The wallet's spendable balance in TIME: its outputs unspent on
        chain or created by finalized transactions, minus those locked by
        pending spenders.  The arguments Bitcoin clients send are accepted
        and ignored: dummy must be "*" (or null), minconf (an integer)
        changes nothing because a finalized transaction is final at 0
        confirmations, and the wallet has no watch-only addresses and no
        address-reuse tracking.  Error -32 if dummy is anything else (as
        Bitcoin Core).
        """
        _dummy_star(dummy)
        _ignored_int(minconf, "minconf")
        _ignored_bool(include_watchonly, "include_watchonly")
        _ignored_bool(avoid_reuse, "avoid_reuse")
        return params.format_amount(self.node.balance())

    def rpc_listunspent(self, minconf: Any = 0, maxconf: Any = 9_999_999,
                        addresses: Any = None, include_unsafe: Any = None,
                        query_options: Any = None) -> list[dict[str, Any]]:
        """
        listunspent ( minconf maxconf ["address",...] include_unsafe query_options )

        The wallet's spendable outputs with between minconf (default 0)
        and maxconf confirmations, optionally only those paying the given
        addresses: [{txid, vout, address, amount, confirmations,
        coinbase, spendable, safe}].  Outputs of finalized transactions
        not yet in a block have 0 confirmations and are spendable and
        safe (final).  include_unsafe (a boolean) is accepted and ignored:
        every listed output is final, none is unsafe.  query_options (an
        object, as Bitcoin Core's) is accepted and ignored.
        """
        _ignored_bool(include_unsafe, "include_unsafe")
        if query_options is not None and not isinstance(query_options, dict):
            raise RPCError(INVALID_PARAMS, "query_options must be an object")
        low = _int(0 if minconf is None else minconf, "minconf")
        high = _int(9_999_999 if maxconf is None else maxconf, "maxconf")
        wanted: set[str] | None = None
        if addresses is not None:
            if not isinstance(addresses, list):
                raise RPCError(INVALID_PARAMS, "addresses must be an array")
            wanted = set()
            for address in addresses:
                address = _str(address, "address")
                self._check_address(address)
                if address in wanted:
                    raise RPCError(RPC_INVALID_PARAMETER,
                                   f"Invalid parameter, duplicated address: "
                                   f"{address}")
                wanted.add(address)
        unmined = self.node.mempool.outputs
        coins = []
        for outpoint, entry in sorted(self.node.spendable()):
            if wanted is not None and entry.address not in wanted:
                continue
            confirmations = 0 if outpoint in unmined else \
                self._confirmations(entry.height)
            if not low <= confirmations <= high:
                continue
            coins.append({
                "txid": outpoint.txid.hex(), "vout": outpoint.vout,
                "address": entry.address,
                "amount": params.format_amount(entry.value),
                "confirmations": confirmations, "coinbase": entry.coinbase,
                "spendable": True, "safe": True})
        return coins

    def _check_address(self, address: str) -> None:
        try:
            decode_address(address, self.node.network.address_prefix)
        except AddressError as e:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           f"Invalid address {address}: {e}") from None

    def rpc_sendtoaddress(self, address: Any, amount: Any,
                          comment: Any = None, comment_to: Any = None,
                          subtractfeefromamount: Any = None,
                          replaceable: Any = None, conf_target: Any = None,
                          estimate_mode: Any = None, avoid_reuse: Any = None,
                          fee_rate: Any = None, verbose: Any = None) -> Any:
        """
        sendtoaddress "address" amount ( "comment" "comment_to" subtractfee... )

        Pay amount TIME to address from the wallet, with the minimum fee
        (1,000 units + 0.1 % of the amount) and change back to the wallet;
        returns the txid.  Errors: -5 bad address (or one of another
        network), -3 bad amount, -6 insufficient funds, -26 refused
        (node-busy while the node is busy, as sendrawtransaction).

        The wallet spends outputs on chain or finalized, never those of a
        payment still being voted on: change is spendable once its payment
        finalizes (about a second; no block needed).  Sending back to back
        from a wallet with one coin, wait for each payment
        (waitfortransaction) before the next.  When the money is there
        but awaits finality, the -6 message says so and how much.

        The optional arguments Bitcoin clients send, in Bitcoin Core's
        order (comment comment_to subtractfeefromamount replaceable
        conf_target estimate_mode avoid_reuse fee_rate verbose), are
        accepted: comment
        and comment_to (strings) are ignored (the wallet keeps no notes);
        subtractfeefromamount false is the only behaviour (true is error
        -8); replaceable, conf_target, estimate_mode, avoid_reuse and
        fee_rate are ignored (finality replaces nothing and the fee is the
        fixed minimum of docs/rules.md); verbose true returns {txid,
        fee_reason} instead of the txid.
        """
        address = _str(address, "address")
        self._check_address(address)
        units = _amount(amount)
        if units <= 0:
            raise RPCError(RPC_TYPE_ERROR, "Invalid amount for send")
        for value, name in ((comment, "comment"), (comment_to, "comment_to"),
                            (estimate_mode, "estimate_mode")):
            if value is not None:
                _str(value, name)
        if _ignored_bool(subtractfeefromamount, "subtractfeefromamount"):
            raise RPCError(RPC_INVALID_PARAMETER, "subtractfeefromamount is "
                           "not supported: the fee is added to the amount")
        _ignored_bool(replaceable, "replaceable")
        _ignored_int(conf_target, "conf_target")
        _ignored_bool(avoid_reuse, "avoid_reuse")
        if fee_rate is not None:
            _amount(fee_rate)
        d = self.node.send_to_address(address, units)
        if _ignored_bool(verbose, "verbose"):
            return _then(d, lambda txid: {"txid": txid.hex(),
                                          "fee_reason": "Minimum fee rule"})
        return _then(d, _hex)

    def rpc_signrawtransactionwithwallet(self,
                                         hexstring: Any) -> dict[str, Any]:
        """
        signrawtransactionwithwallet "hexstring"

        Sign every input of a transaction (hex, as createrawtransaction
        makes it) whose public key belongs to the wallet; inputs already
        carrying a valid signature are kept as they are.  Returns {hex (the
        transaction with the signatures), complete (every input has a valid
        signature), errors ([{txid, vout, error}] for the inputs still
        unsigned; present only when not complete)}.  The outputs spent are
        not looked up: sendrawtransaction checks them.  Error -22 if the
        hex does not decode.
        """
        tx = self._decode_tx(hexstring)
        network = self.node.network
        signed: list[TxIn] = []
        errors: list[dict[str, Any]] = []
        for index, txin in enumerate(tx.inputs):
            if input_signature_ok(tx, network.name, index):
                signed.append(txin)
                continue
            address = address_of(txin.pubkey, network.address_prefix)
            if not self.node.wallet.owns(address):
                signed.append(txin)
                errors.append({"txid": txin.prevout.txid.hex(),
                               "vout": txin.prevout.vout,
                               "error": "Unable to sign input: its public "
                                        "key is not in the wallet"})
                continue
            key = self.node.wallet.key_for(address)
            signed.append(TxIn(txin.prevout, txin.pubkey, key.sign(
                SIG_DOMAIN, sighash(network.name, tx.txid, index))))
        result = Transaction(tuple(signed), tx.outputs, tx.kind, tx.data,
                             tx.lock_time, tx.version)
        out: dict[str, Any] = {"hex": result.encode().hex(),
                               "complete": not errors}
        if errors:
            out["errors"] = errors
        return out

    def rpc_validateaddress(self, address: Any) -> dict[str, Any]:
        """
        validateaddress "address"

        Whether address is a valid address of this network: {isvalid,
        address, ismine} or {isvalid: false, error}.
        """
        text = _str(address, "address")
        try:
            decode_address(text, self.node.network.address_prefix)
        except AddressError as e:
            return {"isvalid": False, "error": str(e)}
        return {"isvalid": True, "address": text,
                "ismine": self.node.wallet.owns(text)}

    # Wallet: encryption, keys, backup (docs/wallet.md)

    def rpc_encryptwallet(self, passphrase: Any) -> str:
        """
        encryptwallet "passphrase"

        Encrypt the wallet with passphrase (Argon2id, then XSalsa20-
        Poly1305) and lock it: from then on sending, signing, dumpprivkey,
        importprivkey and paying masternode fees need walletpassphrase
        first (error -13); getnewaddress still works from the keypool.
        The node key (private/node_key) is not encrypted: a masternode
        signs blocks and votes unattended.  Back the wallet up again after
        this: earlier backups hold its keys in the clear.  Errors: -15
        already encrypted, -8 empty passphrase.
        """
        self.node.wallet.encrypt(_str(passphrase, "passphrase"))
        return ("wallet encrypted; it is locked: unlock it with "
                "walletpassphrase. Make a new backup (backupwallet): "
                "earlier backups hold the keys in the clear.")

    def rpc_walletpassphrase(self, passphrase: Any, timeout: Any) -> None:
        """
        walletpassphrase "passphrase" timeout

        Unlock the encrypted wallet for timeout seconds (at most
        100,000,000), after which it locks by itself; a second call sets
        the new timeout.  Errors: -14 wrong passphrase, -15 not encrypted,
        -8 negative timeout.
        """
        from timecoin.wallet import MAX_UNLOCK_SECONDS
        text = _str(passphrase, "passphrase")
        if isinstance(timeout, bool) or not isinstance(timeout,
                                                       (int, Decimal)):
            raise RPCError(INVALID_PARAMS, "timeout must be a number")
        if timeout < 0:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "Timeout cannot be negative.")
        seconds = float(min(timeout, MAX_UNLOCK_SECONDS))
        self.node.wallet.unlock(text, seconds, self.node.clock)
        return None

    def rpc_walletlock(self) -> None:
        """
        walletlock

        Lock the encrypted wallet now.  Error -15 if it is not encrypted.
        """
        self.node.wallet.lock()
        return None

    def rpc_walletpassphrasechange(self, oldpassphrase: Any,
                                   newpassphrase: Any) -> None:
        """
        walletpassphrasechange "oldpassphrase" "newpassphrase"

        Change the wallet's passphrase; it stays locked or unlocked as it
        was.  Errors: -14 wrong old passphrase, -15 not encrypted, -8
        empty new passphrase.
        """
        self.node.wallet.change_passphrase(
            _str(oldpassphrase, "oldpassphrase"),
            _str(newpassphrase, "newpassphrase"))
        return None

    def rpc_dumpprivkey(self, address: Any) -> str:
        """
        dumpprivkey "address"

        The private key of one of the wallet's addresses, in the node's
        format: the 32-byte Ed25519 seed as 64 hex digits (importprivkey
        takes it back).  Errors: -13 locked, -4 not the wallet's, -5 bad
        address.
        """
        text = _str(address, "address")
        self._check_address(text)
        return self.node.wallet.dump_key(text)

    def rpc_importprivkey(self, privkey: Any, label: Any = None,
                          rescan: Any = None) -> None:
        """
        importprivkey "privkey" ( "label" rescan )

        Add a private key (64 hex digits, as dumpprivkey prints) to the
        wallet; an encrypted wallet keeps it encrypted.  label and rescan
        are accepted and ignored: the wallet has no labels, and its
        balance is read from the UTXO set, so no rescan is needed.
        Errors: -13 locked, -5 malformed key.
        """
        from timecoin.wallet import parse_private_key
        key = parse_private_key(privkey)
        self.node.wallet.import_key(key)
        return None

    def rpc_backupwallet(self, destination: Any) -> None:
        """
        backupwallet "destination"

        Copy the wallet file to destination (a file, or a directory to
        hold wallet.json), mode 0600, on the node's machine; an encrypted
        wallet's copy is encrypted too.  One backup covers every address
        the wallet hands out later up to the keypool size (they derive
        from its seed).  Restore with restorewallet, or by copying it to
        DATADIR/private/wallet.json while the node is stopped.  Error -4
        if it cannot be written.
        """
        text = _str(destination, "destination")
        try:
            self.node.wallet.backup(Path(text))
        except OSError as e:
            raise RPCError(-4, f"Error: Wallet backup failed! "
                           f"({e.strerror})") from None
        return None

    def rpc_restorewallet(self, backup_file: Any) -> dict[str, Any]:
        """
        restorewallet "backup_file"

        Replace the wallet by a backup (from backupwallet) on the node's
        machine: encrypted backups stay encrypted (unlock them with their
        passphrase).  The replaced wallet file is kept as
        private/wallet.json.replaced-N.  Keypool addresses that hold coins
        on chain are listed again as handed out.  Unlike Bitcoin Core's,
        the node has one wallet, so there is no wallet name.  Returns
        {name, replaced (the copy of the old file), addresses (how many)}.
        Error -4: the file is not a wallet backup, or the current wallet
        holds coins (restore only into an empty wallet, as after a wipe).
        """
        node = self.node
        text = _str(backup_file, "backup_file")
        try:
            data = Path(text).read_bytes()
        except OSError as e:
            raise RPCError(-4, f"Error: cannot read the backup "
                           f"({e.strerror})") from None
        holding = [e for e in node.chain.utxos.values()
                   if node.wallet.owns(e.address)]
        if holding:
            raise RPCError(-4, "Error: the current wallet holds coins; "
                           "restorewallet replaces only an empty wallet "
                           "(back it up, then restore on a new data dir)")
        aside = node.wallet.restore(data)
        seen = {e.address for e in node.chain.utxos.values()}
        seen.update(e.address for e in node.mempool.outputs.values())
        node.wallet.mark_used(seen)
        return {"name": "", "replaced": str(aside),
                "addresses": len(node.wallet.addresses())}

    def rpc_keypoolrefill(self, newsize: Any = None) -> None:
        """
        keypoolrefill ( newsize )

        Derive the keypool up to newsize (default: its size, 100) public
        keys: the addresses getnewaddress hands out while the wallet is
        locked.  Error -13 if locked.
        """
        size = None if newsize is None else _int(newsize, "newsize", 1,
                                                 100_000)
        self.node.wallet.refill_keypool(size)
        return None

    def rpc_sethdseed(self, newkeypool: Any = True,
                      seed: Any = None) -> None:
        """
        sethdseed ( newkeypool "seed" )

        Make seed (64 hex digits, as the "# hdseed" line of dumpwallet
        shows it; default: a new random one) the wallet's HD seed, as
        Bitcoin Core's: addresses handed out from the old seed stay the
        wallet's as imported keys, the keypool is derived from the new
        seed, and its addresses holding coins on chain are listed as
        handed out, which restores a wallet from its seed on a fresh
        node.  newkeypool must be true (the keypool is always replaced).
        Make a new backup afterwards.  Errors: -13 locked, -5 malformed
        seed, -8 newkeypool false.
        """
        import nacl.utils

        from timecoin.wallet import SEED_BYTES
        node = self.node
        if newkeypool is not None and newkeypool is not True:
            raise RPCError(RPC_INVALID_PARAMETER, "newkeypool must be true: "
                           "the keypool is always replaced")
        if seed is None:
            raw = nacl.utils.random(SEED_BYTES)
        else:
            text = _str(seed, "seed")
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b""
            if len(raw) != SEED_BYTES:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                               "Invalid seed: want 64 hex digits")
        node.wallet.set_seed(raw)
        seen = {e.address for e in node.chain.utxos.values()}
        seen.update(e.address for e in node.mempool.outputs.values())
        node.wallet.mark_used(seen)
        return None

    def rpc_dumpwallet(self, filename: Any) -> dict[str, Any]:
        """
        dumpwallet "filename"

        Write the HD seed and every private key of the wallet (handed
        out, imported, keypool) in the clear to a new file on the node's
        machine (mode 0600), one "KEY ADDRESS ORIGIN" line each, as
        Bitcoin Core's.  Keep it offline; sethdseed or importprivkey take
        its keys back.  Returns {filename}.  Errors: -13 locked, -8 the
        file exists, -4 it cannot be written.
        """
        path = Path(_str(filename, "filename"))
        try:
            self.node.wallet.dump(path)
        except OSError as e:
            raise RPCError(-4, f"Error: cannot write {path} "
                           f"({e.strerror})") from None
        return {"filename": str(path.resolve())}

    def rpc_getwalletinfo(self) -> dict[str, Any]:
        """
        getwalletinfo

        The wallet: {walletname (""), walletversion (2), format ("json"),
        balance (spendable TIME, as getbalance), keypoolsize (public keys
        derived ahead), unlocked_until (encrypted wallets only: 0 when
        locked, else when it locks again, seconds since the epoch),
        private_keys_enabled, hdseedid (the id of the HD seed: a hash of
        its master public key; absent for a wallet of imported keys only),
        addresses (how many handed out or imported)}.  txcount is left out:
        the node keeps no per-wallet history.
        """
        wallet = self.node.wallet
        info: dict[str, Any] = {
            "walletname": "", "walletversion": 2, "format": "json",
            "balance": params.format_amount(self.node.balance()),
            "keypoolsize": wallet.keypool_size_now(),
            "private_keys_enabled": True,
            "addresses": len(wallet.addresses())}
        if wallet.encrypted:
            info["unlocked_until"] = int(wallet.unlocked_until)
        if wallet.seed_id is not None:
            info["hdseedid"] = wallet.seed_id
        return info

    def rpc_getaddressesbylabel(self, label: Any) -> dict[str, Any]:
        """
        getaddressesbylabel "label"

        The wallet's addresses handed out or imported, oldest first, as
        {address: {purpose: "receive"}}.  The wallet has no labels: every
        address has the label "" and any other label is error -11, as in
        Bitcoin Core for an unknown label.
        """
        if _str(label, "label") != "":
            raise RPCError(-11, f"No addresses with label {label}")
        return {a: {"purpose": "receive"}
                for a in self.node.wallet.addresses()}

    # Two-step masternode registration (the collateral signs elsewhere)

    def rpc_registermasternode_prepare(self, collateral_txid: Any, vout: Any,
                                       collateral_address: Any,
                                       p2p_address: Any = None,
                                       reward_address: Any = None
                                       ) -> dict[str, Any]:
        """
        registermasternode_prepare "collateral_txid" vout "collateral_address" ( "p2p_address" "reward_address" )

        Step 1 of 3 of a registration whose collateral is kept in another
        wallet (as Dash's protx register_prepare): on the operator's node,
        prepare the registration of this node's key backed by the unspent
        output collateral_txid:vout, which pays collateral_address (a
        wallet elsewhere).  p2p_address defaults to this node's P2P
        address, reward_address to a new address of this wallet.  Returns
        {request (hex: give it to the collateral's owner for
        signmasternoderegistration), operator_pubkey, p2p_address,
        reward_address, collateral_address, collateral_amount, tier}.
        Nothing is signed or sent.  Errors: -8 the output is not unspent,
        pays another address, or already backs a masternode.
        """  # noqa: E501
        from timecoin.registration import (
            encode_request,
            prepare_request,
            tier_for,
        )
        node = self.node
        outpoint = OutPoint(_hash(collateral_txid, "collateral_txid"),
                            _int(vout, "vout", 0, 2**32 - 1))
        owner = _str(collateral_address, "collateral_address")
        self._check_address(owner)
        entry = node.chain.utxos.get(outpoint) or \
            node.mempool.outputs.get(outpoint)
        if entry is None:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           "is not an unspent output (wait until it is "
                           "final)")
        if entry.address != owner:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           f"pays {entry.address}, not {owner}")
        if outpoint in node.chain.collaterals:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           "already backs a masternode")
        address = _str(p2p_address, "p2p_address") if p2p_address \
            is not None else f"{node.config.p2p_bind}:{node.config.p2p_port}"
        if reward_address is None:
            reward = node.new_address()
        else:
            reward = _str(reward_address, "reward_address")
            self._check_address(reward)
        request = prepare_request(node.network.name, node.key.public,
                                  address, reward, outpoint, owner)
        return {"request": encode_request(request),
                "operator_pubkey": node.key.public.hex(),
                "p2p_address": address, "reward_address": reward,
                "collateral_address": owner,
                "collateral_amount": params.format_amount(entry.value),
                "tier": tier_for(entry.value)}

    def rpc_signmasternoderegistration(self, request: Any) -> dict[str, Any]:
        """
        signmasternoderegistration "request"

        Step 2 of 3, on the node whose wallet holds the collateral
        address (or offline: timecoin-cli signmasternoderegistration
        REQUEST KEYFILE, with a key as dumpprivkey prints it or a wallet
        file): sign a request from registermasternode_prepare with the
        key of its collateral address, consenting to back that operator
        key.  Check the fields shown before handing the result back.
        Returns {signed (hex: give it to the operator's node for
        registermasternode_submit), operator_pubkey, p2p_address,
        reward_address, collateral (txid:vout), collateral_address}.  The
        operator key is never needed here.  Errors: -8 malformed request
        or one of another network, -4 the collateral address is not in
        this wallet, -13 locked.
        """
        from timecoin.encoding import EncodingError
        from timecoin.registration import (
            decode_request,
            encode_request,
            request_outpoint,
            sign_request,
        )
        node = self.node
        try:
            unsigned = decode_request(request, signed=False)
        except EncodingError as e:
            raise RPCError(RPC_INVALID_PARAMETER, str(e)) from None
        if unsigned["network"] != node.network.name:
            raise RPCError(RPC_INVALID_PARAMETER, "the request is for "
                           f"{unsigned['network']}, this node runs "
                           f"{node.network.name}")
        owner = unsigned["collateral_address"]
        if not node.wallet.owns(owner):
            raise RPCError(-4, f"the collateral address {owner} is not in "
                           "this wallet")
        signed = sign_request(unsigned, node.wallet.key_for(owner))
        return {"signed": encode_request(signed),
                "operator_pubkey": signed["pubkey"],
                "p2p_address": signed["p2p_address"],
                "reward_address": signed["reward_address"],
                "collateral": str(request_outpoint(signed)),
                "collateral_address": owner}

    def rpc_registermasternode_submit(self, signed: Any) -> Any:
        """
        registermasternode_submit "signed"

        Step 3 of 3, on the operator's node: check the collateral owner's
        signature of a request signed by signmasternoderegistration, add
        this node's (the operator's), and send the registration, its fee
        paid from this wallet (never from a collateral).  Returns the
        txid; once it is mined the node activates its masternode by
        itself, as after registermasternode.  Errors: -8 malformed, for
        another network or another operator key, or a bad collateral
        signature (changed after signing); -6 no coin for the fee; -13
        locked; -26 refused (bad-registration: collateral spent or
        already used, operator already registered).
        """
        from timecoin.encoding import EncodingError
        from timecoin.registration import complete_request, decode_request
        from timecoin.wallet import fund_registration
        node = self.node
        try:
            request = decode_request(signed, signed=True)
            if request["network"] != node.network.name:
                raise EncodingError(f"the request is for "
                                    f"{request['network']}, this node runs "
                                    f"{node.network.name}")
            data = complete_request(request, node.key)
        except EncodingError as e:
            raise RPCError(RPC_INVALID_PARAMETER, str(e)) from None
        tx = fund_registration(node.wallet, node.spendable(), data,
                               node.network.name)
        return self._submit(tx)
    # Deposits and wallet history (issue 16: what exchanges call)
    #
    # Entries of listtransactions, listsinceblock and gettransaction's
    # details come from the wallet's history (timecoin.wallettxs): final
    # transactions only.  confirmations counts blocks, as in Bitcoin; a
    # finalized transaction not yet in a block has 0 and is already final
    # (it cannot be reversed, replaced or double-spent): its entries say
    # trusted true and final true.

    def _history_common(self, wtx: WalletTx) -> dict[str, Any]:
        obj: dict[str, Any] = {"final": True}
        if wtx.height is None:
            obj["confirmations"] = 0
            obj["trusted"] = True
        else:
            obj["confirmations"] = self._confirmations(wtx.height)
            assert wtx.block_hash is not None
            obj.update({"blockhash": wtx.block_hash.hex(),
                        "blockheight": wtx.height,
                        "blockindex": wtx.block_index,
                        "blocktime": wtx.block_time})
        obj.update({"txid": wtx.txid.hex(), "time": wtx.time,
                    "timereceived": wtx.time, "bip125-replaceable": "no"})
        return obj

    def _history_entries(self, wtx: WalletTx, include_change: bool = False,
                         common: bool = True) -> list[dict[str, Any]]:
        """
        Bitcoin Core's entries of one wallet transaction: one per output
        paying the wallet (category receive, or generate for a coinbase;
        change only with include_change, as receive) and one per output
        the wallet paid to others (send, negative amount and fee).
        """
        base = self._history_common(wtx) if common else {}
        entries = []
        for vout, address, value, category in wtx.outputs:
            if category == "change":
                if not include_change:
                    continue
                category = "receive"
            entry: dict[str, Any] = {
                "address": address, "category": category,
                "amount": params.format_amount(
                    -value if category == "send" else value),
                "label": "", "vout": vout}
            if category == "send":
                if wtx.fee is not None:
                    entry["fee"] = params.format_amount(-wtx.fee)
                entry["abandoned"] = False
            entry.update(base)
            entries.append(entry)
        return entries

    def rpc_listtransactions(self, label: Any = None, count: Any = 10,
                             skip: Any = 0,
                             include_watchonly: Any = None) -> list[Any]:
        """
        listtransactions ( "label" count skip include_watchonly )

        The wallet's most recent final transactions, count entries
        (default 10) after skipping the skip most recent, oldest first, as
        Bitcoin Core's: [{address, category (receive, send or generate),
        amount (negative for send), label (always ""), vout, fee (send
        only, negative), abandoned (send only), final (always true),
        confirmations (blocks: 0 for a finalized transaction not yet in a
        block, which is final all the same), trusted (true when not yet
        in a block), blockhash, blockheight, blockindex, blocktime (once
        in a block), txid, time and timereceived (seconds since the
        epoch, when the node first saw it final), bip125-replaceable
        (always "no")}].  A transaction is listed once final: pending
        ones may still be rejected.  Change back to the wallet is not
        listed.  label: "*" (or null, or "", the label of every address)
        lists all; another label lists nothing (the wallet has no
        labels).  include_watchonly is accepted and ignored.  The history
        comes from the wallet's transaction log (see docs/operating.md,
        Exchanges).
        """
        wanted = "*" if label is None else _str(label, "label")
        number = _int(10 if count is None else count, "count")
        offset = _int(0 if skip is None else skip, "skip")
        _ignored_bool(include_watchonly, "include_watchonly")
        if wanted not in ("*", ""):
            return []
        entries: list[dict[str, Any]] = []
        for wtx in reversed(self.node.wallet_txs.order):
            if len(entries) >= number + offset:
                break
            entries[:0] = self._history_entries(wtx)
        end = len(entries) - offset
        return entries[max(0, end - number):max(0, end)]

    @defer.inlineCallbacks
    def rpc_listsinceblock(self, blockhash: Any = None,
                           target_confirmations: Any = 1,
                           include_watchonly: Any = None,
                           include_removed: Any = None,
                           include_change: Any = None,
                           label: Any = None) -> Any:
        """
        listsinceblock ( "blockhash" target_confirmations include_watchonly ... )

        (The full argument list: blockhash target_confirmations
        include_watchonly include_removed include_change label.)  The
        wallet's final transactions not in blockhash or its
        ancestors, that is in later blocks or in no block yet (all of
        them without blockhash), as Bitcoin Core's: {transactions
        (entries as listtransactions shows them, oldest first), removed
        (always empty: a final transaction is never removed), lastblock
        (the hash of the main-chain block target_confirmations - 1 below
        the tip, default the tip: pass it to the next call)}.  The way
        an exchange follows deposits: call with the lastblock of the
        previous call; a finalized transaction appears first with 0
        confirmations and again once in a block.  A blockhash off the
        main chain counts from its last main-chain ancestor.
        include_change true lists change outputs too (as receive);
        include_watchonly is accepted and ignored; label "*" or null
        lists all, another lists nothing.  Error -5 if the block is
        unknown.
        """
        depth = _int(1 if target_confirmations is None
                     else target_confirmations, "target_confirmations")
        if depth < 1:
            raise RPCError(RPC_INVALID_PARAMETER, "Invalid parameter")
        _ignored_bool(include_watchonly, "include_watchonly")
        removed = include_removed is None or _ignored_bool(
            include_removed, "include_removed")
        change = _ignored_bool(include_change, "include_change")
        wanted = "*" if label is None else _str(label, "label")
        since = -1
        if blockhash is not None and blockhash != "":
            block_hash = _hash(blockhash, "blockhash")
            block = yield self.node.block_by_hash(block_hash)
            if block is None:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
            while block is not None:
                main = yield self.node.store.get_block_hash(block.height)
                if main == block.hash:
                    since = block.height
                    break
                block = yield self.node.block_by_hash(block.header.prev_hash)
        transactions: list[dict[str, Any]] = []
        if wanted in ("*", ""):
            for wtx in self.node.wallet_txs.order:
                if wtx.height is None or wtx.height > since:
                    transactions += self._history_entries(wtx, change)
        chain = self.node.chain
        last_height = max(0, chain.height + 1 - depth)
        if last_height == chain.height:
            last = chain.tip.hash
        else:
            last = yield self.node.store.get_block_hash(last_height)
        out: dict[str, Any] = {"transactions": transactions}
        if removed:
            out["removed"] = []
        out["lastblock"] = last.hex() if last is not None else None
        return out

    def rpc_getreceivedbyaddress(self, address: Any, minconf: Any = 1,
                                 include_immature_coinbase: Any = None
                                 ) -> Decimal:
        """
        getreceivedbyaddress "address" ( minconf include_immature_coinbase )

        The total TIME paid to address (one of the wallet's) by final
        transactions with at least minconf confirmations (default 1, as
        Bitcoin Core; 0 counts finalized transactions not yet in a
        block, which are final already).  Change returning to the address
        counts, as in Bitcoin Core.  include_immature_coinbase is accepted
        and ignored (no coinbase maturity here).  Errors: -5 invalid
        address, -4 not an address of this wallet.
        """
        text = _str(address, "address")
        self._check_address(text)
        if not self.node.wallet.owns(text):
            raise RPCError(RPC_WALLET_ERROR, "Address not found in wallet")
        least = _int(1 if minconf is None else minconf, "minconf")
        _ignored_bool(include_immature_coinbase, "include_immature_coinbase")
        total = 0
        for wtx in self.node.wallet_txs.order:
            confirmations = 0 if wtx.height is None else \
                self._confirmations(wtx.height)
            if confirmations < least:
                continue
            total += sum(value for _, to, value, category in wtx.outputs
                         if to == text and category != "send")
        return params.format_amount(total)

    def rpc_sendmany(self, dummy: Any, amounts: Any, minconf: Any = None,
                     comment: Any = None, subtractfeefrom: Any = None,
                     replaceable: Any = None, conf_target: Any = None,
                     estimate_mode: Any = None, fee_rate: Any = None,
                     verbose: Any = None) -> Any:
        """
        sendmany "" {"address":amount,...} ( minconf "comment" ... )

        (The full argument list: dummy amounts minconf comment
        subtractfeefrom replaceable conf_target estimate_mode fee_rate
        verbose.)  Pay several addresses in one transaction from the wallet, with the
        minimum fee (on the total sent) and change back to the wallet;
        returns the txid (with verbose true {txid, fee_reason}).  dummy
        must be "" or "*" (Bitcoin Core's; null also passes); minconf,
        comment, replaceable, conf_target, estimate_mode and fee_rate are
        accepted and ignored as by sendtoaddress; subtractfeefrom must be
        empty (error -8 otherwise).  Errors: -5 bad address, -8
        duplicated address, -3 bad amount, -6 insufficient funds, -26
        refused (node-busy while the node is busy).
        """
        if dummy not in (None, "", "*"):
            raise RPCError(RPC_METHOD_DEPRECATED, 'Dummy value must be set '
                           'to ""')
        if not isinstance(amounts, dict) or not amounts:
            raise RPCError(INVALID_PARAMS, "amounts must be a non-empty "
                           "object address → amount")
        _ignored_int(minconf, "minconf")
        for value, name in ((comment, "comment"),
                            (estimate_mode, "estimate_mode")):
            if value is not None:
                _str(value, name)
        if subtractfeefrom is not None:
            if not isinstance(subtractfeefrom, list):
                raise RPCError(INVALID_PARAMS, "subtractfeefrom must be an "
                               "array")
            if subtractfeefrom:
                raise RPCError(RPC_INVALID_PARAMETER, "subtractfeefrom is "
                               "not supported: the fee is added to the "
                               "amounts")
        _ignored_bool(replaceable, "replaceable")
        _ignored_int(conf_target, "conf_target")
        if fee_rate is not None:
            _amount(fee_rate)
        pairs: list[tuple[str, int]] = []
        for address, amount in amounts.items():
            self._check_address(address)
            units = _amount(amount)
            if units <= 0:
                raise RPCError(RPC_TYPE_ERROR, "Invalid amount for send")
            pairs.append((address, units))
        node = self.node
        node.check_admission()
        tx = build_sendmany(node.wallet, node.spendable(), pairs,
                            node.network.name)
        d = node.submit(tx)
        if _ignored_bool(verbose, "verbose"):
            return _then(d, lambda txid: {"txid": txid.hex(),
                                          "fee_reason": "Minimum fee rule"})
        return _then(d, _hex)

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
        outpoint = OutPoint(_hash(txid, "txid"), _int(n, "n", 0, 2**32 - 1))
        mempool = include_mempool is None or _ignored_bool(
            include_mempool, "include_mempool")
        node = self.node
        entry = node.chain.utxos.get(outpoint)
        confirmations = None if entry is None else \
            self._confirmations(entry.height)
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
        block_hash = _hash(blockhash, "blockhash")
        level = _flag(verbose, "verbose", 1, 1)
        block = yield self.node.block_by_hash(block_hash)
        if block is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY, "Block not found")
        if level == 0:
            return canonical(block.header.to_obj()).hex()
        obj = yield self._header_with_position(block)
        return obj

    def rpc_getmempoolentry(self, txid: Any) -> dict[str, Any]:
        """
        getmempoolentry "txid"

        The mempool's entry of a transaction: {size, vsize (the same),
        fee and fees: {base, modified} (TIME), time (when it was received,
        seconds since the epoch), state (pending or finalized), votes
        (count), conflict (true for a contender), depends (txids of mempool
        transactions whose outputs it spends), spentby (mempool
        transactions spending its outputs), bip125-replaceable (always
        "no")}.  Error -5 if it is not in the mempool.
        """
        tx_hash = _hash(txid, "txid")
        mempool = self.node.mempool
        entry = mempool.entries.get(tx_hash)
        if entry is None:
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           "Transaction not in mempool")
        fee = params.format_amount(entry.fee)
        depends = sorted({i.prevout.txid.hex() for i in entry.tx.inputs
                          if i.prevout.txid in mempool.entries})
        spentby = sorted({mempool.locks[op].hex() for op in (
            OutPoint(tx_hash, n) for n in range(len(entry.tx.outputs)))
            if op in mempool.locks})
        return {"size": entry.tx.size, "vsize": entry.tx.size, "fee": fee,
                "fees": {"base": fee, "modified": fee},
                "time": int(entry.received), "state": entry.state,
                "votes": len(entry.votes), "conflict": entry.conflict,
                "depends": depends, "spentby": spentby,
                "bip125-replaceable": "no"}

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

    # Control

    @_any_time
    def rpc_uptime(self) -> int:
        """
        uptime

        Seconds since the node started.
        """
        return self.node.uptime()

    @_any_time
    def rpc_stop(self) -> str:
        """
        stop

        Stop the node.
        """
        log.info("stop requested over RPC")
        self.node.stop()
        return "timecoin stopping"

    @_any_time
    def rpc_help(self, command: Any = None) -> str:
        """
        help ( "command" )

        The list of methods, or the help of one.
        """
        methods = self.registry()
        if command is None:
            return "\n".join((inspect.getdoc(methods[name]) or name)
                             .splitlines()[0] for name in sorted(methods))
        name = _str(command, "command")
        if name not in methods:
            return f"help: unknown command: {name}"
        return inspect.getdoc(methods[name]) or name

    # Verification

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
        pinned = _PinnedStore(self.node.store, self.node.clock)
        out: dict[str, Any] = {"height": None, "utxo_hash_replayed": None,
                               "utxo_hash_stored": None, "ok": False,
                               "reason": None}
        try:
            result = yield replay(pinned, self.node.chain)
        except (BlockInvalid, _StoredChainBroken) as e:
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

    # Network

    def _p2p(self) -> Any:
        p2p = self.node.p2p
        if p2p is None:
            raise RPCError(RPC_CLIENT_P2P_DISABLED,
                           "P2P networking is disabled")
        return p2p

    @_any_time
    def rpc_getpeerinfo(self) -> Any:
        """
        getpeerinfo

        One object per connected peer: identity, address, direction,
        state, node key, height, ping round-trip time (rtt, seconds),
        bytes and messages sent and received, connection time.
        """
        return self._p2p().peer_info()

    @_any_time
    def rpc_getnetworkinfo(self) -> Any:
        """
        getnetworkinfo

        version (timecoin's as an integer, Bitcoin Core's way: 0.1.0 is
        100, 1.2.3 is 10203), subversion (/timecoin:0.1.0/, Bitcoin's
        BIP 14 form of the version), protocolversion
        (of the P2P protocol), then connection counts (in, out, total),
        listen address, peers being dialled, bans, and the P2P counters.
        """
        from timecoin import __version__
        from timecoin.p2p.messages import PROTOCOL_VERSION
        parts = [int(p) if p.isdigit() else 0
                 for p in __version__.split(".")[:3]] + [0, 0, 0]
        return {"version": parts[0] * 10_000 + parts[1] * 100 + parts[2],
                "subversion": f"/timecoin:{__version__}/",
                "protocolversion": PROTOCOL_VERSION,
                **self._p2p().network_info()}

    @_any_time
    def rpc_getconnectioncount(self) -> int:
        """
        getconnectioncount

        The number of peers with a completed handshake.
        """
        return len(self._p2p().peer_info())

    @_any_time
    def rpc_setban(self, peer: Any, command: Any = "add",
                   bantime: Any = None) -> None:
        """
        setban "peer" ( "add|remove" bantime )

        Ban a peer identity (an IP; ip:port on loopback) for bantime
        seconds (default the configured ban_seconds) and drop its
        connections, or lift its ban.
        """
        key = _str(peer, "peer")
        action = _str(command, "command")
        if action == "add":
            seconds = None if bantime is None else _seconds(
                bantime, "bantime", 10 * 365 * 86400)
            self._p2p().set_ban(key, seconds)
        elif action == "remove":
            self._p2p().clear_ban(key)
        else:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "command must be add or remove")
        return None

    @_any_time
    def rpc_listbanned(self) -> Any:
        """
        listbanned

        Current bans: [{address, banned_until}] (banned_until in seconds
        since the epoch).
        """
        return [{"address": key, "banned_until": int(until)}
                for key, until in sorted(self._p2p().banned().items())]

    @_any_time
    def rpc_clearbanned(self) -> None:
        """
        clearbanned

        Lift every ban.
        """
        self._p2p().clear_ban()
        return None

    # Masternodes

    def rpc_masternodelist(self, status: Any = None) -> list[dict[str, Any]]:
        """
        masternodelist ( "status" )

        Every masternode on chain (or only those whose status is the given
        one), sorted by pubkey: [{pubkey, p2p_address, reward_address,
        tier, status (active: in the snapshot, votes and produces;
        registered: waiting for its operator's node to activate it;
        set-aside: missing from too many recent commit certificates),
        since (the height it became so; for active, the first height it
        votes at), reason and return_height (set aside only: why, and
        from which height an activation may bring it back), weight
        (voting weight under the quorum rule, 0 unless active), alive
        (heartbeat heard within the liveness expiry), last_seen (seconds
        since the epoch of its last heartbeat, or null), reported_height
        (the height its last heartbeat reported, or null), is_self,
        collateral (txid:vout, null for genesis masternodes),
        collateral_amount, registered_height}].
        """
        wanted = None if status is None else _str(status, "status")
        if wanted not in (None, "active", "registered", "set-aside"):
            raise RPCError(INVALID_PARAMS, "status must be active, "
                           "registered or set-aside")
        return masternode_rows(self.node, wanted)

    @defer.inlineCallbacks
    def rpc_activatemasternode(self) -> Any:
        """
        activatemasternode

        Put the activation of this node's masternode on chain now (the
        node sends it by itself once synced; see auto_activate): signed by
        the node key, its fee paid from the wallet (never from a
        collateral).  Returns the txid; the masternode is active from the
        block after the one that includes it.  Errors: -26 not due
        (bad-activation: not a registered masternode, already active,
        set aside until a later height, one already waiting), -6 no coin
        to pay the fee.
        """
        txid = yield self.node.participation.activate()
        return txid.hex()

    @defer.inlineCallbacks
    def rpc_registermasternode(self, collateral_txid: Any, vout: Any,
                               p2p_address: Any = None,
                               reward_address: Any = None) -> Any:
        """
        registermasternode "collateral_txid" vout ( "p2p_address" "reward_address" )

        Register this node's key as a masternode, backed by the wallet's
        unspent output collateral_txid:vout (its value sets the tier: gold
        from 100,000 TIME, silver 10,000, bronze 1,000, free below);
        spending that output later deregisters it.  p2p_address defaults
        to this node's P2P address, reward_address to a new wallet
        address.  The fee is paid from another wallet coin.  Returns the
        txid.  Once it is mined the masternode is registered, without
        weight; this node, once synced, puts its activation on chain by
        itself (see activatemasternode), and it is active from the block
        after that.  To keep the collateral in another wallet, use
        registermasternode_prepare instead.  Errors: -8 collateral not in
        the wallet, -6 nothing to pay the fee with, -13 wallet locked,
        -26 refused (bad-registration: operator already registered,
        collateral already used).
        """
        from timecoin.tx import OutPoint
        from timecoin.wallet import build_registration
        txid = _hash(collateral_txid, "collateral_txid")
        index = _int(vout, "vout", 0, 2**32 - 1)
        node = self.node
        address = _str(p2p_address, "p2p_address") if p2p_address is not None \
            else f"{node.config.p2p_bind}:{node.config.p2p_port}"
        if reward_address is None:
            reward = node.new_address()
        else:
            reward = _str(reward_address, "reward_address")
            self._check_address(reward)
        try:
            tx = build_registration(node.wallet, node.spendable(), node.key,
                                    address, reward, OutPoint(txid, index),
                                    node.network.name)
        except WalletError as e:
            raise RPCError(e.code, str(e)) from None
        result = yield node.submit(tx)
        return result.hex()

    def rpc_masternodestatus(self) -> dict[str, Any]:
        """
        masternodestatus

        This node as a masternode: {is_masternode (in the next height's
        snapshot), pubkey, address (of the node key), status (active,
        waiting-for-activation, activating, set-aside, or
        not-a-masternode), detail (the status in words), since (the
        height of that status), reason and return_height (set aside
        only), alive, last_seen, next_producer
        (whether it proposes round 0 of the next height), blocks_produced
        (since start), last_block ({height, hash, producer, round, time,
        time_ms, ntx, size} of the newest block it produced that the node
        has seen since start or among the last 256 blocks at start, or
        null)}, plus tier, weight, p2p_address and reward_address when it
        is a masternode.
        """
        return masternode_status(self.node, self.history)

    def rpc_getconsensusinfo(self) -> dict[str, Any]:
        """
        getconsensusinfo

        The consensus rules at the next height: {height, quorum (the rule:
        count or tier-weighted), threshold (the weight a block or a
        transaction needs: at least two thirds of total_weight),
        total_weight (of the snapshot), policy (the selection policy),
        snapshot_size, next_producers (round 0's candidates, first is the
        proposer), block_time and vote_timeout (seconds), and round
        ({height, round, step} of block consensus, when the node runs
        it)}.
        """
        return consensus_info(self.node)


class _StoredChainBroken(Exception):
    """
    The stored chain lacks data a replay needs (a height, block or undo).
    """


@implementer(IChainStore)
class _PinnedStore:
    """
    A read-only view of a live store for L{replay}, pinned at one tip.

    C{tip()} reads the tip and the whole UTXO set together (retrying while
    blocks land in between), so that the replay, which stops at that tip,
    compares against the UTXO set of the same height even while the node
    keeps connecting blocks.  Every L{VERIFY_YIELD_EVERY} heights the
    replay waits one reactor turn, so a long replay on a synchronous store
    (SQLite) does not starve the node.

    @ivar reading: the height whose block the replay read last.
    @ivar pinned: C{(height, hash)} of the tip, once read.
    """

    def __init__(self, store: IChainStore, clock: Any) -> None:
        self._store = store
        self._clock = clock
        self._utxos: list[tuple[bytes, bytes]] = []
        self.pinned: tuple[int, bytes] | None = None
        self.reading = 0

    def stored_hash(self) -> bytes:
        """
        The utxo_hash of the pinned stored UTXO set.
        """
        return sha256(b"".join(k + v for k, v in sorted(self._utxos)))

    @defer.inlineCallbacks
    def tip(self) -> Any:
        """
        Read and pin the tip with the UTXO set at that tip.
        """
        for _ in range(VERIFY_PIN_ATTEMPTS):
            before = yield self._store.tip()
            utxos = yield self._store.load_utxos()
            after = yield self._store.tip()
            if before == after:
                if after is None:
                    raise _StoredChainBroken("the store is empty")
                self._utxos, self.pinned = utxos, after
                return after
        raise StoreError(f"the tip kept moving during "
                         f"{VERIFY_PIN_ATTEMPTS} reads of the UTXO set")

    def load_utxos(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        The UTXO set read with the pinned tip.
        """
        return defer.succeed(self._utxos)

    @defer.inlineCallbacks
    def get_block_hash(self, height: int) -> Any:
        """
        The stored hash at C{height}; pauses a reactor turn now and then.
        """
        self.reading = height
        if height % VERIFY_YIELD_EVERY == 0:
            yield task.deferLater(self._clock, 0, lambda: None)
        block_hash = yield self._store.get_block_hash(height)
        if block_hash is None:
            raise _StoredChainBroken(f"no block hash stored at height "
                                     f"{height}")
        return block_hash

    @defer.inlineCallbacks
    def get_block(self, block_hash: bytes) -> Any:
        """
        The stored block C{block_hash}; missing is broken.
        """
        raw = yield self._store.get_block(block_hash)
        if raw is None:
            raise _StoredChainBroken(f"block {block_hash.hex()} not stored")
        return raw

    @defer.inlineCallbacks
    def get_undo(self, block_hash: bytes) -> Any:
        """
        The stored undo data of C{block_hash}; missing is broken.
        """
        raw = yield self._store.get_undo(block_hash)
        if raw is None:
            raise _StoredChainBroken(f"undo data of {block_hash.hex()} not "
                                     f"stored")
        return raw

    def open(self) -> defer.Deferred[None]:
        """
        Nothing: the node's store is already open.
        """
        return defer.succeed(None)

    def close(self) -> defer.Deferred[None]:
        """
        Nothing: the node owns its store.
        """
        return defer.succeed(None)

    def get_meta(self, key: str) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_meta(key)

    def get_utxo(self, key: bytes) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_utxo(key)

    def get_tx_location(
            self, txid: bytes) -> defer.Deferred[tuple[int, bytes] | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_tx_location(txid)

    def load_tx_records(self) -> defer.Deferred[list[tuple[bytes, bytes]]]:
        """
        Delegate to the node's store.
        """
        return self._store.load_tx_records()

    def get_tx_record(self, txid: bytes) -> defer.Deferred[bytes | None]:
        """
        Delegate to the node's store.
        """
        return self._store.get_tx_record(txid)

    def _read_only(self, *args: Any) -> defer.Deferred[None]:
        return defer.fail(StoreError("verifychain never writes"))

    def put_meta(self, key: str, value: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(key, value)

    def apply_block(self, change: BlockChange) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(change)

    def revert_block(self, change: BlockRevert) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(change)

    def put_tx_record(self, txid: bytes, record: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(txid, record)

    def delete_tx_record(self, txid: bytes) -> defer.Deferred[None]:
        """
        Refused: a read-only view.
        """
        return self._read_only(txid)


# The HTTP side ---------------------------------------------------------


class RPCServer:
    """
    JSON-RPC over HTTP: authentication (with the failed-login throttle),
    body limit, framing, dispatch to a method registry with at most
    C{limits.max_waiting} long-polls at once (see L{timecoin.rpclimits}).

    @ivar counters: requests, calls, errors and auth failures since start.
    @ivar waiting: long-polls (L{LONG_POLLS}) running now.
    @ivar observe: called with C{(method, seconds)} as each call of a known
        method completes, successful or not (the RPC-latency metric).
    """

    app = Klein()

    def __init__(self, methods: dict[str, Callable[..., Any]],
                 auth: BasicAuth, max_body_bytes: int,
                 ready: Callable[[], bool] = lambda: True,
                 max_batch: int = MAX_BATCH,
                 metrics: Callable[[], bytes] | None = None,
                 health: Callable[[], tuple[bool, dict[str, Any]]]
                 | None = None,
                 status: Callable[[], dict[str, Any]] | None = None,
                 observe: Callable[[str, float], None] | None = None,
                 limits: RPCLimits | None = None,
                 clock: IReactorTime | None = None,
                 refusals: Refusals | None = None) -> None:
        self.limits = limits if limits is not None else RPCLimits()
        self.clock = clock
        # Without a clock (in-process callers of handle_body) no failed
        # login is delayed, and refusals are logged (not rate-limited nor
        # counted by reason) unless a Refusals is given.
        self.throttle = (LoginThrottle(clock, self.limits)
                         if clock is not None else None)
        self.refusals = refusals if refusals is not None else (
            Refusals(clock) if clock is not None else None)
        self.waiting = 0
        self.metrics = metrics
        self.observe = observe
        self.health = health
        self.status = status
        self.methods = methods
        self.auth = auth
        self.max_body_bytes = max_body_bytes
        self.ready = ready
        self.max_batch = max_batch
        self.counters = {"requests": 0, "calls": 0, "errors": 0,
                         "auth_failures": 0, "too_large": 0}
        self._signatures: dict[str, tuple[
            Callable[..., Any], inspect.Signature,
            tuple[int, int] | None]] = {}

    @app.route("/metrics", methods=["GET"])
    def get_metrics(self, request: server.Request) -> Any:
        """
        Prometheus text exposition of the node's metrics; needs the RPC
        credentials unless C{[rpc] metrics_open}.
        """
        if not self.limits.metrics_open:
            refused = self._refuse_auth(request)
            if refused is not None:
                return refused
        if self.metrics is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return error_body(METHOD_NOT_FOUND, "no metrics")
        request.setHeader(b"Content-Type",
                          b"text/plain; version=0.0.4; charset=utf-8")
        return self.metrics()

    @app.route("/health", methods=["GET"])
    def get_health(self, request: server.Request) -> bytes:
        """
        200 with {"status": "ready", ...} when the node is started and
        connected (or is its network's only masternode); 503 otherwise.
        """
        request.setHeader(b"Content-Type", b"application/json")
        ok, detail = (self.health() if self.health is not None
                      else (self.ready(), {}))
        if not ok:
            request.setResponseCode(503)
        return dumps({"status": "ready" if ok else "not-ready", **detail})

    def _refused(self, reason: str, request: server.Request) -> None:
        """
        Count and log (rate-limited) one refused request.
        """
        if self.refusals is not None:
            self.refusals.refused(reason, _client(request),
                                  path=_loggable(request.path))
        else:
            log.info("RPC request from {client} refused: {reason}",
                     client=_client(request), reason=reason)

    def _refuse_auth(self, request: server.Request) -> Any:
        """
        C{None} if C{request} carries valid credentials (its connection
        then counts as authenticated); else the reply to send: 401 (after
        the failed-login delay of its source, as a Deferred, once past its
        free failures), or 429 at once, unchecked, while an earlier
        failure of its source waits for its answer.
        """
        given = BasicAuth.credentials(request.getHeader(b"authorization"))
        throttle = self.throttle
        if given is not None and throttle is not None and throttle.active():
            source = source_of(client_host(request))
            wait = throttle.wait(source)
            if wait > 0:
                self._refused("login-throttled", request)
                request.setResponseCode(429)
                request.setHeader(b"Retry-After", b"%d" % (int(wait) + 1))
                request.setHeader(b"Content-Type", b"application/json")
                return error_body(LOGIN_THROTTLED, f"Too many failed logins "
                                  f"from {source}: retry in {wait:.2f} s")
        if given is not None and self.auth.accepts(given):
            channel = getattr(request, "channel", None)
            if isinstance(channel, RPCChannel):
                channel.mark_authenticated()
            return None
        self.counters["auth_failures"] += 1
        self._refused("bad-auth", request)
        request.setResponseCode(401)
        request.setHeader(b"WWW-Authenticate", b'Basic realm="jsonrpc"')
        request.setHeader(b"Content-Type", b"application/json")
        body = error_body(UNAUTHORIZED, "Unauthorized: HTTP Basic "
                          "credentials required (cookie or rpcuser)")
        if given is None or throttle is None:
            return body
        delay = throttle.failed(source_of(client_host(request)))
        if delay <= 0 or self.clock is None:
            return body
        return _later(self.clock, delay, body)

    @app.route("/", methods=["GET"])
    def get_status_page(self, request: server.Request) -> bytes:
        """
        The status page (HTML, see L{timecoin.status}); needs the RPC
        credentials, so a browser gets a Basic challenge.
        """
        refused = self._refuse_auth(request)
        if refused is not None:
            return refused
        if self.status is None:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"application/json")
            return error_body(METHOD_NOT_FOUND, "no status page")
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-store")
        return render_page(self.status())

    @app.route("/status.json", methods=["GET"])
    def get_status_json(self, request: server.Request) -> bytes:
        """
        The data of the status page as JSON; needs the RPC credentials.
        """
        refused = self._refuse_auth(request)
        if refused is not None:
            return refused
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        if self.status is None:
            request.setResponseCode(404)
            return error_body(METHOD_NOT_FOUND, "no status page")
        return dumps(self.status())

    @app.route("/", methods=["POST"])
    def rpc(self, request: server.Request) -> Any:
        """
        Serve one HTTP request: check auth and size, then run its body.
        """
        self.counters["requests"] += 1
        request.setHeader(b"Content-Type", b"application/json")
        refused = self._refuse_auth(request)
        if refused is not None:
            return refused
        body = self._read_body(request)
        if body is None:
            self.counters["too_large"] += 1
            self._refused("body-too-large", request)
            request.setResponseCode(413)
            return error_body(INVALID_REQUEST, f"Request body larger than "
                              f"{self.max_body_bytes} bytes")
        def respond(outcome: tuple[int, bytes | None]) -> bytes:
            status, payload = outcome
            request.setResponseCode(status)
            if payload is None:
                request.responseHeaders.removeHeader(b"Content-Type")
                return b""
            return payload

        outcome = self._handle(body, _reads_error_member(request))
        if isinstance(outcome, defer.Deferred):
            return outcome.addCallback(respond)
        return respond(outcome)

    @app.handle_errors(Exception)
    def failed(self, request: IRequest, failure: Failure) -> bytes:
        """
        Turn every failure of routing or serving into a JSON response:
        the HTTP error of an unknown path or method, else an internal
        error (logged, never shown).
        """
        request.setHeader(b"Content-Type", b"application/json")
        if failure.check(HTTPException):
            error = failure.value
            assert isinstance(error, HTTPException)
            status = error.code or 500
            if status == 405:
                request.setHeader(b"Allow", b"GET, POST")
            request.setResponseCode(status)
            return error_body(INVALID_REQUEST, f"{status} {error.name}: "
                              f"JSON-RPC is served by POST /")
        log.failure("RPC request failed", failure)
        request.setResponseCode(500)
        return error_body(INTERNAL_ERROR, "Internal error")

    def _read_body(self, request: server.Request) -> bytes | None:
        if getattr(request, "body_too_large", False):
            return None
        length = request.getHeader(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body_bytes:
                    return None
            except ValueError:
                pass
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        body = content.read(self.max_body_bytes + 1)
        return None if len(body) > self.max_body_bytes else body

    def handle_body(self, body: bytes) -> defer.Deferred[Any]:
        """
        Run a request body; fire with C{(HTTP status, response body or
        None)}.
        """
        return defer.maybeDeferred(self._handle, body)

    def _handle(self, body: bytes, error_member: bool = False) -> Any:
        """
        L{handle_body}'s work: its outcome at once when no method had to
        wait (the common case), else a Deferred of it.  With
        C{error_member} (a client known to read C{"error"} in every
        reply: L{LEGACY_REPLY_AGENTS}) 2.0 replies of a batch carry
        C{"error": null} on success.
        """
        try:
            payload = json.loads(body, parse_float=Decimal,
                                 parse_constant=_refuse_constant)
        except (ValueError, RecursionError, ArithmeticError):
            # ArithmeticError: decimal.InvalidOperation for a number whose
            # exponent Decimal cannot hold (1e99999999999999999999).
            return 500, error_body(PARSE_ERROR, "Parse error")
        if _too_deep(body, payload):
            return 500, error_body(PARSE_ERROR, f"Parse error: nested "
                                   f"deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(payload, list):
            if not payload:
                return 400, error_body(INVALID_REQUEST, "Empty batch")
            if len(payload) > self.max_batch:
                return 400, error_body(
                    INVALID_REQUEST, f"Batch of {len(payload)} requests "
                    f"exceeds {self.max_batch}")
            return self._run_batch(payload, 0, [], error_member)
        reply = self._call(payload)
        if isinstance(reply, defer.Deferred):
            return reply.addCallback(_single_outcome)
        return _single_outcome(reply)

    def _run_batch(self, items: list[Any], start: int,
                   replies: list[Any], error_member: bool = False) -> Any:
        """
        Run C{items[start:]} in order, adding their replies to
        C{replies}; the batch's outcome, or a Deferred of it from the
        first call that waits.
        """
        call = self._call
        for index in range(start, len(items)):
            reply = call(items[index])
            if isinstance(reply, defer.Deferred):
                return reply.addCallback(self._batch_resumed, items, index,
                                         replies, error_member)
            if reply is not None:
                replies.append(reply)
        if not replies:
            return 204, None
        if error_member:
            for reply in replies:
                reply.setdefault("error", None)
        return 200, dumps(replies)

    def _batch_resumed(self, reply: Any, items: list[Any], index: int,
                       replies: list[Any], error_member: bool) -> Any:
        if reply is not None:
            replies.append(reply)
        return self._run_batch(items, index + 1, replies, error_member)

    def call(self, obj: Any) -> defer.Deferred[Any]:
        """
        Run one request object; fire with its response object, or C{None}
        for a notification.
        """
        return defer.maybeDeferred(self._call, obj)

    def _call(self, obj: Any) -> Any:
        """
        L{call}'s work: the response object (or C{None}) at once, or a
        Deferred of it when the method waits.
        """
        if not isinstance(obj, dict):
            return _reply(_LEGACY, None, error=(
                INVALID_REQUEST, "Invalid Request object"))
        version = _LEGACY
        if "jsonrpc" in obj:
            if obj["jsonrpc"] == _V2:
                version = _V2
            elif obj["jsonrpc"] != _LEGACY:
                return _reply(_LEGACY, obj.get("id"), error=(
                    INVALID_REQUEST, "JSON-RPC version not supported"))
        request_id = obj.get("id")
        notification = version == _V2 and "id" not in obj
        try:
            result = self._dispatch(obj)
        except RPCError as e:
            reply = self._error_reply(e, obj, version, request_id)
        else:
            if isinstance(result, defer.Deferred):
                return result.addCallbacks(
                    self._result_reply, self._failed_reply,
                    (version, request_id, notification),
                    errbackArgs=(obj, version, request_id, notification))
            reply = _reply(version, request_id, result=result)
        return None if notification else reply

    @staticmethod
    def _result_reply(result: Any, version: str, request_id: Any,
                      notification: bool) -> Any:
        return None if notification else _reply(version, request_id,
                                                 result=result)

    def _failed_reply(self, failure: Failure, obj: dict[str, Any],
                      version: str, request_id: Any,
                      notification: bool) -> Any:
        failure.trap(RPCError)
        error = failure.value
        assert isinstance(error, RPCError)
        reply = self._error_reply(error, obj, version, request_id)
        return None if notification else reply

    def _error_reply(self, e: RPCError, obj: dict[str, Any], version: str,
                     request_id: Any) -> dict[str, Any]:
        self.counters["errors"] += 1
        if not e.message.startswith(NODE_BUSY):
            # Busy refusals come by the thousand under overload: the node
            # counts them and logs when it turns busy (Node.check_admission).
            log.debug("RPC {method} failed: {code} {message}",
                      method=_loggable(obj.get("method")), code=e.code,
                      message=_loggable(e.message))
        return _reply(version, request_id, error=(e.code, e.message))

    def _bind(self, method: str, function: Callable[..., Any],
              args: list[Any], kwargs: dict[str, Any]) -> tuple[
                  tuple[Any, ...], dict[str, Any]]:
        """
        The arguments to call C{function} with, checked against its
        signature (computed once per method).

        @raise RPCError: C{INVALID_PARAMS} if they do not fit.
        """
        cached = self._signatures.get(method)
        if cached is None or cached[0] != function:
            signature = inspect.signature(function)
            kinds = {p.kind for p in signature.parameters.values()}
            simple: tuple[int, int] | None = None
            if kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}:
                values = signature.parameters.values()
                simple = (sum(p.default is inspect.Parameter.empty
                              for p in values), len(values))
            cached = self._signatures[method] = (function, signature, simple)
        _, signature, simple = cached
        if simple is not None and not kwargs and \
                simple[0] <= len(args) <= simple[1]:
            # What bind() would accept, without its cost.
            return tuple(args), {}
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise RPCError(INVALID_PARAMS, f"Invalid params for {method}: "
                           f"{e}") from None
        return bound.args, bound.kwargs

    def _dispatch(self, obj: dict[str, Any]) -> Any:
        """
        Run the method C{obj} calls: its result at once, or a Deferred of
        it when the method waits.

        @raise RPCError: what the reply's error is (at once or, for a
            method that waits, as the Deferred's failure).
        """
        method = obj.get("method")
        if not isinstance(method, str):
            raise RPCError(INVALID_REQUEST, "Method must be a string")
        raw = obj.get("params")
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        if isinstance(raw, list):
            args = raw
        elif isinstance(raw, dict):
            kwargs = raw
        elif raw is not None:
            raise RPCError(INVALID_REQUEST, "Params must be an array or "
                           "object")
        function = self.methods.get(method)
        if function is None:
            raise RPCError(METHOD_NOT_FOUND, "Method not found")
        if not getattr(function, "any_time", False) and not self.ready():
            raise RPCError(RPC_IN_WARMUP, "The node is still starting")
        call_args, call_kwargs = self._bind(method, function, args, kwargs)
        long_poll = method in LONG_POLLS
        if long_poll:
            limit = self.limits.max_waiting
            if limit and self.waiting >= limit:
                if self.refusals is not None:
                    self.refusals.refused("too-many-waiting", "-",
                                          method=method)
                raise RPCError(TOO_MANY_WAITING, f"Too many waiting calls: "
                               f"{self.waiting} long-polls are running, the "
                               f"limit ([rpc] max_waiting); retry later")
            self.waiting += 1
        self.counters["calls"] += 1
        started = time.monotonic()
        try:
            result = function(*call_args, **call_kwargs)
            if isinstance(result, defer.Deferred):
                result = _settle(result)
        except Exception:
            result = Failure()
        if isinstance(result, defer.Deferred):
            if long_poll:
                result.addBoth(self._wait_over)
            return result.addBoth(self._finished, method, started)
        if long_poll:
            self.waiting -= 1
        return self._finished(result, method, started)

    def _wait_over(self, result: Any) -> Any:
        """
        A long-poll ended (answered, failed or cancelled).
        """
        self.waiting -= 1
        return result

    def _finished(self, result: Any, method: str, started: float) -> Any:
        """
        Record the call's latency; translate a failure into the
        L{RPCError} to answer (raised).
        """
        if self.observe is not None:
            self.observe(method, time.monotonic() - started)
        if not isinstance(result, Failure):
            return result
        error = result.value
        if isinstance(error, RPCError):
            raise error
        if isinstance(error, WalletError):
            raise RPCError(error.code, str(error))
        if isinstance(error, TxInvalid):
            raise RPCError(RPC_VERIFY_REJECTED, str(error))
        if isinstance(error, AddressError):
            raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                           f"Invalid address: {error}")
        if isinstance(error, defer.CancelledError):
            result.raiseException()
        log.failure("RPC method {method} failed", result, method=method)
        raise RPCError(INTERNAL_ERROR, "Internal error")


LEGACY_REPLY_AGENTS = (b"AuthServiceProxy/",)
"""User-Agent prefixes of clients that read C{"error"} in every reply of a
batch, even a JSON-RPC 2.0 one: python-bitcoinrpc's C{batch_} sends 2.0
requests and indexes C{response["error"]}, written when Bitcoin Core
answered every request in 1.0 shape (upstream bug
jgarzik/python-bitcoinrpc#112; Bitcoin Core 28 breaks it too).  Their 2.0
batch replies get C{"error": null} on success; every other client gets
replies exactly as JSON-RPC 2.0 specifies."""


def _reads_error_member(request: server.Request) -> bool:
    """
    Whether C{request} comes from a client of L{LEGACY_REPLY_AGENTS}.
    """
    agent = request.getHeader(b"user-agent") or b""
    return agent.startswith(LEGACY_REPLY_AGENTS)


def _single_outcome(reply: Any) -> tuple[int, bytes | None]:
    if reply is None:
        return 204, None
    return _status_of(reply), dumps(reply)


def _too_deep(body: bytes, payload: Any) -> bool:
    """
    Whether C{payload} (parsed from C{body}) nests arrays and objects
    deeper than L{MAX_JSON_DEPTH}; walked level by level, without
    recursion, and only when C{body} has enough brackets to be.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH \
            or not isinstance(payload, (list, dict)):
        return False
    level = [payload]
    for _ in range(MAX_JSON_DEPTH):
        inner: list[Any] = []
        for value in level:
            items = value.values() if isinstance(value, dict) else value
            inner.extend(v for v in items if isinstance(v, (list, dict)))
        if not inner:
            return False
        level = inner
    return True


def _loggable(text: Any) -> str:
    """
    A client-supplied value made safe for a log line: printable ASCII
    (escapes for control characters, lone surrogates and the like, so
    nothing can forge a line or break a UTF-8 log file), at most 200
    characters.
    """
    if isinstance(text, str) and text.isascii() and text.isprintable():
        return text[:200]
    return ascii(text)[:200]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _reply(version: str, request_id: Any, result: Any = None,
           error: tuple[int, str] | None = None) -> dict[str, Any]:
    err = None if error is None else {"code": error[0], "message": error[1]}
    if version == _V2:
        reply: dict[str, Any] = {"jsonrpc": _V2}
        if err is None:
            reply["result"] = result
        else:
            reply["error"] = err
        reply["id"] = request_id
        return reply
    return {"result": result if err is None else None, "error": err,
            "id": request_id}


def _status_of(reply: dict[str, Any]) -> int:
    """
    The HTTP status of a single reply, as Bitcoin Core sets it.
    """
    error = reply.get("error")
    if "jsonrpc" in reply or error is None:
        return 200
    return {INVALID_REQUEST: 400, METHOD_NOT_FOUND: 404}.get(
        error["code"], 500)


def _later(clock: IReactorTime, delay: float, value: Any) -> Any:
    """
    A Deferred firing with C{value} after C{delay} seconds of C{clock};
    cancelling it (the client hung up) cancels the timer.
    """
    call = None

    def cancel(_: defer.Deferred[Any]) -> None:
        if call is not None and call.active():
            call.cancel()

    d: defer.Deferred[Any] = defer.Deferred(cancel)
    call = clock.callLater(delay, d.callback, value)
    return d


def _client(request: server.Request) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return str(host) if host is not None else str(address)


# The site --------------------------------------------------------------


class BoundedRequest(server.Request):
    """
    A request that stops buffering its body past the site's
    C{max_body_bytes} (and flags itself C{body_too_large}), so an
    oversized body costs neither memory nor disk.
    """

    body_too_large = False
    content: Any

    def _limit(self) -> int | None:
        site = getattr(self.channel, "site", None)
        return getattr(site, "max_body_bytes", None)

    def gotLength(self, length: int | None) -> None:
        limit = self._limit()
        if limit is not None and length is not None and length > limit:
            self.body_too_large = True
            self.content = BytesIO()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        limit = self._limit()
        if limit is not None and self.content.tell() + len(data) > limit:
            self.body_too_large = True
            self.content = BytesIO()
            return
        super().handleContentChunk(data)


class RPCSite(server.Site):
    """
    The RPC HTTP site; deletes its cookie file when it stops listening.

    With C{limits} (and the C{clock} its timeouts run on), its connections
    are L{RPCChannel}s counted by C{limiter}: at most
    C{limits.max_connections}, idle and request timeouts (see
    L{timecoin.rpclimits}); refusals go to C{refusals}.
    """

    displayTracebacks = False
    protocol = RPCChannel  # type: ignore[assignment]

    def __init__(self, resource: Any, max_body_bytes: int,
                 cookie: tuple[Path, str] | None = None,
                 limits: RPCLimits | None = None,
                 clock: IReactorTime | None = None,
                 refusals: Refusals | None = None) -> None:
        if limits is None or clock is None:
            super().__init__(resource, requestFactory=BoundedRequest)
            self.limiter: ConnectionLimiter | None = None
        else:
            # Twisted's own idle timer is off: the channels keep theirs.
            super().__init__(resource, requestFactory=BoundedRequest,
                             timeout=None, reactor=clock)
            self.refusals = (refusals if refusals is not None
                             else Refusals(clock))
            self.limiter = ConnectionLimiter(limits.max_connections,
                                             self.refusals)
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.cookie = cookie

    def buildProtocol(self, addr: Any) -> Any:
        """
        A channel for a new connection, or C{None} (Twisted closes the
        socket at once) when it cannot be admitted.
        """
        if self.limiter is not None and not self.limiter.admit(
                _host(addr)):
            return None
        return super().buildProtocol(addr)

    def log(self, request: Any) -> None:
        """
        Access lines at debug level only: a busy RPC client would otherwise
        write one info line per call.
        """
        log.debug("RPC HTTP {method} {uri} {code} from {client}",
                  method=request.method, uri=request.uri,
                  code=request.code, client=_client(request))

    def stopFactory(self) -> None:
        super().stopFactory()
        if self.cookie is not None:
            remove_cookie(*self.cookie)


def _host(address: Any) -> str:
    host = getattr(address, "host", None)
    return str(host) if host is not None else str(address)


def build_rpc_site(node: Node, config: Config) -> server.Site:
    """
    The RPC site of C{node}: writes a fresh cookie to C{config.datadir},
    accepts it, the configured C{rpc_user}/C{rpc_password} and the users
    of C{rpc_auth}, serves only loopback and C{rpc_allow_ip} clients,
    limits request bodies to C{config.rpc_max_body_bytes}, and applies the
    other C{[rpc]} limits (L{timecoin.rpclimits}) on C{node.clock}.
    """
    path, secret = write_cookie(Path(config.datadir))
    pairs = [(COOKIE_USER, secret)]
    if config.rpc_user and config.rpc_password:
        pairs.append((config.rpc_user, config.rpc_password))
    rpcauth = [RPCAuthLine.parse(line) for line in config.rpc_auth]
    from timecoin.metrics import NodeMetrics
    metrics = NodeMetrics(node)
    methods = RPCMethods(node)
    history = methods.history
    limits = RPCLimits.from_config(config)
    refusals = Refusals(node.clock)
    rpc = RPCServer(methods.registry(), BasicAuth(pairs, rpcauth),
                    config.rpc_max_body_bytes,
                    ready=lambda: bool(node.ready.called),
                    metrics=metrics.render, health=node.health,
                    status=lambda: status_data(node, history),
                    observe=metrics.observe_rpc, limits=limits,
                    clock=node.clock, refusals=refusals)
    log.info("RPC cookie written to {path}", path=str(path))
    resource = AllowIPResource(rpc.app.resource(),
                               AllowList(config.rpc_allow_ip),
                               refused=refusals.refused)
    site = RPCSite(resource, config.rpc_max_body_bytes, (path, secret),
                   limits=limits, clock=node.clock, refusals=refusals)
    limiter = site.limiter
    metrics.watch_rpc(refusals.counts,
                      lambda: len(limiter) if limiter is not None else 0,
                      lambda: rpc.waiting)
    return site
