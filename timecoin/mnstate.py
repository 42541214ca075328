"""
The lifecycle of a masternode as chain state: registered, active, set
aside.

A registration (L{timecoin.registration}) makes a masternode I{registered}:
it carries no weight yet.  It becomes I{active} -- a member of the
snapshot, with weight, votes and turns to produce -- only once its
operator's own node, synced and holding the operator key, puts an
I{activation} on chain: a transaction of kind ``mn_activate`` that pays an
ordinary fee and carries in ``data`` the operator ``pubkey``, the
``since`` height of the state it leaves (its registration height, or the
height it was set aside at) and the operator's signature over (network,
pubkey, since).  The signature binds the activation to that one state, so
it cannot be replayed once the masternode moved on.

I{Proof of service}: who signed each block is on chain, in the commit
certificate the next block carries.  A masternode that has been active for
at least the service window of W certificates and is missing from more
than C{max_missed} of the last W is I{set aside} by the block that sees it:
out of the snapshot, the weights and the selection from the next height
on.  Nothing but chain state takes part (no clock, no heartbeat, no peer's
view), so every node sets aside the same masternodes at the same height.
A masternode set aside comes back through a new activation once
C{min_away} blocks have passed.

Statuses live in the chain state under keys ``b"MS" + pubkey``; like
registrations they are written, reverted and hashed (C{utxo_hash}) with
their block.  A masternode with no status record is I{active since height
1} if the genesis registered it, else I{registered} since its registration
height.  An activation that is no longer eligible when its block is built
(a duplicate, or one its masternode no longer needs) is a valid
transaction that changes nothing: the validity of a block never depends on
it, so a late duplicate can never stall the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from timecoin.encoding import (
    EncodingError,
    canonical,
    decode,
    need_dict,
    need_int,
    unhex,
)
from timecoin.keys import PrivateKey, verify
from timecoin.tx import Transaction

KIND = "mn_activate"
ACTIVATE_DOMAIN = b"TIMECOIN/mn-activate"
KEY_PREFIX = b"MS"

REGISTERED = "registered"
ACTIVE = "active"
SET_ASIDE = "set-aside"


@dataclass(frozen=True)
class ServiceRules:
    """
    A network's proof-of-service settings (consensus: every node of a
    network uses the same).

    @ivar window: W, the number of latest commit certificates looked at.
    @ivar max_missed: a masternode missing from more than this many of
        them is set aside.
    @ivar min_away: blocks a masternode set aside stays out before an
        activation brings it back.
    """

    window: int
    max_missed: int
    min_away: int


@dataclass(frozen=True)
class MnStatus:
    """
    Where a masternode is in its lifecycle.

    @ivar state: L{REGISTERED}, L{ACTIVE} or L{SET_ASIDE}.
    @ivar since: registered: the height of the registering block; active:
        the first height it votes at; set aside: the height of the block
        that set it aside.
    @ivar reason: why it was set aside (empty otherwise).
    """

    state: str
    since: int
    reason: str = ""

    def pack(self) -> bytes:
        """
        The chain-state value (canonical JSON).
        """
        return canonical({"state": self.state, "since": self.since,
                          "reason": self.reason})

    @classmethod
    def unpack(cls, raw: bytes) -> MnStatus:
        obj = decode(raw)
        return cls(obj["state"], obj["since"], obj["reason"])

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "since": self.since,
                "reason": self.reason or None}


def state_key(pubkey: bytes) -> bytes:
    """
    The chain-state key of the status of operator C{pubkey}.
    """
    return KEY_PREFIX + pubkey


def is_state_key(key: bytes) -> bool:
    """
    Whether a chain-state key is a masternode status.
    """
    return len(key) == 34 and key.startswith(KEY_PREFIX)


def activation_message(network: str, pubkey: bytes, since: int) -> bytes:
    """
    What the operator key signs to activate.
    """
    return canonical({"network": network, "pubkey": pubkey.hex(),
                      "since": since})


def make_activation_data(network: str, operator: PrivateKey,
                         since: int) -> dict[str, Any]:
    """
    The signed C{data} of an activation leaving the state of C{since}.
    """
    message = activation_message(network, operator.public, since)
    return {"pubkey": operator.public.hex(), "since": since,
            "signature": operator.sign(ACTIVATE_DOMAIN, message).hex()}


def parse_activation(tx: Transaction, network: str) -> tuple[bytes, int]:
    """
    Check the shape and the operator signature of an activation's data;
    return (pubkey, since).

    @raise EncodingError: with the reason.
    """
    data = need_dict(tx.data, "activation", {"pubkey", "since", "signature"})
    pubkey = unhex(data["pubkey"], 32, "pubkey")
    since = need_int(data["since"], "since", 0)
    if not verify(pubkey, ACTIVATE_DOMAIN,
                  activation_message(network, pubkey, since),
                  unhex(data["signature"], 64, "signature")):
        raise EncodingError("bad operator signature")
    return pubkey, since


def activation_refused(status: MnStatus, since: int, height: int,
                       rules: ServiceRules) -> str | None:
    """
    Why an activation naming C{since} would change nothing in block
    C{height}, or C{None} when it activates the masternode there.
    """
    if status.state == ACTIVE:
        return "already active"
    if since != status.since:
        return (f"names the state of height {since}, the masternode is "
                f"{status.state} since {status.since}")
    if status.state == SET_ASIDE and height < status.since + rules.min_away:
        return (f"set aside at {status.since}; may return from height "
                f"{status.since + rules.min_away}")
    return None


def missed(signers: Mapping[int, frozenset[bytes]], pubkey: bytes,
           active_since: int, height: int, rules: ServiceRules,
           expected: Mapping[int, frozenset[bytes]] | None = None
           ) -> tuple[int, int] | None:
    """
    Of the W certificates before block C{height} (those of heights
    C{height - W} to C{height - 1}) that C{pubkey} was due to sign, how
    many lack it, and how many it was due to sign; C{None} when it has not
    been active for a whole window yet (it is judged only then).

    @param signers: the valid signers of each certificate, by the height of
        the block it commits.
    @param expected: with committees, who was due to sign each one (a
        height not in it: every active masternode).
    """
    first = height - rules.window
    if active_since > first or first < 1:
        return None
    due = [h for h in range(first, height)
           if expected is None or h not in expected or pubkey in expected[h]]
    return (sum(1 for h in due if pubkey not in signers.get(h, frozenset())),
            len(due))


def set_aside_reason(missing: int, due: int,
                     rules: ServiceRules) -> str | None:
    """
    Why a masternode missing from C{missing} of the C{due} certificates it
    was to sign in the window is set aside, or C{None} if it is not: more
    than C{max_missed} in W (in proportion when it was due fewer).
    """
    if not due or missing * rules.window <= rules.max_missed * due:
        return None
    if due == rules.window:
        return f"missed {missing} of the last {rules.window} commit certificates"
    return (f"missed {missing} of the {due} commit certificates it was due "
            f"to sign in the last {rules.window}")
