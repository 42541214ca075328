"""
The wallet's keys: L{KeyStore} holds every address the wallet owns with
its public key, the HD seed (L{timecoin.hdwallet}, SLIP-0010, path
C{m/0'/0'/i'}) and its keypool, the imported keys, and the L{Vault}
that encrypts the secrets; it reads and writes the C{wallet.json} object
(format version L{FORMAT_VERSION}) and never touches a file itself.

Keys derive from one HD seed, so one backup restores every address; keys
imported with C{importprivkey} (and those of a wallet written before the
seed existed, a plain list of keys) are kept next to it.  A keypool of
the next public keys is derived ahead: a locked wallet hands out
addresses from it, and payments to any of them are the wallet's, so a
backup covers addresses handed out after it.

Imports C{address}, C{hdwallet}, C{keys}, and L{errors}, L{vault}.
"""

from __future__ import annotations

from typing import Any

import nacl.utils

from timecoin.address import address_of
from timecoin.hdwallet import HDChain
from timecoin.keys import PrivateKey
from timecoin.wallet.errors import WalletError, WalletLocked
from timecoin.wallet.vault import Vault

__all__ = ["FORMAT_VERSION", "KEYPOOL_SIZE", "SEED_BYTES", "KeyStore"]

FORMAT_VERSION = 2
SEED_BYTES = 32
KEYPOOL_SIZE = 100
"""Public keys derived ahead of use (C{getwalletinfo} keypoolsize)."""


class KeyStore:
    """
    The addresses and keys of one network's wallet.

    @ivar pub: every address the wallet owns → its public key (keypool
        too).
    @ivar order: addresses handed out or imported, oldest first.
    @ivar index: HD address → its index.
    @ivar keypool: addresses of the HD indexes after the last handed out.
    @ivar chain: the HD seed's chain (C{None} while locked, or for a
        wallet of imported keys only).
    @ivar vault: the encryption of the secrets.
    """

    def __init__(self, prefix: str, keypool_size: int) -> None:
        self.prefix = prefix
        self.keypool_size = keypool_size
        self.reset()

    def reset(self) -> None:
        """
        Forget everything (before reading a wallet object).
        """
        self.pub: dict[str, bytes] = {}
        self.order: list[str] = []
        self.index: dict[str, int] = {}
        self.keypool: list[str] = []
        self.seed_id: str | None = None
        self.vault = Vault()
        # Secrets: None / empty while locked.
        self.chain: HDChain | None = None
        self.imported: dict[str, PrivateKey] = {}
        self.derived: dict[str, PrivateKey] = {}

    # The wallet object ---------------------------------------------------

    def load_obj(self, data: Any) -> None:
        """
        Read the decoded C{wallet.json} C{data} (any version this wallet
        reads).

        @raise WalletError: not a wallet object, or an unknown version.
        """
        self.reset()
        if not isinstance(data, dict):
            raise WalletError("a wallet file is a JSON object")
        if data.get("version") is None:
            # Before HD seeds: a list of raw keys, kept as imported keys.
            for seed in data["keys"]:
                self.remember(PrivateKey(bytes.fromhex(seed)))
            return
        if data["version"] != FORMAT_VERSION:
            raise WalletError(f"unknown wallet format {data['version']}")
        for item in data["keys"]:
            address = address_of(bytes.fromhex(item["pubkey"]), self.prefix)
            self.pub[address] = bytes.fromhex(item["pubkey"])
            self.order.append(address)
            if "hd_index" in item:
                self.index[address] = item["hd_index"]
        hd = data.get("hd")
        if hd is not None:
            self.seed_id = hd["seed_id"]
            for item in hd["keypool"]:
                address = address_of(bytes.fromhex(item["pubkey"]),
                                     self.prefix)
                self.pub[address] = bytes.fromhex(item["pubkey"])
                self.index[address] = item["hd_index"]
                self.keypool.append(address)
        if "encryption" in data:
            self.vault.crypto = data["encryption"]
            self.vault.sealed = data["secrets_sealed"]
        else:
            self.set_secrets(data["secrets"])

    def to_obj(self) -> dict[str, Any]:
        """
        The C{wallet.json} object (secrets sealed anew if encrypted and
        unlocked).
        """
        keys: list[dict[str, Any]] = []
        for address in self.order:
            item: dict[str, Any] = {"pubkey": self.pub[address].hex()}
            if address in self.index:
                item["hd_index"] = self.index[address]
            keys.append(item)
        obj: dict[str, Any] = {"version": FORMAT_VERSION, "keys": keys}
        if self.seed_id is not None:
            obj["hd"] = {"seed_id": self.seed_id, "keypool": [
                {"pubkey": self.pub[a].hex(), "hd_index": self.index[a]}
                for a in self.keypool]}
        if self.vault.crypto is None:
            obj["secrets"] = self.secrets()
            return obj
        self.vault.seal(self.secrets())
        obj["encryption"] = self.vault.crypto
        obj["secrets_sealed"] = self.vault.sealed
        return obj

    def secrets(self) -> dict[str, Any]:
        """
        The secrets as stored: the HD seed and the imported keys (hex).
        """
        return {"seed": None if self.chain is None
                else self.chain.seed.hex(),
                "imported": [k.seed.hex() for k in self.imported.values()]}

    def set_secrets(self, secrets: dict[str, Any]) -> None:
        """
        Hold the secrets of L{secrets}' shape (read or unsealed).
        """
        if secrets["seed"] is not None:
            self.chain = HDChain(bytes.fromhex(secrets["seed"]))
        for seed in secrets["imported"]:
            key = PrivateKey(bytes.fromhex(seed))
            self.imported[address_of(key.public, self.prefix)] = key

    def forget(self) -> None:
        """
        Lock: forget the master key and every private key.
        """
        self.vault.forget()
        self.chain = None
        self.imported = {}
        self.derived = {}

    # Keys ----------------------------------------------------------------

    @property
    def locked(self) -> bool:
        """
        Whether private keys are out of reach (encrypted and locked).
        """
        return self.vault.locked

    def need_keys(self) -> None:
        """
        @raise WalletLocked: the wallet is locked.
        """
        if self.locked:
            raise WalletLocked()

    def new_seed(self, seed: bytes | None = None) -> None:
        """
        Make C{seed} (default: a random one) the HD seed.
        """
        self.chain = HDChain(nacl.utils.random(SEED_BYTES)
                             if seed is None else seed)
        self.seed_id = self.chain.id

    def remember(self, key: PrivateKey) -> str:
        """
        Hold C{key} as an imported key (not saved).
        """
        address = address_of(key.public, self.prefix)
        if address not in self.order:
            self.pub[address] = key.public
            self.imported[address] = key
            self.order.append(address)
        return address

    def next_index(self) -> int:
        """
        The HD index after the last one derived.
        """
        if self.keypool:
            return self.index[self.keypool[-1]] + 1
        used = [self.index[a] for a in self.order if a in self.index]
        return max(used, default=-1) + 1

    def top_up(self) -> None:
        """
        Derive the keypool up to its size (needs the seed).
        """
        if self.chain is None:
            return
        index = self.next_index()
        while len(self.keypool) < self.keypool_size:
            key = self.chain.key(index)
            address = address_of(key.public, self.prefix)
            if address in self.imported:
                index += 1      # imported before: listed already
                continue
            self.pub[address] = key.public
            self.index[address] = index
            self.derived[address] = key
            self.keypool.append(address)
            index += 1

    def take_used(self, count: int) -> list[str]:
        """
        Hand out the first C{count} keypool addresses; returns them.
        """
        taken = self.keypool[:count]
        del self.keypool[:count]
        self.order.extend(taken)
        return taken

    def owns(self, address: str) -> bool:
        """
        Whether the wallet holds the key of C{address} (keypool included).
        """
        return address in self.pub

    def pubkey_for(self, address: str) -> bytes:
        """
        The public key of one of the wallet's addresses (locked or not).
        """
        return self.pub[address]

    def addresses(self) -> list[str]:
        """
        The wallet's addresses handed out or imported, oldest first.
        """
        return list(self.order)

    def key_for(self, address: str) -> PrivateKey:
        """
        The private key of one of the wallet's addresses.

        @raise WalletLocked: the wallet is locked.
        @raise KeyError: not the wallet's.
        """
        self.need_keys()
        key = self.imported.get(address) or self.derived.get(address)
        if key is not None:
            return key
        if address in self.index and self.chain is not None:
            key = self.chain.key(self.index[address])
            self.derived[address] = key
            return key
        raise KeyError(address)

    def replace_seed(self, seed: bytes) -> None:
        """
        Make C{seed} the HD seed: the addresses handed out from the old
        one stay, as imported keys; its keypool is dropped and one of the
        new seed derived.
        """
        for address in [a for a in self.order if a in self.index]:
            self.imported[address] = self.key_for(address)
            del self.index[address]
        for address in self.keypool:
            del self.pub[address]
            del self.index[address]
            self.derived.pop(address, None)
        self.keypool = []
        self.new_seed(seed)
        self.top_up()

    def dump_lines(self) -> list[str]:
        """
        Every key and the HD seed in the clear, one line each, as
        C{dumpwallet} writes them after its header.
        """
        lines = []
        if self.chain is not None:
            lines.append(f"# hdseed {self.chain.seed.hex()} "
                         f"(hdseedid {self.seed_id}, keys at m/0'/0'/i')")
        for address in self.order + self.keypool:
            origin = f"hd m/0'/0'/{self.index[address]}'" \
                if address in self.index else "imported"
            used = "" if address in self.order else " keypool"
            lines.append(f"{self.key_for(address).seed.hex()} {address} "
                         f"{origin}{used}")
        return lines
