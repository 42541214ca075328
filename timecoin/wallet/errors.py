"""
The wallet's errors and the Bitcoin Core RPC codes they carry.

Imports nothing of timecoin.
"""

from __future__ import annotations

__all__ = [
    "RPC_INVALID_ADDRESS_OR_KEY",
    "RPC_INVALID_PARAMETER",
    "RPC_WALLET_ERROR",
    "RPC_WALLET_KEYPOOL_RAN_OUT",
    "RPC_WALLET_PASSPHRASE_INCORRECT",
    "RPC_WALLET_UNLOCK_NEEDED",
    "RPC_WALLET_WRONG_ENC_STATE",
    "UNLOCK_NEEDED",
    "InsufficientFunds",
    "WalletError",
    "WalletLocked",
]

# Bitcoin Core's error codes.
RPC_WALLET_ERROR = -4
RPC_INVALID_ADDRESS_OR_KEY = -5
RPC_INVALID_PARAMETER = -8
RPC_WALLET_KEYPOOL_RAN_OUT = -12
RPC_WALLET_UNLOCK_NEEDED = -13
RPC_WALLET_PASSPHRASE_INCORRECT = -14
RPC_WALLET_WRONG_ENC_STATE = -15

UNLOCK_NEEDED = "Error: Please enter the wallet passphrase with " \
    "walletpassphrase first."


class WalletError(Exception):
    """
    A wallet operation failed; C{code} is the Bitcoin RPC error code.
    """

    def __init__(self, message: str, code: int = -4) -> None:
        super().__init__(message)
        self.code = code


class InsufficientFunds(WalletError):
    """
    The wallet's coins do not pay for the operation (-6).
    """

    def __init__(self, message: str = "Insufficient funds") -> None:
        super().__init__(message, -6)


class WalletLocked(WalletError):
    """
    The operation needs a private key and the wallet is locked (-13).
    """

    def __init__(self) -> None:
        super().__init__(UNLOCK_NEEDED, RPC_WALLET_UNLOCK_NEEDED)
