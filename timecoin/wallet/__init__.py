"""
The node's wallet: Ed25519 keys kept in the private part of the data dir
(C{DATADIR/private/wallet.json}), and payments built, funded and signed
from them.  See C{docs/wallet.md}.

What lives where (split by object):

  - L{timecoin.wallet.wallet}: L{Wallet}, what the node and RPC hold: the
    file, the unlock timeout, and every wallet operation, done by the
    objects below; L{key_from_file} for signing away from a node.
  - L{timecoin.wallet.keystore}: L{KeyStore}, the addresses, the HD seed
    and its keypool, imported keys, and the C{wallet.json} object.
  - L{timecoin.wallet.vault}: L{Vault}, the passphrase encryption of the
    secrets (Argon2id, a sealed master key).
  - L{timecoin.wallet.payments}: L{PaymentBuilder} (coin selection, fee,
    change, signing) and the builders of registrations and activations.
  - L{timecoin.wallet.files}: private files, the operator key file, the
    private key format.
  - L{timecoin.wallet.errors}: L{WalletError} and its kinds, the RPC
    codes.

Imports: C{errors} imports nothing of the package; C{files} and C{vault}
only C{errors}; C{keystore} those; C{payments} only C{errors}; C{wallet}
all.  From outside, only the core (C{params}, C{address}, C{keys},
C{hdwallet}, C{tx}) and, in the transaction builders, C{registration} and
C{mnstate}: never the chain, the node or RPC.
"""

from timecoin.wallet.errors import (
    RPC_INVALID_ADDRESS_OR_KEY,
    RPC_INVALID_PARAMETER,
    RPC_WALLET_ERROR,
    RPC_WALLET_KEYPOOL_RAN_OUT,
    RPC_WALLET_PASSPHRASE_INCORRECT,
    RPC_WALLET_UNLOCK_NEEDED,
    RPC_WALLET_WRONG_ENC_STATE,
    UNLOCK_NEEDED,
    InsufficientFunds,
    WalletError,
    WalletLocked,
)
from timecoin.wallet.files import (
    load_or_create_key,
    parse_private_key,
    write_private,
)
from timecoin.wallet.keystore import (
    FORMAT_VERSION,
    KEYPOOL_SIZE,
    SEED_BYTES,
    KeyStore,
)
from timecoin.wallet.payments import (
    PaymentBuilder,
    build_activation,
    build_registration,
    fund_registration,
)
from timecoin.wallet.vault import KDF_LIMITS, Vault
from timecoin.wallet.wallet import MAX_UNLOCK_SECONDS, Wallet, key_from_file

__all__ = [
    "FORMAT_VERSION",
    "KDF_LIMITS",
    "KEYPOOL_SIZE",
    "MAX_UNLOCK_SECONDS",
    "RPC_INVALID_ADDRESS_OR_KEY",
    "RPC_INVALID_PARAMETER",
    "RPC_WALLET_ERROR",
    "RPC_WALLET_KEYPOOL_RAN_OUT",
    "RPC_WALLET_PASSPHRASE_INCORRECT",
    "RPC_WALLET_UNLOCK_NEEDED",
    "RPC_WALLET_WRONG_ENC_STATE",
    "SEED_BYTES",
    "UNLOCK_NEEDED",
    "InsufficientFunds",
    "KeyStore",
    "PaymentBuilder",
    "Vault",
    "Wallet",
    "WalletError",
    "WalletLocked",
    "build_activation",
    "build_registration",
    "fund_registration",
    "key_from_file",
    "load_or_create_key",
    "parse_private_key",
    "write_private",
]
