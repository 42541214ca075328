"""
The wire messages of the P2P protocol.

A message is one JSON object on one line ending in ``\\n``; its ``"type"``
names it.  Each message here is a small frozen class with its ``name``, its
fields, a size cap (``max_bytes``, the longest line of that type a peer may
send), a parser that validates every field and raises L{MessageError} with
a reason code, and an encoder.  We send canonical JSON (sorted keys,
compact); we accept any valid JSON, and ignore fields we do not know (a
newer peer may add optional ones).  ``docs/protocol.md`` is the prose spec.

Sizes: a block is at most C{params.MAX_BLOCK_BYTES} (2,000,000) bytes and
its commit certificate at most L{MAX_COMMIT_BYTES} (10,000 votes), so one
C{{block, commit}} entry is at most L{MAX_BLOCK_ENTRY_BYTES} (~4.2 MB).  A
C{blocks} reply holds at most L{MAX_BLOCKS_PER_REQUEST} (100) entries *and*
at most L{MAX_LINE_BYTES} (8 MiB) in all; the responder stops adding blocks
before the cap, and since one maximal entry is below the cap every reply
carries at least one block.  L{MAX_LINE_BYTES} is therefore the largest
legal line and the line receiver's C{MAX_LENGTH}.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

from timecoin import params
from timecoin.block import MAX_CERT_VOTES, Block, BlockHeader, CommitCertificate
from timecoin.encoding import (
    MAX_DEPTH,
    EncodingError,
    canonical,
    decode,
    need_int,
    need_list,
    need_str,
    unhex,
)
from timecoin.finality import MAX_BATCH_VOTES, TxVote, TxVoteBatch
from timecoin.liveness import Heartbeat
from timecoin.tx import Transaction

PROTOCOL_VERSION = 5
"""The protocol version we speak (2: C{hello_proof} after C{hello}; 3:
C{vote_bundle}, L{timecoin.p2p.aggregation}; 4: C{reach},
L{timecoin.p2p.reach}; 5: C{get_txs}, L{timecoin.p2p.fetch})."""
MIN_PROTOCOL_VERSION = 2
"""The oldest version we still talk to; a connection runs at the lower of
the two sides' versions, which must not be below this."""

MAX_ID = 2**32 - 1
"""Request ids are integers in [0, MAX_ID]."""
MAX_NONCE = 2**53 - 1
"""Ping nonces are integers in [0, MAX_NONCE] (exact in every JSON)."""
MAX_PEERS_PER_REPLY = 250
MAX_ADDRESS_CHARS = 64
MAX_BLOCKS_PER_REQUEST = 100
MAX_REASON_CHARS = 64
MAX_TXIDS_PER_QUERY = 64
"""Txids one C{get_tx_votes} may ask about."""
MAX_DETAIL_CHARS = 256
MAX_TXS_PER_MSG = 1024
"""Transactions one C{txs} message may carry."""
TXS_ENVELOPE_BYTES = 24
"""C{{"txs":[],"type":"txs"}} around the entries of a C{txs} line."""

MAX_COMMIT_BYTES = 137 + MAX_CERT_VOTES * 220
"""A commit certificate's encoding: 137 bytes of fields plus 219 bytes and
a comma per vote, at most C{MAX_CERT_VOTES} votes."""
MAX_BLOCK_ENTRY_BYTES = params.MAX_BLOCK_BYTES + MAX_COMMIT_BYTES + 20
"""One C{{"block":…,"commit":…}} entry."""
MAX_LINE_BYTES = 8 * 1024 * 1024
"""The longest legal line (a full C{blocks} reply), without the newline."""
BLOCKS_ENVELOPE_BYTES = 64
"""Room kept in a C{blocks} reply for C{{"blocks":[…],"id":…,"type":…}}."""


class MessageError(Exception):
    """
    A line is not a valid message; C{reason} is a stable reason code.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class Message:
    """
    Base of all wire messages.

    @cvar name: the C{"type"} on the wire.
    @cvar max_bytes: the longest line of this type accepted.
    """

    name: ClassVar[str]
    max_bytes: ClassVar[int] = 1024

    @property
    def cost(self) -> int:
        """
        What the message takes from its type's rate limit: one, or the
        number of items a batch carries.
        """
        return 1

    def fields(self) -> dict[str, Any]:
        """
        The message's fields as JSON values (without C{type}).
        """
        raise NotImplementedError

    def to_obj(self) -> dict[str, Any]:
        """
        The message as a JSON object, C{type} included.
        """
        obj = self.fields()
        obj["type"] = self.name
        return obj

    def encode(self) -> bytes:
        """
        The canonical line, without the newline.
        """
        return canonical(self.to_obj())

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Message:
        """
        Build the message from a decoded JSON object.

        @raise EncodingError: (or C{ValueError}) naming the bad field.
        """
        raise NotImplementedError


class Request(Message):
    """
    A message that asks for a response echoing its C{id}.

    @cvar response: the C{name} of the response type.
    """

    response: ClassVar[str]
    id: int


class Response(Message):
    """
    A message answering the request with the same C{id}.
    """

    id: int


MESSAGES: dict[str, type[Message]] = {}
"""The registry: wire type → message class."""

M = TypeVar("M", bound=type[Message])


def register(cls: M) -> M:
    """
    Class decorator adding a message class to L{MESSAGES}.
    """
    assert cls.name not in MESSAGES, cls.name
    MESSAGES[cls.name] = cls
    return cls


def _field(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise EncodingError(f"missing field {name!r}")
    return obj[name]


def _id(obj: dict[str, Any]) -> int:
    return need_int(_field(obj, "id"), "id", 0, MAX_ID)


def _commit_obj(commit: CommitCertificate) -> bytes:
    return canonical(commit.to_obj())


def _block_entry(block: Block, commit: CommitCertificate) -> bytes:
    return (b'{"block":' + block.encode() + b',"commit":'
            + _commit_obj(commit) + b"}")


def _parse_block(value: Any) -> Block:
    block = Block.from_obj(value)
    if block.size > params.MAX_BLOCK_BYTES:
        raise EncodingError(f"block of {block.size} bytes is too large")
    return block


def _parse_entry(value: Any) -> tuple[Block, CommitCertificate]:
    if not isinstance(value, dict):
        raise EncodingError("block entry must be an object")
    block = _parse_block(_field(value, "block"))
    commit = CommitCertificate.from_obj(_field(value, "commit"))
    return block, commit


# Handshake and connection-level messages ----------------------------------


@register
@dataclass(frozen=True)
class Hello(Message):
    """
    The first message each side sends: who we are and what we run.
    """

    name: ClassVar[str] = "hello"
    max_bytes: ClassVar[int] = 1024

    network: str
    version: int
    genesis: bytes
    height: int
    listen_port: int
    pubkey: bytes
    policy: str
    nonce: bytes
    user_agent: str

    def fields(self) -> dict[str, Any]:
        return {"network": self.network, "version": self.version,
                "genesis": self.genesis.hex(), "height": self.height,
                "listen_port": self.listen_port, "pubkey": self.pubkey.hex(),
                "policy": self.policy, "nonce": self.nonce.hex(),
                "user_agent": self.user_agent}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Hello:
        return cls(
            network=need_str(_field(obj, "network"), "network", 16),
            version=need_int(_field(obj, "version"), "version", 0, 2**31),
            genesis=unhex(_field(obj, "genesis"), 32, "genesis"),
            height=need_int(_field(obj, "height"), "height"),
            listen_port=need_int(_field(obj, "listen_port"), "listen_port",
                                 0, 65535),
            pubkey=unhex(_field(obj, "pubkey"), 32, "pubkey"),
            policy=need_str(_field(obj, "policy"), "policy", 64),
            nonce=unhex(_field(obj, "nonce"), 8, "nonce"),
            user_agent=need_str(_field(obj, "user_agent"), "user_agent",
                                128))


@register
@dataclass(frozen=True)
class Error(Message):
    """
    Tells the peer why we refuse it or one of its messages.
    """

    name: ClassVar[str] = "error"
    max_bytes: ClassVar[int] = 1024

    reason: str
    detail: str = ""

    def fields(self) -> dict[str, Any]:
        return {"reason": self.reason[:MAX_REASON_CHARS],
                "detail": self.detail[:MAX_DETAIL_CHARS]}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Error:
        return cls(need_str(_field(obj, "reason"), "reason",
                            MAX_REASON_CHARS),
                   need_str(obj.get("detail", ""), "detail",
                            MAX_DETAIL_CHARS))


@register
@dataclass(frozen=True)
class Ping(Message):
    """
    Liveness probe; the peer answers with a L{Pong} echoing C{nonce}.
    """

    name: ClassVar[str] = "ping"
    max_bytes: ClassVar[int] = 128

    nonce: int

    def fields(self) -> dict[str, Any]:
        return {"nonce": self.nonce}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Ping:
        return cls(need_int(_field(obj, "nonce"), "nonce", 0, MAX_NONCE))


@register
@dataclass(frozen=True)
class Pong(Message):
    """
    The answer to a L{Ping}, with its nonce.
    """

    name: ClassVar[str] = "pong"
    max_bytes: ClassVar[int] = 128

    nonce: int

    def fields(self) -> dict[str, Any]:
        return {"nonce": self.nonce}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Pong:
        return cls(need_int(_field(obj, "nonce"), "nonce", 0, MAX_NONCE))


# Requests and responses ---------------------------------------------------


@register
@dataclass(frozen=True)
class GetPeers(Request):
    """
    Asks for addresses the peer knows.
    """

    name: ClassVar[str] = "get_peers"
    response: ClassVar[str] = "peers"
    max_bytes: ClassVar[int] = 128

    id: int = 0

    def fields(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> GetPeers:
        return cls(_id(obj))


@register
@dataclass(frozen=True)
class Peers(Response):
    """
    Up to L{MAX_PEERS_PER_REPLY} C{"host:port"} addresses.
    """

    name: ClassVar[str] = "peers"
    max_bytes: ClassVar[int] = 32 * 1024

    id: int
    peers: tuple[str, ...]

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "peers": list(self.peers)}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Peers:
        peers = need_list(_field(obj, "peers"), "peers", MAX_PEERS_PER_REPLY)
        return cls(_id(obj), tuple(need_str(p, "peer address",
                                            MAX_ADDRESS_CHARS)
                                   for p in peers))


@register
@dataclass(frozen=True)
class GetBlocks(Request):
    """
    Asks for main-chain blocks C{start} … C{start + count - 1}.
    """

    name: ClassVar[str] = "get_blocks"
    response: ClassVar[str] = "blocks"
    max_bytes: ClassVar[int] = 256

    start: int
    count: int
    id: int = 0

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "start": self.start, "count": self.count}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> GetBlocks:
        return cls(need_int(_field(obj, "start"), "start", 1),
                   need_int(_field(obj, "count"), "count", 1,
                            MAX_BLOCKS_PER_REQUEST),
                   _id(obj))


@register
@dataclass(frozen=True)
class Blocks(Response):
    """
    Consecutive blocks from the requested C{start}, each with its own
    commit certificate; fewer than asked when the responder has fewer or
    the reply reached L{MAX_LINE_BYTES}; empty if it has none.
    """

    name: ClassVar[str] = "blocks"
    max_bytes: ClassVar[int] = MAX_LINE_BYTES

    id: int
    blocks: tuple[tuple[Block, CommitCertificate], ...]

    def fields(self) -> dict[str, Any]:
        return {"id": self.id,
                "blocks": [{"block": b.to_obj(), "commit": c.to_obj()}
                           for b, c in self.blocks]}

    def encode(self) -> bytes:
        # Same bytes as canonical(self.to_obj()), spliced from the blocks'
        # cached encodings.
        return (b'{"blocks":['
                + b",".join(_block_entry(b, c) for b, c in self.blocks)
                + b'],"id":' + str(self.id).encode() + b',"type":"blocks"}')

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Blocks:
        entries = need_list(_field(obj, "blocks"), "blocks",
                            MAX_BLOCKS_PER_REQUEST)
        return cls(_id(obj), tuple(_parse_entry(e) for e in entries))


@register
@dataclass(frozen=True)
class GetTip(Request):
    """
    Asks for the peer's best height and tip hash.
    """

    name: ClassVar[str] = "get_tip"
    response: ClassVar[str] = "tip"
    max_bytes: ClassVar[int] = 128

    id: int = 0

    def fields(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> GetTip:
        return cls(_id(obj))


@register
@dataclass(frozen=True)
class Tip(Response):
    """
    The responder's best height and tip block hash.
    """

    name: ClassVar[str] = "tip"
    max_bytes: ClassVar[int] = 256

    id: int
    height: int
    hash: bytes

    def fields(self) -> dict[str, Any]:
        return {"id": self.id, "height": self.height, "hash": self.hash.hex()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Tip:
        return cls(_id(obj), need_int(_field(obj, "height"), "height"),
                   unhex(_field(obj, "hash"), 32, "hash"))


# Gossip -------------------------------------------------------------------


@register
@dataclass(frozen=True)
class TxMsg(Message):
    """
    A transaction to vote on and relay.
    """

    name: ClassVar[str] = "tx"
    max_bytes: ClassVar[int] = params.MAX_TX_BYTES + 256

    tx: Transaction

    def fields(self) -> dict[str, Any]:
        return {"tx": self.tx.to_obj()}

    def encode(self) -> bytes:
        return b'{"tx":' + self.tx.encode() + b',"type":"tx"}'

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> TxMsg:
        return cls(Transaction.from_obj(_field(obj, "tx")))


def txs_entry(tx: Transaction) -> bytes:
    """
    One C{["<txid>",{tx}]} entry of a C{txs} line (canonical bytes).
    """
    return b'["' + tx.txid.hex().encode() + b'",' + tx.encode() + b"]"


def txs_line(entries: Iterable[bytes]) -> bytes:
    """
    The canonical C{txs} line holding C{entries} (from L{txs_entry}); it
    is C{TXS_ENVELOPE_BYTES} plus the entries and a comma between each.
    """
    return b'{"txs":[' + b",".join(entries) + b'],"type":"txs"}'


@register
@dataclass(frozen=True, eq=False)
class TxsMsg(Message):
    """
    Transactions to vote on and relay, many per line, each after the txid
    its sender claims for it.  The receiver skips a transaction whose
    txid it has seen without building it (L{transaction} does that, and
    only the receiver's gossip decides when); a claim that differs from
    the transaction's real txid is the sender's fault.

    @ivar txs: (claimed txid, transaction): a L{Transaction} when we built
        the message, the decoded JSON object when a peer sent it.
    """

    name: ClassVar[str] = "txs"
    max_bytes: ClassVar[int] = params.MAX_TX_BYTES + 256

    txs: tuple[tuple[bytes, Any], ...]

    @classmethod
    def of(cls, txs: Iterable[Transaction]) -> TxsMsg:
        """
        The message carrying C{txs} under their own txids.
        """
        return cls(tuple((tx.txid, tx) for tx in txs))

    @property
    def cost(self) -> int:
        return len(self.txs)

    @staticmethod
    def transaction(value: Any) -> Transaction:
        """
        Build the transaction of one entry.

        @raise EncodingError: (or C{ValueError}, C{TypeError},
            C{KeyError}) naming the bad field.
        """
        if isinstance(value, Transaction):
            return value
        return Transaction.from_obj(value)

    def fields(self) -> dict[str, Any]:
        return {"txs": [[txid.hex(), tx.to_obj()
                         if isinstance(tx, Transaction) else tx]
                        for txid, tx in self.txs]}

    def encode(self) -> bytes:
        if all(isinstance(tx, Transaction) and tx.txid == txid
               for txid, tx in self.txs):
            return txs_line(txs_entry(tx) for _, tx in self.txs)
        return canonical(self.to_obj())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TxsMsg) and self.encode() == other.encode()

    def __hash__(self) -> int:
        return hash(self.encode())

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> TxsMsg:
        entries = need_list(_field(obj, "txs"), "txs", MAX_TXS_PER_MSG)
        parsed = []
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != 2:
                raise EncodingError("txs entry must be [txid, tx]")
            if not isinstance(entry[1], dict):
                raise EncodingError("txs entry's tx must be an object")
            parsed.append((unhex(entry[0], 32, "txid"), entry[1]))
        return cls(tuple(parsed))


@register
@dataclass(frozen=True)
class TxVoteMsg(Message):
    """
    A masternode's signed vote on a transaction.
    """

    name: ClassVar[str] = "tx_vote"
    max_bytes: ClassVar[int] = 2048

    vote: TxVote

    def fields(self) -> dict[str, Any]:
        return {"vote": self.vote.to_obj()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> TxVoteMsg:
        return cls(TxVote.from_obj(_field(obj, "vote")))


@register
@dataclass(frozen=True)
class TxVotesMsg(Message):
    """
    A masternode's signed batch of decisions (L{TxVoteBatch}): one
    signature over the Merkle root of up to L{MAX_BATCH_VOTES} (txid,
    decision) pairs.  The cap allows 80 bytes per decision (a maximal one
    takes 78 with its comma) plus the envelope.
    """

    name: ClassVar[str] = "tx_votes"
    max_bytes: ClassVar[int] = MAX_BATCH_VOTES * 80 + 512

    batch: TxVoteBatch

    def fields(self) -> dict[str, Any]:
        return {"batch": self.batch.to_obj()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> TxVotesMsg:
        return cls(TxVoteBatch.from_obj(_field(obj, "batch")))


@register
@dataclass(frozen=True)
class GetTxVotes(Message):
    """
    Asks the peer for the votes it holds on up to L{MAX_TXIDS_PER_QUERY}
    transactions; it answers with one C{tx_vote} per vote (no reply if it
    has none).  Sent for transactions still undecided a while after
    admission (a restart mid-vote, votes lost in a partition).  With
    C{final} (protocol 3; older peers ignore it and answer in full), only
    the approving votes of those the peer holds final: what a node that
    rejected them asks for.
    """

    name: ClassVar[str] = "get_tx_votes"
    max_bytes: ClassVar[int] = MAX_TXIDS_PER_QUERY * 67 + 80

    txids: tuple[bytes, ...]
    final: bool = False

    def fields(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"txids": [t.hex() for t in self.txids]}
        if self.final:
            obj["final"] = True
        return obj

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> GetTxVotes:
        txids = need_list(_field(obj, "txids"), "txids", MAX_TXIDS_PER_QUERY)
        final = obj.get("final", False)
        if not isinstance(final, bool):
            raise EncodingError("final must be a boolean")
        return cls(tuple(unhex(t, 32, "txid") for t in txids), final)


@register
class BlockMsg(Message):
    """
    Announcement of a committed block with its own commit certificate.

    A peer's announcement is parsed in two steps: its header at once (the
    receiver drops a block it already holds by the header's hash alone,
    and most announcements are of blocks every node committed through
    consensus already), the transactions and certificate only when
    L{unpack} (or C{block}, C{commit}) asks for them.

    @ivar header: the block's header.
    """

    name: ClassVar[str] = "block"
    max_bytes: ClassVar[int] = MAX_BLOCK_ENTRY_BYTES + 64

    def __init__(self, block: Block, commit: CommitCertificate) -> None:
        self.header: BlockHeader = block.header
        self._unpacked: tuple[Block, CommitCertificate] | None = \
            (block, commit)
        self._raw: tuple[Any, Any] = (None, None)

    @classmethod
    def announced(cls, header: BlockHeader, block: dict[str, Any],
                  commit: Any) -> BlockMsg:
        """
        An announcement whose header is parsed and whose C{block} and
        C{commit} objects are parsed on demand.
        """
        msg = cls.__new__(cls)
        msg.header = header
        msg._unpacked = None
        msg._raw = (block, commit)
        return msg

    def unpack(self) -> tuple[Block, CommitCertificate]:
        """
        The whole block and its certificate, parsed (once) if needed.

        @raise MessageError: C{bad-message} if they do not parse, or the
            block is not the one the header announced.
        """
        if self._unpacked is None:
            block_obj, commit_obj = self._raw
            try:
                block = _parse_block(block_obj)
                commit = CommitCertificate.from_obj(commit_obj)
            except (EncodingError, ValueError, TypeError, KeyError) as e:
                raise MessageError("bad-message", f"block: {e}"[
                    :MAX_DETAIL_CHARS]) from e
            if block.header != self.header:
                raise MessageError("bad-message", "block header changed")
            self._unpacked = (block, commit)
            self._raw = (None, None)
        return self._unpacked

    @property
    def block(self) -> Block:
        """
        The block (see L{unpack}).
        """
        return self.unpack()[0]

    @property
    def commit(self) -> CommitCertificate:
        """
        The block's commit certificate (see L{unpack}).
        """
        return self.unpack()[1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlockMsg) and \
            self.unpack() == other.unpack()

    def __hash__(self) -> int:
        return hash(self.header.hash)

    def __repr__(self) -> str:
        return f"<BlockMsg {self.header.height} {self.header.hash.hex()}>"

    def fields(self) -> dict[str, Any]:
        block, commit = self.unpack()
        return {"block": block.to_obj(), "commit": commit.to_obj()}

    def encode(self) -> bytes:
        block, commit = self.unpack()
        return (b'{"block":' + block.encode() + b',"commit":'
                + _commit_obj(commit) + b',"type":"block"}')

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> BlockMsg:
        block = _field(obj, "block")
        if not isinstance(block, dict):
            raise EncodingError("block must be an object")
        header = BlockHeader.from_obj(_field(block, "header"))
        return cls.announced(header, block, _field(obj, "commit"))


@register
@dataclass(frozen=True)
class HeartbeatMsg(Message):
    """
    A masternode's signed heartbeat (L{timecoin.liveness.Heartbeat}).

    The cap fits a heartbeat with the largest sequence number and height
    (19 digits each) with room to spare.
    """

    name: ClassVar[str] = "heartbeat"
    max_bytes: ClassVar[int] = 512

    heartbeat: Heartbeat

    def fields(self) -> dict[str, Any]:
        return {"heartbeat": self.heartbeat.to_obj()}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> HeartbeatMsg:
        return cls(Heartbeat.from_obj(_field(obj, "heartbeat")))


MAX_MESSAGE_BYTES = max(cls.max_bytes for cls in MESSAGES.values())
assert MAX_MESSAGE_BYTES == MAX_LINE_BYTES
assert MAX_BLOCK_ENTRY_BYTES + BLOCKS_ENVELOPE_BYTES < MAX_LINE_BYTES


UNSNIFFED_BYTES = Message.max_bytes
"""The longest line decoded whose type L{sniff_type} cannot tell."""
_TYPE_MEMBER = re.compile(rb'"type"\s*:\s*"([a-z_]{1,32})"')


def sniff_type(line: bytes) -> str | None:
    """
    The type C{line} declares, found without decoding it: the name in its
    one literal C{"type":"name"} member.  C{None} when there is none or
    more than one (a string cannot hold one -- its quotes are escaped --
    and no message nests a C{type} member, so every line we send has
    exactly one).  The search stops at the second match, so the cost is
    one C-speed scan of the line however it is built.
    """
    found: str | None = None
    for n, match in enumerate(_TYPE_MEMBER.finditer(line)):
        if n:
            return None
        found = match.group(1).decode("ascii")
    return found


def line_cap(kind: str | None) -> int:
    """
    The longest line of sniffed type C{kind} worth decoding: its type's
    C{max_bytes}, or L{UNSNIFFED_BYTES} for a line whose type is unknown
    or could not be sniffed.
    """
    cls = MESSAGES.get(kind) if kind is not None else None
    return UNSNIFFED_BYTES if cls is None else cls.max_bytes


def parse_line(line: bytes, max_depth: int = MAX_DEPTH) -> Message:
    """
    Parse one line (without its newline) into a message.

    Limits come before work: the size cap of the type the line declares
    (L{sniff_type}, L{line_cap}) is checked before the line is decoded,
    and the decoder refuses nesting deeper than C{max_depth}; a line whose
    decoded type is not the one it declared is refused.

    @raise MessageError: with reason C{not-utf8}, C{bad-json},
        C{not-an-object}, C{no-type}, C{unknown-type},
        C{message-too-large} or C{bad-message}.
    """
    sniffed = sniff_type(line)
    cap = line_cap(sniffed)
    if len(line) > cap:
        raise MessageError("message-too-large",
                           f"{sniffed or 'line'} of {len(line)} bytes > {cap}")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MessageError("not-utf8", str(e)[:80]) from e
    try:
        obj = decode(text, max_depth)
    except EncodingError as e:
        raise MessageError("bad-json", str(e)[:80]) from e
    if not isinstance(obj, dict):
        raise MessageError("not-an-object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MessageError("no-type")
    cls = MESSAGES.get(kind)
    if cls is None:
        raise MessageError("unknown-type", kind[:32])
    if len(line) > cls.max_bytes:
        raise MessageError("message-too-large",
                           f"{kind} of {len(line)} bytes > {cls.max_bytes}")
    if sniffed is not None and sniffed != kind:
        raise MessageError("bad-message",
                           f"declares {sniffed[:32]} but is {kind[:32]}")
    try:
        return cls.parse(obj)
    except (EncodingError, ValueError, TypeError, KeyError) as e:
        raise MessageError("bad-message", f"{kind}: {e}"[:MAX_DETAIL_CHARS]) \
            from e


R = TypeVar("R", bound=Request)


def with_id(request: R, request_id: int) -> R:
    """
    C{request} carrying C{request_id}.
    """
    return replace(request, id=request_id)  # type: ignore[type-var]


def blocks_reply(request_id: int,
                 entries: list[tuple[Block, CommitCertificate]],
                 budget: int = MAX_LINE_BYTES) -> Blocks:
    """
    A L{Blocks} reply with the longest prefix of C{entries} whose line fits
    in C{budget} bytes (always at least one entry when there is one).
    """
    size = BLOCKS_ENVELOPE_BYTES
    chosen: list[tuple[Block, CommitCertificate]] = []
    for block, commit in entries[:MAX_BLOCKS_PER_REQUEST]:
        entry = len(_block_entry(block, commit)) + 1
        if chosen and size + entry > budget:
            break
        chosen.append((block, commit))
        size += entry
    return Blocks(request_id, tuple(chosen))

