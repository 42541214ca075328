"""
Wallet fixtures shared by the tests: fast Argon2id limits, a passphrase,
and L{find_secrets} (where a wallet's secrets appear in a data dir).
"""

from __future__ import annotations

from pathlib import Path

import nacl.pwhash.argon2id as argon2id

from timecoin import hdwallet
from timecoin.wallet import Wallet

FAST_KDF = (argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN)
"""Argon2id limits that keep tests fast (the file records them)."""


PASSPHRASE = "correct horse battery staple"


def secrets_of(wallet: Wallet) -> list[bytes]:
    """
    Every secret an unlocked (or unencrypted) C{wallet} holds: its seed,
    the master key and chain code of the seed, the wallet chain's parent,
    and the private key of every address it owns (keypool included).
    """
    chain = wallet._chain
    assert chain is not None
    out = [chain.seed, *hdwallet.master_key(chain.seed),
           *hdwallet.derive(chain.seed, hdwallet.WALLET_PATH)]
    for address in list(wallet._pub):
        out.append(wallet.key_for(address).seed)
    return out


def find_secrets(datadir: Path, secrets: list[bytes]) -> list[str]:
    """
    Where any of C{secrets} appears in a file under C{datadir}: as raw
    bytes or as hex (either case).
    """
    found = []
    for path in sorted(datadir.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for secret in secrets:
            for form in (secret, secret.hex().encode(),
                         secret.hex().upper().encode()):
                if form in data:
                    found.append(f"{path.name}: {secret.hex()[:8]}…")
    return found
