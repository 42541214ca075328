"""
The RPC server's limits against hostile clients (issue 14 item 8;
L{timecoin.rpc.limits}): the connection cap that evicts idle
unauthenticated sockets before the operator is refused, the idle and
per-request deadlines, the per-source failed-login delay, the long-poll
cap, C{/metrics} behind the RPC credentials, and the count and
rate-limited log of every refusal.  In process, over real HTTP channels
on L{StringTransport}s, on a L{Clock}; and one real node process under
3,000 idle connections.
"""

from __future__ import annotations

import base64
import json
import resource
import socket
import time
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest

from tests.nodeprocess import NodeProcess
from timecoin.config import ConfigError, load_config
from timecoin.rpc.errors import UNAUTHORIZED
from timecoin.rpc.limits import (
    LOGIN_THROTTLED,
    REQUEST_TIMEOUT,
    TOO_MANY_WAITING,
    LoginThrottle,
    source_of,
)
from timecoin.rpc.settings import RPCSettings
from timecoin.rpc.site import build_rpc_site
from timecoin.storage.memory import MemoryStore
from timecoin.wiring import build

START = 1_700_000_000.0
CALL = b'{"method": "getblockcount", "id": 1}'
WAIT = (b'{"method": "waitfortransaction", "id": 1, "params": ["'
        + b"ab" * 32 + b'", 600]}')


def request(body: bytes = CALL, auth: bytes | None = None,
            path: bytes = b"/", method: bytes = b"POST") -> bytes:
    """
    The bytes of one HTTP/1.1 request (kept alive).
    """
    head = method + b" " + path + b" HTTP/1.1\r\nHost: node\r\n"
    if auth is not None:
        head += b"Authorization: " + auth + b"\r\n"
    if method == b"POST":
        head += b"Content-Length: %d\r\n" % len(body)
    else:
        body = b""
    return head + b"\r\n" + body


def basic(user: str, password: str) -> bytes:
    """
    A Basic C{Authorization} header value.
    """
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class Conn:
    """
    One client connection to the site over a L{StringTransport}.
    """

    def __init__(self, channel: Any, transport: StringTransport) -> None:
        self.channel = channel
        self.transport = transport

    def send(self, data: bytes) -> None:
        """
        Deliver C{data} from the client.
        """
        self.channel.dataReceived(data)

    @property
    def open(self) -> bool:
        """
        The server has not closed (nor begun to close) the connection.
        """
        return not self.transport.disconnecting

    def status(self) -> int | None:
        """
        The HTTP status of the last response, if one was written.
        """
        raw = self.transport.value()
        if not raw:
            return None
        head = raw.rsplit(b"HTTP/1.1 ", 1)[1]
        return int(head[:3])

    def reply(self) -> dict[str, Any]:
        """
        The JSON body of the last response (unchunked).
        """
        raw = self.transport.value()
        head, _, body = raw.rsplit(b"HTTP/1.1 ", 1)[1].partition(b"\r\n\r\n")
        if b"Transfer-Encoding: chunked" in head:
            size, _, rest = body.partition(b"\r\n")
            body = rest[:int(size, 16)]
        result: dict[str, Any] = json.loads(body)
        return result

    def hang_up(self) -> None:
        """
        The client goes away (or the server's abort completes).
        """
        self.channel.connectionLost(Failure(ConnectionError("gone")))


class LimitsBase(unittest.TestCase):
    """
    A started devnet node and its RPC site with the given settings.
    """

    def make(self, **settings: Any) -> None:
        """
        Build the node and site; C{self.cookie} is its Basic header.
        """
        self.clock = Clock()
        self.clock.advance(START)
        self.config = load_config(None, dict(
            network="devnet", datadir=self.mktemp(), block_time=2.0,
            storage="memory", **settings))
        self.node = build(self.config, self.clock, store=MemoryStore(),
                          with_p2p=False).node
        self.node.startService()
        self.addCleanup(self.node.stopService)
        self.site: Any = build_rpc_site(self.node, self.config)
        cookie = (Path(self.config.datadir) / ".cookie").read_text()
        self.cookie = b"Basic " + base64.b64encode(cookie.encode())
        self.port = 40000

    def connect(self, host: str = "127.0.0.1") -> Conn | None:
        """
        A new connection from C{host}, or C{None} if the site refused it.
        """
        self.port += 1
        address: Any = (IPv6Address("TCP", host, self.port) if ":" in host
                        else IPv4Address("TCP", host, self.port))
        channel = self.site.buildProtocol(address)
        if channel is None:
            return None
        transport = StringTransport(peerAddress=address)
        channel.makeConnection(transport)
        return Conn(channel, transport)

    def conn(self, host: str = "127.0.0.1") -> Conn:
        """
        A new connection that must be admitted.
        """
        conn = self.connect(host)
        assert conn is not None
        return conn

    def call(self, host: str = "127.0.0.1", body: bytes = CALL,
             auth: bytes | None = None, path: bytes = b"/",
             method: bytes = b"POST") -> Conn:
        """
        A new connection sending one request (the cookie by default).
        """
        conn = self.conn(host)
        conn.send(request(body, self.cookie if auth is None else auth,
                          path, method))
        return conn

    def refusals(self) -> dict[str, float]:
        """
        timecoin_rpc_refusals_total by reason, scraped from /metrics with
        the cookie.
        """
        conn = self.call(path=b"/metrics", method=b"GET")
        assert conn.status() == 200, conn.transport.value()[:300]
        text = conn.transport.value().decode()
        counts = {}
        for line in text.splitlines():
            if line.startswith("timecoin_rpc_refusals_total{"):
                labels, value = line.rsplit(" ", 1)
                counts[labels.split('"')[1]] = float(value)
        conn.hang_up()
        return counts


class ConnectionCapTests(LimitsBase):
    """
    [rpc] max_connections, and who is evicted to stay under it.
    """

    def test_idle_sockets_cannot_lock_out_the_operator(self) -> None:
        """
        Thirty idle unauthenticated connections against a cap of ten: at
        no time are more than ten left open (older idle ones are evicted,
        counted under reason evicted), and the operator's call on a new
        connection is answered at once.
        """
        self.make(rpc_max_connections=10)
        idle = []
        for _ in range(30):
            idle.append(self.conn())
            self.assertLessEqual(sum(c.open for c in idle), 10)
        self.assertEqual([c.open for c in idle], [False] * 20 + [True] * 10)
        operator = self.call()
        self.assertEqual(operator.status(), 200)
        self.assertEqual(operator.reply()["result"], 0)
        self.assertEqual(sum(c.open for c in idle), 9)
        self.assertEqual(self.refusals()["evicted"], 22)

    def test_eviction_order(self) -> None:
        """
        With every slot taken, the newcomer evicts an idle unauthenticated
        connection before one still sending its request, that before an
        idle authenticated keep-alive; a connection busy with an
        authenticated request is never evicted, and when every slot is
        one the newcomer is refused (too-many-connections).
        """
        self.make(rpc_max_connections=3)
        partial = b"POST / HTTP/1.1\r\nHo"
        keepalive = self.call()
        self.assertEqual(keepalive.status(), 200)
        slow = self.conn()
        slow.send(partial)
        idle = self.conn()
        newer = self.conn()
        self.assertEqual((keepalive.open, slow.open, idle.open),
                         (True, True, False))
        newer.send(partial)
        self.conn()
        self.assertEqual((keepalive.open, slow.open, newer.open),
                         (True, False, True))
        waiters = [self.call(body=WAIT) for _ in range(3)]
        self.assertFalse(newer.open)
        self.assertFalse(keepalive.open)
        self.assertEqual([w.status() for w in waiters], [None] * 3)
        self.assertIsNone(self.connect())
        self.assertTrue(all(w.open for w in waiters))
        waiters[0].hang_up()
        counts = self.refusals()
        self.assertEqual((counts["too-many-connections"], counts["evicted"]),
                         (1, 5))

    def test_unlimited(self) -> None:
        """
        max_connections = 0 turns the cap off: 50 idle connections stay
        open.
        """
        self.make(rpc_max_connections=0)
        conns = [self.conn() for _ in range(50)]
        self.assertTrue(all(c.open for c in conns))


class TimeoutTests(LimitsBase):
    """
    Idle timeouts and the per-request deadline.
    """

    def test_idle_unauthenticated_closed(self) -> None:
        """
        A connection that sends nothing is closed unauth_timeout (5 s)
        after it opened, counted as idle-timeout; an authenticated
        keep-alive stays idle_timeout (30 s) after its last answer.
        """
        self.make()
        idle = self.conn()
        keepalive = self.call()
        self.assertEqual(keepalive.status(), 200)
        self.clock.advance(4.9)
        self.assertTrue(idle.open)
        self.clock.advance(0.2)
        self.assertFalse(idle.open)
        self.assertTrue(keepalive.open)
        self.clock.advance(24.8)
        self.assertTrue(keepalive.open)
        self.clock.advance(0.2)
        self.assertFalse(keepalive.open)
        self.assertEqual(self.refusals()["idle-timeout"], 1)

    def test_trickling_cannot_extend_the_deadline(self) -> None:
        """
        A client sending its headers one byte a second gets HTTP 408 with
        a JSON error and is closed request_timeout (30 s) after its first
        byte, though bytes keep coming; counted as request-timeout.
        """
        self.make()
        slow = self.conn()
        data = request(auth=self.cookie)
        for n in range(30):
            slow.send(data[n:n + 1])
            self.clock.advance(1.0)
            if n < 29:
                self.assertTrue(slow.open, n)
        self.assertFalse(slow.open)
        self.assertEqual(slow.status(), 408)
        self.assertEqual(slow.reply()["error"]["code"], REQUEST_TIMEOUT)
        self.assertEqual(self.refusals()["request-timeout"], 1)

    def test_slow_request_within_deadline_served(self) -> None:
        """
        A request whose body arrives in pieces over 20 s (under the 30 s
        deadline) is served, and the next request on the same connection
        gets a fresh deadline.
        """
        self.make()
        conn = self.conn()
        data = request(auth=self.cookie)
        head, body = data[:-len(CALL)], data[-len(CALL):]
        conn.send(head)
        for piece in (body[:10], body[10:20], body[20:]):
            self.clock.advance(6.5)
            conn.send(piece)
        self.assertEqual(conn.status(), 200)
        self.clock.advance(10)
        conn.send(head)
        self.clock.advance(25)
        conn.send(body)
        self.assertEqual(conn.transport.value().count(b"HTTP/1.1 200"), 2)
        self.assertTrue(conn.open)


class LoginThrottleTests(LimitsBase):
    """
    The increasing delay after failed logins, per source.
    """

    def test_delay_grows_and_locks_the_source(self) -> None:
        """
        The first three wrong passwords from loopback (any of its
        addresses: one source) are answered at once; the fourth only
        after 0.25 s of the clock, the fifth after 0.5 s.  While a delayed
        answer is pending, even the right credentials from loopback get
        429 (login-throttled, with Retry-After) at once, unchecked;
        another address is served at once meanwhile (nothing blocks).
        """
        self.make(rpc_allow_ip=["10.0.0.0/8"])
        wrong = basic("__cookie__", "0" * 64)
        for host in ("127.0.0.1", "127.0.0.2", "::1"):
            self.assertEqual(self.call(host, auth=wrong).status(), 401)
        fourth = self.call(auth=wrong)
        self.assertIsNone(fourth.status())
        locked = self.call()
        self.assertEqual(locked.status(), 429)
        self.assertIn(b"Retry-After: 1\r\n", locked.transport.value())
        self.assertEqual(locked.reply()["error"]["code"], LOGIN_THROTTLED)
        self.assertEqual(self.call("127.9.9.9").status(), 429)
        other = self.call(host="10.1.2.3")
        self.assertEqual(other.status(), 200)
        self.clock.advance(0.24)
        self.assertIsNone(fourth.status())
        self.clock.advance(0.02)
        self.assertEqual(fourth.status(), 401)
        self.assertEqual(fourth.reply()["error"]["code"], UNAUTHORIZED)
        self.assertEqual(self.call().status(), 200)
        fifth = self.call(auth=wrong)
        self.clock.advance(0.49)
        self.assertIsNone(fifth.status())
        self.clock.advance(0.02)
        self.assertEqual(fifth.status(), 401)
        counts = self.refusals()
        self.assertEqual((counts["bad-auth"], counts["login-throttled"]),
                         (5, 2))

    def test_parallel_guessing_is_slow(self) -> None:
        """
        An attacker firing 10 guesses every 0.5 s on new connections for
        60 s of the clock (1,200 guesses) has at most a dozen checked;
        the rest are refused unchecked; the operator's call is served
        once the pending answer is out.
        """
        self.make()
        answered = []
        for step in range(120):
            for n in range(10):
                answered.append(self.call(auth=basic("admin", f"{step}-{n}")))
            self.clock.advance(0.5)
        statuses = [c.status() for c in answered]
        self.assertLessEqual(statuses.count(401), 12)
        self.assertEqual(statuses.count(401) + statuses.count(429)
                         + statuses.count(None), 1200)
        self.clock.advance(16)
        self.assertEqual(self.call().status(), 200)

    def test_hung_up_client_cancels_its_delayed_answer(self) -> None:
        """
        A client that hangs up while its failed login's answer is held
        leaves no timer behind.
        """
        self.make(rpc_login_free_failures=0)
        conn = self.call(auth=basic("x", "y"))
        self.assertEqual(len(self.clock.getDelayedCalls()) > 0, True)
        pending = {id(c) for c in self.clock.getDelayedCalls()}
        conn.hang_up()
        left = {id(c) for c in self.clock.getDelayedCalls()}
        self.assertLess(len(left), len(pending))
        self.clock.advance(1)
        self.assertIsNone(conn.status())

    def test_not_a_guess_never_delayed(self) -> None:
        """
        A request without credentials, or with a header that can never be
        accepted (another scheme, bad base64, no colon), gets its 401 at
        once however often it comes: it guesses nothing.
        """
        self.make(rpc_login_free_failures=0)
        for auth in (b"Bearer x", b"Basic !!!", b"Basic " +
                     base64.b64encode(b"nocolon")) * 5:
            self.assertEqual(self.call(auth=auth).status(), 401)
        conn = self.conn()
        conn.send(b"POST / HTTP/1.1\r\nHost: n\r\nContent-Length: 2\r\n\r\n"
                  b"{}")
        self.assertEqual(conn.status(), 401)

    def test_throttle_unit(self) -> None:
        """
        LoginThrottle: delays double up to login_max_delay; a source's
        failures are forgotten login_forget seconds after its last; at
        most max_sources sources are remembered.
        """
        clock = Clock()
        limits = RPCSettings(login_free_failures=1, login_delay=1.0,
                           login_max_delay=4.0, login_forget=100.0)
        throttle = LoginThrottle(clock, limits, max_sources=50)
        delays = []
        for _ in range(6):
            delays.append(throttle.failed("a"))
            clock.advance(5)
        self.assertEqual(delays, [0.0, 1.0, 2.0, 4.0, 4.0, 4.0])
        self.assertEqual(throttle.failures("a"), 6)
        clock.advance(100)
        self.assertEqual(throttle.failures("a"), 0)
        self.assertEqual(throttle.failed("a"), 0.0)
        for n in range(1000):
            throttle.failed(f"10.0.{n // 256}.{n % 256}")
        self.assertLessEqual(len(throttle._sources), 50)

    def test_source_of(self) -> None:
        """
        Failures count per IPv4 address, per IPv6 /64 (an IPv4-mapped
        address as its IPv4), every loopback address as one (a local
        attacker cannot spread its guesses over 127.0.0.0/8), and as
        "local" without an IP address.
        """
        self.assertEqual(source_of("192.0.2.7"), "192.0.2.7")
        self.assertEqual(source_of("2001:db8:1:2:aaaa::1"),
                         source_of("2001:db8:1:2:bbbb::9"))
        self.assertEqual(source_of("2001:db8:1:2::1"), "2001:db8:1:2::/64")
        self.assertNotEqual(source_of("2001:db8:1:2::1"),
                            source_of("2001:db8:1:3::1"))
        self.assertEqual(source_of("::ffff:192.0.2.7"), "192.0.2.7")
        for host in ("127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.9"):
            self.assertEqual(source_of(host), "loopback")
        self.assertEqual(source_of(None), "local")
        self.assertEqual(source_of("/tmp/sock"), "local")


class LongPollTests(LimitsBase):
    """
    [rpc] max_waiting.
    """

    def test_cap_and_release(self) -> None:
        """
        With max_waiting = 2, two waitfortransaction calls wait; a third
        gets error -32004 at once (too-many-waiting); when one waiter
        hangs up its slot is free again, and rpc_waiting shows the count.
        """
        self.make(rpc_max_waiting=2)
        first, second = self.call(body=WAIT), self.call(body=WAIT)
        self.assertEqual((first.status(), second.status()), (None, None))
        third = self.call(body=WAIT)
        self.assertEqual(third.reply()["error"]["code"], TOO_MANY_WAITING)
        self.assertIn("max_waiting", third.reply()["error"]["message"])
        scrape = self.call(path=b"/metrics", method=b"GET")
        self.assertIn(b"timecoin_rpc_waiting 2.0", scrape.transport.value())
        first.hang_up()
        fourth = self.call(body=WAIT)
        self.assertIsNone(fourth.status())
        self.clock.advance(601)
        self.assertEqual(second.reply()["result"]["state"], "unknown")
        self.assertEqual(self.refusals()["too-many-waiting"], 1)
        scrape = self.call(path=b"/metrics", method=b"GET")
        self.assertIn(b"timecoin_rpc_waiting 0.0", scrape.transport.value())


class MetricsAuthTests(LimitsBase):
    """
    /metrics behind the RPC credentials unless [rpc] metrics_open.
    """

    def test_metrics_need_credentials(self) -> None:
        """
        Without credentials /metrics is 401 (a JSON error); with the
        cookie it is served; /health still needs none.
        """
        self.make()
        conn = self.conn()
        conn.send(request(path=b"/metrics", method=b"GET"))
        self.assertEqual(conn.status(), 401)
        self.assertEqual(conn.reply()["error"]["code"], UNAUTHORIZED)
        self.assertNotIn(b"timecoin_chain_height", conn.transport.value())
        ok = self.call(path=b"/metrics", method=b"GET")
        self.assertEqual(ok.status(), 200)
        self.assertIn(b"timecoin_chain_height", ok.transport.value())
        health = self.conn()
        health.send(request(path=b"/health", method=b"GET"))
        self.assertEqual(health.status(), 200)

    def test_metrics_open(self) -> None:
        """
        With metrics_open = true, /metrics is served without credentials.
        """
        self.make(rpc_metrics_open=True)
        conn = self.conn()
        conn.send(request(path=b"/metrics", method=b"GET"))
        self.assertEqual(conn.status(), 200)
        self.assertIn(b"timecoin_chain_height", conn.transport.value())


class RefusalLogTests(LimitsBase):
    """
    Every refusal is logged with its reason, rate-limited.
    """

    def test_flood_logs_little(self) -> None:
        """
        1,000 idle connections against a cap of 10 and 100 requests
        without credentials make at most a couple of log lines per reason,
        each naming its reason; the counters have them all.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.make(rpc_max_connections=10)
        for _ in range(1000):
            self.conn()
        for _ in range(100):
            self.call(auth=b"Bearer nothing")
        lines = [formatEvent(e) for e in events
                 if e.get("log_namespace") == "timecoin.rpc.limits"]
        evicted = [line for line in lines if "refused: evicted" in line]
        bad = [line for line in lines if "refused: bad-auth" in line]
        self.assertEqual((len(evicted), len(bad)), (1, 1), lines)
        counts = self.refusals()
        self.assertEqual(counts["bad-auth"], 100)
        self.assertGreaterEqual(counts["evicted"], 1090)


class ConfigTests(unittest.TestCase):
    """
    The limits are settings of [rpc].
    """

    def test_settings(self) -> None:
        """
        Each limit is an [rpc] key with its default; a negative value, a
        wrong type or an unknown key stops start-up naming it.
        """
        path = Path(self.mktemp())
        path.write_text("[rpc]\nmax_connections = 7\nmetrics_open = true\n"
                        "login_delay = 1\n")
        config = load_config(str(path), {})
        limits = config.rpc
        self.assertEqual((limits.max_connections, limits.metrics_open,
                          limits.login_delay, limits.unauth_timeout,
                          limits.request_timeout, limits.max_waiting),
                         (7, True, 1.0, 5.0, 30.0, 100))
        for text, name in (("max_connections = -1", "[rpc] max_connections"),
                           ('metrics_open = "yes"', "[rpc] metrics_open"),
                           ("request_timeout = -1", "[rpc] request_timeout"),
                           ("max_conections = 5", "[rpc] max_conections")):
            path.write_text(f"[rpc]\n{text}\n")
            e = self.assertRaises(ConfigError, load_config, str(path), {})
            self.assertIn(name, str(e))


    def test_listen_backlog_wired(self) -> None:
        """
        twistd timecoin listens on the RPC port with [rpc] listen_backlog
        (1,024 by default; Twisted's own 50 overflows under a connection
        flood and a new client waits a second for its SYN retry).
        """
        from twisted.application.internet import TCPServer

        from timecoin import tap
        for extra, backlog in (([], 1024), (["--config", "x"], 64)):
            if extra:
                path = Path(self.mktemp())
                path.write_text("[rpc]\nlisten_backlog = 64\n")
                extra = ["--config", str(path)]
            options = tap.Options()
            options.parseOptions(["--datadir", self.mktemp(), "--storage",
                                  "memory", *extra])
            top = tap.makeService(options)
            rpc = [c for c in top if isinstance(c, TCPServer)][0]
            self.assertEqual(rpc.kwargs["backlog"], backlog)
        e = self.assertRaises(ConfigError, load_config, None,
                              {"rpc_listen_backlog": 0})
        self.assertIn("[rpc] listen_backlog", str(e))


class IdleFloodProcessTests(unittest.TestCase):
    """
    A real node process under 3,000 idle TCP connections to its RPC port.
    """

    def test_operator_answered_under_idle_flood(self) -> None:
        """
        A node whose file-descriptor limit is 1,024, with 3,000 idle
        connections opened to its RPC port (the penetration test's attack,
        scaled down: before the cap it ran out of descriptors and reset
        the operator's connection), answers the operator's getblockcount
        (with the cookie, on a new connection) within a second, and holds
        no more than its cap of RPC connections (rpc_connections).
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = 3_400
        if hard != resource.RLIM_INFINITY and hard < want:
            raise unittest.SkipTest(f"RLIMIT_NOFILE hard limit {hard}")
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE,
                        (soft, hard))
        node = NodeProcess(Path(self.mktemp()).resolve())
        self.addCleanup(node.kill)
        # The node inherits a soft limit of 1,024 descriptors; this
        # process then raises its own for the 3,000 client sockets.
        resource.setrlimit(resource.RLIMIT_NOFILE, (1_024, hard))
        try:
            node.start()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want),
                                                        hard))
        sockets: list[socket.socket] = []

        def close_all() -> None:
            for s in sockets:
                s.close()

        self.addCleanup(close_all)
        began = time.monotonic()
        for _ in range(3_000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", node.rpc_port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        self.assertGreater(len(sockets), 2_500)
        started = time.monotonic()
        height = node.call("getblockcount")
        elapsed = time.monotonic() - started
        self.assertGreaterEqual(height, 0)
        self.assertLess(elapsed, 1.0, node.log_tail())
        metrics = self.scrape(node)
        self.assertLessEqual(metrics["timecoin_rpc_connections"], 200)
        self.assertGreater(metrics["evicted"], 2_000)
        self.assertLess(time.monotonic() - began, 60)

    def scrape(self, node: NodeProcess) -> dict[str, float]:
        """
        rpc_connections and the evicted count from the node's /metrics.
        """
        import urllib.request
        cookie = (node.datadir / ".cookie").read_text().strip()
        req = urllib.request.Request(
            f"http://127.0.0.1:{node.rpc_port}/metrics",
            headers={"Authorization": "Basic " + base64.b64encode(
                cookie.encode()).decode()})
        with urllib.request.urlopen(req, timeout=10) as response:
            text = response.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith("timecoin_rpc_connections "):
                out["timecoin_rpc_connections"] = float(line.split()[1])
            if line.startswith('timecoin_rpc_refusals_total{reason="evicted"}'):
                out["evicted"] = float(line.split()[1])
        return out
