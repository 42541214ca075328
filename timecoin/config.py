"""
Node configuration: defaults, a TOML file, and command-line overrides.

The top-level keys (C{network}, C{datadir}, C{storage}, C{block_time},
C{policy}, ...) are plain fields of L{Config}.  Each TOML section is one
frozen settings object, which defines its keys, their defaults and their
documentation once:

    - C{[p2p]}: C{config.p2p}, L{P2PSettings} (L{timecoin.p2p.settings};
      its C{rate_limits} is the table C{[p2p.rate_limits]})
    - C{[rpc]}: C{config.rpc}, L{RPCSettings} (L{timecoin.rpc.settings})
    - C{[mempool]}: C{config.mempool}, L{MempoolSettings}
      (L{timecoin.mempool})
    - C{[finality]}: C{config.finality}, L{FinalitySettings}
      (L{timecoin.finality.settings})
    - C{[notify]}: C{config.notify}, L{NotifySettings}
      (L{timecoin.notify})

Every key is documented in ``etc/timecoin.toml`` with its default.
Unknown sections or keys, and values of the wrong type, are errors that
stop start-up with the offending name.  Command-line overrides name a
section's key with the section as prefix (C{--p2p-port} gives
C{p2p_port}, which is C{[p2p] port}).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from timecoin.finality.settings import FinalitySettings
from timecoin.mempool import MempoolSettings
from timecoin.notify import NotifySettings
from timecoin.p2p.settings import P2PSettings
from timecoin.params import NETWORKS
from timecoin.rpc.settings import RPCSettings

Settings = (P2PSettings | RPCSettings | MempoolSettings | FinalitySettings
            | NotifySettings)
"""The settings object of one section."""

S = TypeVar("S", P2PSettings, RPCSettings, MempoolSettings,
            FinalitySettings, NotifySettings)


class ConfigError(ValueError):
    """
    The configuration is invalid; the message names the setting.
    """


@dataclass
class Config:
    """
    All settings of a node: the top-level keys, and one settings object
    per section (see the module docstring).

    @ivar network: C{devnet}, C{testnet} or C{mainnet}; sets the default
        ports, block time and genesis.
    @ivar datadir: data directory; default C{~/.timecoin/<network>}.
    @ivar genesis: genesis file; default the network's (a devnet makes
        C{DATADIR/genesis.json} on first start).
    @ivar p2p: the C{[p2p]} settings.
    @ivar rpc: the C{[rpc]} settings.
    @ivar storage: chain storage: C{sqlite}, C{memory} or C{redis}.
    @ivar redis_url: the Redis database of C{storage = "redis"}.
    @ivar block_time: seconds between blocks; 0: the network's.
    @ivar policy: block-producer selection policy, by plugin name.
    @ivar quorum: quorum rule, C{count} or C{tier-weighted}.
    @ivar plugin_dirs: directories searched for more selection policies.
    @ivar vote_timeout: seconds a transaction may wait for its quorum
        before it is rejected (C{vote-timeout}).
    @ivar round_timeout: seconds of the first round's consensus timeouts;
        0: the block time, between 1 and 30 s.
    @ivar stall_after: seconds without a new block after which a synced
        chain counts as stalled; 0: 3 block times plus 4 round timeouts.
    @ivar auto_activate: once synced, put this node's masternode
        activation on chain by itself.
    @ivar committee_size: active masternodes of a block committee (devnet
        only; 0: the network's).
    @ivar committee_epoch: blocks per committee epoch (devnet only; 0: the
        network's).
    @ivar mempool: the C{[mempool]} settings.
    @ivar finality: the C{[finality]} settings.
    @ivar notify: the C{[notify]} settings.
    @ivar log_level: lowest level of the log lines written (L{LOG_LEVELS}).
    @ivar gc_full_every: Python's cyclic garbage collector runs a full
        collection (every object of the process) at most once per this
        many collections of its middle generation (C{gc}'s third
        threshold; Python's default is 10).
    """

    network: str = "devnet"
    datadir: str = ""
    genesis: str = ""
    p2p: P2PSettings = field(default_factory=P2PSettings)
    rpc: RPCSettings = field(default_factory=RPCSettings)
    storage: str = "sqlite"
    redis_url: str = "redis://127.0.0.1:6379/0"
    block_time: float = 0.0
    policy: str = "round-robin"
    quorum: str = "count"
    plugin_dirs: list[str] = field(default_factory=list)
    vote_timeout: float = 10.0
    round_timeout: float = 0.0
    stall_after: float = 0.0
    auto_activate: bool = True
    committee_size: int = 0
    committee_epoch: int = 0
    mempool: MempoolSettings = field(default_factory=MempoolSettings)
    finality: FinalitySettings = field(default_factory=FinalitySettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    log_level: str = "info"
    gc_full_every: int = 1000

    def resolve(self) -> None:  # noqa: C901
        """
        Fill network-dependent defaults and check values.
        """
        if self.network not in NETWORKS:
            raise ConfigError(f"network must be one of {sorted(NETWORKS)}, "
                              f"not {self.network!r}")
        net = NETWORKS[self.network]
        if not self.datadir:
            self.datadir = str(Path.home() / ".timecoin" / self.network)
        if not self.p2p.port:
            self.p2p = replace(self.p2p, port=net.p2p_port)
        if not self.rpc.port:
            self.rpc = replace(self.rpc, port=net.rpc_port)
        if not self.block_time:
            self.block_time = net.block_time
        if self.block_time <= 0:
            raise ConfigError("block_time must be positive")
        if not self.round_timeout:
            self.round_timeout = min(max(1.0, self.block_time), 30.0)
        if self.round_timeout <= 0:
            raise ConfigError("round_timeout must be positive")
        if (self.committee_size or self.committee_epoch) and \
                self.network != "devnet":
            raise ConfigError("committee_size and committee_epoch are "
                              f"fixed by the {self.network} network; they "
                              "may be set on a devnet only")
        if self.committee_size < 0 or self.committee_epoch < 0:
            raise ConfigError("committee_size and committee_epoch must not "
                              "be negative")
        if self.gc_full_every < 1:
            raise ConfigError("gc_full_every must be at least 1")
        if not self.stall_after:
            self.stall_after = 3 * self.block_time + 4 * self.round_timeout
        if self.stall_after <= 0:
            raise ConfigError("stall_after must be positive")
        if self.storage not in ("sqlite", "memory", "redis"):
            raise ConfigError(
                f"storage must be sqlite, memory or redis, not "
                f"{self.storage!r}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level must be one of "
                              f"{', '.join(LOG_LEVELS)}, not "
                              f"{self.log_level!r}")
        for name, port in (("p2p", self.p2p.port), ("rpc", self.rpc.port)):
            if not 0 < port < 65536:
                raise ConfigError(f"[{name}] port out of range")
        try:
            self.notify.check()
        except ValueError as e:
            raise ConfigError(f"[notify] {e}") from None
        try:
            self.rpc.check()
        except ValueError as e:
            raise ConfigError(f"[rpc] {e}") from None

    def flat(self) -> dict[str, object]:
        """
        Every setting by its flat name: a top-level key as it is, a
        section's key prefixed with the section (C{[p2p] port} is
        C{p2p_port}), as the command-line overrides name them.
        """
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECTIONS:
                out.update((f"{f.name}_{sub.name}", getattr(value, sub.name))
                           for sub in fields(value))
            else:
                out[f.name] = value
        return out


LOG_LEVELS = ("debug", "info", "warn", "error")
"""Values of C{log_level}, most verbose first."""

SECTIONS: dict[str, type[Settings]] = {
    "p2p": P2PSettings, "rpc": RPCSettings, "mempool": MempoolSettings,
    "finality": FinalitySettings, "notify": NotifySettings}
"""The TOML sections, each the settings class of the L{Config} field of
its name; other settings are top-level keys."""


def load_config(path: str | None, overrides: dict[str, object]) -> Config:
    """
    Build the config from C{path} (TOML, optional) and C{overrides} (set
    options of the command line, by flat name, which win), and resolve it.
    """
    data: dict[str, object] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from e
    config = build_config(data, overrides)
    config.resolve()
    return config


def build_config(data: dict[str, object],
                 overrides: dict[str, object] | None = None) -> Config:
    """
    The config, not yet resolved, of C{data} (a parsed TOML file) and
    C{overrides} (by flat name, see L{Config.flat}; a C{None} value is
    not set), each key checked against its section's settings class.

    @raise ConfigError: an unknown section or key, or a value of the
        wrong type, named.
    """
    top: dict[str, object] = {}
    sections: dict[str, dict[str, object]] = {name: {} for name in SECTIONS}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"config section [{key}] must be a table")
            sections[key].update(value)
        elif isinstance(value, dict):
            raise ConfigError(f"unknown config section [{key}]")
        else:
            top[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, sub = key.partition("_")
        if section in SECTIONS:
            sections[section][sub] = value
        else:
            top[key] = value
    config = Config()
    defaults = {f.name for f in fields(Config)} - set(SECTIONS)
    for key, value in top.items():
        if key not in defaults:
            raise ConfigError(f"unknown config setting {key!r}")
        setattr(config, key, _typed(repr(key), getattr(config, key), value))
    config.p2p = _section("p2p", config.p2p, sections["p2p"])
    config.rpc = _section("rpc", config.rpc, sections["rpc"])
    config.mempool = _section("mempool", config.mempool,
                              sections["mempool"])
    config.finality = _section("finality", config.finality,
                               sections["finality"])
    config.notify = _section("notify", config.notify, sections["notify"])
    return config


def _section(name: str, defaults: S, values: dict[str, object]) -> S:
    """
    C{defaults} with C{values} (the keys of section C{name}) set.
    """
    known = {f.name for f in fields(defaults)}
    # Each value of its field's type, as _typed and _table checked.
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"unknown config setting [{name}] {key}")
        default = getattr(defaults, key)
        if isinstance(default, dict):
            changes[key] = _table(f"{name}.{key}", default, value)
        else:
            changes[key] = _typed(f"[{name}] {key}", default, value)
    return replace(defaults, **changes)


def _typed(name: str, default: object, value: object) -> object:
    """
    C{value} for a setting whose default is C{default}: of its type (an
    int for a float, a list of strings for a list or tuple, as that).
    """
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(value, bool) and isinstance(default, bool):
            return value
    elif isinstance(default, float):
        if isinstance(value, (int, float)):
            return float(value)
    elif isinstance(default, (list, tuple)):
        if isinstance(value, list) and all(isinstance(v, str)
                                           for v in value):
            return list(value) if isinstance(default, list) \
                else tuple(value)
    elif isinstance(value, type(default)):
        return value
    kind = "list" if isinstance(default, tuple) else type(default).__name__
    raise ConfigError(f"config setting {name} must be {kind}")


def _table(name: str, default: dict[str, tuple[float, float]],
           value: object) -> dict[str, tuple[float, float]]:
    """
    The table C{[name]} (C{[p2p.rate_limits]}): C{default} with the pairs
    of numbers C{value} gives for some of its keys.
    """
    if not isinstance(value, dict):
        raise ConfigError(f"config section [{name}] must be a table")
    table = dict(default)
    for key, pair in value.items():
        if key not in default:
            raise ConfigError(f"unknown message type [{name}] {key}")
        if not (isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                for v in pair)):
            raise ConfigError(f"config setting [{name}] {key} must be a "
                              "list of two numbers")
        table[key] = (float(pair[0]), float(pair[1]))
    return table
