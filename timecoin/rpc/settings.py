"""
The RPC settings (config section C{[rpc]}, documented in
``etc/timecoin.toml``): where the server listens, who may call it, and
its limits against hostile clients (L{timecoin.rpc.limits}).

This module imports only L{timecoin.rpc.auth} (to check the C{auth} and
C{allow_ip} values), so that L{timecoin.config} can hold an
L{RPCSettings} without loading the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from timecoin.rpc.auth import AllowList, RPCAuthError, RPCAuthLine

NON_NEGATIVE = ("max_undecided", "max_unmined", "max_connections",
                "unauth_timeout", "idle_timeout", "request_timeout",
                "max_waiting", "login_free_failures", "login_delay",
                "login_max_delay", "login_forget")
"""Settings that must not be negative (0 turns a count or a delay
off)."""


@dataclass(frozen=True)
class RPCSettings:
    """
    Settings of the RPC server (config section C{[rpc]}).

    @ivar port: JSON-RPC port; 0: the network's (mainnet 24001, testnet
        24101, devnet 24201).
    @ivar bind: interface to listen on (loopback unless changed).
    @ivar user: optional HTTP Basic user besides the cookie file
        C{DATADIR/.cookie}; used only with C{password}.
    @ivar password: ... and its password.
    @ivar auth: more users with hashed passwords: Bitcoin Core's rpcauth
        lines C{"USER:SALT$HMAC"} (L{timecoin.rpc.auth}).
    @ivar allow_ip: clients allowed besides loopback (always allowed), as
        addresses or CIDRs; others get HTTP 403 on every path.
    @ivar max_body_bytes: largest request body accepted, in bytes.
    @ivar max_undecided: while this many transactions are undecided on
        this node, clients' new ones are refused C{node-busy} (0: no
        bound; see L{timecoin.node.Node.backlog}).
    @ivar max_unmined: while this many finalized transactions wait for a
        block, clients' new ones are refused the same way (0: no bound).
    @ivar max_connections: open connections at most (0: no cap); a new
        one evicts the connection worth least.
    @ivar listen_backlog: connections the kernel queues for accept.
    @ivar unauth_timeout: seconds a connection may sit idle before it has
        authenticated.
    @ivar idle_timeout: ... and after it has (HTTP keep-alive).
    @ivar request_timeout: seconds from a request's first byte to its last
        body byte (HTTP 408).
    @ivar max_waiting: long-polls running at once (0: no cap).
    @ivar login_free_failures: failed logins per source answered at once.
    @ivar login_delay: each later failed login is answered after this many
        seconds, doubling per failure (0 turns the throttle off) ...
    @ivar login_max_delay: ... up to this many.
    @ivar login_forget: a source's failures are forgotten this many
        seconds after its last one.
    @ivar metrics_open: C{GET /metrics} needs no credentials.
    """

    port: int = 0
    bind: str = "127.0.0.1"
    user: str = ""
    password: str = ""
    auth: tuple[str, ...] = ()
    allow_ip: tuple[str, ...] = ()
    max_body_bytes: int = 4_000_000
    max_undecided: int = 1_000
    max_unmined: int = 2_000
    max_connections: int = 200
    listen_backlog: int = 1024
    unauth_timeout: float = 5.0
    idle_timeout: float = 30.0
    request_timeout: float = 30.0
    max_waiting: int = 100
    login_free_failures: int = 3
    login_delay: float = 0.25
    login_max_delay: float = 16.0
    login_forget: float = 600.0
    metrics_open: bool = False

    def check(self) -> None:
        """
        Refuse values out of range, and malformed C{auth} lines or
        C{allow_ip} entries.

        @raise ValueError: naming the key.
        """
        for name in NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.listen_backlog < 1:
            raise ValueError("listen_backlog must be positive")
        try:
            for line in self.auth:
                RPCAuthLine.parse(line)
            AllowList(self.allow_ip)
        except RPCAuthError as e:
            raise ValueError(str(e)) from None
