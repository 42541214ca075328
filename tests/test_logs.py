"""
Tests of L{timecoin.logs}: rate-limited logging on a L{Clock}, the JSON
lines observer of ``twistd --logger timecoin.logs.json_observer``, and the
P2P layer's per-peer messages going through the rate limit.
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.internet.task import Clock
from twisted.logger import (
    Logger,
    LogLevel,
    eventFromJSON,
    formatEvent,
    globalLogPublisher,
)
from twisted.trial import unittest

from tests.helpers.p2p import ProtocolTestBase
from timecoin.logs import RateLimitedLog, json_observer


class RateLimitedLogTests(unittest.TestCase):
    """
    L{RateLimitedLog}: first occurrence, then at most once per interval
    per key, with the count of suppressed repeats.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.events: list[dict[str, Any]] = []
        self.logger = Logger(namespace="test", observer=self.events.append)
        self.limited = RateLimitedLog(self.logger, self.clock, 60.0)

    def test_first_then_once_per_interval(self) -> None:
        """
        The first event of a key is logged with suppressed=0; repeats
        within the interval are not; the first after it is logged with
        the count of those dropped, and says so in its text.
        """
        self.assertTrue(self.limited.warn(("p", "bad-json"),
                                          "{peer} sent {reason}",
                                          peer="p", reason="bad-json"))
        for _ in range(5):
            self.clock.advance(10)
            self.assertFalse(self.limited.warn(("p", "bad-json"),
                                               "{peer} sent {reason}",
                                               peer="p", reason="bad-json"))
        self.assertEqual(len(self.events), 1)
        self.assertEqual(self.events[0]["suppressed"], 0)
        self.assertEqual(self.events[0]["log_level"], LogLevel.warn)
        self.assertEqual(formatEvent(self.events[0]), "p sent bad-json")
        self.clock.advance(10)
        self.assertTrue(self.limited.warn(("p", "bad-json"),
                                          "{peer} sent {reason}",
                                          peer="p", reason="bad-json"))
        self.assertEqual(self.events[1]["suppressed"], 5)
        self.assertEqual(formatEvent(self.events[1]),
                         "p sent bad-json (5 similar suppressed)")
        self.assertEqual(self.limited.suppressed_total, 5)
        self.clock.advance(60)
        self.limited.warn(("p", "bad-json"), "{peer} sent {reason}",
                          peer="p", reason="bad-json")
        self.assertEqual(self.events[2]["suppressed"], 0)

    def test_keys_independent(self) -> None:
        """
        Each key has its own interval: another peer or another reason is
        logged at once.
        """
        for key in (("p", "a"), ("q", "a"), ("p", "b")):
            self.assertTrue(self.limited.info(key, "{key}", key=key))
        self.assertFalse(self.limited.info(("p", "a"), "{key}", key="x"))
        self.assertEqual([e["log_level"] for e in self.events],
                         [LogLevel.info] * 3)

    def test_bounded(self) -> None:
        """
        A flood of distinct keys never holds more than max_keys of them;
        when full, keys whose interval is over are forgotten first.
        """
        limited = RateLimitedLog(self.logger, self.clock, 60.0, max_keys=10)
        for n in range(10):
            limited.info(n, "{n}", n=n)
        self.clock.advance(61)
        limited.info("new", "new")
        self.assertEqual(len(limited._seen), 1)
        for n in range(100):
            limited.info(("flood", n), "{n}", n=n)
            self.assertLessEqual(len(limited._seen), 10)


class JSONObserverTests(unittest.TestCase):
    """
    L{json_observer}: what ``twistd --logger timecoin.logs.json_observer``
    writes.
    """

    def test_one_object_per_line(self) -> None:
        """
        Every event, a failure with its traceback included, is one JSON
        object on one line, carrying the stable fields: log_level,
        log_namespace, log_format, log_time and the event's own fields,
        from which twisted.logger reads the event back and formats the
        same text.
        """
        out = io.StringIO()
        log = Logger(namespace="timecoin.p2p.manager",
                     observer=json_observer(out))
        log.info("closing connection to {peer}: {reason} {detail}",
                 peer="127.0.0.1:5000", reason="bad-json",
                 detail="line 1\nline 2")
        log.warn("banned {key} for {seconds} s", key="10.0.0.1",
                 seconds=3600.0)
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.failure("handling {msg_type} failed", msg_type="tx")
        log.info("bytes field {raw}", raw=b"\xff")
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 4)
        events = [json.loads(line) for line in lines]
        for event in events:
            self.assertIsInstance(event, dict)
            for name in ("log_level", "log_namespace", "log_format",
                         "log_time"):
                self.assertIn(name, event)
            self.assertEqual(event["log_namespace"], "timecoin.p2p.manager")
        self.assertEqual(events[0]["reason"], "bad-json")
        self.assertEqual(events[0]["peer"], "127.0.0.1:5000")
        self.assertEqual(events[1]["log_level"]["name"], "warn")
        self.assertEqual(events[1]["seconds"], 3600.0)
        self.assertEqual(events[2]["log_level"]["name"], "critical")
        self.assertIn("log_failure", events[2])
        back = eventFromJSON(lines[0])
        self.assertEqual(formatEvent(back),
                         "closing connection to 127.0.0.1:5000: bad-json "
                         "line 1\nline 2")
        self.flushLoggedErrors(ZeroDivisionError)

    def test_default_stdout(self) -> None:
        """
        Without an argument (as twistd calls it) the observer writes to
        standard output.
        """
        import sys

        observer: Any = json_observer()
        self.assertIs(observer._outFile, sys.stdout)


class PeerLogTests(ProtocolTestBase):
    """
    The P2P manager's per-peer drop messages go through the rate limit.
    """

    def test_manager_limits(self) -> None:
        """
        The same offence of the same peer three times within a minute is
        logged once and counted twice as log-suppressed; a minute later it
        is logged again saying two were suppressed.
        """
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        wire = self.ready()
        for _ in range(3):
            wire.feed(b'{"type":"nope"}')
        self.clock.advance(60)
        wire.feed(b'{"type":"nope"}')
        mine = [e for e in events if e.get("reason") == "unknown-type"]
        self.assertEqual([e["suppressed"] for e in mine], [0, 2])
        self.assertIn("(2 similar suppressed)", formatEvent(mine[1]))
        self.assertEqual(self.manager.peers.counters["log-suppressed"], 2)
        self.assertEqual(self.manager.peers.counters["unknown-type"], 4)
