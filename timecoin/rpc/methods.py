"""
The RPC methods of a node, by area: L{RPCMethods} builds one object per
area (L{AREAS}) and their one method table.

Imports every area module; imported by L{timecoin.rpc.site} and
L{timecoin.rpcdoc}.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timecoin.rpc.chain import ChainMethods
from timecoin.rpc.control import ControlMethods
from timecoin.rpc.history import WalletHistoryMethods
from timecoin.rpc.masternodes import MasternodeMethods, RegistrationMethods
from timecoin.rpc.mempool import MempoolMethods
from timecoin.rpc.network import NetworkMethods
from timecoin.rpc.status import StatusHistory
from timecoin.rpc.table import method_table
from timecoin.rpc.transactions import TransactionMethods
from timecoin.rpc.wallet import WalletMethods
from timecoin.rpc.walletkeys import WalletKeyMethods

if TYPE_CHECKING:
    from timecoin.node import Node

AREAS: tuple[type, ...] = (
    ChainMethods, TransactionMethods, MempoolMethods, WalletMethods,
    WalletKeyMethods, WalletHistoryMethods, NetworkMethods,
    MasternodeMethods, RegistrationMethods, ControlMethods)
"""Every class of RPC methods, one per area."""


class RPCMethods:
    """
    The RPC methods of one node: an object per area, and L{registry},
    their one table.

    @ivar history: recent blocks and latencies (status page,
        C{masternodestatus}).
    @ivar areas: the area objects, one per class of L{AREAS}.
    """

    def __init__(self, node: Node) -> None:
        self.history = StatusHistory(node)
        self.areas: tuple[object, ...] = (
            ChainMethods(node), TransactionMethods(node),
            MempoolMethods(node), WalletMethods(node),
            WalletKeyMethods(node), WalletHistoryMethods(node),
            NetworkMethods(node), MasternodeMethods(node, self.history),
            RegistrationMethods(node), ControlMethods(node, self.registry))
        self._table = method_table(self.areas)

    def registry(self) -> dict[str, Callable[..., Any]]:
        """
        Method name → bound callable, for every C{rpc_NAME} method of
        every area.
        """
        return dict(self._table)


def method_docs() -> dict[str, str]:
    """
    Method name → its C{help} text (its docstring), for every method of
    every area, without a node.

    @raise timecoin.rpc.table.DuplicateMethod: if two areas define the
        same name.
    """
    return {name: inspect.getdoc(function) or name
            for name, function in method_table(AREAS).items()}
