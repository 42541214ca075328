"""
L{Signal}: one typed event that any number of listeners hear, in the order
they connected.  The node's objects announce what happened through
signals (a block connected, a block committed, a message signed, a
transaction accepted or finalized) instead of public callback lists that
other modules append to.

A listener that raises is logged, with the signal's name, and the
listeners after it are still called: one broken listener (a metrics
hook, a notification) neither silences the others nor fails the operation
that emitted the signal, whose state has already changed.

This module imports nothing of C{timecoin}; every layer may import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from twisted.logger import Logger

__all__ = ["Signal"]

log = Logger()

T = TypeVar("T")


class Signal(Generic[T]):
    """
    An event carrying one value of type C{T}, heard by its listeners in
    connection order.

    @ivar name: what the log calls it (the object and attribute that emit
        it, e.g. C{chain.block_connected}).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Callable[[T], object]] = []

    def __len__(self) -> int:
        return len(self._listeners)

    def __contains__(self, listener: object) -> bool:
        """
        Whether C{listener} is connected (compared by equality).
        """
        return listener in self._listeners

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self)} listeners)>"

    def connect(self, listener: Callable[[T], object]) -> None:
        """
        Call C{listener} with the value of every later L{emit}, after the
        listeners connected before it.  A listener connected twice is
        called twice.
        """
        self._listeners.append(listener)

    def disconnect(self, listener: Callable[[T], object]) -> None:
        """
        Stop calling C{listener} (its first connection, compared by
        equality, so a bound method disconnects as another copy of it);
        nothing happens if it is not connected.
        """
        if listener in self:
            self._listeners.remove(listener)

    def replace(self, old: Callable[[T], object],
                new: Callable[[T], object]) -> None:
        """
        Put C{new} in the place of every connection of C{old}, keeping
        the order (the simulator's Byzantine nodes take over a listener).
        """
        self._listeners = [new if listener == old else listener
                           for listener in self._listeners]

    def emit(self, value: T) -> None:
        """
        Call every listener connected now with C{value}, in connection
        order (a listener connected or disconnected meanwhile counts from
        the next emit).  A listener that raises is logged and the next
        one is called.
        """
        for listener in list(self._listeners):
            try:
                listener(value)
            except Exception:
                log.failure("a listener of {signal} failed: {listener!r}",
                            signal=self.name, listener=listener)
