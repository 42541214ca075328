"""
Tests for genesis files, selection-policy loading, and the
node service starting, producing and stopping on a fake clock.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from tests.helpers import START, addr, key, result_of
from timecoin import params
from timecoin.config import Config
from timecoin.genesis import (
    GenesisError,
    genesis_file_bytes,
    load_genesis,
    make_genesis,
    parse_genesis,
)
from timecoin.interfaces import IChainStore, IQuorumRule, ISelectionPolicy
from timecoin.masternodes import Masternode, make_snapshot
from timecoin.node import Node
from timecoin.quorum import QUORUM_RULES
from timecoin.selection import PolicyError, load_policy
from timecoin.storage.memory import MemoryStore
from timecoin.tx import TxOut
from timecoin.wiring import build

ROOT = Path(__file__).resolve().parent.parent


class GenesisTests(unittest.TestCase):
    """
    Genesis files are loaded byte-exact and checked.
    """

    def genesis(self):
        return make_genesis("devnet", 5, [TxOut(100, addr(key(1)))],
                            [Masternode(key(0).public, "127.0.0.1:1",
                                        addr(key(0)), "free")])

    def test_roundtrip(self) -> None:
        """
        A written genesis file loads to the same block and hash.
        """
        block = self.genesis()
        self.assertEqual(parse_genesis(genesis_file_bytes(block),
                                       "devnet").hash, block.hash)

    def test_not_byte_exact(self) -> None:
        """
        Re-formatted JSON (same content, other bytes), a missing newline,
        or an edited allocation are refused.
        """
        raw = genesis_file_bytes(self.genesis())
        self.assertRaises(GenesisError, parse_genesis,
                          raw.replace(b",", b", "), "devnet")
        self.assertRaises(GenesisError, parse_genesis, raw[:-1], "devnet")
        self.assertRaises(GenesisError, parse_genesis,
                          raw.replace(b'"value":100', b'"value":101'),
                          "devnet")

    def test_wrong_network(self) -> None:
        """
        A devnet genesis is refused as a testnet one.
        """
        raw = genesis_file_bytes(self.genesis())
        e = self.assertRaises(GenesisError, parse_genesis, raw, "testnet")
        self.assertIn("network", str(e))

    def test_shipped_files_match_pins(self) -> None:
        """
        timecoin/data/genesis-testnet.json and genesis-mainnet.json load and hash
        to the values pinned in params; a devnet genesis cannot pose as
        testnet's.
        """
        for name in ("testnet", "mainnet"):
            block = load_genesis(ROOT / "timecoin" / "data"
                                 / f"genesis-{name}.json", name)
            self.assertEqual(block.hash.hex(),
                             params.NETWORKS[name].genesis_hash)
        fake = make_genesis("testnet", 5, [], [])
        e = self.assertRaises(GenesisError, parse_genesis,
                              genesis_file_bytes(fake), "testnet")
        self.assertIn("pinned", str(e))


class PluginTests(unittest.TestCase):
    """
    Selection policies and quorum rules behind their interfaces.
    """

    def test_builtin_policies(self) -> None:
        """
        Both built-ins are found by name, provide ISelectionPolicy, and
        return candidates drawn from the snapshot only.
        """
        snapshot = make_snapshot([
            Masternode(key(i).public, "h:1", addr(key(i)), tier)
            for i, tier in enumerate(["free", "gold", "silver", "bronze"])])
        for name in ("round-robin", "stake-weighted"):
            policy = load_policy(name)
            verifyObject(ISelectionPolicy, policy)
            for height in range(20):
                order = policy.candidates(snapshot, height, b"\x00" * 32, 0)
                self.assertEqual(sorted(order),
                                 sorted(m.pubkey for m in snapshot))

    def test_plugin_directory(self) -> None:
        """
        A policy in the top-level plugins/ directory loads by name when the
        directory is configured, and not otherwise.
        """
        import twisted.plugins
        path = str(ROOT / "plugins")
        self.addCleanup(lambda: path in twisted.plugins.__path__
                        and twisted.plugins.__path__.remove(path))
        self.assertRaises(PolicyError, load_policy, "lowest-hash")
        policy = load_policy("lowest-hash", (path,))
        verifyObject(ISelectionPolicy, policy)

    def test_unknown_policy(self) -> None:
        """
        An unknown name fails with the list of available policies.
        """
        e = self.assertRaises(PolicyError, load_policy, "nope")
        self.assertIn("round-robin", str(e))

    def test_interfaces(self) -> None:
        """
        Quorum rules and the memory store provide their interfaces.
        """
        for rule in QUORUM_RULES.values():
            verifyObject(IQuorumRule, rule)
        verifyObject(IChainStore, MemoryStore())


class NodeServiceTests(unittest.TestCase):
    """
    The node as a service on a fake clock.
    """

    def make_node(self, datadir: str, **kw) -> tuple[Node, Clock]:
        clock = Clock()
        clock.advance(START)
        config = Config(network="devnet", datadir=datadir, block_time=2.0,
                        **kw)
        config.resolve()
        node = build(config, clock, store=MemoryStore(), with_p2p=False).node
        return node, clock

    def test_fresh_devnet(self) -> None:
        """
        A fresh devnet data dir gets a key, a wallet, and a genesis written
        to genesis.json that registers this node and funds its wallet; the
        node produces a block each block time and stops cleanly.
        """
        datadir = self.mktemp()
        node, clock = self.make_node(datadir)
        self.assertTrue((Path(datadir) / "genesis.json").exists())
        self.assertEqual((Path(datadir) / "private" / "node_key").stat()
                         .st_mode & 0o777, 0o600)
        node.startService()
        result_of(node.ready)
        self.assertTrue(node.is_masternode)
        self.assertEqual(node.balance(), 1_000_000 * params.COIN)
        for expected in (1, 2, 3):
            clock.advance(2.0)
            self.assertEqual(node.chain.height, expected)
        result_of(node.stopService())
        clock.advance(10)
        self.assertEqual(node.chain.height, 3)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_shared_genesis(self) -> None:
        """
        A second node given the first's genesis file shares its genesis
        hash, is not a masternode of it, and does not produce.
        """
        first = self.mktemp()
        node, _ = self.make_node(first)
        other, clock = self.make_node(
            self.mktemp(), genesis=str(Path(first) / "genesis.json"))
        self.assertEqual(other.genesis.hash, node.genesis.hash)
        other.startService()
        result_of(other.ready)
        self.assertFalse(other.is_masternode)
        clock.advance(10)
        self.assertEqual(other.chain.height, 0)
        result_of(other.stopService())
