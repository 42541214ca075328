"""
Private files of the data dir: atomic 0600 writes in a 0700 directory,
the node's operator key file, and the private key format (64 hex digits)
that C{dumpprivkey} prints.

Imports C{keys} and L{errors}.
"""

from __future__ import annotations

import os
from pathlib import Path

from timecoin.keys import PrivateKey
from timecoin.wallet.errors import RPC_INVALID_ADDRESS_OR_KEY, WalletError

__all__ = ["load_or_create_key", "parse_private_key", "write_private"]


def write_private(path: Path, data: bytes) -> None:
    """
    Write C{data} to C{path} atomically with mode 0600, in a 0700 dir.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_or_create_key(path: Path) -> PrivateKey:
    """
    The key whose hex seed is stored at C{path}, created on first use.
    The node's operator key lives so, never encrypted: a masternode signs
    blocks and votes unattended.
    """
    if path.exists():
        return PrivateKey(bytes.fromhex(path.read_text().strip()))
    key = PrivateKey.generate()
    write_private(path, key.seed.hex().encode("ascii") + b"\n")
    return key


def parse_private_key(text: object) -> PrivateKey:
    """
    A private key in the node's format: the 32-byte Ed25519 seed as 64 hex
    digits (what C{dumpprivkey} prints and C{private/node_key} holds).

    @raise WalletError: -5 if C{text} is not that.
    """
    if not isinstance(text, str) or len(text.strip()) != 64:
        raise WalletError("Invalid private key encoding: want 64 hex digits",
                          RPC_INVALID_ADDRESS_OR_KEY)
    try:
        return PrivateKey(bytes.fromhex(text.strip()))
    except ValueError:
        raise WalletError("Invalid private key encoding: want 64 hex digits",
                          RPC_INVALID_ADDRESS_OR_KEY) from None
