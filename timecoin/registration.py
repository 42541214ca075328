"""
On-chain masternode registration.

A registration is a transaction of kind ``mn_register`` that pays an
ordinary fee and carries in ``data``: the operator ``pubkey`` (the key that
signs blocks and votes), its ``p2p_address``, its ``reward_address``, the
``collateral`` outpoint, and the ``collateral_pubkey`` that owns the
collateral, with two signatures over the same message (network and those
fields): the operator's (it consents to run the masternode) and the
collateral owner's (it puts the coins up).  The collateral's value sets the
tier: gold from 100,000 TIME, silver from 10,000, bronze from 1,000, free
below.  The collateral must be unspent and not already back a masternode;
the operator key must not be registered yet.

Spending the collateral deregisters the masternode.  Registrations live in
the chain state next to the UTXO set, under keys ``b"MN" + pubkey`` with
the encoded record as value, so they are written, reverted and hashed
(``utxo_hash``) atomically with the block that makes them.  The snapshot
for height h is the registry after block h-1, sorted by operator key.
Masternodes registered by the genesis block have no collateral and cannot
be deregistered (devnet and testnet only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from timecoin import params
from timecoin.address import AddressError, decode_address, payload_of
from timecoin.encoding import (
    EncodingError,
    canonical,
    decode,
    need_dict,
    need_int,
    need_str,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.masternodes import Masternode
from timecoin.tx import OutPoint, Transaction, UtxoEntry

REGISTER_DOMAIN = b"TIMECOIN/mn-register"
KEY_PREFIX = b"MN"
KIND = "mn_register"


def tier_for(value: int) -> str:
    """
    The tier a collateral of C{value} units buys.
    """
    for tier in ("gold", "silver", "bronze"):
        if value >= params.TIER_COLLATERAL[tier]:
            return tier
    return "free"


def state_key(pubkey: bytes) -> bytes:
    """
    The chain-state key of the registration of operator C{pubkey}.
    """
    return KEY_PREFIX + pubkey


def is_state_key(key: bytes) -> bool:
    """
    Whether a chain-state key is a registration (not an outpoint).
    """
    return len(key) == 34 and key.startswith(KEY_PREFIX)


@dataclass(frozen=True)
class Registration:
    """
    A registered masternode: the record, its collateral, and the height of
    the block that registered it.
    """

    masternode: Masternode
    collateral: OutPoint
    height: int

    def pack(self) -> bytes:
        """
        The chain-state value (canonical JSON).
        """
        return canonical({"masternode": self.masternode.to_obj(),
                          "collateral": str(self.collateral),
                          "height": self.height})

    @classmethod
    def unpack(cls, raw: bytes, prefix: str) -> Registration:
        obj = decode(raw)
        txid, vout = obj["collateral"].split(":")
        return cls(Masternode.from_obj(obj["masternode"], prefix),
                   OutPoint(bytes.fromhex(txid), int(vout)), obj["height"])


def registration_message(network: str, data: dict[str, Any]) -> bytes:
    """
    What the operator and the collateral owner both sign.
    """
    return canonical({"network": network, **{
        k: data[k] for k in ("pubkey", "p2p_address", "reward_address",
                             "collateral", "collateral_pubkey")}})


def make_registration_data(network: str, operator: PrivateKey,
                           owner: PrivateKey, p2p_address: str,
                           reward_address: str,
                           collateral: OutPoint) -> dict[str, Any]:
    """
    The signed C{data} of a registration transaction.
    """
    data: dict[str, Any] = {
        "pubkey": operator.public.hex(), "p2p_address": p2p_address,
        "reward_address": reward_address,
        "collateral": {"txid": collateral.txid.hex(),
                       "vout": collateral.vout},
        "collateral_pubkey": owner.public.hex()}
    message = registration_message(network, data)
    data["operator_signature"] = operator.sign(REGISTER_DOMAIN,
                                               message).hex()
    data["collateral_signature"] = owner.sign(REGISTER_DOMAIN,
                                              message).hex()
    return data


def parse_registration(tx: Transaction, network: str,
                       prefix: str) -> tuple[Masternode, OutPoint]:
    """
    Check the shape and both signatures of a registration's data; return
    the masternode (tier not yet known: "free") and its collateral.

    @raise EncodingError: with the reason.
    """
    data = need_dict(tx.data, "registration", {
        "pubkey", "p2p_address", "reward_address", "collateral",
        "collateral_pubkey", "operator_signature", "collateral_signature"})
    pubkey = unhex(data["pubkey"], 32, "pubkey")
    owner = unhex(data["collateral_pubkey"], 32, "collateral_pubkey")
    need_str(data["p2p_address"], "p2p_address", 128)
    reward = need_str(data["reward_address"], "reward_address", 64)
    try:
        decode_address(reward, prefix)
    except AddressError as e:
        raise EncodingError(f"reward address: {e}") from e
    collateral = need_dict(data["collateral"], "collateral", {"txid", "vout"})
    outpoint = OutPoint(unhex(collateral["txid"], 32, "collateral txid"),
                        need_int(collateral["vout"], "collateral vout", 0,
                                 2**32 - 1))
    message = registration_message(network, data)
    if not verify(pubkey, REGISTER_DOMAIN, message,
                  unhex(data["operator_signature"], 64, "signature")):
        raise EncodingError("bad operator signature")
    if not verify(owner, REGISTER_DOMAIN, message,
                  unhex(data["collateral_signature"], 64, "signature")):
        raise EncodingError("bad collateral signature")
    return Masternode(pubkey, data["p2p_address"], reward, "free"), outpoint


def check_registration(
        tx: Transaction, network: str, prefix: str,
        lookup: Callable[[OutPoint], UtxoEntry | None],
        registered: Callable[[bytes], bool],
        collateral_used: Callable[[OutPoint], bool]) -> Masternode:
    """
    Validate a registration against the chain state the callables see;
    return the masternode with its tier.

    @raise ValueError: a L{timecoin.chain.TxInvalid}-style reason string.
    """
    try:
        masternode, outpoint = parse_registration(tx, network, prefix)
    except EncodingError as e:
        raise ValueError(f"bad-registration: {e}") from e
    if any(i.prevout == outpoint for i in tx.inputs):
        raise ValueError("bad-registration: spends its own collateral")
    entry = lookup(outpoint)
    if entry is None:
        raise ValueError("bad-registration: collateral not unspent")
    owner = bytes.fromhex(tx.data["collateral_pubkey"])
    if payload_of(owner) != decode_address(entry.address):
        raise ValueError("bad-registration: collateral owner mismatch")
    if registered(masternode.pubkey):
        raise ValueError("bad-registration: operator already registered")
    if collateral_used(outpoint):
        raise ValueError("bad-registration: collateral already used")
    return Masternode(masternode.pubkey, masternode.p2p_address,
                      masternode.reward_address, tier_for(entry.value))


# Two-step registration: the collateral owner signs elsewhere -----------
#
# As Dash's protx register_prepare / register_submit: the operator's node
# prepares a request (L{prepare_request}) naming its key, its P2P and
# reward addresses and the collateral with the address that holds it; the
# collateral owner's wallet, on another node or offline, checks it owns
# that address and signs (L{sign_request}); the operator's node checks
# the owner's signature, adds its own (L{complete_request}) and pays the
# fee.  Neither side ever sees the other's private key.  Requests travel
# as hex of their canonical JSON, so they survive a copy and paste.

REQUEST_FIELDS = {"network", "pubkey", "p2p_address", "reward_address",
                  "collateral", "collateral_address"}
SIGNED_FIELDS = REQUEST_FIELDS | {"collateral_pubkey",
                                  "collateral_signature"}


def prepare_request(network: str, operator_pubkey: bytes, p2p_address: str,
                    reward_address: str, collateral: OutPoint,
                    collateral_address: str) -> dict[str, Any]:
    """
    The unsigned request the operator's node hands to the collateral
    owner.
    """
    return {"network": network, "pubkey": operator_pubkey.hex(),
            "p2p_address": p2p_address, "reward_address": reward_address,
            "collateral": {"txid": collateral.txid.hex(),
                           "vout": collateral.vout},
            "collateral_address": collateral_address}


def encode_request(request: dict[str, Any]) -> str:
    """
    A request (signed or not) as hex of its canonical JSON.
    """
    return canonical(request).hex()


def decode_request(text: Any, signed: bool) -> dict[str, Any]:
    """
    Parse and check the shape of an encoded request: unsigned (as
    L{prepare_request} makes it) or C{signed} (as L{sign_request} does).

    @raise EncodingError: with the reason.
    """
    if not isinstance(text, str):
        raise EncodingError("the request must be a hex string")
    try:
        obj = decode(bytes.fromhex(text.strip()))
    except ValueError as e:
        raise EncodingError(f"not an encoded registration request ({e})") \
            from None
    fields = SIGNED_FIELDS if signed else REQUEST_FIELDS
    request = need_dict(obj, "registration request", fields)
    network = need_str(request["network"], "network", 16)
    if network not in params.NETWORKS:
        raise EncodingError(f"unknown network {network!r}")
    prefix = params.NETWORKS[network].address_prefix
    unhex(request["pubkey"], 32, "pubkey")
    need_str(request["p2p_address"], "p2p_address", 128)
    for name in ("reward_address", "collateral_address"):
        try:
            decode_address(need_str(request[name], name, 64), prefix)
        except AddressError as e:
            raise EncodingError(f"{name}: {e}") from None
    collateral = need_dict(request["collateral"], "collateral",
                           {"txid", "vout"})
    unhex(collateral["txid"], 32, "collateral txid")
    need_int(collateral["vout"], "collateral vout", 0, 2**32 - 1)
    if signed:
        unhex(request["collateral_pubkey"], 32, "collateral_pubkey")
        unhex(request["collateral_signature"], 64, "collateral_signature")
    return request


def request_outpoint(request: dict[str, Any]) -> OutPoint:
    """
    The collateral a request names.
    """
    return OutPoint(bytes.fromhex(request["collateral"]["txid"]),
                    request["collateral"]["vout"])


def sign_request(request: dict[str, Any],
                 owner: PrivateKey) -> dict[str, Any]:
    """
    The collateral owner's answer to an unsigned C{request}: its public
    key and its signature of the registration message.

    @raise EncodingError: C{owner} is not the key of the collateral
        address.
    """
    prefix = params.NETWORKS[request["network"]].address_prefix
    if payload_of(owner.public) != decode_address(
            request["collateral_address"], prefix):
        raise EncodingError("the key does not own the collateral address "
                            f"{request['collateral_address']}")
    signed = {**request, "collateral_pubkey": owner.public.hex()}
    message = registration_message(request["network"], signed)
    signed["collateral_signature"] = owner.sign(REGISTER_DOMAIN,
                                                message).hex()
    return signed


def complete_request(signed: dict[str, Any],
                     operator: PrivateKey) -> dict[str, Any]:
    """
    The C{data} of the registration transaction for a C{signed} request:
    the collateral owner's signature checked, the operator's added.

    @raise EncodingError: prepared for another operator key, or the
        collateral signature is bad (the request was changed after it was
        signed, or signed for another address).
    """
    if bytes.fromhex(signed["pubkey"]) != operator.public:
        raise EncodingError("the request was prepared for another operator "
                            "key")
    owner = bytes.fromhex(signed["collateral_pubkey"])
    prefix = params.NETWORKS[signed["network"]].address_prefix
    if payload_of(owner) != decode_address(signed["collateral_address"],
                                           prefix):
        raise EncodingError("collateral_pubkey does not own the collateral "
                            "address")
    message = registration_message(signed["network"], signed)
    if not verify(owner, REGISTER_DOMAIN, message,
                  bytes.fromhex(signed["collateral_signature"])):
        raise EncodingError("bad collateral signature")
    data = {k: signed[k] for k in ("pubkey", "p2p_address",
                                   "reward_address", "collateral",
                                   "collateral_pubkey",
                                   "collateral_signature")}
    data["operator_signature"] = operator.sign(REGISTER_DOMAIN,
                                               message).hex()
    return data
