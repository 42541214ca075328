"""
The timers of block consensus (L{RoundTimers}): the step timeouts of the
current height, the periodic re-broadcast, and the round watchdog that
counts a round waiting far longer than its timeouts.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""


class RoundTimers:
    """
    The delayed calls block consensus schedules on its clock.

    @ivar last_round_started: when the current round (or height) began.
    """

    def __init__(self, clock: IReactorTime, round_timeout: float,
                 count: Callable[[str], None]) -> None:
        """
        @param round_timeout: the period of the re-broadcast.
        """
        self.clock = clock
        self.round_timeout = round_timeout
        self.count = count
        self._timers: list[IDelayedCall] = []
        self._heartbeat: IDelayedCall | None = None
        self.last_round_started = clock.seconds()
        self._watched = self.last_round_started

    def reset(self) -> None:
        """
        A new height (or a stop): cancel the step timeouts; the watchdog
        starts over.
        """
        self.last_round_started = self.clock.seconds()
        self._watched = self.last_round_started
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers = []

    def later(self, delay: float, fn: Callable[..., None],
              *args: object) -> None:
        """
        Call C{fn(*args)} after C{delay} seconds, unless reset first.
        """
        self.prune()
        self._timers.append(self.clock.callLater(delay, fn, *args))

    def prune(self) -> None:
        """
        Forget the step timeouts that fired or were cancelled.
        """
        self._timers = [t for t in self._timers if t.active()]

    @property
    def pending(self) -> bool:
        """
        Whether a step timeout is scheduled (as of the last L{prune} or
        L{later}).
        """
        return bool(self._timers)

    def heartbeat(self, fn: Callable[[], None]) -> None:
        """
        Call C{fn} once, C{round_timeout} from now.
        """
        self._heartbeat = self.clock.callLater(self.round_timeout, fn)

    def stop_heartbeat(self) -> None:
        """
        Cancel the scheduled L{heartbeat}.
        """
        if self._heartbeat is not None and self._heartbeat.active():
            self._heartbeat.cancel()
        self._heartbeat = None

    def round_started(self) -> None:
        """
        A round began now.
        """
        self.last_round_started = self.clock.seconds()

    def watch(self, height: int, round: int, step: str,
              span: float) -> None:
        """
        Count a round that has lasted C{span} (three times its timeout)
        without moving on (C{timeouts-round}), once per such span, and log
        it.
        """
        since = max(self.last_round_started, self._watched)
        if self.clock.seconds() - since >= span:
            self._watched = self.clock.seconds()
            self.count("timeouts-round")
            log.warn("height {height} round {round} has waited {seconds:.0f} s "
                     "at step {step}", height=height, round=round,
                     seconds=self.clock.seconds() - self.last_round_started,
                     step=step)
