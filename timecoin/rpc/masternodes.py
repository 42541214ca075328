"""
The C{masternodes} area of the RPC: the masternode list, this node's
status and the consensus rules (L{MasternodeMethods}), and registering and
activating this node's masternode, in one step or in the three of a
collateral kept in another wallet (L{RegistrationMethods}).

Imports the node's modules and the RPC's helper modules; imported only by
L{timecoin.rpc.methods}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from timecoin import params
from timecoin.rpc.deferreds import then
from timecoin.rpc.errors import INVALID_PARAMS, RPC_INVALID_PARAMETER, RPCError
from timecoin.rpc.params import check_address, hex_of, to_hash, to_int, to_str
from timecoin.rpc.status import (
    StatusHistory,
    consensus_info,
    masternode_rows,
    masternode_status,
)
from timecoin.tx import OutPoint
from timecoin.wallet import WalletError

if TYPE_CHECKING:
    from timecoin.node import Node


class MasternodeMethods:
    """
    The RPC methods that show the masternodes one node knows, itself as
    one, and its consensus rules.
    """

    def __init__(self, node: Node, history: StatusHistory) -> None:
        self.node = node
        self.history = history
        """Recent blocks and latencies (C{masternodestatus})."""

    def rpc_masternodelist(self, status: Any = None) -> list[dict[str, Any]]:
        """
        masternodelist ( "status" )

        Every masternode on chain (or only those whose status is the given
        one), sorted by pubkey: [{pubkey, p2p_address, reward_address,
        tier, status (active: in the snapshot, votes and produces;
        registered: waiting for its operator's node to activate it;
        set-aside: missing from too many recent commit certificates),
        since (the height it became so; for active, the first height it
        votes at), reason and return_height (set aside only: why, and
        from which height an activation may bring it back), weight
        (voting weight under the quorum rule, 0 unless active), alive
        (heartbeat heard within the liveness expiry), last_seen (seconds
        since the epoch of its last heartbeat, or null), reported_height
        (the height its last heartbeat reported, or null), is_self,
        collateral (txid:vout, null for genesis masternodes),
        collateral_amount, registered_height}].
        """
        wanted = None if status is None else to_str(status, "status")
        if wanted not in (None, "active", "registered", "set-aside"):
            raise RPCError(INVALID_PARAMS, "status must be active, "
                           "registered or set-aside")
        return masternode_rows(self.node, wanted)

    def rpc_masternodestatus(self) -> dict[str, Any]:
        """
        masternodestatus

        This node as a masternode: {is_masternode (in the next height's
        snapshot), pubkey, address (of the node key), status (active,
        waiting-for-activation, activating, set-aside, or
        not-a-masternode), detail (the status in words), since (the
        height of that status), reason and return_height (set aside
        only), alive, last_seen, next_producer
        (whether it proposes round 0 of the next height), blocks_produced
        (since start), last_block ({height, hash, producer, round, time,
        time_ms, ntx, size} of the newest block it produced that the node
        has seen since start or among the last 256 blocks at start, or
        null)}, plus tier, weight, p2p_address and reward_address when it
        is a masternode.
        """
        return masternode_status(self.node, self.history)

    def rpc_getconsensusinfo(self) -> dict[str, Any]:
        """
        getconsensusinfo

        The consensus rules at the next height: {height, quorum (the rule:
        count or tier-weighted), threshold (the weight a block or a
        transaction needs: at least two thirds of total_weight),
        total_weight (of the snapshot), policy (the selection policy),
        snapshot_size, next_producers (round 0's candidates, first is the
        proposer), block_time and vote_timeout (seconds), and round
        ({height, round, step} of block consensus, when the node runs
        it)}.
        """
        return consensus_info(self.node)


class RegistrationMethods:
    """
    The RPC methods that register and activate the masternode of one node.
    """

    def __init__(self, node: Node) -> None:
        self.node = node

    @defer.inlineCallbacks
    def rpc_registermasternode(self, collateral_txid: Any, vout: Any,
                               p2p_address: Any = None,
                               reward_address: Any = None) -> Any:
        """
        registermasternode "collateral_txid" vout ( "p2p_address" "reward_address" )

        Register this node's key as a masternode, backed by the wallet's
        unspent output collateral_txid:vout (its value sets the tier: gold
        from 100,000 TIME, silver 10,000, bronze 1,000, free below);
        spending that output later deregisters it.  p2p_address defaults
        to this node's P2P address, reward_address to a new wallet
        address.  The fee is paid from another wallet coin.  Returns the
        txid.  Once it is mined the masternode is registered, without
        weight; this node, once synced, puts its activation on chain by
        itself (see activatemasternode), and it is active from the block
        after that.  To keep the collateral in another wallet, use
        registermasternode_prepare instead.  Errors: -8 collateral not in
        the wallet, -6 nothing to pay the fee with, -13 wallet locked,
        -26 refused (bad-registration: operator already registered,
        collateral already used).
        """
        from timecoin.tx import OutPoint
        from timecoin.wallet import build_registration
        txid = to_hash(collateral_txid, "collateral_txid")
        index = to_int(vout, "vout", 0, 2**32 - 1)
        node = self.node
        address = to_str(p2p_address, "p2p_address") \
            if p2p_address is not None \
            else f"{node.config.p2p.bind}:{node.config.p2p.port}"
        if reward_address is None:
            reward = node.new_address()
        else:
            reward = to_str(reward_address, "reward_address")
            check_address(reward, self.node.network)
        try:
            tx = build_registration(node.wallet, node.spendable(), node.key,
                                    address, reward, OutPoint(txid, index),
                                    node.network.name)
        except WalletError as e:
            raise RPCError(e.code, str(e)) from None
        result = yield node.submit(tx)
        return result.hex()

    def rpc_registermasternode_prepare(self, collateral_txid: Any, vout: Any,
                                       collateral_address: Any,
                                       p2p_address: Any = None,
                                       reward_address: Any = None
                                       ) -> dict[str, Any]:
        """
        registermasternode_prepare "collateral_txid" vout "collateral_address" ( "p2p_address" "reward_address" )

        Step 1 of 3 of a registration whose collateral is kept in another
        wallet (as Dash's protx register_prepare): on the operator's node,
        prepare the registration of this node's key backed by the unspent
        output collateral_txid:vout, which pays collateral_address (a
        wallet elsewhere).  p2p_address defaults to this node's P2P
        address, reward_address to a new address of this wallet.  Returns
        {request (hex: give it to the collateral's owner for
        signmasternoderegistration), operator_pubkey, p2p_address,
        reward_address, collateral_address, collateral_amount, tier}.
        Nothing is signed or sent.  Errors: -8 the output is not unspent,
        pays another address, or already backs a masternode.
        """  # noqa: E501
        from timecoin.registration import encode_request, prepare_request, tier_for
        node = self.node
        outpoint = OutPoint(to_hash(collateral_txid, "collateral_txid"),
                            to_int(vout, "vout", 0, 2**32 - 1))
        owner = to_str(collateral_address, "collateral_address")
        check_address(owner, self.node.network)
        entry = node.chain.utxos.get(outpoint) or \
            node.mempool.outputs.get(outpoint)
        if entry is None:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           "is not an unspent output (wait until it is "
                           "final)")
        if entry.address != owner:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           f"pays {entry.address}, not {owner}")
        if outpoint in node.chain.collaterals:
            raise RPCError(RPC_INVALID_PARAMETER, f"collateral {outpoint} "
                           "already backs a masternode")
        address = to_str(p2p_address, "p2p_address") if p2p_address \
            is not None else f"{node.config.p2p.bind}:{node.config.p2p.port}"
        if reward_address is None:
            reward = node.new_address()
        else:
            reward = to_str(reward_address, "reward_address")
            check_address(reward, self.node.network)
        request = prepare_request(node.network.name, node.key.public,
                                  address, reward, outpoint, owner)
        return {"request": encode_request(request),
                "operator_pubkey": node.key.public.hex(),
                "p2p_address": address, "reward_address": reward,
                "collateral_address": owner,
                "collateral_amount": params.format_amount(entry.value),
                "tier": tier_for(entry.value)}

    def rpc_signmasternoderegistration(self, request: Any) -> dict[str, Any]:
        """
        signmasternoderegistration "request"

        Step 2 of 3, on the node whose wallet holds the collateral
        address (or offline: timecoin-cli signmasternoderegistration
        REQUEST KEYFILE, with a key as dumpprivkey prints it or a wallet
        file): sign a request from registermasternode_prepare with the
        key of its collateral address, consenting to back that operator
        key.  Check the fields shown before handing the result back.
        Returns {signed (hex: give it to the operator's node for
        registermasternode_submit), operator_pubkey, p2p_address,
        reward_address, collateral (txid:vout), collateral_address}.  The
        operator key is never needed here.  Errors: -8 malformed request
        or one of another network, -4 the collateral address is not in
        this wallet, -13 locked.
        """
        from timecoin.encoding import EncodingError
        from timecoin.registration import (
            decode_request,
            encode_request,
            request_outpoint,
            sign_request,
        )
        node = self.node
        try:
            unsigned = decode_request(request, signed=False)
        except EncodingError as e:
            raise RPCError(RPC_INVALID_PARAMETER, str(e)) from None
        if unsigned["network"] != node.network.name:
            raise RPCError(RPC_INVALID_PARAMETER, "the request is for "
                           f"{unsigned['network']}, this node runs "
                           f"{node.network.name}")
        owner = unsigned["collateral_address"]
        if not node.wallet.owns(owner):
            raise RPCError(-4, f"the collateral address {owner} is not in "
                           "this wallet")
        signed = sign_request(unsigned, node.wallet.key_for(owner))
        return {"signed": encode_request(signed),
                "operator_pubkey": signed["pubkey"],
                "p2p_address": signed["p2p_address"],
                "reward_address": signed["reward_address"],
                "collateral": str(request_outpoint(signed)),
                "collateral_address": owner}

    def rpc_registermasternode_submit(self, signed: Any) -> Any:
        """
        registermasternode_submit "signed"

        Step 3 of 3, on the operator's node: check the collateral owner's
        signature of a request signed by signmasternoderegistration, add
        this node's (the operator's), and send the registration, its fee
        paid from this wallet (never from a collateral).  Returns the
        txid; once it is mined the node activates its masternode by
        itself, as after registermasternode.  Errors: -8 malformed, for
        another network or another operator key, or a bad collateral
        signature (changed after signing); -6 no coin for the fee; -13
        locked; -26 refused (bad-registration: collateral spent or
        already used, operator already registered).
        """
        from timecoin.encoding import EncodingError
        from timecoin.registration import complete_request, decode_request
        from timecoin.wallet import fund_registration
        node = self.node
        try:
            request = decode_request(signed, signed=True)
            if request["network"] != node.network.name:
                raise EncodingError(f"the request is for "
                                    f"{request['network']}, this node runs "
                                    f"{node.network.name}")
            data = complete_request(request, node.key)
        except EncodingError as e:
            raise RPCError(RPC_INVALID_PARAMETER, str(e)) from None
        tx = fund_registration(node.wallet, node.spendable(), data,
                               node.network.name)
        return then(self.node.submit(tx), hex_of)

    @defer.inlineCallbacks
    def rpc_activatemasternode(self) -> Any:
        """
        activatemasternode

        Put the activation of this node's masternode on chain now (the
        node sends it by itself once synced; see auto_activate): signed by
        the node key, its fee paid from the wallet (never from a
        collateral).  Returns the txid; the masternode is active from the
        block after the one that includes it.  Errors: -26 not due
        (bad-activation: not a registered masternode, already active,
        set aside until a later height, one already waiting), -6 no coin
        to pay the fee.
        """
        txid = yield self.node.participation.activate()
        return txid.hex()
