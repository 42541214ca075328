"""
RPC access control: the cookie, HTTP Basic credentials (L{BasicAuth}),
Bitcoin Core's C{rpcauth} lines and C{rpcallowip}.

Cookie
======
At each start the node writes C{__cookie__:SECRET} (a fresh secret) to
C{DATADIR/.cookie}, mode 0600 (L{write_cookie}), and deletes it when it
stops (L{remove_cookie}); C{timecoin-cli} reads it.

C{rpcauth}
==========
A line C{USER:SALT$HMAC} lets C{USER} in with a password the config file
never holds: C{HMAC} is the hex HMAC-SHA256 of the password keyed with
C{SALT} (the salt's text as UTF-8 bytes), exactly as Bitcoin Core's
C{share/rpcauth/rpcauth.py} makes it, so lines made by either tool work
in both.  Make one with::

    python -m timecoin.rpc.auth alice            # a fresh random password
    python -m timecoin.rpc.auth alice PASSWORD   # a password of your own

and put the printed line in C{[rpc] auth = [...]} of the node's TOML.

C{rpcallowip}
=============
L{AllowList} holds the networks (CIDRs, or single addresses) that may use
the RPC port besides loopback, which is always allowed.  It only matters
when C{[rpc] bind} is not a loopback address; L{AllowIPResource} answers
every other client with HTTP 403 and a JSON error, on every path.

Imports Twisted and the standard library only (C{python -m
timecoin.rpc.auth} starts fast); imported by the RPC server and site and
by L{timecoin.config} (to check the C{[rpc]} section).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import os
import secrets
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from twisted.logger import Logger
from twisted.web import resource

log = Logger()

SALT_BYTES = 16
"""Random bytes of a generated salt (hex-encoded, as Bitcoin Core's)."""
PASSWORD_BYTES = 32
"""Random bytes of a generated password (URL-safe base64)."""
FORBIDDEN = -32002
"""Code of the JSON body of a 403 (JSON-RPC 2.0's server-error range)."""
COOKIE_USER = "__cookie__"
"""The user name of the cookie's credentials."""
COOKIE_NAME = ".cookie"
"""The cookie's file name in the data dir."""


class RPCAuthError(ValueError):
    """
    An C{rpcauth} line or an allowed-IP entry is malformed.
    """


def password_hmac(salt: str, password: str) -> str:
    """
    The hex HMAC-SHA256 of C{password} keyed with C{salt}, as Bitcoin
    Core's C{rpcauth.py} computes it.
    """
    return hmac.new(salt.encode("utf-8"), password.encode("utf-8"),
                    "sha256").hexdigest()


@dataclass(frozen=True)
class RPCAuthLine:
    """
    One parsed C{USER:SALT$HMAC} line.
    """

    user: str
    salt: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> RPCAuthLine:
        """
        Parse C{USER:SALT$HMAC} (a leading C{rpcauth=} is accepted, so a
        line copied from C{bitcoin.conf} works).

        @raise RPCAuthError: naming what is wrong.
        """
        line = text.strip()
        if line.startswith("rpcauth="):
            line = line[len("rpcauth="):]
        user, sep, rest = line.partition(":")
        salt, dollar, digest = rest.partition("$")
        if not sep or not dollar or not user or not salt:
            raise RPCAuthError(f"rpcauth line {text!r} is not "
                               f"USER:SALT$HMAC")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef"
                                    for c in digest):
            raise RPCAuthError(f"rpcauth line for {user!r}: HMAC must be 64 "
                               f"hex digits")
        return cls(user, salt, digest)

    def check(self, user: str, password: str) -> bool:
        """
        Whether C{user}/C{password} match this line (constant time in the
        password).
        """
        ok = hmac.compare_digest(password_hmac(self.salt, password),
                                 self.digest)
        return ok and hmac.compare_digest(user.encode("utf-8"),
                                          self.user.encode("utf-8"))

    def line(self) -> str:
        """
        The C{USER:SALT$HMAC} text.
        """
        return f"{self.user}:{self.salt}${self.digest}"


def make_line(user: str, password: str | None = None,
              salt: str | None = None) -> tuple[RPCAuthLine, str]:
    """
    A new C{rpcauth} line for C{user} and the password it accepts (a fresh
    random one unless given).
    """
    if not user or ":" in user:
        raise RPCAuthError("the user name must be non-empty without ':'")
    if password is None:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
    if salt is None:
        salt = secrets.token_hex(SALT_BYTES)
    return RPCAuthLine(user, salt, password_hmac(salt, password)), password


def check_credentials(lines: Iterable[RPCAuthLine], given: bytes) -> bool:
    """
    Whether decoded Basic credentials C{USER:PASSWORD} match one of
    C{lines}.
    """
    try:
        text = given.decode("utf-8")
    except UnicodeDecodeError:
        return False
    user, sep, password = text.partition(":")
    if not sep:
        return False
    ok = False
    for line in lines:
        ok |= line.check(user, password)
    return ok


# Allowed client addresses ------------------------------------------------


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_network(text: str) -> Network:
    """
    A CIDR (C{10.0.0.0/8}, C{fd00::/8}) or a single address.

    @raise RPCAuthError: if it is neither.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as e:
        raise RPCAuthError(f"allowed IP {text!r} is not an address or "
                           f"CIDR: {e}") from None


class AllowList:
    """
    The client addresses allowed to use the RPC port: loopback always,
    and the configured networks.
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = [parse_network(n) for n in networks]

    def allows(self, host: str | None) -> bool:
        """
        Whether a client at C{host} may be served.  A host that is not an
        IP address (a UNIX socket, an in-memory transport without one) is
        local.
        """
        if host is None:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return True
        if isinstance(address, ipaddress.IPv6Address) and \
                address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if address.is_loopback:
            return True
        return any(address in net for net in self.networks)


def client_host(request: Any) -> str | None:
    """
    The IP of the client of C{request}, or C{None} if it has none.
    """
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    return None if host is None else str(host)


class AllowIPResource(resource.Resource):
    """
    Serves C{inner} (the whole RPC app) to allowed clients and HTTP 403
    with a JSON error to the others, on every path.  Each refusal is
    counted in C{refused} and reported to C{on_refused(reason, client)}
    (which counts and logs it, rate-limited), or logged when there is
    none.
    """

    isLeaf = True

    def __init__(self, inner: resource.Resource, allowed: AllowList,
                 refused: Callable[[str, str], object] | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.allowed = allowed
        self.refused = 0
        self.on_refused = refused

    def render(self, request: Any) -> Any:
        """
        Check the client address, then hand the request to C{inner}.
        """
        host = client_host(request)
        if self.allowed.allows(host):
            return self.inner.render(request)
        self.refused += 1
        if self.on_refused is not None:
            self.on_refused("ip-not-allowed", str(host))
        else:
            log.info("RPC request from {client} refused: {reason}",
                     client=host, reason="ip-not-allowed")
        request.setResponseCode(403)
        request.setHeader(b"Content-Type", b"application/json")
        body = {"result": None, "id": None, "error": {
            "code": FORBIDDEN,
            "message": f"Forbidden: {host} is not in [rpc] allow_ip"}}
        return json.dumps(body).encode("utf-8") + b"\n"


def write_cookie(datadir: Path) -> tuple[Path, str]:
    """
    Write a fresh C{__cookie__:SECRET} to C{datadir/.cookie} atomically,
    with mode 0600; return the path and the secret.
    """
    secret = secrets.token_hex(32)
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir / COOKIE_NAME
    tmp = datadir / (COOKIE_NAME + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(f"{COOKIE_USER}:{secret}".encode("ascii"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path, secret


def remove_cookie(path: Path, secret: str) -> None:
    """
    Delete the cookie file at C{path} if it still holds C{secret} (a newer
    node using the same data dir may have replaced it).
    """
    with contextlib.suppress(OSError):
        if path.read_text(encoding="ascii") == f"{COOKIE_USER}:{secret}":
            path.unlink()


class BasicAuth:
    """
    Checks HTTP Basic credentials against the accepted C{user:password}
    pairs, in constant time.
    """

    def __init__(self, pairs: list[tuple[str, str]],
                 rpcauth: list[RPCAuthLine] | None = None) -> None:
        self._accepted = [f"{u}:{p}".encode() for u, p in pairs]
        self._rpcauth = list(rpcauth or ())

    @staticmethod
    def credentials(header: bytes | None) -> bytes | None:
        """
        The decoded C{USER:PASSWORD} of a Basic C{Authorization} header
        value, or C{None} if it carries none (missing, another scheme, bad
        base64, no colon): such a header can never be accepted, so it is
        no password guess.
        """
        if not header:
            return None
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            given = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        return given if b":" in given else None

    def check(self, header: bytes | None) -> bool:
        """
        Whether an C{Authorization} header value carries accepted
        credentials.
        """
        given = self.credentials(header)
        return given is not None and self.accepts(given)

    def accepts(self, given: bytes) -> bool:
        """
        Whether decoded credentials C{USER:PASSWORD} are accepted.
        """
        ok = False
        for expected in self._accepted:
            ok |= hmac.compare_digest(given, expected)
        if self._rpcauth:
            ok |= check_credentials(self._rpcauth, given)
        return ok


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """
    C{python -m timecoin.rpc.auth USER [PASSWORD]}: print an C{rpcauth}
    line for the config and the password it accepts.
    """
    args = sys.argv[1:] if argv is None else argv
    stdout = out if out is not None else sys.stdout
    if len(args) not in (1, 2) or args[0] in ("-h", "--help"):
        print("usage: python -m timecoin.rpc.auth USER [PASSWORD]\n"
              "Print an [rpc] auth line (Bitcoin Core's rpcauth format) "
              "and its password.", file=stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    try:
        line, password = make_line(args[0], args[1] if len(args) == 2
                                   else None)
    except RPCAuthError as e:
        print(f"rpcauth: {e}", file=sys.stderr)
        return 2
    print(f"Add to the [rpc] section of the node's TOML config:\n"
          f'auth = ["{line.line()}"]\n'
          f"Your password:\n{password}", file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
