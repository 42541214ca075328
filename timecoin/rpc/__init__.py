"""
The node's JSON-RPC server: Bitcoin-compatible, on Klein, at C{POST /}.

What lives where
================
- L{timecoin.rpc.site}: L{build_rpc_site<timecoin.rpc.site.build_rpc_site>}
  (the wiring of a node's RPC), C{RPCSite} and C{BoundedRequest} (HTTP
  connections and bodies).
- L{timecoin.rpc.server}: C{RPCServer}, the Klein routes: authentication,
  body limit, status page, C{/metrics}, C{/health}, C{POST /}.
- L{timecoin.rpc.dispatch}: C{Dispatcher}, JSON-RPC framing, batches and
  dispatch to the method table, long-poll cap.
- L{timecoin.rpc.methods}: C{RPCMethods}, the area objects of one node
  and their one method table; C{AREAS}.
- The areas, one class of C{rpc_NAME} methods each (a method's
  docstring is its C{help} text, usage line first):
  L{timecoin.rpc.chain}, L{timecoin.rpc.transactions},
  L{timecoin.rpc.mempool}, L{timecoin.rpc.wallet},
  L{timecoin.rpc.walletkeys}, L{timecoin.rpc.history},
  L{timecoin.rpc.network}, L{timecoin.rpc.masternodes} (two classes:
  status and registration), L{timecoin.rpc.control}.
- Helpers of the areas: L{timecoin.rpc.table} (C{any_time}, merging the
  areas' tables), L{timecoin.rpc.params} (param checks),
  L{timecoin.rpc.shapes} (JSON shapes of transactions, blocks, wallet
  entries), L{timecoin.rpc.deferreds}, L{timecoin.rpc.pinned} (the store
  view C{verifychain} replays).
- L{timecoin.rpc.errors} (codes, C{RPCError}), L{timecoin.rpc.codec}
  (JSON with Decimal amounts, shared with C{timecoin-cli}),
  L{timecoin.rpc.auth} (cookie, Basic auth, C{rpcauth} lines, allowed
  IPs; C{python -m timecoin.rpc.auth USER} makes an C{rpcauth} line),
  L{timecoin.rpc.settings} (C{RPCSettings}, the C{[rpc]} section),
  L{timecoin.rpc.limits} (the C{[rpc]} limits against hostile clients),
  L{timecoin.rpc.status} (the status page and the data behind it).

Imports
=======
The package may import anything below it (node, chain, mempool, wallet,
finality, storage, metrics, config).  Only L{timecoin.tap}
(L{build_rpc_site<timecoin.rpc.site.build_rpc_site>}),
L{timecoin.rpcdoc} (the methods' docs), L{timecoin.cli} (the codec) and
L{timecoin.config} (the C{[rpc]} section, L{timecoin.rpc.settings},
which imports only L{timecoin.rpc.auth}) import it.
This module imports nothing, so that the CLI and C{python -m
timecoin.rpc.auth} load only the modules they use.

Framing
=======
JSON-RPC 1.0 and 2.0 requests are served.  A request without C{"jsonrpc"}
(or with C{"1.0"}) gets a 1.0 reply, C{{"result", "error", "id"}}, both
members present, with Bitcoin Core's HTTP status: 200, or 400 for an
invalid request, 404 for an unknown method, 500 for other errors.  A
C{"2.0"} request gets C{{"jsonrpc": "2.0", "result" | "error", "id"}} with
HTTP 200, and a 2.0 notification (no C{id} member) gets no reply (HTTP
204).  The C{id} is echoed whatever its JSON type.  A batch (array of up
to C{MAX_BATCH} requests) runs its requests in order and answers an array
(HTTP 200).  Params may be positional (array) or named (object).  A body
that is not JSON, or nests deeper than C{MAX_JSON_DEPTH}, is a parse error.
One exception to the 2.0 shape: python-bitcoinrpc's C{batch_} (see
C{LEGACY_REPLY_AGENTS}) gets C{"error": null} in its successful 2.0 batch
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
HTTP Basic, with the cookie C{__cookie__:SECRET} that C{build_rpc_site}
writes to C{DATADIR/.cookie} (a fresh secret at each start, mode 0600), or
with C{[rpc] user}/C{password} when both are configured, or as a user
of an C{[rpc] auth} line (Bitcoin's C{rpcauth}, see L{timecoin.rpc.auth}).
A failed attempt gets 401 with C{WWW-Authenticate: Basic realm="jsonrpc"}
and a JSON body carrying C{UNAUTHORIZED}.  Clients outside loopback and
C{[rpc] allow_ip} get 403 on every path.

Pages
=====
C{GET /} is the status page and C{GET /status.json} its data (both need
the same credentials as RPC; see L{timecoin.rpc.status}); C{GET /metrics}
needs them too unless C{[rpc] metrics_open}; C{GET /health} needs none.

Limits
======
Connections, idle and request deadlines, failed logins and long-polls
are bounded as L{timecoin.rpc.limits} describes; C{RPCServer} applies the
login throttle and the C{/metrics} rule, its C{Dispatcher} the long-poll
cap, C{RPCSite} the rest.

Amounts are TIME decimals written as JSON numbers with 8 decimals; hashes
are lowercase hex.
"""
