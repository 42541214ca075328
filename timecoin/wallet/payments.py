"""
Payments from the wallet's coins: L{PaymentBuilder} chooses coins (the
largest first), adds the minimum fee and the change, and signs; it finds
the coin that pays a registration's or activation's fee.  The builders
of those masternode transactions live here too.

Change goes back to the address of the first input spent, so it is never
counted as "sent" by the fee rule (see ``docs/rules.md``).

The keys are reached through L{SpendingKeys} (the L{timecoin.wallet.Wallet}
or its key store), so this module imports no other of the package but
L{errors}; outside it, the core (C{params}, C{keys}, C{tx}) and, in the
builders, C{registration} and C{mnstate}.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from timecoin import params
from timecoin.keys import PrivateKey
from timecoin.tx import OutPoint, Transaction, TxIn, TxOut, UtxoEntry, sign_inputs
from timecoin.wallet.errors import InsufficientFunds, WalletError

__all__ = [
    "PaymentBuilder",
    "SpendingKeys",
    "build_activation",
    "build_registration",
    "fund_registration",
]

Coins = Iterable[tuple[OutPoint, UtxoEntry]]


class SpendingKeys(Protocol):
    """
    What paying from a wallet asks of its keys.
    """

    def owns(self, address: str) -> bool:
        """Whether the wallet holds the key of C{address}."""

    def pubkey_for(self, address: str) -> bytes:
        """The public key of one of the wallet's addresses."""

    def key_for(self, address: str) -> PrivateKey:
        """The private key of one of the wallet's addresses."""

    def addresses(self) -> list[str]:
        """The addresses handed out or imported, oldest first."""


class FeePaying(SpendingKeys, Protocol):
    """
    A wallet that finds the coin paying a fee (L{PaymentBuilder.fee_payer}
    behind its lock check).
    """

    def fee_payer(self, coins: Coins, exclude: OutPoint | None, what: str
                  ) -> tuple[OutPoint, UtxoEntry, PrivateKey]:
        """The smallest coin paying the fee, with its key."""


class PaymentBuilder:
    """
    Coin selection, fee and change for one wallet's keys (unlocked: the
    wallet checks its lock first).
    """

    def __init__(self, keys: SpendingKeys) -> None:
        self.keys = keys

    def build_payment(self, coins: Coins, to: str, amount: int,
                      network: str) -> Transaction:
        """
        Pay C{amount} units to C{to} from the wallet's C{coins} (the
        spendable outputs it may use), with the minimum fee and change.

        @raise WalletError: insufficient funds (-6) or a bad amount (-3).
        """
        if amount < params.DUST_LIMIT:
            raise WalletError(
                f"amount below the dust limit of {params.DUST_LIMIT} units",
                -3)
        mine = sorted(((op, e) for op, e in coins
                       if self.keys.owns(e.address)),
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
            tuple(TxIn(op, self.keys.pubkey_for(e.address))
                  for op, e in chosen),
            tuple(outputs))
        return sign_inputs(unsigned, network,
                           [self.keys.key_for(e.address) for _, e in chosen])

    def fee_payer(self, coins: Coins, exclude: OutPoint | None, what: str
                  ) -> tuple[OutPoint, UtxoEntry, PrivateKey]:
        """
        The smallest of the wallet's C{coins} (other than C{exclude}) that
        pays the minimum fee and leaves change above dust, with its key.

        @raise WalletError: -6 no such coin.
        """
        fee = params.min_fee(0)
        payers = sorted(((op, e) for op, e in coins
                         if self.keys.owns(e.address) and op != exclude
                         and e.value >= fee + params.DUST_LIMIT),
                        key=lambda c: (c[1].value, c[0]))
        if not payers:
            least = params.format_amount(fee + params.DUST_LIMIT)
            handed_out = self.keys.addresses()
            first = handed_out[0] if handed_out else "a wallet address"
            raise InsufficientFunds(f"no coin in the wallet to pay the "
                                    f"{what} fee; send at least {least} "
                                    f"TIME to {first}")
        payer, entry = payers[0]
        return payer, entry, self.keys.key_for(entry.address)


def build_registration(wallet: FeePaying, coins: Coins,
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


def fund_registration(wallet: FeePaying, coins: Coins,
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


def build_activation(wallet: FeePaying, coins: Coins,
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
