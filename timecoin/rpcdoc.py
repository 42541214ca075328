"""
``docs/rpc.md``, generated from the RPC methods' own docstrings (the text
``help`` serves), so the document and the node cannot disagree.
Regenerate with ``python -m timecoin.rpcdoc > docs/rpc.md``; a test fails
when the file is stale.
"""

from __future__ import annotations

PREAMBLE = """\
# JSON-RPC

`POST /` on the RPC port (mainnet 24001, testnet 24101, devnet 24201),
bound to 127.0.0.1 unless `[rpc] bind` says otherwise.  Bitcoin-compatible:

- JSON-RPC 1.0 and 2.0 requests; ids of any JSON type are echoed; batches
  (arrays of requests) up to 1,000 entries; params by position (array) or by
  name (object).  A 2.0 request without an id is a notification (no reply).
  Each request is answered in its own version: 1.0 (no `jsonrpc` member)
  as `{"result", "error", "id"}` with both present, 2.0 as the spec says
  (no `error` on success), except that python-bitcoinrpc's `batch_`
  (User-Agent `AuthServiceProxy/`), which reads `error` in every reply,
  gets `"error": null` in its successful 2.0 batch replies.
- Optional positional arguments Bitcoin clients send (`getbalance "*" 1`,
  `sendtoaddress ADDR 1 "comment" "comment_to"`, `gettransaction TXID
  true`, `listunspent 0 9999999 [] true`, `sendrawtransaction HEX 0.1`)
  are accepted and type-checked; each method's text says which are
  ignored and why.
- HTTP Basic auth with the cookie `DATADIR/.cookie` (`__cookie__:SECRET`,
  regenerated at each start, mode 0600, deleted at stop), the configured
  `[rpc] user`/`password`, or a user of an `[rpc] auth` line (Bitcoin
  Core's `rpcauth=USER:SALT$HMAC`, made by `python -m timecoin.rpc.auth
  USER`).  Without valid auth: HTTP 401 with a JSON body (delayed after
  repeated wrong passwords, see Limits below).
- Loopback clients are always served; others only when `[rpc] allow_ip`
  lists them (addresses or CIDRs), else HTTP 403 with a JSON body, on
  every path.
- `GET /` is the status page and `GET /status.json` its data (same auth);
  `GET /metrics` (Prometheus) needs the same auth too unless `[rpc]
  metrics_open = true`; `GET /health` needs none.  See
  `docs/operating.md`.
- Errors are always JSON.  HTTP status follows Bitcoin Core: 2.0 replies are
  200; 1.0 errors are 400 (invalid request), 404 (unknown method) or 500.
- Request bodies over `[rpc] max_body_bytes` (4,000,000) get HTTP 413 with a
  JSON error.
- A body that is not JSON, or nests arrays and objects deeper than 128
  levels, is a parse error (-32700, HTTP 500 as in Bitcoin Core).
- Amounts are TIME decimals with 8 places (1 TIME = 100,000,000 units);
  hashes, txids and keys are lowercase hex.

| code | meaning |
|---|---|
| -32700 | parse error (body is not JSON) |
| -32600 | invalid request |
| -32601 | method not found |
| -32602 | invalid params (wrong number or JSON type) |
| -32603 | internal error (logged; no traceback is sent) |
| -32001 | authentication failed (HTTP 401) |
| -32002 | client address not allowed (HTTP 403) |
| -32003 | too many failed logins from this address: retry later (HTTP 429) |
| -32004 | too many long-polls running (`[rpc] max_waiting`): retry later |
| -32005 | request not received within `[rpc] request_timeout` (HTTP 408) |
| -3 | invalid amount |
| -5 | invalid address, or transaction/block not found |
| -6 | insufficient funds |
| -8 | invalid parameter value |
| -22 | transaction decode failed |
| -25 / -26 | transaction refused; the message starts with its reason code |
| -27 | transaction already in a block |
| -28 | node still starting |

`timecoin-cli METHOD [ARGS...]` (`--datadir`, `--network`, `--rpc-port`,
`--rpcuser`/`--rpcpassword`, or bitcoin-cli's `-datadir=DIR`,
`-rpcport=N`, `-rpcconnect=HOST[:PORT]`, `-conf=FILE` (TOML), `-testnet`,
`-chain=NAME`, `-rpcuser=`, `-rpcpassword=`, `-rpcclienttimeout=`,
`-version`) reads the cookie, prints the result as JSON (strings raw) and
exits with the RPC error code's absolute value on an error, as
bitcoin-cli (1 if the node cannot be reached; 141, quietly, when its
output is closed early, as in `| head`).  As with `bitcoin-cli`:
`-named` (`NAME=VALUE` arguments), `-stdin` (more arguments from standard
input, one per line), `-rpcwait` (`-rpcwaittimeout SECONDS`) and
`-getinfo` (a human summary of the node).

## Limits

Every limit is an `[rpc]` setting (`etc/timecoin.toml`); every refusal is
logged with its reason (at most one line per reason every 10 s, saying how
many were suppressed) and counted in `timecoin_rpc_refusals_total{reason}`.

- `max_connections` (200; 0: no cap): a new connection past it evicts the
  one worth least: an idle connection that never authenticated (oldest
  first), then one still sending an unauthenticated request, then one
  waiting for a failed login's answer, then an idle authenticated
  keep-alive.  A connection busy with an authenticated request is never
  evicted; only when all are is the newcomer closed at once.  Reasons
  `evicted`, `too-many-connections`.  `listen_backlog` (1024): connections
  the kernel queues for accept.
- `unauth_timeout` (5 s): a connection idle (no request under way) that
  has not authenticated is closed (`idle-timeout`); `idle_timeout` (30 s):
  an authenticated keep-alive idle this long is closed.
- `request_timeout` (30 s): a request's headers and body must arrive
  within this of its first byte, a deadline that trickling bytes does not
  extend; else HTTP 408 (-32005) and close (`request-timeout`).
- `max_waiting` (100; 0: no cap): long-polls (`waitfortransaction`)
  running at once; past it error -32004 at once (`too-many-waiting`).
- `login_free_failures` (3), `login_delay` (0.25 s), `login_max_delay`
  (16 s), `login_forget` (600 s): per source address (IPv6 by /64, all of
  loopback as one), the first wrong passwords are answered at once, each
  later one after a delay doubling from `login_delay` to
  `login_max_delay` (`bad-auth`).  Until that answer is due the source's
  credentials are not checked: its requests get HTTP 429 (-32003, with
  `Retry-After`) at once (`login-throttled`), so parallel connections
  guess no faster.  Failures are forgotten `login_forget` s after the
  last.  A request without credentials, or with a header that can never
  match (another scheme, bad base64), guesses nothing: its 401 is
  immediate.  `login_delay = 0` turns the delay off.
- `metrics_open` (false): `GET /metrics` needs the RPC credentials unless
  true.
- `max_body_bytes` (4,000,000): HTTP 413 (`body-too-large`); `allow_ip`:
  HTTP 403 (`ip-not-allowed`).

An attacker on the operator's own address (another local user, with the
RPC on loopback) can delay the operator's calls by guessing passwords,
as with Bitcoin Core, but cannot guess faster than one password per
`login_max_delay`.

## Methods
"""


def render() -> str:
    """
    The whole document.
    """
    from timecoin.rpc.methods import method_docs

    docs = method_docs()
    parts = [PREAMBLE]
    for name in sorted(docs):
        doc = docs[name]
        usage, _, body = doc.partition("\n")
        parts.append(f"\n### `{name}`\n\n`{usage.strip()}`\n\n"
                     f"{body.strip()}\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
