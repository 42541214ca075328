"""
The error codes of the RPC and L{RPCError}, the error a method raises to
answer with one.

JSON-RPC's codes (-32700 to -32603), the server's own (-32001 to -32005:
L{UNAUTHORIZED} here, the others with the limits they belong to in
L{timecoin.rpc.limits} and L{timecoin.rpc.auth}) and Bitcoin Core's
(-3 to -32).  Imports nothing of the node: every RPC module may import it.
"""

from __future__ import annotations

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED = -32001
"""Code of the JSON body of a 401 (JSON-RPC 2.0's server-error range)."""

RPC_TYPE_ERROR = -3
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_WALLET_INSUFFICIENT_FUNDS = -6
RPC_INVALID_PARAMETER = -8
RPC_DESERIALIZATION_ERROR = -22
RPC_VERIFY_REJECTED = -26
RPC_VERIFY_ALREADY_IN_CHAIN = -27
RPC_IN_WARMUP = -28
RPC_DATABASE_ERROR = -20
RPC_CLIENT_P2P_DISABLED = -31
RPC_METHOD_DEPRECATED = -32
"""Bitcoin Core's code for a dummy argument given another value."""


class RPCError(Exception):
    """
    A JSON-RPC error to return: C{code} and C{message}.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
