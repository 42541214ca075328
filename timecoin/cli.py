"""
``timecoin-cli``: call a running node's JSON-RPC server from a shell.

::

    timecoin-cli [--datadir D] [--network N] [--rpc-port P]
                 [--rpcuser U --rpcpassword P] [-named] [-stdin]
                 [-rpcwait [-rpcwaittimeout S]] METHOD [ARGS...]
    timecoin-cli [options] -getinfo
    timecoin-cli -datadir=DIR -rpcport=N -rpcconnect=HOST getblockcount

Like ``bitcoin-cli``, each argument is sent as JSON when it parses as
JSON (numbers, ``true``/``false``, ``null``, arrays, objects) and as a
string otherwise; arguments that are always strings (hashes, txids,
addresses, raw hex; see L{STRING_ARGS}) are never parsed, so a hash made
only of digits stays a string.  Credentials come from ``--rpcuser`` and
``--rpcpassword``, else from the ``rpc`` section of ``--config``, else from
the ``.cookie`` file the node writes into its data directory at each start.

As in ``bitcoin-cli``: ``-named`` sends the arguments as named params
(``NAME=VALUE``, values parsed as above); ``-stdin`` reads more arguments
from standard input, one per line, after those of the command line;
``-rpcwait`` waits for the node to come up (its port to answer, its cookie
to exist, its start-up to end) for at most ``-rpcwaittimeout`` seconds (0,
the default, waits for ever); ``-getinfo`` prints a human summary of the
node (chain, peers, mempool, masternode, balance) from one batch request.

bitcoin-cli's single-dash forms work too, with ``=`` or a space:
``-datadir=DIR``, ``-conf=FILE`` (the node's TOML config, not a
bitcoin.conf), ``-rpcconnect=HOST`` (or ``HOST:PORT``), ``-rpcport=N``,
``-rpcuser=U``, ``-rpcpassword=P``, ``-rpcclienttimeout=S``, ``-testnet``,
``-chain=NAME`` (devnet, testnet, mainnet; ``main`` and ``test`` too) and
``-version``.

The result is printed as JSON (2-space indent), a string result raw and a
null result not at all.  An RPC error goes to standard error as ``error
code: N`` / ``error message:`` lines and the exit status is the code's
absolute value, as bitcoin-cli's (the shell sees it modulo 256: -8 exits 8,
-32601 exits 89); a node that cannot be reached or that refuses the
credentials exits 1, a usage error 2.  When standard output is closed early
(piped into ``head``) the CLI stops quietly with status 141, as a process
killed by SIGPIPE, without a traceback.

This module uses only the standard library (C{urllib.request}, no
reactor) and L{timecoin.rpc.codec} (whose L{encode_json} is the JSON
writer of the RPC server too), so the command starts fast.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from timecoin import __version__
from timecoin.params import NETWORKS
from timecoin.rpc.codec import encode_json

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
    # Wallet and two-step registration: passphrases, keys, paths and
    # requests are strings even when they look like numbers.
    "encryptwallet": frozenset({0}),
    "walletpassphrase": frozenset({0}),
    "walletpassphrasechange": frozenset({0, 1}),
    "dumpprivkey": frozenset({0}),
    "importprivkey": frozenset({0, 1}),
    "backupwallet": frozenset({0}),
    "restorewallet": frozenset({0}),
    "dumpwallet": frozenset({0}),
    "getaddressesbylabel": frozenset({0}),
    "sethdseed": frozenset({1}),
    "registermasternode_prepare": frozenset({0, 2, 3, 4}),
    "signmasternoderegistration": frozenset({0, 1}),
    "registermasternode_submit": frozenset({0}),
    "getblockheader": frozenset({0}),
    "gettxout": frozenset({0}),
    "getmempoolentry": frozenset({0}),
    "listsinceblock": frozenset({0}),
    "listtransactions": frozenset({0}),
    "getreceivedbyaddress": frozenset({0}),
    "sendmany": frozenset({0}),
    "getbalance": frozenset({0}),
}
"""Positional arguments (by index) sent as strings even when they would
parse as JSON."""

STRING_PARAM_NAMES = frozenset({
    "blockhash", "txid", "hexstring", "address", "command", "peer",
    "passphrase", "oldpassphrase", "newpassphrase", "privkey", "label",
    "destination", "backup_file", "request", "signed", "collateral_txid",
    "collateral_address", "p2p_address", "reward_address", "seed",
    "filename", "dummy", "comment", "comment_to"})
"""Named params (C{-named}) sent as strings even when they would parse as
JSON."""

RPCWAIT_INTERVAL = 0.25
"""Seconds between attempts while C{-rpcwait} waits for the node."""
RPC_IN_WARMUP = -28
"""The node's error code while it is still starting."""


class CLIError(Exception):
    """
    The call could not be made or answered; the message is for the user.
    """


class NodeUnreachable(CLIError):
    """
    The node is not up (yet): nothing listens on its port, or it has not
    written its cookie.  C{-rpcwait} retries these.
    """


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


def parse_named(args: list[str]) -> dict[str, Any]:
    """
    C{-named} arguments C{NAME=VALUE} as a params object; each value is
    parsed as L{parse_arg} does, and kept a string for the names in
    L{STRING_PARAM_NAMES}.

    @raise CLIError: for an argument without C{=} or a repeated name.
    """
    named: dict[str, Any] = {}
    for arg in args:
        name, sep, text = arg.partition("=")
        if not sep or not name:
            raise CLIError(f"with -named every argument is NAME=VALUE, not "
                           f"{arg!r}")
        if name in named:
            raise CLIError(f"parameter {name} given more than once")
        named[name] = text if name in STRING_PARAM_NAMES else \
            parse_arg("", -1, text)
    return named


def build_request(method: str, args: list[str], named: bool = False) -> bytes:
    """
    The JSON-RPC 2.0 request body calling C{method} with the parsed
    command-line C{args} as positional parameters, or with C{named} as
    named parameters (L{parse_named}).
    """
    params: Any = parse_named(args) if named else [
        parse_arg(method, i, a) for i, a in enumerate(args)]
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
        prog="timecoin-cli", allow_abbrev=False,
        description="Call a TIME Coin node's JSON-RPC methods "
                    "(timecoin-cli help lists them).  bitcoin-cli's "
                    "single-dash forms (-datadir=DIR, -rpcport=N, ...) "
                    "are accepted too.")
    parser.add_argument("--network", "-chain", type=_network,
                        default="devnet", metavar="NETWORK",
                        help="devnet (default), testnet or mainnet")
    parser.add_argument("-testnet", "--testnet", dest="network",
                        action="store_const", const="testnet",
                        help="the testnet (as --network testnet)")
    parser.add_argument("--datadir", "-datadir", help="the node's data "
                        "directory, holding .cookie (default "
                        "~/.timecoin/NETWORK)")
    parser.add_argument("--config", "-conf", help="the node's TOML config, "
                        "for its rpc port and credentials")
    parser.add_argument("--rpc-host", "-rpcconnect", default=None,
                        help=f"host (or HOST:PORT) of the RPC server "
                             f"(default {DEFAULT_HOST})")
    parser.add_argument("--rpc-port", "-rpcport", type=int, default=None,
                        help="RPC port (default: the network's)")
    parser.add_argument("--rpcuser", "-rpcuser",
                        help="RPC user (instead of the cookie)")
    parser.add_argument("--rpcpassword", "-rpcpassword", help="RPC password")
    parser.add_argument("--rpc-timeout", "-rpcclienttimeout", type=float,
                        default=DEFAULT_TIMEOUT,
                        help="seconds to wait for an answer (default 900)")
    parser.add_argument("-version", "--version", action="version",
                        version=f"TIME Coin RPC client timecoin-cli version "
                                f"{__version__}")
    parser.add_argument("-named", "--named", action="store_true",
                        help="pass the arguments as named params NAME=VALUE")
    parser.add_argument("-stdin", "--stdin", action="store_true",
                        help="read more arguments from standard input, one "
                             "per line")
    parser.add_argument("-rpcwait", "--rpcwait", action="store_true",
                        help="wait for the node to come up")
    parser.add_argument("-rpcwaittimeout", "--rpcwaittimeout", type=float,
                        default=0.0, metavar="SECONDS",
                        help="with -rpcwait, give up after SECONDS (default "
                             "0: wait for ever)")
    parser.add_argument("-getinfo", "--getinfo", action="store_true",
                        help="print a summary of the node instead of "
                             "calling METHOD")
    parser.add_argument("method", metavar="METHOD", nargs="?")
    parser.add_argument("args", metavar="ARGS", nargs=argparse.REMAINDER)
    return parser


_CHAIN_NAMES = {"main": "mainnet", "test": "testnet"}


def _network(text: str) -> str:
    """
    A network name of C{--network} / C{-chain}: ours, or Bitcoin's
    C{main} and C{test}.
    """
    name = _CHAIN_NAMES.get(text, text)
    if name not in NETWORKS:
        raise argparse.ArgumentTypeError(
            f"unknown network {text!r} (choose from "
            f"{', '.join(sorted(NETWORKS))})")
    return name


def _host_port(text: str) -> tuple[str, int | None]:
    """
    C{-rpcconnect}'s value: C{HOST}, C{HOST:PORT}, C{[IPV6]:PORT},
    C{[IPV6]} or a bare IPv6 address; the host and the port if given.
    """
    if text.startswith("["):
        inside, _, rest = text[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            return inside, int(rest[1:])
        return inside, None
    name, sep, number = text.rpartition(":")
    if sep and name and ":" not in name and number.isdigit():
        return name, int(number)
    return text, None


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


def resolve_target(options: argparse.Namespace) -> Target:  # noqa: C901
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
        datadir, port = config.datadir, config.rpc.port
        if config.rpc.bind not in ("", "0.0.0.0", "::"):
            host = config.rpc.bind
        user, password = config.rpc.user, config.rpc.password
    if options.rpc_host:
        host, given = _host_port(options.rpc_host)
        if given is not None:
            port = given
    if options.rpc_port is not None:
        port = options.rpc_port
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
        raise NodeUnreachable(
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

    @raise CLIError: when the node cannot be reached (L{NodeUnreachable}),
        refuses the credentials, or does not answer JSON-RPC.
    """
    return parse_reply(*post(target, body, timeout))


def post(target: Target, body: bytes, timeout: float) -> tuple[bytes, int]:
    """
    POST C{body} to the node; return its reply body and HTTP status.

    @raise CLIError: when the node cannot be reached (L{NodeUnreachable})
        or refuses the credentials.
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
            return response.read(), response.status
    except urllib.error.HTTPError as e:
        if e.code == 401:
            raise CLIError(
                f"the node at {where} refused the credentials: check "
                f"--rpcuser/--rpcpassword, or --datadir for the cookie "
                f"file") from e
        with e:
            return e.read(), e.code
    except urllib.error.URLError as e:
        raise NodeUnreachable(f"cannot connect to the node at {where}: is it "
                       f"running?") from e
    except (OSError, http.client.HTTPException) as e:
        raise CLIError(f"lost the connection to the node at {where}: "
                       f"{e}") from e


GETINFO_CALLS = ("getblockchaininfo", "getnetworkinfo", "getmempoolinfo",
                 "getbalance", "masternodestatus", "uptime")
"""The methods C{-getinfo} calls, in one batch."""


def parse_batch_reply(raw: bytes, status: int) -> list[tuple[Any, Any]]:
    """
    A batch reply as C{(result, error)} pairs in request order (by id).

    @raise CLIError: if the body is not a JSON-RPC batch reply.
    """
    try:
        replies = json.loads(raw, parse_float=Decimal,
                             parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise CLIError(f"the node answered HTTP {status} with a body that "
                       f"is not JSON") from e
    if not isinstance(replies, list):
        # A whole-batch error (e.g. the node is still starting).
        _, error = parse_reply(raw, status)
        raise CLIError(format_error(error))
    by_id = {r.get("id"): (r.get("result"), r.get("error"))
             for r in replies if isinstance(r, dict)}
    return [by_id.get(n, (None, {"code": -32603, "message": "no reply"}))
            for n in range(len(GETINFO_CALLS))]


def getinfo_body() -> bytes:
    """
    The batch request of C{-getinfo}.
    """
    return encode_json([{"jsonrpc": "2.0", "id": n, "method": m,
                         "params": []}
                        for n, m in enumerate(GETINFO_CALLS)]).encode()


def _duration(seconds: int) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def format_getinfo(replies: list[tuple[Any, Any]]) -> str:
    """
    The human summary C{-getinfo} prints from the replies to
    L{GETINFO_CALLS}; a call that failed shows its error on its line.
    """
    got = dict(zip(GETINFO_CALLS, replies, strict=True))

    def failed(name: str) -> str | None:
        error = got[name][1]
        if error is None:
            return None
        if isinstance(error, dict):
            return f"unavailable (error {error.get('code')}: " \
                   f"{error.get('message')})"
        return "unavailable"

    lines = []
    chain, _ = got["getblockchaininfo"]
    if failed("getblockchaininfo"):
        lines.append(f"Chain: {failed('getblockchaininfo')}")
    else:
        lines += [f"Chain: {chain.get('chain')}",
                  f"Blocks: {chain.get('blocks')}",
                  f"Best block: {chain.get('bestblockhash')}"]
    uptime, _ = got["uptime"]
    if not failed("uptime"):
        lines.append(f"Uptime: {_duration(uptime)}")
    net, _ = got["getnetworkinfo"]
    if failed("getnetworkinfo"):
        lines.append(f"Peers: {failed('getnetworkinfo')}")
    else:
        lines.append(f"Peers: {net.get('connections')} (in "
                     f"{net.get('connections_in')}, out "
                     f"{net.get('connections_out')})")
    pool, _ = got["getmempoolinfo"]
    if failed("getmempoolinfo"):
        lines.append(f"Mempool: {failed('getmempoolinfo')}")
    else:
        lines.append(f"Mempool: {pool.get('size')} transactions, "
                     f"{pool.get('bytes')} bytes ({pool.get('pending')} "
                     f"pending, {pool.get('finalized')} finalized)")
    mn, _ = got["masternodestatus"]
    if failed("masternodestatus"):
        lines.append(f"Masternode: {failed('masternodestatus')}")
    elif not mn.get("is_masternode"):
        lines.append("Masternode: no" if mn.get("status") in (
            None, "not-a-masternode") else
            f"Masternode: {mn.get('status')} ({mn.get('detail')})")
    else:
        last = mn.get("last_block")
        lines.append(f"Masternode: yes, {mn.get('status')}, tier "
                     f"{mn.get('tier')}, "
                     f"{'alive' if mn.get('alive') else 'not heard from'}")
        lines.append("Last block produced: " + (
            "none seen" if not last else
            f"{last.get('height')} (round {last.get('round')})"))
    balance, _ = got["getbalance"]
    if failed("getbalance"):
        lines.append(f"Balance: {failed('getbalance')}")
    else:
        lines.append(f"Balance: {encode_json(balance)} TIME")
    return "\n".join(lines)


def read_stdin_args(stdin: TextIO) -> list[str]:
    """
    The arguments C{-stdin} reads: one per line, without the line end.
    """
    return stdin.read().splitlines()


def call_waiting(options: argparse.Namespace, body: bytes,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> Any:
    """
    Resolve the target and POST C{body}; with C{-rpcwait}, retry while
    the node is unreachable, has no cookie yet, or answers that it is
    still starting, until C{-rpcwaittimeout} (0: no limit).  Returns the
    reply body and HTTP status.

    @raise CLIError: when it cannot be answered (in time).
    """
    deadline = monotonic() + options.rpcwaittimeout \
        if options.rpcwaittimeout > 0 else None
    while True:
        try:
            target = resolve_target(options)
            raw, status = post(target, body, options.rpc_timeout)
        except NodeUnreachable as e:
            if not options.rpcwait:
                raise
            last: CLIError = e
        else:
            if not options.rpcwait or not _warming_up(raw):
                return raw, status
            last = CLIError("the node is still starting")
        if deadline is not None and monotonic() >= deadline:
            raise CLIError(f"gave up waiting for the node after "
                           f"{options.rpcwaittimeout:g} s: {last}")
        sleep(RPCWAIT_INTERVAL)


def _warming_up(raw: bytes) -> bool:
    try:
        reply = json.loads(raw)
    except ValueError:
        return False
    replies = reply if isinstance(reply, list) else [reply]
    return any(isinstance(r, dict) and isinstance(r.get("error"), dict)
               and r["error"].get("code") == RPC_IN_WARMUP for r in replies)


def sign_registration_offline(request: str, key_file: Path, out: TextIO,
                              err: TextIO) -> int:
    """
    C{timecoin-cli signmasternoderegistration REQUEST KEYFILE}: sign a
    registration request (from C{registermasternode_prepare}) for its
    collateral with a key file (64 hex digits, as C{dumpprivkey} prints,
    or a wallet file or backup, whose passphrase is asked for if it is
    encrypted), contacting no node: the collateral key can stay on a
    machine that is never online.  Prints what the RPC method returns.
    """
    import getpass

    from timecoin.encoding import EncodingError
    from timecoin.registration import (
        decode_request,
        encode_request,
        request_outpoint,
        sign_request,
    )
    from timecoin.wallet import WalletError, key_from_file

    try:
        unsigned = decode_request(request, signed=False)
        prefix = NETWORKS[unsigned["network"]].address_prefix
        key = key_from_file(key_file, unsigned["collateral_address"], prefix,
                            lambda: getpass.getpass("Wallet passphrase: "))
        signed = sign_request(unsigned, key)
    except (EncodingError, WalletError, OSError) as e:
        print(f"timecoin-cli: {e}", file=err)
        return 1
    print(encode_json({
        "signed": encode_request(signed), "operator_pubkey": signed["pubkey"],
        "p2p_address": signed["p2p_address"],
        "reward_address": signed["reward_address"],
        "collateral": str(request_outpoint(signed)),
        "collateral_address": signed["collateral_address"]}, indent=2),
        file=out)
    return 0


BROKEN_PIPE_STATUS = 141
"""Exit status when standard output closes early (128 + SIGPIPE)."""


def main(argv: list[str] | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None, stdin: TextIO | None = None) -> int:
    """
    Run C{timecoin-cli} with C{argv} (default C{sys.argv[1:]}); return
    the exit status: 0 on success, the absolute value of the error code on
    an RPC error (bitcoin-cli's), 1 on a connection error, 2 on a usage
    error, L{BROKEN_PIPE_STATUS} when standard output was closed early.
    """
    out = stdout if stdout is not None else sys.stdout
    try:
        status = _main(argv, out, stderr, stdin)
        out.flush()
    except BrokenPipeError:
        # The reader went away (timecoin-cli ... | head): stop quietly.
        # Point stdout at /dev/null so the interpreter's final flush does
        # not complain again.
        if stdout is None:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    return status


def error_status(error: Any) -> int:
    """
    The exit status of an RPC error, as bitcoin-cli's: the absolute value
    of its code (1 if it has none, or 0).
    """
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and not isinstance(code, bool) and code:
        return abs(code)
    return 1


def _main(argv: list[str] | None, out: TextIO, stderr: TextIO | None,
          stdin: TextIO | None) -> int:
    err = stderr if stderr is not None else sys.stderr
    parser = make_parser()
    options = parser.parse_args(argv)
    args = list(options.args)
    if options.stdin:
        args += read_stdin_args(stdin if stdin is not None else sys.stdin)
    if options.getinfo:
        if options.method is not None or args:
            print("timecoin-cli: -getinfo takes no METHOD or arguments",
                  file=err)
            return 2
    elif options.method is None:
        parser.print_usage(err)
        print("timecoin-cli: METHOD is required (timecoin-cli help lists "
              "them)", file=err)
        return 2
    if options.method == "signmasternoderegistration" and len(args) == 2:
        return sign_registration_offline(args[0], Path(args[1]), out, err)
    try:
        if options.getinfo:
            raw, status = call_waiting(options, getinfo_body())
            print(format_getinfo(parse_batch_reply(raw, status)), file=out)
            return 0
        assert options.method is not None
        body = build_request(options.method, args, options.named)
        result, error = parse_reply(*call_waiting(options, body))
    except CLIError as e:
        print(f"timecoin-cli: {e}", file=err)
        return 1
    if error is not None:
        print(format_error(error), file=err)
        return error_status(error)
    text = format_result(result)
    if text is not None:
        print(text, file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
