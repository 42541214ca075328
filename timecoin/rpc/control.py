"""
The C{control} area of the RPC: C{help}, C{stop} and C{uptime}.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from timecoin.rpc.params import to_str
from timecoin.rpc.table import any_time

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()


class ControlMethods:
    """
    The RPC methods that control one node, and C{help} over every method
    of the table C{methods} returns.
    """

    def __init__(self, node: Node,
                 methods: Callable[[], dict[str, Callable[..., Any]]]) -> None:
        self.node = node
        self._methods = methods

    @any_time
    def rpc_help(self, command: Any = None) -> str:
        """
        help ( "command" )

        The list of methods, or the help of one.
        """
        methods = self._methods()
        if command is None:
            return "\n".join((inspect.getdoc(methods[name]) or name)
                             .splitlines()[0] for name in sorted(methods))
        name = to_str(command, "command")
        if name not in methods:
            return f"help: unknown command: {name}"
        return inspect.getdoc(methods[name]) or name

    @any_time
    def rpc_stop(self) -> str:
        """
        stop

        Stop the node.
        """
        log.info("stop requested over RPC")
        self.node.stop()
        return "timecoin stopping"

    @any_time
    def rpc_uptime(self) -> int:
        """
        uptime

        Seconds since the node started.
        """
        return self.node.uptime()
