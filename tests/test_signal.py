"""
Tests for L{timecoin.signal.Signal}.
"""

from __future__ import annotations

from twisted.logger import LogLevel, capturedLogs
from twisted.trial import unittest

from timecoin.signal import Signal


class SignalTests(unittest.TestCase):
    """
    A signal calls its listeners in connection order, survives a failing
    one, and forgets a disconnected one.
    """

    def test_connection_order(self) -> None:
        """
        Every listener gets the emitted value, in the order they were
        connected; C{len} counts them.
        """
        signal: Signal[int] = Signal("test.order")
        heard: list[tuple[str, int]] = []
        signal.connect(lambda v: heard.append(("a", v)))
        signal.connect(lambda v: heard.append(("b", v)))
        signal.connect(lambda v: heard.append(("c", v)))
        signal.emit(1)
        signal.emit(2)
        self.assertEqual(heard, [("a", 1), ("b", 1), ("c", 1),
                                 ("a", 2), ("b", 2), ("c", 2)])
        self.assertEqual(len(signal), 3)

    def test_disconnect(self) -> None:
        """
        A disconnected listener (a bound method, given again) is not
        called any more, nor C{in} the signal; the others keep their
        order; disconnecting one not connected does nothing.
        """
        signal: Signal[str] = Signal("test.disconnect")
        first: list[str] = []
        second: list[str] = []
        signal.connect(first.append)
        signal.connect(second.append)
        self.assertIn(first.append, signal)
        signal.disconnect(first.append)
        self.assertNotIn(first.append, signal)
        signal.disconnect(first.append)
        signal.emit("x")
        self.assertEqual((first, second), ([], ["x"]))
        self.assertEqual(len(signal), 1)

    def test_failing_listener(self) -> None:
        """
        A listener that raises is logged as a failure naming the signal,
        the emit does not raise, and the listeners after it are called.
        """
        signal: Signal[int] = Signal("test.failing")
        heard: list[int] = []

        def broken(value: int) -> None:
            raise ZeroDivisionError(value)

        signal.connect(heard.append)
        signal.connect(broken)
        signal.connect(heard.append)
        with capturedLogs() as events:
            signal.emit(7)
        self.assertEqual(heard, [7, 7])
        failures = [e for e in events
                    if e.get("log_level") == LogLevel.critical]
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["signal"], "test.failing")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_changes_during_emit(self) -> None:
        """
        A listener connected or disconnected while the signal is emitted
        counts from the next emit.
        """
        signal: Signal[int] = Signal("test.during")
        heard: list[str] = []

        def late(value: int) -> None:
            heard.append(f"late {value}")

        def first(value: int) -> None:
            heard.append(f"first {value}")
            signal.disconnect(second)
            signal.connect(late)

        def second(value: int) -> None:
            heard.append(f"second {value}")

        signal.connect(first)
        signal.connect(second)
        signal.emit(1)
        signal.disconnect(first)
        signal.emit(2)
        self.assertEqual(heard, ["first 1", "second 1", "late 2"])

    def test_replace(self) -> None:
        """
        C{replace} puts a listener in another's place, keeping the order.
        """
        signal: Signal[int] = Signal("test.replace")
        heard: list[str] = []

        def a(value: int) -> None:
            heard.append("a")

        signal.connect(a)
        signal.connect(lambda v: heard.append("b"))
        signal.replace(a, lambda v: heard.append("c"))
        signal.emit(0)
        self.assertEqual(heard, ["c", "b"])
