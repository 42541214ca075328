"""
``timecoin-cli``: call a running node's JSON-RPC server from a shell.

::

    timecoin-cli [--datadir D] [--network N] [--rpc-port P]
                 [--rpcuser U --rpcpassword P] METHOD [ARGS...]

Like ``bitcoin-cli``, each argument is sent as JSON when it parses as
JSON (numbers, ``true``/``false``, ``null``, arrays, objects) and as a
string otherwise; arguments that are always strings (hashes, txids,
addresses, raw hex; see L{STRING_ARGS}) are never parsed, so a hash made
only of digits stays a string.  Credentials come from ``--rpcuser`` and
``--rpcpassword``, else from the ``rpc`` section of ``--config``, else from
the ``.cookie`` file the node writes into its data directory at each start.

The result is printed as JSON (2-space indent), a string result raw and a
null result not at all.  An RPC error goes to standard error as ``error
code: N`` / ``error message:`` lines and the exit status is 1; so is a node
that cannot be reached or that refuses the credentials.

This module uses only the standard library (C{urllib.request}, no
reactor), so the command starts fast; L{encode_json} is also the JSON
writer of the RPC server.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from timecoin.params import NETWORKS

DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 900.0
"""Seconds the CLI waits for an answer (C{waitfortransaction} can be
long), as C{bitcoin-cli -rpcclienttimeout} does."""

STRING_ARGS: dict[str, frozenset[int]] = {
    "getblock": frozenset({0}),
    "getrawtransaction": frozenset({0}),
    "gettransaction": frozenset({0}),
    "sendrawtransaction": frozenset({0}),
    "signrawtransactionwithwallet": frozenset({0}),
    "sendtoaddress": frozenset({0}),
    "validateaddress": frozenset({0}),
    "waitfortransaction": frozenset({0}),
    "help": frozenset({0}),
}
"""Positional arguments (by index) sent as strings even when they would
parse as JSON."""


class CLIError(Exception):
    """
    The call could not be made or answered; the message is for the user.
    """


def encode_json(obj: Any, indent: int | None = None) -> str:
    """
    Encode C{obj} as JSON, writing C{Decimal} values as plain JSON numbers
    with all their digits (amounts keep their 8 decimals: C{1.50000000},
    C{0.00000000}).

    @param indent: C{None} for compact output, else the indent per level.
    @raise TypeError: for values that are not JSON types or Decimals.
    @raise ValueError: for NaN or infinite numbers.
    """
    parts: list[str] = []
    _encode(obj, indent, 0, parts)
    return "".join(parts)


def _encode(obj: Any, indent: int | None, level: int,
            out: list[str]) -> None:
    if isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError(f"cannot encode {obj} as JSON")
        exponent = obj.as_tuple().exponent
        # Positional notation, except for absurd exponents (an echoed id
        # like 1e999999999 must not expand to a billion digits).
        plain = isinstance(exponent, int) and -64 <= exponent <= 64
        out.append(format(obj, "f") if plain else str(obj))
    elif obj is None or isinstance(obj, (str, bool, int, float)):
        out.append(json.dumps(obj, allow_nan=False))
    elif isinstance(obj, (dict, list, tuple)):
        is_dict = isinstance(obj, dict)
        opening, closing = ("{", "}") if is_dict else ("[", "]")
        if not obj:
            out.append(opening + closing)
            return
        if indent is None:
            inner, sep, tail, colon = "", ",", "", ":"
        else:
            inner = "\n" + " " * (indent * (level + 1))
            sep, tail, colon = "," + inner, "\n" + " " * (indent * level), \
                ": "
        out.append(opening + inner)
        items = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for n, (key, value) in enumerate(items):
            if n:
                out.append(sep)
            if is_dict:
                if not isinstance(key, str):
                    raise TypeError(f"JSON object keys must be strings, "
                                    f"not {type(key).__name__}")
                out.append(json.dumps(key) + colon)
            _encode(value, indent, level + 1, out)
        out.append(tail + closing)
    else:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_arg(method: str, index: int, text: str) -> Any:
    """
    One command-line argument as an RPC parameter: its JSON value when it
    parses as JSON (fractions as exact Decimals), else the string itself;
    always the string for the arguments L{STRING_ARGS} names.
    """
    if index in STRING_ARGS.get(method, frozenset()):
        return text
    try:
        return json.loads(text, parse_float=Decimal,
                          parse_constant=_no_constants)
    except ValueError:
        return text


def build_request(method: str, args: list[str]) -> bytes:
    """
    The JSON-RPC 2.0 request body calling C{method} with the parsed
    command-line C{args} as positional parameters.
    """
    params = [parse_arg(method, i, a) for i, a in enumerate(args)]
    return encode_json({"jsonrpc": "2.0", "id": 1, "method": method,
                        "params": params}).encode("utf-8")


def format_result(result: Any) -> str | None:
    """
    What the CLI prints for a result: a string raw, C{null} nothing
    (C{None}), anything else as indented JSON.
    """
    if result is None:
        return None
    if isinstance(result, str):
        return result
    return encode_json(result, indent=2)


def format_error(error: Any) -> str:
    """
    What the CLI prints to standard error for an RPC error object.
    """
    if isinstance(error, dict) and "code" in error:
        return (f"error code: {error.get('code')}\nerror message:\n"
                f"{error.get('message', '')}")
    return f"error: {encode_json(error)}"


def parse_reply(raw: bytes, status: int) -> tuple[Any, Any]:
    """
    Split a JSON-RPC reply body into C{(result, error)}.

    @raise CLIError: if the body is not a JSON-RPC response object.
    """
    try:
        reply = json.loads(raw, parse_float=Decimal,
                           parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise CLIError(f"the node answered HTTP {status} with a body that "
                       f"is not JSON") from e
    if not isinstance(reply, dict) or not ("result" in reply
                                           or "error" in reply):
        raise CLIError(f"the node answered HTTP {status} with something "
                       f"that is not a JSON-RPC response")
    return reply.get("result"), reply.get("error")


def make_parser() -> argparse.ArgumentParser:
    """
    The command line of C{timecoin-cli}; options come before METHOD.
    """
    parser = argparse.ArgumentParser(
        prog="timecoin-cli",
        description="Call a TIME Coin node's JSON-RPC methods "
                    "(timecoin-cli help lists them).")
    parser.add_argument("--network", choices=sorted(NETWORKS),
                        default="devnet", help="network (default devnet)")
    parser.add_argument("--datadir", help="the node's data directory, "
                        "holding .cookie (default ~/.timecoin/NETWORK)")
    parser.add_argument("--config", help="the node's TOML config, for its "
                        "rpc port and credentials")
    parser.add_argument("--rpc-host", default=None,
                        help=f"host of the RPC server (default {DEFAULT_HOST})")
    parser.add_argument("--rpc-port", type=int, default=None,
                        help="RPC port (default: the network's)")
    parser.add_argument("--rpcuser", help="RPC user (instead of the cookie)")
    parser.add_argument("--rpcpassword", help="RPC password")
    parser.add_argument("--rpc-timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds to wait for an answer (default 900)")
    parser.add_argument("method", metavar="METHOD")
    parser.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER)
    return parser


class Target:
    """
    Where and as whom to call: host, port and Basic-auth credentials.
    """

    def __init__(self, host: str, port: int, user: str,
                 password: str) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def authorization(self) -> str:
        token = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(token).decode("ascii")


def resolve_target(options: argparse.Namespace) -> Target:
    """
    The L{Target} the options name: explicit options first, then the
    config file, then the network's defaults and the cookie file.

    @raise CLIError: when no credentials can be found.
    """
    network = NETWORKS[options.network]
    datadir = options.datadir
    port = network.rpc_port
    host = DEFAULT_HOST
    user = password = ""
    if options.config:
        from timecoin.config import ConfigError, load_config
        overrides = {"network": options.network, "datadir": options.datadir}
        try:
            config = load_config(options.config, overrides)
        except ConfigError as e:
            raise CLIError(str(e)) from e
        datadir, port = config.datadir, config.rpc_port
        if config.rpc_bind not in ("", "0.0.0.0", "::"):
            host = config.rpc_bind
        user, password = config.rpc_user, config.rpc_password
    if options.rpc_port is not None:
        port = options.rpc_port
    if options.rpc_host:
        host = options.rpc_host
    if options.rpcuser is not None or options.rpcpassword is not None:
        if options.rpcuser is None or options.rpcpassword is None:
            raise CLIError("--rpcuser and --rpcpassword go together")
        return Target(host, port, options.rpcuser, options.rpcpassword)
    if user and password:
        return Target(host, port, user, password)
    if not datadir:
        datadir = str(Path.home() / ".timecoin" / options.network)
    cookie = Path(datadir) / ".cookie"
    try:
        text = cookie.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise CLIError(
            f"cannot read the cookie file {cookie} ({e.strerror}): is the "
            f"node running with this --datadir and --network? Otherwise "
            f"pass --rpcuser and --rpcpassword") from e
    user, sep, password = text.partition(":")
    if not sep:
        raise CLIError(f"the cookie file {cookie} is malformed")
    return Target(host, port, user, password)


def call(target: Target, body: bytes, timeout: float) -> tuple[Any, Any]:
    """
    POST C{body} to the node; return C{(result, error)} of its reply.

    @raise CLIError: when the node cannot be reached, refuses the
        credentials, or does not answer JSON-RPC.
    """
    request = urllib.request.Request(
        target.url, data=body, method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": target.authorization})
    # No proxies: the node is reached directly, whatever http_proxy says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    where = f"{target.host}:{target.port}"
    try:
        with opener.open(request, timeout=timeout) as response:
            return parse_reply(response.read(), response.status)
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise CLIError(
                f"the node at {where} refused the credentials: check "
                f"--rpcuser/--rpcpassword, or --datadir for the cookie "
                f"file") from e
        with e:
            return parse_reply(e.read(), e.code)
    except urllib.error.URLError as e:
        raise CLIError(f"cannot connect to the node at {where}: is it "
                       f"running?") from e
    except (OSError, http.client.HTTPException) as e:
        raise CLIError(f"lost the connection to the node at {where}: "
                       f"{e}") from e


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """
    Run C{timecoin-cli} with C{argv} (default C{sys.argv[1:]}); return
    the exit status: 0 on success, 1 on an RPC or connection error.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    options = make_parser().parse_args(argv)
    try:
        target = resolve_target(options)
        result, error = call(target, build_request(options.method,
                                                   options.args),
                             options.rpc_timeout)
    except CLIError as e:
        print(f"timecoin-cli: {e}", file=err)
        return 1
    if error is not None:
        print(format_error(error), file=err)
        return 1
    text = format_result(result)
    if text is not None:
        print(text, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
