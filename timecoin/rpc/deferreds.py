"""
Deferred helpers of the RPC: most of the node's Deferreds have fired by the
time a method looks, and a method that does not wait answers without the
cost of one (L{settle}, L{then}); a long-poll's client hanging up must not
cancel what it waits for (L{shielded}).

Imports Twisted only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure


def shielded(d: defer.Deferred[Any]) -> defer.Deferred[Any]:
    """
    A Deferred firing with C{d}'s result whose cancellation (a client
    hanging up) leaves C{d} alone.
    """
    out: defer.Deferred[Any] = defer.Deferred()

    def forward(result: Any) -> None:
        if not out.called:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(result)

    d.addBoth(forward)
    return out


def settle(d: defer.Deferred[Any]) -> Any:
    """
    C{d}'s result if it has fired already (its value, or its L{Failure},
    which is then handled), else a Deferred of it: most of the node's
    Deferreds fire at once, and a method that does not wait answers
    without the cost of one.
    """
    box: list[Any] = []
    d.addBoth(box.append)
    if box:
        return box[0]
    return d.addCallback(lambda _: box[0])


def then(d: defer.Deferred[Any], f: Callable[..., Any], *args: Any) -> Any:
    """
    C{f(result, *args)} once C{d} has a result: at once if it has fired
    (raising its failure), else as a Deferred.
    """
    result = settle(d)
    if isinstance(result, defer.Deferred):
        return result.addCallback(f, *args)
    if isinstance(result, Failure):
        result.raiseException()
    return f(result, *args)
