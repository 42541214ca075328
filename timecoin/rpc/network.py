"""
The C{network} area of the RPC: peers, connection counts and bans, from
the node's P2P service.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from timecoin.rpc.errors import RPC_CLIENT_P2P_DISABLED, RPC_INVALID_PARAMETER, RPCError
from timecoin.rpc.params import to_seconds, to_str
from timecoin.rpc.table import any_time

if TYPE_CHECKING:
    from timecoin.node import Node


class NetworkMethods:
    """
    The RPC methods about the P2P network of one node; error -31 when it
    runs without P2P.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def _p2p(self) -> Any:
        p2p = self.node.p2p
        if p2p is None:
            raise RPCError(RPC_CLIENT_P2P_DISABLED,
                           "P2P networking is disabled")
        return p2p

    @any_time
    def rpc_getpeerinfo(self) -> Any:
        """
        getpeerinfo

        One object per connected peer: identity, address, direction,
        state, node key, height, ping round-trip time (rtt, seconds),
        bytes and messages sent and received, connection time, and
        whether it said it reaches every masternode (reaches_every_masternode:
        its messages are then not relayed to masternodes).
        """
        return self._p2p().peer_info()

    @any_time
    def rpc_getnetworkinfo(self) -> Any:
        """
        getnetworkinfo

        version (timecoin's as an integer, Bitcoin Core's way: 0.1.0 is
        100, 1.2.3 is 10203), subversion (/timecoin:0.1.0/, Bitcoin's
        BIP 14 form of the version), protocolversion
        (of the P2P protocol), then connection counts (in, out, total),
        listen address, peers being dialled, bans, and the P2P counters
        (aggregation: the votes this node sent to aggregators and the
        bundles it sent and received, docs/protocol.md).
        """
        from timecoin import __version__
        from timecoin.p2p.messages import PROTOCOL_VERSION
        parts = [int(p) if p.isdigit() else 0
                 for p in __version__.split(".")[:3]] + [0, 0, 0]
        return {"version": parts[0] * 10_000 + parts[1] * 100 + parts[2],
                "subversion": f"/timecoin:{__version__}/",
                "protocolversion": PROTOCOL_VERSION,
                **self._p2p().network_info()}

    @any_time
    def rpc_getconnectioncount(self) -> int:
        """
        getconnectioncount

        The number of peers with a completed handshake.
        """
        return len(self._p2p().peer_info())

    @any_time
    def rpc_setban(self, peer: Any, command: Any = "add",
                   bantime: Any = None) -> None:
        """
        setban "peer" ( "add|remove" bantime )

        Ban a peer identity (an IP; ip:port on loopback) for bantime
        seconds (default the configured ban_seconds) and drop its
        connections, or lift its ban.
        """
        key = to_str(peer, "peer")
        action = to_str(command, "command")
        if action == "add":
            seconds = None if bantime is None else to_seconds(
                bantime, "bantime", 10 * 365 * 86400)
            self._p2p().set_ban(key, seconds)
        elif action == "remove":
            self._p2p().clear_ban(key)
        else:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "command must be add or remove")
        return None

    @any_time
    def rpc_listbanned(self) -> Any:
        """
        listbanned

        Current bans: [{address, banned_until}] (banned_until in seconds
        since the epoch).
        """
        return [{"address": key, "banned_until": int(until)}
                for key, until in sorted(self._p2p().banned().items())]

    @any_time
    def rpc_clearbanned(self) -> None:
        """
        clearbanned

        Lift every ban.
        """
        self._p2p().clear_ban()
        return None
