"""
Packaging (issue 16 item 8): a wheel that finds its genesis files
wherever it is installed, carries the MIT LICENSE, keeps treq out of the
runtime dependencies, and ships the operator guide the systemd unit's
C{Documentation=} names; the unit's sandbox rating.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from twisted.trial import unittest

ROOT = Path(__file__).resolve().parent.parent
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", "_trial_temp*", "build",
                                   "dist", "*.egg-info", "__pycache__",
                                   ".mypy_cache", ".ruff_cache",
                                   ".hypothesis", "devnet")


class WheelTests(unittest.TestCase):
    """
    A wheel built from the checkout, installed into a directory of its
    own (as C{pip install --user} installs into a prefix that is not
    C{sys.prefix}).
    """

    def setUp(self) -> None:
        base = Path(self.mktemp()).resolve()
        source = base / "src"
        shutil.copytree(ROOT, source, ignore=SKIP_COPY)
        out = base / "wheel"
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
             str(out), str(source)], capture_output=True, timeout=300)
        if done.returncode != 0:
            raise unittest.SkipTest(f"cannot build a wheel here: "
                                    f"{done.stderr.decode()[-500:]}")
        [self.wheel] = out.glob("timecoin-*.whl")
        self.base = base

    def test_contents_and_metadata(self) -> None:
        """
        The wheel holds the genesis files as package data, the LICENSE
        (MIT) in its metadata, the operator guide and unit as data, and
        requires treq only for the test extra.
        """
        with zipfile.ZipFile(self.wheel) as wheel:
            names = wheel.namelist()
            metadata = wheel.read(next(
                n for n in names if n.endswith(".dist-info/METADATA")
            )).decode()
        for name in ("timecoin/data/genesis-testnet.json",
                     "timecoin/data/genesis-mainnet.json"):
            self.assertIn(name, names)
        license_file = [n for n in names if re.search(
            r"\.dist-info/(licenses/)?LICENSE$", n)]
        self.assertEqual(len(license_file), 1, names)
        self.assertTrue(any(n.endswith("share/timecoin/operating.md")
                            for n in names))
        self.assertIn("License: MIT", metadata)
        treq = [line for line in metadata.splitlines()
                if line.startswith("Requires-Dist: treq")]
        self.assertEqual(len(treq), 1)
        self.assertIn('extra == "test"', treq[0])

    def test_genesis_found_outside_sys_prefix(self) -> None:
        """
        Installed into a directory that is neither the checkout nor
        C{sys.prefix}, the package finds the shipped testnet genesis in
        its own files, and it loads with the pinned hash.
        """
        target = self.base / "site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "--no-deps", "--target", str(target),
                        str(self.wheel)], check=True, capture_output=True,
                       timeout=300)
        script = (
            "import timecoin, sys\n"
            "from timecoin.config import Config\n"
            "from timecoin.genesis import load_genesis\n"
            "from timecoin.node import find_genesis\n"
            "c = Config(network='testnet', datadir='d'); c.resolve()\n"
            "p = find_genesis(c)\n"
            "load_genesis(p, 'testnet')\n"
            "print(timecoin.__file__); print(p)\n")
        env = dict(os.environ, PYTHONPATH=str(target))
        done = subprocess.run([sys.executable, "-c", script], cwd=self.base,
                              env=env, capture_output=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr.decode())
        module, genesis = done.stdout.decode().split()
        self.assertTrue(module.startswith(str(target)), module)
        self.assertTrue(genesis.startswith(str(target)), genesis)


class LicenseTests(unittest.TestCase):
    """
    The LICENSE file matches the metadata.
    """

    def test_mit(self) -> None:
        """
        LICENSE is the MIT licence text, as setup.cfg's license says.
        """
        text = (ROOT / "LICENSE").read_text()
        self.assertTrue(text.startswith("MIT License"))
        self.assertIn("Permission is hereby granted, free of charge", text)
        self.assertIn("license = MIT", (ROOT / "setup.cfg").read_text())


class SystemdUnitTests(unittest.TestCase):
    """
    etc/timecoin.service under C{systemd-analyze security}.
    """

    def test_exposure(self) -> None:
        """
        C{systemd-analyze security --offline=true} rates the unit 3.0 or
        better (it was 6.5 "MEDIUM"), and the unit carries Bitcoin Core's
        bitcoind.service sandbox options.
        """
        unit = (ROOT / "etc" / "timecoin.service").read_text()
        for option in ("ProtectSystem=strict", "ProtectHome=true",
                       "PrivateTmp=true", "NoNewPrivileges=true",
                       "PrivateDevices=true", "MemoryDenyWriteExecute=true",
                       "SystemCallArchitectures=native"):
            self.assertIn(f"\n{option}\n", unit)
        self.assertIn("Documentation=file:///opt/timecoin/.venv/share/"
                      "timecoin/operating.md", unit)
        tool = shutil.which("systemd-analyze")
        if tool is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        copy = Path(self.mktemp())
        copy.mkdir()
        shutil.copy(ROOT / "etc" / "timecoin.service", copy)
        done = subprocess.run([tool, "security", "--offline=true",
                               str(copy / "timecoin.service")],
                              capture_output=True, timeout=60)
        found = re.search(rb"Overall exposure level for \S+: ([0-9.]+)",
                          done.stdout)
        if found is None:
            raise unittest.SkipTest(f"systemd-analyze cannot rate a unit "
                                    f"file here: {done.stderr[-300:]!r}")
        self.assertLessEqual(float(found.group(1)), 3.0)
