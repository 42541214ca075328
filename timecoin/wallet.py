"""
The node's wallet: Ed25519 keys kept in the private part of the data dir,
and payments built, funded and signed from them.

Keys live in ``DATADIR/private/wallet.json`` (directory 0700, file 0600),
written atomically.  Change goes back to the address of the first input
spent, so it is never counted as "sent" by the fee rule (see
``docs/rules.md``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from timecoin import params
from timecoin.address import address_of
from timecoin.keys import PrivateKey
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, UtxoEntry, sign_inputs


class WalletError(Exception):
    """
    A payment cannot be built; C{code} is the Bitcoin RPC error code.
    """

    def __init__(self, message: str, code: int = -4) -> None:
        super().__init__(message)
        self.code = code


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
    """
    if path.exists():
        return PrivateKey(bytes.fromhex(path.read_text().strip()))
    key = PrivateKey.generate()
    write_private(path, key.seed.hex().encode("ascii") + b"\n")
    return key


class Wallet:
    """
    A set of keys for one network, persisted to a private file.
    """

    def __init__(self, path: Path, prefix: str) -> None:
        self.path = path
        self.prefix = prefix
        self._keys: dict[str, PrivateKey] = {}
        self._order: list[str] = []

    def load(self) -> None:
        """
        Load the keys; create the file with one key if it does not exist.
        """
        if self.path.exists():
            data = json.loads(self.path.read_text())
            for seed in data["keys"]:
                self._remember(PrivateKey(bytes.fromhex(seed)))
        else:
            self.new_address()

    def _remember(self, key: PrivateKey) -> str:
        address = address_of(key.public, self.prefix)
        if address not in self._keys:
            self._keys[address] = key
            self._order.append(address)
        return address

    def _save(self) -> None:
        seeds = [self._keys[a].seed.hex() for a in self._order]
        write_private(self.path, json.dumps({"keys": seeds}).encode())

    def new_address(self) -> str:
        """
        Create, persist and return a new receiving address.
        """
        address = self._remember(PrivateKey.generate())
        self._save()
        return address

    def addresses(self) -> list[str]:
        """
        The wallet's addresses, oldest first.
        """
        return list(self._order)

    def owns(self, address: str) -> bool:
        return address in self._keys

    def key_for(self, address: str) -> PrivateKey:
        return self._keys[address]

    def build_payment(self, coins: Iterable[tuple[OutPoint, UtxoEntry]],
                      to: str, amount: int, network: str) -> Transaction:
        """
        Pay C{amount} units to C{to} from the wallet's C{coins} (the
        spendable outputs it may use), with the minimum fee and change.

        @raise WalletError: insufficient funds (-6) or a bad amount (-3).
        """
        if amount < params.DUST_LIMIT:
            raise WalletError(
                f"amount below the dust limit of {params.DUST_LIMIT} units",
                -3)
        mine = sorted(((op, e) for op, e in coins if e.address in self._keys),
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
            raise WalletError("Insufficient funds", -6)
        change_address = chosen[0][1].address
        change = total - amount - fee
        outputs = [TxOut(amount, to)]
        if change >= params.DUST_LIMIT:
            if change_address == to:
                outputs = [TxOut(amount + change, to)]
            else:
                outputs.append(TxOut(change, change_address))
        unsigned = Transaction(
            tuple(TxIn(op, self._keys[e.address].public) for op, e in chosen),
            tuple(outputs))
        return sign_inputs(unsigned, network,
                           [self._keys[e.address] for _, e in chosen])


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

    @raise WalletError: collateral not in the wallet (-8), or no coin to
        pay the fee (-6).
    """
    from timecoin.registration import KIND, make_registration_data

    coins = list(coins)
    owned = {op: e for op, e in coins if wallet.owns(e.address)}
    if collateral not in owned:
        raise WalletError("collateral is not an unspent output of this "
                          "wallet", -8)
    owner = wallet.key_for(owned[collateral].address)
    fee = params.min_fee(0)
    payers = sorted(((op, e) for op, e in owned.items()
                     if op != collateral
                     and e.value >= fee + params.DUST_LIMIT),
                    key=lambda c: (c[1].value, c[0]))
    if not payers:
        raise WalletError("no other coin in the wallet to pay the "
                          "registration fee", -6)
    payer, entry = payers[0]
    key = wallet.key_for(entry.address)
    data = make_registration_data(network, operator, owner, p2p_address,
                                  reward_address, collateral)
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

    @raise WalletError: no coin to pay the fee (-6).
    """
    from timecoin.mnstate import KIND, make_activation_data

    fee = params.min_fee(0)
    payers = sorted(((op, e) for op, e in coins
                     if wallet.owns(e.address)
                     and e.value >= fee + params.DUST_LIMIT),
                    key=lambda c: (c[1].value, c[0]))
    if not payers:
        least = params.format_amount(fee + params.DUST_LIMIT)
        raise WalletError("no coin in the wallet to pay the activation fee; "
                          f"send at least {least} TIME to "
                          f"{wallet.addresses()[0]}", -6)
    payer, entry = payers[0]
    key = wallet.key_for(entry.address)
    unsigned = Transaction((TxIn(payer, key.public),),
                           (TxOut(entry.value - fee, entry.address),),
                           KIND, make_activation_data(network, operator,
                                                      since))
    return sign_inputs(unsigned, network, [key])
