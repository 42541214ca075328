"""
``twistd timecoin``: command-line options and the service tree.
"""

from __future__ import annotations

import gc
import json
import re
from typing import Any

from twisted.application import internet, service
from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogBeginner,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
)
from twisted.python import usage

from timecoin import __version__
from timecoin.config import ConfigError, load_config

log = Logger()

SECRET_WORDS = ("password", "passphrase", "secret", "auth", "token",
                "private", "key")
"""A setting with a part of its name (between underscores) starting with
one of these is never logged, only whether it is set (C{rpc_password}, the
C{rpc_auth} hashes, ...; not C{rpc_unauth_timeout})."""
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]*@")
REDACTED = "<redacted>"


def redacted(settings: dict[str, object]) -> dict[str, object]:
    """
    C{settings} (a config's L{flat<timecoin.config.Config.flat>} view)
    fit for a log line: the value of a
    secret setting (see L{SECRET_WORDS}) replaced by L{REDACTED} (a list
    by as many), and the credentials in a URL (C{redis://:PASSWORD@host})
    too.
    """
    out: dict[str, object] = {}
    for name, value in settings.items():
        if value and any(part.startswith(SECRET_WORDS)
                         for part in name.split("_")):
            value = ([REDACTED] * len(value)
                     if isinstance(value, (list, tuple)) else REDACTED)
        elif isinstance(value, str):
            value = _URL_CREDENTIALS.sub(REDACTED + "@", value)
        out[name] = value
    return out


def filter_log_level(level: str,
                     beginner: LogBeginner = globalLogBeginner) -> None:
    """
    Write only events of C{level} (C{log_level}) and above: wrap the
    observers twistd gives C{beginner} (after C{makeService}, when it
    starts logging) in a level filter.  Does nothing once logging began.
    """
    if getattr(beginner, "_timecoin_level", None) is not None:
        beginner._timecoin_level = level  # type: ignore[attr-defined]
        return
    predicate = LogLevelFilterPredicate(LogLevel.levelWithName(level))
    begin = beginner.beginLoggingTo

    def filtered(observers: Any, *args: Any, **kwargs: Any) -> Any:
        predicate.setLogLevelForNamespace(
            "", LogLevel.levelWithName(beginner._timecoin_level))  # type: ignore[attr-defined]
        wrapped: list[ILogObserver] = [
            FilteringLogObserver(o, [predicate]) for o in observers]
        return begin(wrapped, *args, **kwargs)

    beginner._timecoin_level = level  # type: ignore[attr-defined]
    beginner.beginLoggingTo = filtered  # type: ignore[method-assign]


def collect_fully_every(middle_collections: int) -> None:
    """
    Let Python's cyclic garbage collector run a full collection at most
    once per C{middle_collections} collections of its middle generation
    (C{gc_full_every}); its other two thresholds are kept.  A process-wide
    setting, so only the daemon's start-up applies it, never a L{Node}.
    """
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, middle_collections)


class Options(usage.Options):
    """
    Options of C{twistd timecoin}; each overrides the config file.
    C{--version} prints timecoin's version (twistd's own C{--version},
    before C{timecoin}, prints Twisted's).
    """

    def opt_version(self) -> None:
        """
        Print timecoin's version and exit.
        """
        print(f"timecoin {__version__}")
        raise SystemExit(0)

    optParameters = [
        ["network", None, None, "devnet, testnet or mainnet (default devnet)"],
        ["datadir", None, None, "data directory (default ~/.timecoin/NETWORK)"],
        ["config", None, None, "TOML config file"],
        ["genesis", None, None, "genesis file to use instead of the default"],
        ["p2p-port", None, None, "P2P port", int],
        ["rpc-port", None, None, "RPC port", int],
        ["connect", None, None, "comma-separated host:port peers"],
        ["storage", None, None, "sqlite, memory or redis"],
        ["redis-url", None, None, "redis://HOST:PORT/DB"],
        ["block-time", None, None, "seconds between blocks", float],
        ["policy", None, None, "block-producer selection policy"],
        ["log-level", None, None, "lowest level logged: debug, info "
                                  "(default), warn or error"],
    ]

    def postOptions(self) -> None:
        overrides: dict[str, Any] = {
            key.replace("-", "_"): value for key, value in self.items()
            if key != "config"}
        connect = overrides.pop("connect", None)
        if connect is not None:
            overrides["p2p_connect"] = [p for p in connect.split(",") if p]
        try:
            self["parsed"] = load_config(self["config"], overrides)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from e


def makeService(options: Options) -> service.IService:
    """
    The node, its P2P service and its RPC server, as one C{MultiService}.
    """
    from twisted.internet import reactor

    from timecoin.genesis import GenesisError
    from timecoin.notify import NotifyError
    from timecoin.rpc.site import build_rpc_site
    from timecoin.selection import PolicyError
    from timecoin.wiring import build

    config = options["parsed"]
    filter_log_level(config.log_level)
    collect_fully_every(config.gc_full_every)
    log.info("timecoin {version} starting on {network}",
             version=__version__, network=config.network)
    try:
        built = build(config, reactor, stop_process=reactor.stop)
    except (GenesisError, PolicyError, NotifyError, ValueError) as e:
        raise SystemExit(f"timecoin: {e}") from e
    node = built.node
    top = service.MultiService()
    built.setServiceParent(top)
    site = build_rpc_site(node, config)
    rpc = internet.TCPServer(config.rpc.port, site,
                             backlog=config.rpc.listen_backlog,
                             interface=config.rpc.bind)
    rpc.setServiceParent(top)
    log.info("config: {config}",
             config=json.dumps(redacted(config.flat())))
    return top
