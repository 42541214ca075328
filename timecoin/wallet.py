"""
The node's wallet: Ed25519 keys kept in the private part of the data dir,
and payments built, funded and signed from them.

Keys derive from one HD seed (L{timecoin.hdwallet}, SLIP-0010, path
C{m/0'/0'/i'}), so one backup restores every address; keys imported with
C{importprivkey} (and those of a wallet written before the seed existed,
a plain list of keys) are kept next to it.  A keypool of the next
L{KEYPOOL_SIZE} public keys is derived ahead: a locked wallet hands out
addresses from it, and payments to any of them are the wallet's, so a
backup covers addresses handed out after it.

The wallet lives in ``DATADIR/private/wallet.json`` (directory 0700, file
0600), written atomically.  Once encrypted (L{Wallet.encrypt}) the seed
and the imported keys are stored only inside a C{SecretBox} (XSalsa20-
Poly1305) under a random master key, itself in a C{SecretBox} under a key
stretched from the passphrase with Argon2id (PyNaCl's C{pwhash}), as
Bitcoin Core keeps a master key encrypted by the passphrase: changing the
passphrase re-encrypts 32 bytes.  The file then holds public keys only in
the clear.  See C{docs/wallet.md}.

Change goes back to the address of the first input spent, so it is never
counted as "sent" by the fee rule (see ``docs/rules.md``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.utils
from nacl.secret import SecretBox
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from timecoin import params
from timecoin.address import address_of
from timecoin.hdwallet import HDChain
from timecoin.keys import PrivateKey
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, UtxoEntry, sign_inputs

log = Logger()

FORMAT_VERSION = 2
SEED_BYTES = 32
KEYPOOL_SIZE = 100
"""Public keys derived ahead of use (C{getwalletinfo} keypoolsize)."""
KDF_LIMITS = (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE)
"""Argon2id's (opslimit, memlimit) for a new passphrase: libsodium's
"interactive" level, 64 MiB; stored in the file with the salt."""
MAX_UNLOCK_SECONDS = 100_000_000
"""The longest walletpassphrase timeout, as Bitcoin Core's."""

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


def parse_private_key(text: Any) -> PrivateKey:
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


def _open_master(crypto: dict[str, Any], passphrase: str) -> bytes:
    box = SecretBox(_stretch(passphrase, crypto))
    try:
        return box.decrypt(bytes.fromhex(crypto["master_key"]))
    except nacl.exceptions.CryptoError:
        raise WalletError("Error: The wallet passphrase entered was "
                          "incorrect.",
                          RPC_WALLET_PASSPHRASE_INCORRECT) from None


class Wallet:
    """
    The keys of one network's wallet, persisted to a private file.

    @ivar kdf_limits: Argon2id's (opslimit, memlimit) for the next
        passphrase set (tests lower them).
    @ivar unlocked_until: when an encrypted wallet locks again (seconds
        since the epoch, on the clock given to L{unlock}); 0 while locked.
    """

    def __init__(self, path: Path, prefix: str,
                 keypool_size: int = KEYPOOL_SIZE) -> None:
        self.path = path
        self.prefix = prefix
        self.keypool_size = keypool_size
        self.kdf_limits = KDF_LIMITS
        self.unlocked_until = 0.0
        self._reset()

    def _reset(self) -> None:
        self._pub: dict[str, bytes] = {}
        """Every address the wallet owns → its public key (keypool too)."""
        self._order: list[str] = []
        """Addresses handed out or imported, oldest first."""
        self._index: dict[str, int] = {}
        """HD address → its index."""
        self._keypool: list[str] = []
        """Addresses of the HD indexes after the last handed out."""
        self._seed_id: str | None = None
        self._crypto: dict[str, Any] | None = None
        self._sealed: str | None = None
        """The encrypted secrets (hex), while encrypted."""
        # Secrets: None / empty while locked.
        self._chain: HDChain | None = None
        self._imported: dict[str, PrivateKey] = {}
        self._derived: dict[str, PrivateKey] = {}
        self._master: bytes | None = None
        self._relock: IDelayedCall | None = None

    # Loading and saving --------------------------------------------------

    def load(self) -> None:
        """
        Load the wallet; create it (a new seed and its first address) if
        the file does not exist.
        """
        if not self.path.exists():
            self._chain = HDChain(nacl.utils.random(SEED_BYTES))
            self._seed_id = self._chain.id
            self._top_up()
            self.new_address()
            return
        self._load_obj(json.loads(self.path.read_text()))

    def _load_obj(self, data: Any) -> None:
        self._reset()
        if not isinstance(data, dict):
            raise WalletError("a wallet file is a JSON object")
        if data.get("version") is None:
            # Before HD seeds: a list of raw keys, kept as imported keys.
            for seed in data["keys"]:
                self._remember(PrivateKey(bytes.fromhex(seed)))
            return
        if data["version"] != FORMAT_VERSION:
            raise WalletError(f"unknown wallet format {data['version']}")
        for item in data["keys"]:
            address = address_of(bytes.fromhex(item["pubkey"]), self.prefix)
            self._pub[address] = bytes.fromhex(item["pubkey"])
            self._order.append(address)
            if "hd_index" in item:
                self._index[address] = item["hd_index"]
        hd = data.get("hd")
        if hd is not None:
            self._seed_id = hd["seed_id"]
            for item in hd["keypool"]:
                address = address_of(bytes.fromhex(item["pubkey"]),
                                     self.prefix)
                self._pub[address] = bytes.fromhex(item["pubkey"])
                self._index[address] = item["hd_index"]
                self._keypool.append(address)
        if "encryption" in data:
            self._crypto = data["encryption"]
            self._sealed = data["secrets_sealed"]
        else:
            self._set_secrets(data["secrets"])

    def _secrets(self) -> dict[str, Any]:
        return {"seed": None if self._chain is None
                else self._chain.seed.hex(),
                "imported": [k.seed.hex() for k in self._imported.values()]}

    def _set_secrets(self, secrets: dict[str, Any]) -> None:
        if secrets["seed"] is not None:
            self._chain = HDChain(bytes.fromhex(secrets["seed"]))
        for seed in secrets["imported"]:
            key = PrivateKey(bytes.fromhex(seed))
            self._imported[address_of(key.public, self.prefix)] = key

    def _next_index(self) -> int:
        """
        The HD index after the last one derived.
        """
        if self._keypool:
            return self._index[self._keypool[-1]] + 1
        used = [self._index[a] for a in self._order if a in self._index]
        return max(used, default=-1) + 1

    def _obj(self) -> dict[str, Any]:
        keys: list[dict[str, Any]] = []
        for address in self._order:
            item: dict[str, Any] = {"pubkey": self._pub[address].hex()}
            if address in self._index:
                item["hd_index"] = self._index[address]
            keys.append(item)
        obj: dict[str, Any] = {"version": FORMAT_VERSION, "keys": keys}
        if self._seed_id is not None:
            obj["hd"] = {"seed_id": self._seed_id, "keypool": [
                {"pubkey": self._pub[a].hex(), "hd_index": self._index[a]}
                for a in self._keypool]}
        if self._crypto is None:
            obj["secrets"] = self._secrets()
            return obj
        if self._master is not None:
            plain = json.dumps(self._secrets()).encode()
            self._sealed = bytes(SecretBox(self._master).encrypt(plain)).hex()
        obj["encryption"] = self._crypto
        obj["secrets_sealed"] = self._sealed
        return obj

    def _save(self) -> None:
        write_private(self.path, json.dumps(self._obj()).encode())

    def _remember(self, key: PrivateKey) -> str:
        """
        Hold C{key} as an imported key (not saved).
        """
        address = address_of(key.public, self.prefix)
        if address not in self._order:
            self._pub[address] = key.public
            self._imported[address] = key
            self._order.append(address)
        return address

    def _top_up(self) -> None:
        """
        Derive the keypool up to its size (needs the seed).
        """
        if self._chain is None:
            return
        index = self._next_index()
        while len(self._keypool) < self.keypool_size:
            key = self._chain.key(index)
            address = address_of(key.public, self.prefix)
            if address in self._imported:
                index += 1      # imported before: listed already
                continue
            self._pub[address] = key.public
            self._index[address] = index
            self._derived[address] = key
            self._keypool.append(address)
            index += 1

    # State ---------------------------------------------------------------

    @property
    def encrypted(self) -> bool:
        return self._crypto is not None

    @property
    def locked(self) -> bool:
        """
        Whether private keys are out of reach (encrypted and locked).
        """
        return self._crypto is not None and self._master is None

    @property
    def seed_id(self) -> str | None:
        """
        The public id of the HD seed (L{timecoin.hdwallet.seed_id}), or
        C{None} for a wallet of imported keys only.
        """
        return self._seed_id

    def keypool_size_now(self) -> int:
        return len(self._keypool)

    # Addresses -----------------------------------------------------------

    def new_address(self) -> str:
        """
        Hand out, persist and return a new receiving address: the next of
        the keypool, which is topped up again unless the wallet is locked.

        @raise WalletError: -12 when a locked wallet's keypool ran out.
        """
        if self._chain is None and not self.locked and not self._keypool:
            # A wallet of imported keys only gets its seed now.
            self._chain = HDChain(nacl.utils.random(SEED_BYTES))
            self._seed_id = self._chain.id
        self._top_up()
        if not self._keypool:
            raise WalletError("Error: Keypool ran out, please call "
                              "keypoolrefill first",
                              RPC_WALLET_KEYPOOL_RAN_OUT)
        address = self._keypool.pop(0)
        self._order.append(address)
        self._top_up()
        self._save()
        return address

    def refill_keypool(self, size: int | None = None) -> None:
        """
        Derive the keypool up to C{size} (default: its size).

        @raise WalletLocked: the wallet is locked.
        """
        self._need_keys()
        if size is not None:
            self.keypool_size = max(size, 1)
        self._top_up()
        self._save()

    def mark_used(self, seen: Iterable[str]) -> list[str]:
        """
        Hand out every keypool address up to the last one in C{seen} (the
        addresses holding coins on chain, after a restore), as Bitcoin
        Core marks keypool keys used when it sees them paid; returns the
        addresses newly listed.
        """
        seen = set(seen)
        last = max((n for n, a in enumerate(self._keypool) if a in seen),
                   default=-1)
        if last < 0:
            return []
        taken = self._keypool[:last + 1]
        del self._keypool[:last + 1]
        self._order.extend(taken)
        self._top_up()
        self._save()
        return taken

    def addresses(self) -> list[str]:
        """
        The wallet's addresses handed out or imported, oldest first.
        """
        return list(self._order)

    def owns(self, address: str) -> bool:
        """
        Whether the wallet holds the key of C{address} (keypool included).
        """
        return address in self._pub

    def pubkey_for(self, address: str) -> bytes:
        """
        The public key of one of the wallet's addresses (locked or not).
        """
        return self._pub[address]

    def _need_keys(self) -> None:
        if self.locked:
            raise WalletLocked()

    def key_for(self, address: str) -> PrivateKey:
        """
        The private key of one of the wallet's addresses.

        @raise WalletLocked: the wallet is locked.
        @raise KeyError: not the wallet's.
        """
        self._need_keys()
        key = self._imported.get(address) or self._derived.get(address)
        if key is not None:
            return key
        if address in self._index and self._chain is not None:
            key = self._chain.key(self._index[address])
            self._derived[address] = key
            return key
        raise KeyError(address)

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
        self._need_keys()
        address = address_of(key.public, self.prefix)
        if address in self._keypool:
            self.mark_used([address])
            return address
        if address not in self._order:
            self._remember(key)
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
        if self._crypto is not None:
            raise WalletError("Error: running with an encrypted wallet, but "
                              "encryptwallet was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if not passphrase:
            raise WalletError("passphrase cannot be empty",
                              RPC_INVALID_PARAMETER)
        if self._chain is None:
            self._chain = HDChain(nacl.utils.random(SEED_BYTES))
            self._seed_id = self._chain.id
        self._top_up()
        master = nacl.utils.random(SecretBox.KEY_SIZE)
        self._crypto = _seal_master(master, passphrase, self.kdf_limits)
        self._master = master
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
        if self._crypto is None:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletpassphrase was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        master = _open_master(self._crypto, passphrase)
        if self._master is None:
            assert self._sealed is not None
            plain = SecretBox(master).decrypt(bytes.fromhex(self._sealed))
            self._set_secrets(json.loads(plain))
            self._master = master
        if self._relock is not None and self._relock.active():
            self._relock.cancel()
        self._relock = clock.callLater(timeout, self._expired)
        self.unlocked_until = clock.seconds() + timeout
        if len(self._keypool) < self.keypool_size:
            self._top_up()
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
        if self._crypto is None:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletlock was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if self._relock is not None and self._relock.active():
            self._relock.cancel()
        self._relock = None
        self._forget()

    def _forget(self) -> None:
        self._master = None
        self._chain = None
        self._imported = {}
        self._derived = {}
        self.unlocked_until = 0.0

    def change_passphrase(self, old: str, new: str) -> None:
        """
        Re-encrypt the master key under C{new} (Bitcoin Core's
        C{walletpassphrasechange}); locked or not, the wallet stays so.

        @raise WalletError: -15 not encrypted, -14 wrong passphrase, -8
            empty passphrase.
        """
        if self._crypto is None:
            raise WalletError("Error: running with an unencrypted wallet, "
                              "but walletpassphrasechange was called.",
                              RPC_WALLET_WRONG_ENC_STATE)
        if not new:
            raise WalletError("passphrase cannot be empty",
                              RPC_INVALID_PARAMETER)
        master = _open_master(self._crypto, old)
        self._crypto = _seal_master(master, new, self.kdf_limits)
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
        self._need_keys()
        if self._chain is not None and self._chain.seed == seed:
            return
        for address in [a for a in self._order if a in self._index]:
            self._imported[address] = self.key_for(address)
            del self._index[address]
        for address in self._keypool:
            del self._pub[address]
            del self._index[address]
            self._derived.pop(address, None)
        self._keypool = []
        self._chain = HDChain(seed)
        self._seed_id = self._chain.id
        self._top_up()
        self._save()

    def dump(self, path: Path) -> None:
        """
        Write every private key and the HD seed, in the clear, to a new
        file C{path} (mode 0600; Bitcoin Core's C{dumpwallet}).

        @raise WalletLocked: the wallet is locked.
        @raise WalletError: -8 the file exists.
        """
        self._need_keys()
        lines = ["# timecoin wallet dump: keep it secret, it holds every "
                 "key in the clear",
                 "# keys are 64 hex digits (Ed25519 seeds); restore with "
                 "sethdseed true SEED or importprivkey KEY"]
        if self._chain is not None:
            lines.append(f"# hdseed {self._chain.seed.hex()} "
                         f"(hdseedid {self._seed_id}, keys at m/0'/0'/i')")
        for address in self._order + self._keypool:
            origin = f"hd m/0'/0'/{self._index[address]}'" \
                if address in self._index else "imported"
            used = "" if address in self._order else " keypool"
            lines.append(f"{self.key_for(address).seed.hex()} {address} "
                         f"{origin}{used}")
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
        self._top_up()
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
        self._need_keys()
        if amount < params.DUST_LIMIT:
            raise WalletError(
                f"amount below the dust limit of {params.DUST_LIMIT} units",
                -3)
        mine = sorted(((op, e) for op, e in coins if e.address in self._pub),
                      key=lambda c: (-c[1].value, c[0]))
        chosen: list[tuple[OutPoint, UtxoEntry]] = []
        total = 0
        for coin in mine:
            chosen.append(coin)
            total += coin[1].value
            own = {e.address for _, e in chosen}
            fee = params.min_fee(0 if to in own else amount)
            if total >= amount + fee:
                break
        else:
            raise InsufficientFunds()
        change_address = chosen[0][1].address
        change = total - amount - fee
        outputs = [TxOut(amount, to)]
        if change >= params.DUST_LIMIT:
            if change_address == to:
                outputs = [TxOut(amount + change, to)]
            else:
                outputs.append(TxOut(change, change_address))
        unsigned = Transaction(
            tuple(TxIn(op, self._pub[e.address]) for op, e in chosen),
            tuple(outputs))
        return sign_inputs(unsigned, network,
                           [self.key_for(e.address) for _, e in chosen])

    def fee_payer(self, coins: Iterable[tuple[OutPoint, UtxoEntry]],
                  exclude: OutPoint | None, what: str
                  ) -> tuple[OutPoint, UtxoEntry, PrivateKey]:
        """
        The smallest of the wallet's C{coins} (other than C{exclude}) that
        pays the minimum fee and leaves change above dust, with its key.

        @raise WalletError: -13 locked, -6 no such coin.
        """
        self._need_keys()
        fee = params.min_fee(0)
        payers = sorted(((op, e) for op, e in coins
                         if self.owns(e.address) and op != exclude
                         and e.value >= fee + params.DUST_LIMIT),
                        key=lambda c: (c[1].value, c[0]))
        if not payers:
            least = params.format_amount(fee + params.DUST_LIMIT)
            first = self._order[0] if self._order else "a wallet address"
            raise InsufficientFunds(f"no coin in the wallet to pay the "
                                    f"{what} fee; send at least {least} "
                                    f"TIME to {first}")
        payer, entry = payers[0]
        return payer, entry, self.key_for(entry.address)


def build_registration(wallet: Wallet,
                       coins: Iterable[tuple[OutPoint, UtxoEntry]],
                       operator: PrivateKey, p2p_address: str,
                       reward_address: str, collateral: OutPoint,
                       network: str) -> Transaction:
    """
    A signed masternode registration (L{timecoin.registration}): the
    collateral must be one of the wallet's C{coins}; the fee (the minimum,
    nothing being sent) is paid from another of the wallet's coins, with
    the change back to that coin's address.

    @raise WalletError: collateral not in the wallet (-8), no coin to pay
        the fee (-6), or the wallet is locked (-13).
    """
    from timecoin.registration import make_registration_data

    coins = list(coins)
    owned = {op: e for op, e in coins if wallet.owns(e.address)}
    if collateral not in owned:
        raise WalletError("collateral is not an unspent output of this "
                          "wallet", -8)
    owner = wallet.key_for(owned[collateral].address)
    data = make_registration_data(network, operator, owner, p2p_address,
                                  reward_address, collateral)
    return fund_registration(wallet, coins, data, network)


def fund_registration(wallet: Wallet,
                      coins: Iterable[tuple[OutPoint, UtxoEntry]],
                      data: dict[str, Any], network: str) -> Transaction:
    """
    A registration transaction carrying C{data} (both signatures in), its
    fee (the minimum) paid from the smallest of the wallet's C{coins} that
    covers it (never the collateral), with the change back to that coin's
    address.

    @raise WalletError: no coin to pay the fee (-6), or locked (-13).
    """
    from timecoin.registration import KIND

    collateral = OutPoint(bytes.fromhex(data["collateral"]["txid"]),
                          data["collateral"]["vout"])
    payer, entry, key = wallet.fee_payer(coins, collateral, "registration")
    fee = params.min_fee(0)
    unsigned = Transaction((TxIn(payer, key.public),),
                           (TxOut(entry.value - fee, entry.address),),
                           KIND, data)
    return sign_inputs(unsigned, network, [key])


def build_activation(wallet: Wallet,
                     coins: Iterable[tuple[OutPoint, UtxoEntry]],
                     operator: PrivateKey, since: int,
                     network: str) -> Transaction:
    """
    A signed masternode activation (L{timecoin.mnstate}) leaving the state
    of height C{since}; the fee (the minimum) is paid from the smallest of
    the wallet's C{coins} that covers it, with the change back to that
    coin's address.  C{coins} must not hold collaterals: spending one
    would deregister its masternode.

    @raise WalletError: no coin to pay the fee (-6); the wallet is locked
        (-13): the node retries every few blocks, so the activation goes
        out once the wallet is unlocked.
    """
    from timecoin.mnstate import KIND, make_activation_data

    fee = params.min_fee(0)
    payer, entry, key = wallet.fee_payer(coins, None, "activation")
    unsigned = Transaction((TxIn(payer, key.public),),
                           (TxOut(entry.value - fee, entry.address),),
                           KIND, make_activation_data(network, operator,
                                                      since))
    return sign_inputs(unsigned, network, [key])


def key_from_file(path: Path, address: str, prefix: str,
                  passphrase: Any = None) -> PrivateKey:
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
        assert wallet._crypto is not None and wallet._sealed is not None
        master = _open_master(wallet._crypto, passphrase())
        plain = SecretBox(master).decrypt(bytes.fromhex(wallet._sealed))
        wallet._set_secrets(json.loads(plain))
        wallet._master = master
    return wallet.key_for(address)
