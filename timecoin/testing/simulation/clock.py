"""
Simulated time: L{HeapClock}, the one clock of a run, and L{Journal}, the
run's timeline and event counters kept in that time.

Imports L{world} only from the rest of the simulator.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable

from twisted.internet.base import DelayedCall
from twisted.internet.task import Clock

from timecoin.testing.simulation.world import START

__all__ = ["HeapClock", "Journal"]


class HeapClock(Clock):
    """
    L{Clock} with its calls in a heap: C{task.Clock} re-sorts every call at
    every C{callLater} and after every call it runs, which makes a run
    with thousands of pending timers quadratic.  Same order of calls (by
    time, then by scheduling order); cancelled and rescheduled calls are
    dropped lazily.
    """

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._seq = 0

    def _push(self, call: DelayedCall) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (call.getTime(), self._seq, call))

    def callLater(self, delay: float, callable: Callable[..., object],
                  *args: object, **kw: object) -> DelayedCall:
        call = DelayedCall(self.seconds() + delay, callable, args, kw,
                           lambda c: None, self._push, self.seconds)
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        """
        The pending calls, soonest first.
        """
        live = {id(c): c for _, _, c in self._heap if c.active()}
        return sorted(live.values(), key=lambda c: c.getTime())

    def next_due(self) -> float | None:
        """
        When the soonest pending call is due, or C{None}.
        """
        heap = self._heap
        while heap:
            when, _, call = heap[0]
            if not call.active():
                heapq.heappop(heap)
            elif when != call.getTime():
                heapq.heappop(heap)
                self._push(call)
            else:
                return when
        return None

    def advance(self, amount: float) -> None:
        """
        Move time forward by C{amount}, running every call that falls due.
        """
        self.rightNow += amount
        while True:
            when = self.next_due()
            if when is None or when > self.rightNow:
                return
            _, _, call = heapq.heappop(self._heap)
            call.called = 1
            call.func(*call.args, **call.kw)


class Journal:
    """
    What a run records as it goes, in simulated time: its timeline (one
    line per event, as C{--verbose} prints it) and its event counters
    (the C{events} of its statistics).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.timeline: list[str] = []
        self.counters: Counter[str] = Counter()

    @property
    def now(self) -> float:
        """
        Simulated seconds since the start of the run.
        """
        return self.clock.seconds() - START

    def note(self, text: str) -> None:
        """
        Add C{text} to the timeline at the current time.
        """
        self.timeline.append(f"t={self.now:6.1f} {text}")
