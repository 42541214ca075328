"""
The method table of the RPC: each area object (L{timecoin.rpc.chain},
L{timecoin.rpc.wallet}, ...) has C{rpc_NAME} methods; L{method_table}
merges them into the one name → bound-method table the server
dispatches on, refusing a name two areas define.  L{any_time} marks the
methods served while the node is still starting.

Imports nothing of the node; every area imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

PREFIX = "rpc_"
"""The prefix that makes a method of an area an RPC method."""


def any_time(method: Callable[..., Any]) -> Callable[..., Any]:
    """
    Mark an RPC method as callable while the node is still starting.
    """
    method.any_time = True  # type: ignore[attr-defined]
    return method


def area_methods(area: object) -> dict[str, Callable[..., Any]]:
    """
    Method name → C{area}'s C{rpc_NAME} attribute, for each one its class
    defines: bound methods for an object, functions for a class.
    """
    cls = area if isinstance(area, type) else type(area)
    return {name[len(PREFIX):]: getattr(area, name) for name in dir(cls)
            if name.startswith(PREFIX)}


class DuplicateMethod(Exception):
    """
    Two areas define an RPC method of the same name.
    """


def method_table(areas: Iterable[object]) -> dict[str, Callable[..., Any]]:
    """
    The one table of the methods of every area of C{areas}.

    @raise DuplicateMethod: if two areas define the same name.
    """
    table: dict[str, Callable[..., Any]] = {}
    owners: dict[str, str] = {}
    for area in areas:
        owner = area.__name__ if isinstance(area, type) else \
            type(area).__name__
        for name, method in area_methods(area).items():
            if name in table:
                raise DuplicateMethod(f"RPC method {name} is defined by "
                                      f"{owners[name]} and {owner}")
            table[name] = method
            owners[name] = owner
    return table
