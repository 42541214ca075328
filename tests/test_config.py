"""
Tests for the configuration: the TOML file, its sections and the
command-line overrides (L{timecoin.config}), and the sample file
C{etc/timecoin.toml} that documents every setting.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from twisted.trial import unittest

from timecoin.config import (
    SECTIONS,
    Config,
    ConfigError,
    build_config,
    load_config,
)
from timecoin.p2p.settings import DEFAULT_RATE_LIMITS, P2PSettings

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "etc" / "timecoin.toml"


class ConfigTests(unittest.TestCase):
    """
    The config file and overrides.
    """

    def write(self, text: str) -> str:
        path = self.mktemp()
        Path(path).write_text(text)
        return path

    def test_sample_documents_every_setting(self) -> None:
        """
        etc/timecoin.toml loads, and names every setting with its default
        and nothing else: each top-level field of Config, each field of
        each section's settings class under its section, and each message
        type of C{[p2p.rate_limits]}.
        """
        load_config(str(SAMPLE), {})
        with SAMPLE.open("rb") as f:
            data = tomllib.load(f)
        top = {f.name for f in dataclasses.fields(Config)}
        self.assertEqual(set(data), top)
        for name, cls in SECTIONS.items():
            keys = {f.name for f in dataclasses.fields(cls)}
            self.assertEqual(set(data[name]), keys, name)
        self.assertEqual(set(data["p2p"]["rate_limits"]),
                         set(DEFAULT_RATE_LIMITS))
        self.assertEqual(build_config(data), Config())

    def test_unknown_key_and_section(self) -> None:
        """
        Unknown keys and sections are errors naming them.
        """
        e = self.assertRaises(ConfigError, load_config,
                              self.write('nonsense = 1\n'), {})
        self.assertIn("nonsense", str(e))
        e = self.assertRaises(ConfigError, load_config,
                              self.write('[wat]\nport = 1\n'), {})
        self.assertIn("wat", str(e))

    def test_types_and_defaults(self) -> None:
        """
        Wrong types are refused; network defaults fill ports and block
        time; overrides win over the file.
        """
        self.assertRaises(ConfigError, load_config,
                          self.write('[rpc]\nport = "x"\n'), {})
        self.assertRaises(ConfigError, load_config, None,
                          {"network": "moon"})
        config = load_config(self.write('network = "testnet"\n'),
                             {"rpc_port": 5555})
        self.assertEqual((config.p2p.port, config.rpc.port,
                          config.block_time), (24100, 5555, 600.0))
        self.assertEqual(load_config(None, {"block_time": 0.5}).block_time,
                         0.5)


class SectionTests(unittest.TestCase):
    """
    Each TOML section is read into its settings object, key by key.
    """

    def load(self, text: str) -> Config:
        """
        The resolved config of the TOML C{text}.
        """
        path = Path(self.mktemp())
        path.write_text(text)
        return load_config(str(path), {"datadir": self.mktemp()})

    def test_p2p_limit(self) -> None:
        """
        A P2P limit that had no config key before (C{admit_queue}) is read
        from C{[p2p]} into C{config.p2p}, converted to the field's type;
        the other fields keep their defaults.
        """
        config = self.load("[p2p]\nadmit_queue = 5\ntx_batch_delay = 1\n")
        self.assertEqual(config.p2p, P2PSettings(
            port=24200, admit_queue=5, tx_batch_delay=1.0))
        self.assertIsInstance(config.p2p.tx_batch_delay, float)

    def test_rate_limits(self) -> None:
        """
        An entry of C{[p2p.rate_limits]} overrides the rate of its message
        type; the other types keep theirs.
        """
        config = self.load("[p2p.rate_limits]\nping = [2, 7.5]\n")
        expected = dict(DEFAULT_RATE_LIMITS, ping=(2.0, 7.5))
        self.assertEqual(config.p2p.rate_limits, expected)
        self.assertEqual(P2PSettings().rate_limits, DEFAULT_RATE_LIMITS)

    def test_bad_rate_limits(self) -> None:
        """
        An unknown message type, or an entry that is not two numbers, is
        an error naming the table and the type.
        """
        for text in ("nonsense = [1, 2]", "ping = [1]", 'ping = ["1", 2]',
                     "ping = 1", "ping = [true, 2]"):
            e = self.assertRaises(ConfigError, self.load,
                                  f"[p2p.rate_limits]\n{text}\n")
            self.assertIn("[p2p.rate_limits] " + text.split()[0], str(e))

    def test_unknown_key_names_section(self) -> None:
        """
        An unknown key of a section is an error naming the section and
        the key, in each section.
        """
        for name in SECTIONS:
            e = self.assertRaises(ConfigError, self.load,
                                  f"[{name}]\nnonsense = 1\n")
            self.assertIn(f"[{name}] nonsense", str(e))

    def test_wrong_type_names_section(self) -> None:
        """
        A value of the wrong type is an error naming the section and the
        key: a bool is no number and a number no bool, a list holds
        strings.
        """
        for text, name in (("[p2p]\nmax_peers = true", "[p2p] max_peers"),
                           ("[p2p]\nlisten = 1", "[p2p] listen"),
                           ("[p2p]\nconnect = [1]", "[p2p] connect"),
                           ('[finality]\nbatch_max = 1.5',
                            "[finality] batch_max"),
                           ('[mempool]\nmax_count = "1"',
                            "[mempool] max_count"),
                           ("[notify]\ntimeout = false",
                            "[notify] timeout")):
            e = self.assertRaises(ConfigError, self.load, text + "\n")
            self.assertIn(name, str(e))

    def test_overrides_by_flat_name(self) -> None:
        """
        Command-line overrides name a section's key with the section as
        prefix; they win over the file, and are checked the same way.
        """
        path = Path(self.mktemp())
        path.write_text('[p2p]\nport = 1\nconnect = ["a:1"]\n')
        config = load_config(str(path), {"p2p_port": 2,
                                         "p2p_connect": ["b:2"],
                                         "rpc_port": None})
        self.assertEqual((config.p2p.port, config.p2p.connect,
                          config.rpc.port), (2, ("b:2",), 24201))
        e = self.assertRaises(ConfigError, load_config, None,
                              {"p2p_nonsense": 1})
        self.assertIn("[p2p] nonsense", str(e))

    def test_flat(self) -> None:
        """
        L{Config.flat} names every setting as the overrides do, with its
        value.
        """
        config = Config()
        flat = config.flat()
        self.assertEqual((flat["network"], flat["p2p_admit_queue"],
                          flat["rpc_port"], flat["notify_timeout"]),
                         ("devnet", 20_000, 0, 60.0))
        sections = sum(len(dataclasses.fields(cls))
                       for cls in SECTIONS.values())
        self.assertEqual(len(flat), len(dataclasses.fields(Config))
                         - len(SECTIONS) + sections)
