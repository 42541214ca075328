"""
Node configuration: defaults, a TOML file, and command-line overrides.

Every setting has a default here and a documented line in
``etc/timecoin.toml``.  Unknown sections or keys, and values of the wrong
type, are errors that stop start-up with the offending name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from timecoin.params import NETWORKS


class ConfigError(ValueError):
    """
    The configuration is invalid; the message names the setting.
    """


@dataclass
class Config:
    """
    All settings of a node; TOML sections map to the name prefixes
    (C{[rpc] port} is C{rpc_port}).
    """

    network: str = "devnet"
    datadir: str = ""
    genesis: str = ""
    p2p_port: int = 0
    p2p_bind: str = "127.0.0.1"
    p2p_connect: list[str] = field(default_factory=list)
    p2p_listen: bool = True
    p2p_max_peers: int = 32
    p2p_max_outbound: int = 16
    p2p_max_inbound_per_ip: int = 1
    p2p_max_pending_handshakes: int = 64
    p2p_max_pending_per_subnet: int = 8
    p2p_evict_protect_rtt: int = 4
    p2p_evict_protect_blocks: int = 4
    p2p_evict_protect_votes: int = 4
    p2p_evict_protect_txs: int = 4
    p2p_evict_protect_oldest: int = 4
    p2p_handshake_timeout: float = 10.0
    p2p_ping_interval: float = 10.0
    p2p_pong_timeout: float = 10.0
    p2p_max_missed_pongs: int = 3
    p2p_request_timeout: float = 30.0
    p2p_output_soft_bytes: int = 1024 * 1024
    p2p_output_hard_bytes: int = 32 * 1024 * 1024
    p2p_held_requests: int = 16
    p2p_close_grace: float = 2.0
    p2p_initial_delay: float = 5.0
    p2p_max_delay: float = 300.0
    p2p_passive_wait: float = 120.0
    p2p_tip_interval: float = 30.0
    p2p_sync_batch: int = 100
    p2p_sync_window: int = 8
    p2p_sync_peer_requests: int = 4
    p2p_sync_request_timeout: float = 15.0
    p2p_sync_retry_after: float = 60.0
    p2p_sync_retry_max: float = 600.0
    p2p_sync_undelivered_points: int = 10
    p2p_sync_unproven_cooldown: float = 10.0
    p2p_sync_stall_timeout: float = 60.0
    p2p_sync_synced_ttl: float = 90.0
    p2p_sync_lag: int = 1
    p2p_sync_start_grace: float = 15.0
    p2p_sync_buffer_bytes: int = 64 * 1024 * 1024
    p2p_sync_log_interval: float = 5.0
    p2p_table_size: int = 1000
    p2p_addr_buckets: int = 64
    p2p_addr_bucket_size: int = 16
    p2p_addr_buckets_per_source: int = 4
    p2p_anchors: int = 2
    p2p_learned_retry_max: float = 3600.0
    p2p_stable_after: float = 10.0
    p2p_proven_max_delay: float = 15.0
    p2p_ban_threshold: float = 100.0
    p2p_ban_seconds: float = 3600.0
    p2p_score_half_life: float = 600.0
    p2p_tls: bool = False
    p2p_known_size: int = 4096
    p2p_relay_fanout: int = 8
    p2p_relay_fanout_direct: int = 2
    p2p_resend_known_after: float = 10.0
    rpc_port: int = 0
    rpc_bind: str = "127.0.0.1"
    rpc_user: str = ""
    rpc_password: str = ""
    rpc_max_body_bytes: int = 4_000_000
    rpc_auth: list[str] = field(default_factory=list)
    rpc_allow_ip: list[str] = field(default_factory=list)
    rpc_max_undecided: int = 1_000
    rpc_max_unmined: int = 2_000
    rpc_max_connections: int = 200
    rpc_listen_backlog: int = 1024
    rpc_unauth_timeout: float = 5.0
    rpc_idle_timeout: float = 30.0
    rpc_request_timeout: float = 30.0
    rpc_max_waiting: int = 100
    rpc_login_free_failures: int = 3
    rpc_login_delay: float = 0.25
    rpc_login_max_delay: float = 16.0
    rpc_login_forget: float = 600.0
    rpc_metrics_open: bool = False
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
    mempool_max_count: int = 10_000
    mempool_max_bytes: int = 300_000_000
    mempool_max_contenders: int = 1_000
    mempool_max_contender_bytes: int = 30_000_000
    finality_batch_delay: float = 0.05
    finality_batch_max: int = 512
    finality_late_ttl: float = 60.0
    finality_max_late: int = 10_000
    finality_query_after: float = 2.0
    finality_max_queries: int = 3
    finality_certificate_blocks: int = 1_000
    finality_max_certificates: int = 100_000
    finality_max_released: int = 100_000
    finality_signature_cache: int = 100_000
    notify_wallet: str = ""
    notify_block: str = ""
    notify_max_running: int = 4
    notify_max_queue: int = 1_000
    notify_timeout: float = 60.0
    log_level: str = "info"

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
        if not self.p2p_port:
            self.p2p_port = net.p2p_port
        if not self.rpc_port:
            self.rpc_port = net.rpc_port
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
        for name in ("notify_max_running", "notify_max_queue"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if self.notify_timeout <= 0:
            raise ConfigError("notify_timeout must be positive")
        for name in ("rpc_max_undecided", "rpc_max_unmined",
                     "rpc_max_connections", "rpc_unauth_timeout",
                     "rpc_idle_timeout", "rpc_request_timeout",
                     "rpc_max_waiting", "rpc_login_free_failures",
                     "rpc_login_delay", "rpc_login_max_delay",
                     "rpc_login_forget"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")
        if self.rpc_listen_backlog < 1:
            raise ConfigError("rpc_listen_backlog must be positive")
        for name in ("p2p_port", "rpc_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name} out of range")
        from timecoin.rpc.auth import AllowList, RPCAuthError, RPCAuthLine
        try:
            for line in self.rpc_auth:
                RPCAuthLine.parse(line)
            AllowList(self.rpc_allow_ip)
        except RPCAuthError as e:
            raise ConfigError(f"[rpc]: {e}") from None


LOG_LEVELS = ("debug", "info", "warn", "error")
"""Values of C{log_level}, most verbose first."""

SECTIONS = {"p2p", "rpc", "mempool", "finality", "notify"}
"""TOML sections whose keys are prefixed (C{[rpc] port} → C{rpc_port});
other settings are top-level keys."""


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SECTIONS:
                raise ConfigError(f"unknown config section [{key}]")
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    return flat


def load_config(path: str | None, overrides: dict[str, Any]) -> Config:
    """
    Build the config from C{path} (TOML, optional) and C{overrides} (set
    options of the command line, which win).
    """
    config = Config()
    types = {f.name: f.type for f in fields(Config)}
    values: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                values.update(_flatten(tomllib.load(f)))
        except OSError as e:
            raise ConfigError(f"cannot read config {path}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config {path} is not valid TOML: {e}") from e
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"unknown config setting {key!r}")
        default = getattr(config, key)
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float))
            value = float(value) if ok else value
        elif isinstance(default, list):
            ok = isinstance(value, list) and all(
                isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ConfigError(
                f"config setting {key!r} must be {type(default).__name__}")
        setattr(config, key, value)
    config.resolve()
    return config
