"""
The RPC's HTTP site: L{RPCSite} (connection limits, the cookie's removal
at stop), L{BoundedRequest} (the body limit while it arrives), and
L{build_rpc_site}, which wires a node's RPC: its cookie, credentials,
method table, server, allow-list, limits and metrics.

Imports every other module of the package and L{timecoin.metrics} and
L{timecoin.rpc.status}; imported by L{timecoin.tap}.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import server

from timecoin.config import Config
from timecoin.rpc.auth import (
    COOKIE_USER,
    AllowIPResource,
    AllowList,
    BasicAuth,
    RPCAuthLine,
    remove_cookie,
    write_cookie,
)
from timecoin.rpc.limits import ConnectionLimiter, Refusals, RPCChannel
from timecoin.rpc.methods import RPCMethods
from timecoin.rpc.resource import RPCResource
from timecoin.rpc.server import RPCServer, client_of
from timecoin.rpc.settings import RPCSettings
from timecoin.rpc.status import status_data

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()


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
    L{timecoin.rpc.limits}); refusals go to C{refusals}.

    Bodies are never parsed as HTML forms (C{parsePOSTFormSubmission}
    off): JSON-RPC reads the body itself, and twisted.web's form parsing
    first parsed each POST's C{Content-Type} with the C{email} package,
    which builds two classes a request (cyclic garbage for the
    collector).
    """

    displayTracebacks = False
    protocol = RPCChannel  # type: ignore[assignment]

    def __init__(self, resource: Any, max_body_bytes: int,
                 cookie: tuple[Path, str] | None = None,
                 limits: RPCSettings | None = None,
                 clock: IReactorTime | None = None,
                 refusals: Refusals | None = None) -> None:
        if limits is None or clock is None:
            super().__init__(resource, requestFactory=BoundedRequest,
                             parsePOSTFormSubmission=False)
            self.limiter: ConnectionLimiter | None = None
        else:
            # Twisted's own idle timer is off: the channels keep theirs.
            super().__init__(resource, requestFactory=BoundedRequest,
                             timeout=None, reactor=clock,
                             parsePOSTFormSubmission=False)
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
                  code=request.code, client=client_of(request))

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
    accepts it, the configured C{[rpc]} C{user}/C{password} and the users
    of C{auth}, serves only loopback and C{allow_ip} clients, limits
    request bodies to C{max_body_bytes}, and applies the other C{[rpc]}
    limits (L{timecoin.rpc.limits}) on C{node.clock}.
    """
    settings = config.rpc
    path, secret = write_cookie(Path(config.datadir))
    pairs = [(COOKIE_USER, secret)]
    if settings.user and settings.password:
        pairs.append((settings.user, settings.password))
    rpcauth = [RPCAuthLine.parse(line) for line in settings.auth]
    from timecoin.metrics import NodeMetrics
    metrics = NodeMetrics(node)
    methods = RPCMethods(node)
    history = methods.history
    refusals = Refusals(node.clock)
    rpc = RPCServer(methods.registry(), BasicAuth(pairs, rpcauth),
                    settings.max_body_bytes,
                    ready=lambda: bool(node.ready.called),
                    metrics=metrics.render, health=node.health,
                    status=lambda: status_data(node, history),
                    observe=metrics.observe_rpc, limits=settings,
                    clock=node.clock, refusals=refusals)
    log.info("RPC cookie written to {path}", path=str(path))
    resource = AllowIPResource(RPCResource(rpc),
                               AllowList(settings.allow_ip),
                               refused=refusals.refused)
    site = RPCSite(resource, settings.max_body_bytes, (path, secret),
                   limits=settings, clock=node.clock, refusals=refusals)
    limiter = site.limiter
    metrics.watch_rpc(refusals.counts,
                      lambda: len(limiter) if limiter is not None else 0,
                      lambda: rpc.waiting)
    return site
