"""
The encryption of a wallet's secrets: L{Vault} keeps the seed and the
imported keys inside a C{SecretBox} (XSalsa20-Poly1305) under a random
master key, itself in a C{SecretBox} under a key stretched from the
passphrase with Argon2id (PyNaCl's C{pwhash}), as Bitcoin Core keeps a
master key encrypted by the passphrase: changing the passphrase
re-encrypts 32 bytes.  See C{docs/wallet.md}.

The C{encryption} object and the C{secrets_sealed} hex it holds are
written in C{wallet.json} as they are.  Imports L{errors}.
"""

from __future__ import annotations

import json
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.utils
from nacl.secret import SecretBox

from timecoin.wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_WALLET_PASSPHRASE_INCORRECT,
    WalletError,
)

__all__ = ["KDF_LIMITS", "Vault"]

KDF_LIMITS = (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE)
"""Argon2id's (opslimit, memlimit) for a new passphrase: libsodium's
"interactive" level, 64 MiB; stored in the file with the salt."""


def _stretch(passphrase: str, crypto: dict[str, Any]) -> bytes:
    if not passphrase:
        raise WalletError("passphrase cannot be empty", RPC_INVALID_PARAMETER)
    return argon2id.kdf(SecretBox.KEY_SIZE, passphrase.encode("utf-8"),
                        bytes.fromhex(crypto["salt"]),
                        opslimit=crypto["opslimit"],
                        memlimit=crypto["memlimit"])


def _seal_master(master: bytes, passphrase: str,
                 limits: tuple[int, int]) -> dict[str, Any]:
    crypto: dict[str, Any] = {
        "kdf": "argon2id", "opslimit": limits[0], "memlimit": limits[1],
        "salt": nacl.utils.random(argon2id.SALTBYTES).hex()}
    box = SecretBox(_stretch(passphrase, crypto))
    crypto["master_key"] = bytes(box.encrypt(master)).hex()
    return crypto


class Vault:
    """
    A wallet's encryption state.

    @ivar crypto: the C{encryption} object of the file (KDF parameters,
        salt, the sealed master key), or C{None} while not encrypted.
    @ivar sealed: the encrypted secrets (hex), while encrypted.
    @ivar master: the master key while unlocked, else C{None}.
    """

    def __init__(self) -> None:
        self.crypto: dict[str, Any] | None = None
        self.sealed: str | None = None
        self.master: bytes | None = None

    @property
    def encrypted(self) -> bool:
        """Whether a passphrase protects the secrets."""
        return self.crypto is not None

    @property
    def locked(self) -> bool:
        """Whether the secrets are out of reach (encrypted and locked)."""
        return self.crypto is not None and self.master is None

    def create(self, passphrase: str, limits: tuple[int, int]) -> None:
        """
        Encrypt from now on under a new master key sealed by
        C{passphrase} (stretched with C{limits}); unlocked.
        """
        master = nacl.utils.random(SecretBox.KEY_SIZE)
        self.crypto = _seal_master(master, passphrase, limits)
        self.master = master

    def open_master(self, passphrase: str) -> bytes:
        """
        The master key, opened with C{passphrase}.

        @raise WalletError: -14 wrong passphrase, -8 empty.
        """
        assert self.crypto is not None
        box = SecretBox(_stretch(passphrase, self.crypto))
        try:
            return box.decrypt(bytes.fromhex(self.crypto["master_key"]))
        except nacl.exceptions.CryptoError:
            raise WalletError("Error: The wallet passphrase entered was "
                              "incorrect.",
                              RPC_WALLET_PASSPHRASE_INCORRECT) from None

    def unseal(self, master: bytes) -> Any:
        """
        Unlock with C{master}: the secrets it seals (decoded JSON).
        """
        assert self.sealed is not None
        plain = SecretBox(master).decrypt(bytes.fromhex(self.sealed))
        self.master = master
        return json.loads(plain)

    def seal(self, secrets: dict[str, Any]) -> None:
        """
        Seal C{secrets} anew if unlocked (a locked vault keeps what it
        holds).
        """
        if self.master is not None:
            plain = json.dumps(secrets).encode()
            self.sealed = bytes(SecretBox(self.master).encrypt(plain)).hex()

    def rekey(self, old: str, new: str, limits: tuple[int, int]) -> None:
        """
        Seal the master key under passphrase C{new} instead of C{old}.

        @raise WalletError: -14 wrong passphrase, -8 empty.
        """
        master = self.open_master(old)
        self.crypto = _seal_master(master, new, limits)

    def forget(self) -> None:
        """Lock: forget the master key."""
        self.master = None
