"""
The two refusals of the chain: a block or a transaction failed
validation, each with a stable reason code (what RPC, logs and counters
show).

Imports nothing of timecoin.
"""

from __future__ import annotations

__all__ = ["BlockInvalid", "TxInvalid"]


class BlockInvalid(Exception):
    """
    A block failed validation; C{reason} is a stable reason code.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class TxInvalid(Exception):
    """
    A transaction failed validation; C{reason} is a stable reason code.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
