"""
The node's wallet: L{Wallet}, the keys of one network persisted to
C{DATADIR/private/wallet.json} (directory 0700, file 0600, written
atomically), with the operations RPC calls: addresses, encryption and
the unlock timeout, seed, dump, backup and restore, payments.

The work is done by the objects it owns: the L{KeyStore} (addresses,
HD seed and keypool, imported keys, the file's object) with its
L{Vault} (encryption), and the L{PaymentBuilder} (coin selection, fee,
change).  Once encrypted (L{Wallet.encrypt}) the seed and the imported
keys are stored only sealed; the file then holds public keys only in the
clear.  See C{docs/wallet.md}.

Imports C{keys}, C{address}, C{tx} and the other modules of this
package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from timecoin.address import address_of
from timecoin.hdwallet import HDChain
from timecoin.keys import PrivateKey
from timecoin.tx import OutPoint, Transaction, UtxoEntry
from timecoin.wallet.errors import (
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    RPC_WALLET_KEYPOOL_RAN_OUT,
    RPC_WALLET_WRONG_ENC_STATE,
    WalletError,
)
from timecoin.wallet.files import parse_private_key, write_private
from timecoin.wallet.keystore import KEYPOOL_SIZE, KeyStore
from timecoin.wallet.payments import PaymentBuilder
from timecoin.wallet.vault import KDF_LIMITS

__all__ = ["MAX_UNLOCK_SECONDS", "Wallet", "key_from_file"]

log = Logger()

MAX_UNLOCK_SECONDS = 100_000_000
"""The longest walletpassphrase timeout, as Bitcoin Core's."""


class Wallet:
    """
    The keys of one network's wallet, persisted to a private file.

    @ivar kdf_limits: Argon2id's (opslimit, memlimit) for the next
        passphrase set (tests lower them).
    @ivar unlocked_until: when an encrypted wallet locks again (seconds
        since the epoch, on the clock given to L{unlock}); 0 while locked.
    @ivar keys: the addresses and keys (L{KeyStore}).
    @ivar payments: coin selection and signing (L{PaymentBuilder}).
    """

    def __init__(self, path: Path, prefix: str,
                 keypool_size: int = KEYPOOL_SIZE) -> None:
        self.path = path
        self.prefix = prefix
        self.kdf_limits = KDF_LIMITS
        self.unlocked_until = 0.0
        self.keys = KeyStore(prefix, keypool_size)
        self.payments = PaymentBuilder(self.keys)
        self._relock: IDelayedCall | None = None

    # Loading and saving --------------------------------------------------

    def load(self) -> None:
        """
        Load the wallet; create it (a new seed and its first address) if
        the file does not exist.
        """
        if not self.path.exists():
            self.keys.new_seed()
            self.keys.top_up()
            self.new_address()
            return
        self._load_obj(json.loads(self.path.read_text()))

    def _load_obj(self, data: Any) -> None:
        self._relock = None
        self.keys.load_obj(data)

    def _save(self) -> None:
        write_private(self.path, json.dumps(self.keys.to_obj()).encode())

    def _remember(self, key: PrivateKey) -> str:
        """Hold C{key} as an imported key (not saved)."""
        return self.keys.remember(key)

    @property
    def _chain(self) -> HDChain | None:
        return self.keys.chain

    @property
    def _pub(self) -> dict[str, bytes]:
        return self.keys.pub

    # State ---------------------------------------------------------------

    @property
    def keypool_size(self) -> int:
        """The keypool's target size."""
        return self.keys.keypool_size

    @keypool_size.setter
    def keypool_size(self, size: int) -> None:
        self.keys.keypool_size = size

    @property
    def encrypted(self) -> bool:
        return self.keys.vault.encrypted

    @property
    def locked(self) -> bool:
        """Whether private keys are out of reach (encrypted and locked)."""
        return self.keys.locked

    @property
    def seed_id(self) -> str | None:
        """
        The public id of the HD seed (L{timecoin.hdwallet.seed_id}), or
        C{None} for a wallet of imported keys only.
        """
        return self.keys.seed_id

    def keypool_size_now(self) -> int:
        return len(self.keys.keypool)

    # Addresses -----------------------------------------------------------

    def new_address(self) -> str:
        """
        Hand out, persist and return a new receiving address: the next of
        the keypool, which is topped up again unless the wallet is locked.

        @raise WalletError: -12 when a locked wallet's keypool ran out.
        """
        keys = self.keys
        if keys.chain is None and not keys.locked and not keys.keypool:
            # A wallet of imported keys only gets its seed now.
            keys.new_seed()
        keys.top_up()
        if not keys.keypool:
            raise WalletError("Error: Keypool ran out, please call "
                              "keypoolrefill first",
                              RPC_WALLET_KEYPOOL_RAN_OUT)
        address = keys.take_used(1)[0]
        keys.top_up()
        self._save()
        return address

    def refill_keypool(self, size: int | None = None) -> None:
        """
        Derive the keypool up to C{size} (default: its size).

        @raise WalletLocked: the wallet is locked.
        """
        self.keys.need_keys()
        if size is not None:
            self.keys.keypool_size = max(size, 1)
        self.keys.top_up()
        self._save()

    def mark_used(self, seen: Iterable[str]) -> list[str]:
        """
        Hand out every keypool address up to the last one in C{seen} (the
        addresses holding coins on chain, after a restore), as Bitcoin
        Core marks keypool keys used when it sees them paid; returns the
        addresses newly listed.
        """
        seen = set(seen)
        last = max((n for n, a in enumerate(self.keys.keypool) if a in seen),
                   default=-1)
        if last < 0:
            return []
        taken = self.keys.take_used(last + 1)
        self.keys.top_up()
        self._save()
        return taken

    def addresses(self) -> list[str]:
        """The wallet's addresses handed out or imported, oldest first."""
        return self.keys.addresses()

    def owns(self, address: str) -> bool:
        """Whether the wallet holds the key of C{address} (keypool too)."""
        return self.keys.owns(address)

    def pubkey_for(self, address: str) -> bytes:
        """The public key of one of the wallet's addresses (even locked)."""
        return self.keys.pubkey_for(address)

    def key_for(self, address: str) -> PrivateKey:
        """See L{KeyStore.key_for} (locked: L{WalletLocked})."""
        return self.keys.key_for(address)

    def dump_key(self, address: str) -> str:
        """
        The private key of C{address} in the node's format (64 hex).

        @raise WalletError: -13 locked, -4 not the wallet's.
        """
        if not self.owns(address):
            raise WalletError(f"Private key for address {address} is not "
                              "known", RPC_WALLET_ERROR)
        return self.key_for(address).seed.hex()

    def import_key(self, key: PrivateKey) -> str:
        """
        Add C{key} (kept encrypted if the wallet is); returns its address.

        @raise WalletLocked: the wallet is locked.
        """
        self.keys.need_keys()
        address = address_of(key.public, self.prefix)
        if address in self.keys.keypool:
            self.mark_used([address])
            return address
        if address not in self.keys.order:
            self.keys.remember(key)
            self._save()
        return address

    # Encryption ----------------------------------------------------------

    def encrypt(self, passphrase: str) -> None:
        """
        Encrypt the wallet with C{passphrase} and lock it (Bitcoin Core's
        C{encryptwallet}).  A wallet of imported keys only gets its seed
        first.  From now on the seed and keys are never written in the
        clear.

        @raise WalletError: -15 already encrypted, -8 empty passphrase.
        """
        if self.keys.vault.encrypted:
            raise WalletError("Error: running with an encrypted wallet, but "
                              "encryptwallet was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if not passphrase:
            raise WalletError("passphrase cannot be empty",
                              RPC_INVALID_PARAMETER)
        if self.keys.chain is None:
            self.keys.new_seed()
        self.keys.top_up()
        self.keys.vault.create(passphrase, self.kdf_limits)
        self._save()
        self._forget()
        log.info("wallet encrypted; it is locked until walletpassphrase")

    def unlock(self, passphrase: str, timeout: float,
               clock: IReactorTime) -> None:
        """
        Unlock for C{timeout} seconds on C{clock}, then lock again by
        itself (Bitcoin Core's C{walletpassphrase}; a second call sets the
        new timeout).  The keypool is topped up.

        @raise WalletError: -15 not encrypted, -14 wrong passphrase.
        """
        vault = self.keys.vault
        if not vault.encrypted:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletpassphrase was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        master = vault.open_master(passphrase)
        if vault.master is None:
            self.keys.set_secrets(vault.unseal(master))
        if self._relock is not None and self._relock.active():
            self._relock.cancel()
        self._relock = clock.callLater(timeout, self._expired)
        self.unlocked_until = clock.seconds() + timeout
        if len(self.keys.keypool) < self.keys.keypool_size:
            self.keys.top_up()
            self._save()

    def _expired(self) -> None:
        self._relock = None
        self._forget()
        log.info("wallet locked again: its walletpassphrase timeout passed")

    def lock(self) -> None:
        """
        Forget the keys now (Bitcoin Core's C{walletlock}).

        @raise WalletError: -15 not encrypted.
        """
        if not self.keys.vault.encrypted:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletlock was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if self._relock is not None and self._relock.active():
            self._relock.cancel()
        self._relock = None
        self._forget()

    def _forget(self) -> None:
        self.keys.forget()
        self.unlocked_until = 0.0

    def change_passphrase(self, old: str, new: str) -> None:
        """
        Re-encrypt the master key under C{new} (Bitcoin Core's
        C{walletpassphrasechange}); locked or not, the wallet stays so.

        @raise WalletError: -15 not encrypted, -14 wrong passphrase, -8
            empty passphrase.
        """
        if not self.keys.vault.encrypted:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletpassphrasechange was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if not new:
            raise WalletError("passphrase cannot be empty",
                              RPC_INVALID_PARAMETER)
        self.keys.vault.rekey(old, new, self.kdf_limits)
        self._save()

    # Seed: set, dump -----------------------------------------------------

    def set_seed(self, seed: bytes) -> None:
        """
        Make C{seed} the wallet's HD seed (Bitcoin Core's C{sethdseed}):
        the addresses handed out from the old seed stay the wallet's, as
        imported keys; its keypool is dropped and one of the new seed
        derived.  Restores a wallet from its seed on a fresh node.

        @raise WalletLocked: the wallet is locked.
        """
        self.keys.need_keys()
        if self.keys.chain is not None and self.keys.chain.seed == seed:
            return
        self.keys.replace_seed(seed)
        self._save()

    def dump(self, path: Path) -> None:
        """
        Write every private key and the HD seed, in the clear, to a new
        file C{path} (mode 0600; Bitcoin Core's C{dumpwallet}).

        @raise WalletLocked: the wallet is locked.
        @raise WalletError: -8 the file exists.
        """
        self.keys.need_keys()
        lines = ["# timecoin wallet dump: keep it secret, it holds every "
                 "key in the clear",
                 "# keys are 64 hex digits (Ed25519 seeds); restore with "
                 "sethdseed true SEED or importprivkey KEY"]
        lines += self.keys.dump_lines()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise WalletError(f"{path} already exists. If you are sure "
                              "this is what you want, move it out of the "
                              "way first", RPC_INVALID_PARAMETER) from None
        try:
            os.write(fd, ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    # Backup and restore --------------------------------------------------

    def backup(self, destination: Path) -> Path:
        """
        Copy the wallet file to C{destination} (a file, or a directory to
        hold C{wallet.json}), mode 0600: an encrypted wallet's backup is
        encrypted too.  Returns the path written.
        """
        if destination.is_dir():
            destination = destination / self.path.name
        data = self.path.read_bytes()
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return destination

    def restore(self, data: bytes) -> Path:
        """
        Replace this wallet by the one of a backup's C{data} (any format
        this wallet reads); the current file is kept next to it as
        C{wallet.json.replaced-N}.  Returns the path of that copy.

        @raise WalletError: -4 the data is not a wallet.
        """
        probe = Wallet(self.path, self.prefix, self.keypool_size)
        try:
            probe._load_obj(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError,
                WalletError) as e:
            raise WalletError(f"Error: not a wallet backup ({e})",
                              RPC_WALLET_ERROR) from None
        n = 0
        while True:
            aside = self.path.with_name(f"{self.path.name}.replaced-{n}")
            if not aside.exists():
                break
            n += 1
        write_private(aside, self.path.read_bytes())
        if self._relock is not None and self._relock.active():
            self._relock.cancel()
        write_private(self.path, data)
        self._load_obj(json.loads(data))
        self.unlocked_until = 0.0
        self.keys.top_up()
        return aside

    # Payments ------------------------------------------------------------

    def build_payment(self, coins: Iterable[tuple[OutPoint, UtxoEntry]],
                      to: str, amount: int, network: str) -> Transaction:
        """
        Pay C{amount} units to C{to} from the wallet's C{coins} (the
        spendable outputs it may use), with the minimum fee and change.

        @raise WalletError: insufficient funds (-6), a bad amount (-3), or
            the wallet is locked (-13).
        """
        self.keys.need_keys()
        return self.payments.build_payment(coins, to, amount, network)

    def fee_payer(self, coins: Iterable[tuple[OutPoint, UtxoEntry]],
                  exclude: OutPoint | None, what: str
                  ) -> tuple[OutPoint, UtxoEntry, PrivateKey]:
        """
        The smallest of the wallet's C{coins} (other than C{exclude}) that
        pays the minimum fee and leaves change above dust, with its key.

        @raise WalletError: -13 locked, -6 no such coin.
        """
        self.keys.need_keys()
        return self.payments.fee_payer(coins, exclude, what)


def key_from_file(path: Path, address: str, prefix: str,
                  passphrase: Callable[[], str] | None = None) -> PrivateKey:
    """
    The key of C{address} from a key file, for signing away from any
    node (C{timecoin-cli signmasternoderegistration REQUEST FILE}): a file
    holding one private key as 64 hex digits (what C{dumpprivkey} prints),
    or a wallet file or backup; an encrypted one is opened with
    C{passphrase()} (a callable asked only then).

    @raise WalletError: the file holds no key of C{address}, or the
        passphrase is wrong (-14).
    """
    text = path.read_text()
    if not text.lstrip().startswith("{"):
        key = parse_private_key(text)
        if address_of(key.public, prefix) != address:
            raise WalletError(f"the key in {path} is not the key of "
                              f"{address}", RPC_WALLET_ERROR)
        return key
    wallet = Wallet(path, prefix, keypool_size=0)
    try:
        wallet._load_obj(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise WalletError(f"{path} is not a wallet file ({e})") from None
    if not wallet.owns(address):
        raise WalletError(f"{path} holds no key of {address}",
                          RPC_WALLET_ERROR)
    if wallet.locked:
        vault = wallet.keys.vault
        assert vault.crypto is not None and vault.sealed is not None
        assert passphrase is not None
        wallet.keys.set_secrets(vault.unseal(vault.open_master(passphrase())))
    return wallet.key_for(address)
