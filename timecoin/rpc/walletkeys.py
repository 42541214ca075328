"""
The wallet's keys over RPC (docs/wallet.md): encryption, private keys,
backups and the HD seed.

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timecoin.rpc.errors import (
    INVALID_PARAMS,
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPCError,
)
from timecoin.rpc.params import check_address, to_int, to_str

if TYPE_CHECKING:
    from timecoin.node import Node


class WalletKeyMethods:
    """
    The RPC methods that encrypt, unlock, export, import or back up the
    keys of one node's wallet.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    def rpc_encryptwallet(self, passphrase: Any) -> str:
        """
        encryptwallet "passphrase"

        Encrypt the wallet with passphrase (Argon2id, then XSalsa20-
        Poly1305) and lock it: from then on sending, signing, dumpprivkey,
        importprivkey and paying masternode fees need walletpassphrase
        first (error -13); getnewaddress still works from the keypool.
        The node key (private/node_key) is not encrypted: a masternode
        signs blocks and votes unattended.  Back the wallet up again after
        this: earlier backups hold its keys in the clear.  Errors: -15
        already encrypted, -8 empty passphrase.
        """
        self.node.wallet.encrypt(to_str(passphrase, "passphrase"))
        return ("wallet encrypted; it is locked: unlock it with "
                "walletpassphrase. Make a new backup (backupwallet): "
                "earlier backups hold the keys in the clear.")

    def rpc_walletpassphrase(self, passphrase: Any, timeout: Any) -> None:
        """
        walletpassphrase "passphrase" timeout

        Unlock the encrypted wallet for timeout seconds (at most
        100,000,000), after which it locks by itself; a second call sets
        the new timeout.  Errors: -14 wrong passphrase, -15 not encrypted,
        -8 negative timeout.
        """
        from timecoin.wallet import MAX_UNLOCK_SECONDS
        text = to_str(passphrase, "passphrase")
        if isinstance(timeout, bool) or not isinstance(timeout,
                                                       (int, Decimal)):
            raise RPCError(INVALID_PARAMS, "timeout must be a number")
        if timeout < 0:
            raise RPCError(RPC_INVALID_PARAMETER,
                           "Timeout cannot be negative.")
        seconds = float(min(timeout, MAX_UNLOCK_SECONDS))
        self.node.wallet.unlock(text, seconds, self.node.clock)
        return None

    def rpc_walletlock(self) -> None:
        """
        walletlock

        Lock the encrypted wallet now.  Error -15 if it is not encrypted.
        """
        self.node.wallet.lock()
        return None

    def rpc_walletpassphrasechange(self, oldpassphrase: Any,
                                   newpassphrase: Any) -> None:
        """
        walletpassphrasechange "oldpassphrase" "newpassphrase"

        Change the wallet's passphrase; it stays locked or unlocked as it
        was.  Errors: -14 wrong old passphrase, -15 not encrypted, -8
        empty new passphrase.
        """
        self.node.wallet.change_passphrase(
            to_str(oldpassphrase, "oldpassphrase"),
            to_str(newpassphrase, "newpassphrase"))
        return None

    def rpc_dumpprivkey(self, address: Any) -> str:
        """
        dumpprivkey "address"

        The private key of one of the wallet's addresses, in the node's
        format: the 32-byte Ed25519 seed as 64 hex digits (importprivkey
        takes it back).  Errors: -13 locked, -4 not the wallet's, -5 bad
        address.
        """
        text = to_str(address, "address")
        check_address(text, self.node.network)
        return self.node.wallet.dump_key(text)

    def rpc_importprivkey(self, privkey: Any, label: Any = None,
                          rescan: Any = None) -> None:
        """
        importprivkey "privkey" ( "label" rescan )

        Add a private key (64 hex digits, as dumpprivkey prints) to the
        wallet; an encrypted wallet keeps it encrypted.  label and rescan
        are accepted and ignored: the wallet has no labels, and its
        balance is read from the UTXO set, so no rescan is needed.
        Errors: -13 locked, -5 malformed key.
        """
        from timecoin.wallet import parse_private_key
        key = parse_private_key(privkey)
        self.node.wallet.import_key(key)
        return None

    def rpc_backupwallet(self, destination: Any) -> None:
        """
        backupwallet "destination"

        Copy the wallet file to destination (a file, or a directory to
        hold wallet.json), mode 0600, on the node's machine; an encrypted
        wallet's copy is encrypted too.  One backup covers every address
        the wallet hands out later up to the keypool size (they derive
        from its seed).  Restore with restorewallet, or by copying it to
        DATADIR/private/wallet.json while the node is stopped.  Error -4
        if it cannot be written.
        """
        text = to_str(destination, "destination")
        try:
            self.node.wallet.backup(Path(text))
        except OSError as e:
            raise RPCError(-4, f"Error: Wallet backup failed! "
                           f"({e.strerror})") from None
        return None

    def rpc_restorewallet(self, backup_file: Any) -> dict[str, Any]:
        """
        restorewallet "backup_file"

        Replace the wallet by a backup (from backupwallet) on the node's
        machine: encrypted backups stay encrypted (unlock them with their
        passphrase).  The replaced wallet file is kept as
        private/wallet.json.replaced-N.  Keypool addresses that hold coins
        on chain are listed again as handed out.  Unlike Bitcoin Core's,
        the node has one wallet, so there is no wallet name.  Returns
        {name, replaced (the copy of the old file), addresses (how many)}.
        Error -4: the file is not a wallet backup, or the current wallet
        holds coins (restore only into an empty wallet, as after a wipe).
        """
        node = self.node
        text = to_str(backup_file, "backup_file")
        try:
            data = Path(text).read_bytes()
        except OSError as e:
            raise RPCError(-4, f"Error: cannot read the backup "
                           f"({e.strerror})") from None
        holding = [e for e in node.chain.utxos.values()
                   if node.wallet.owns(e.address)]
        if holding:
            raise RPCError(-4, "Error: the current wallet holds coins; "
                           "restorewallet replaces only an empty wallet "
                           "(back it up, then restore on a new data dir)")
        aside = node.wallet.restore(data)
        seen = {e.address for e in node.chain.utxos.values()}
        seen.update(e.address for e in node.mempool.outputs.values())
        node.wallet.mark_used(seen)
        return {"name": "", "replaced": str(aside),
                "addresses": len(node.wallet.addresses())}

    def rpc_keypoolrefill(self, newsize: Any = None) -> None:
        """
        keypoolrefill ( newsize )

        Derive the keypool up to newsize (default: its size, 100) public
        keys: the addresses getnewaddress hands out while the wallet is
        locked.  Error -13 if locked.
        """
        size = None if newsize is None else to_int(newsize, "newsize", 1,
                                                   100_000)
        self.node.wallet.refill_keypool(size)
        return None

    def rpc_sethdseed(self, newkeypool: Any = True,
                      seed: Any = None) -> None:
        """
        sethdseed ( newkeypool "seed" )

        Make seed (64 hex digits, as the "# hdseed" line of dumpwallet
        shows it; default: a new random one) the wallet's HD seed, as
        Bitcoin Core's: addresses handed out from the old seed stay the
        wallet's as imported keys, the keypool is derived from the new
        seed, and its addresses holding coins on chain are listed as
        handed out, which restores a wallet from its seed on a fresh
        node.  newkeypool must be true (the keypool is always replaced).
        Make a new backup afterwards.  Errors: -13 locked, -5 malformed
        seed, -8 newkeypool false.
        """
        import nacl.utils

        from timecoin.wallet import SEED_BYTES
        node = self.node
        if newkeypool is not None and newkeypool is not True:
            raise RPCError(RPC_INVALID_PARAMETER, "newkeypool must be true: "
                           "the keypool is always replaced")
        if seed is None:
            raw = nacl.utils.random(SEED_BYTES)
        else:
            text = to_str(seed, "seed")
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                raw = b""
            if len(raw) != SEED_BYTES:
                raise RPCError(RPC_INVALID_ADDRESS_OR_KEY,
                               "Invalid seed: want 64 hex digits")
        node.wallet.set_seed(raw)
        seen = {e.address for e in node.chain.utxos.values()}
        seen.update(e.address for e in node.mempool.outputs.values())
        node.wallet.mark_used(seen)
        return None

    def rpc_dumpwallet(self, filename: Any) -> dict[str, Any]:
        """
        dumpwallet "filename"

        Write the HD seed and every private key of the wallet (handed
        out, imported, keypool) in the clear to a new file on the node's
        machine (mode 0600), one "KEY ADDRESS ORIGIN" line each, as
        Bitcoin Core's.  Keep it offline; sethdseed or importprivkey take
        its keys back.  Returns {filename}.  Errors: -13 locked, -8 the
        file exists, -4 it cannot be written.
        """
        path = Path(to_str(filename, "filename"))
        try:
            self.node.wallet.dump(path)
        except OSError as e:
            raise RPCError(-4, f"Error: cannot write {path} "
                           f"({e.strerror})") from None
        return {"filename": str(path.resolve())}
