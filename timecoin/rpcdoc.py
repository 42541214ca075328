"""
``docs/rpc.md``, generated from the RPC methods' own docstrings (the text
``help`` serves), so the document and the node cannot disagree.
Regenerate with ``python -m timecoin.rpcdoc > docs/rpc.md``; a test fails
when the file is stale.
"""

from __future__ import annotations

import inspect

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
  `rpc_user`/`rpc_password`, or a user of an `[rpc] auth` line (Bitcoin
  Core's `rpcauth=USER:SALT$HMAC`, made by `python -m timecoin.rpcauth
  USER`).  Without valid auth: HTTP 401 with a JSON body.
- Loopback clients are always served; others only when `[rpc] allow_ip`
  lists them (addresses or CIDRs), else HTTP 403 with a JSON body, on
  every path.
- `GET /` is the status page and `GET /status.json` its data (same auth);
  `GET /metrics` (Prometheus) and `GET /health` need no auth.  See
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

## Methods
"""


def render() -> str:
    """
    The whole document.
    """
    from timecoin.rpc import RPCMethods

    methods = RPCMethods.__new__(RPCMethods).registry()
    parts = [PREAMBLE]
    for name in sorted(methods):
        doc = inspect.getdoc(methods[name]) or name
        usage, _, body = doc.partition("\n")
        parts.append(f"\n### `{name}`\n\n`{usage.strip()}`\n\n"
                     f"{body.strip()}\n")
    return "".join(parts)


if __name__ == "__main__":
    print(render(), end="")
