"""
Genesis blocks and genesis files.

A genesis file holds exactly the canonical encoding of the genesis block
followed by one newline; it is loaded byte-exact (any other bytes, even
re-indented JSON, are refused) and its block hash is the network's genesis
hash, compared in every P2P handshake.  Pinned networks (testnet, mainnet)
also check the hash against ``params``.

The genesis coinbase (``data.height`` 0) carries the network name and the
masternodes registered directly at genesis (``data.masternodes``); its
outputs are the initial allocations.
"""

from __future__ import annotations

from pathlib import Path

from timecoin.address import AddressError, decode_address
from timecoin.block import Block, BlockHeader, merkle_root
from timecoin.encoding import ZERO_HASH, EncodingError
from timecoin.masternodes import Masternode, make_snapshot
from timecoin.params import NETWORKS
from timecoin.tx import Transaction, TxOut


class GenesisError(ValueError):
    """
    The genesis file is missing, malformed, or not this network's.
    """


def make_genesis(network: str, timestamp_ms: int,
                 allocations: list[TxOut],
                 masternodes: list[Masternode]) -> Block:
    """
    Build the genesis block of C{network}.
    """
    coinbase = Transaction(
        (), tuple(allocations), "coinbase",
        {"height": 0, "network": network,
         "masternodes": [m.to_obj() for m in make_snapshot(masternodes)]})
    header = BlockHeader(0, ZERO_HASH, merkle_root([coinbase.txid]),
                         timestamp_ms, b"")
    return Block(header, b"", (coinbase,), None)


def genesis_file_bytes(block: Block) -> bytes:
    """
    The exact bytes of a genesis file for C{block}.
    """
    return block.encode() + b"\n"


def write_genesis(path: Path, block: Block) -> None:
    """
    Write C{block} as a genesis file (atomically, via a temporary file).
    """
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(genesis_file_bytes(block))
    tmp.replace(path)


def parse_genesis(raw: bytes, network: str) -> Block:
    """
    Parse and check genesis file bytes for C{network}.

    @raise GenesisError: with the reason.
    """
    if not raw.endswith(b"\n"):
        raise GenesisError("genesis file must end with one newline")
    try:
        block = Block.decode(raw[:-1])
    except EncodingError as e:
        raise GenesisError(f"genesis file is not a canonical block: {e}") \
            from e
    header = block.header
    if header.height != 0 or header.prev_hash != ZERO_HASH or \
            block.commit is not None or len(block.txs) != 1:
        raise GenesisError("not a genesis block")
    coinbase = block.txs[0]
    if not coinbase.is_coinbase or coinbase.data.get("height") != 0:
        raise GenesisError("genesis must hold exactly its coinbase")
    if header.merkle_root != merkle_root([coinbase.txid]):
        raise GenesisError("genesis merkle root mismatch")
    if coinbase.data.get("network") != network:
        raise GenesisError(
            f"genesis is for network {coinbase.data.get('network')!r}, "
            f"not {network!r}")
    prefix = NETWORKS[network].address_prefix
    for out in coinbase.outputs:
        try:
            decode_address(out.address, prefix)
        except AddressError as e:
            raise GenesisError(f"genesis allocation: {e}") from e
    try:
        masternodes = genesis_masternodes(block, network)
    except EncodingError as e:
        raise GenesisError(f"genesis masternode: {e}") from e
    if [m.to_obj() for m in masternodes] != coinbase.data["masternodes"]:
        raise GenesisError("genesis masternodes must be sorted and unique")
    pinned = NETWORKS[network].genesis_hash
    if pinned is not None and block.hash.hex() != pinned:
        raise GenesisError(
            f"genesis hash {block.hash.hex()} is not the pinned {network} "
            f"genesis {pinned}")
    return block


def load_genesis(path: Path, network: str) -> Block:
    """
    Load and check the genesis file at C{path}.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GenesisError(f"cannot read genesis file {path}: {e}") from e
    return parse_genesis(raw, network)


def genesis_masternodes(block: Block, network: str) -> list[Masternode]:
    """
    The masternodes registered directly by a genesis block.
    """
    prefix = NETWORKS[network].address_prefix
    objs = block.txs[0].data.get("masternodes", [])
    if not isinstance(objs, list):
        raise EncodingError("masternodes must be a list")
    return [Masternode.from_obj(o, prefix) for o in objs]

