"""
Monitoring and version of a real ``twistd timecoin`` process (issue 16
items 6 and 7): C{promtool check metrics} on a live scrape, C{process_*}
and C{timecoin_build_info} series, the version in C{getnetworkinfo}, the
start line and C{twistd timecoin --version}, and C{log_level} keeping
per-request lines out of the log by default.

C{promtool} comes from C{scripts/ensure-promtool} (Debian's prometheus
package; C{make test} runs it); without it those tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from twisted.trial import unittest

from tests.nodeprocess import ROOT, TWISTD, NodeProcess
from timecoin import __version__


def promtool() -> str | None:
    """
    The promtool binary: C{TIMECOIN_PROMTOOL}, else on C{PATH}.
    """
    return os.environ.get("TIMECOIN_PROMTOOL") or shutil.which("promtool")



def metrics_request(node: NodeProcess) -> urllib.request.Request:
    """
    C{GET /metrics} of C{node} with its cookie (the scrape needs the RPC
    credentials unless [rpc] metrics_open).
    """
    import base64
    cookie = (node.datadir / ".cookie").read_text().strip()
    return urllib.request.Request(
        f"http://127.0.0.1:{node.rpc_port}/metrics",
        headers={"Authorization": "Basic "
                 + base64.b64encode(cookie.encode()).decode()})

class LiveMetricsTests(unittest.TestCase):
    """
    One devnet node process, scraped.
    """

    def setUp(self) -> None:
        self.node = NodeProcess(Path(self.mktemp()).resolve(),
                                block_time=0.5)
        self.addCleanup(self.node.kill)
        self.node.start()
        self.node.wait_for(lambda: self.node.call("getblockcount") >= 1, 10)

    def scrape(self) -> str:
        """
        The text of C{GET /metrics}.
        """
        with urllib.request.urlopen(metrics_request(self.node),
                                    timeout=10) as response:
            text: str = response.read().decode()
        return text

    def test_promtool_check_metrics(self) -> None:
        """
        C{promtool check metrics} accepts a live scrape (exit 0, no
        complaint), after an RPC call so the latency histogram has a
        series.
        """
        tool = promtool()
        if tool is None:
            raise unittest.SkipTest(
                "promtool not found: run scripts/ensure-promtool (make test "
                "does; it installs Debian's prometheus package) or set "
                "TIMECOIN_PROMTOOL")
        self.node.call("getblockcount")
        text = self.scrape()
        done = subprocess.run([tool, "check", "metrics"], input=text.encode(),
                              capture_output=True, timeout=60)
        self.assertEqual((done.returncode, done.stdout + done.stderr),
                         (0, b""))

    def test_process_and_build_info(self) -> None:
        """
        The scrape carries prometheus_client's process series of the node
        process and C{timecoin_build_info} 1 labelled with our version;
        the UTXO gauge is C{timecoin_utxos}, not C{timecoin_utxo_count}.
        """
        text = self.scrape()
        for name in ("process_cpu_seconds_total",
                     "process_resident_memory_bytes",
                     "process_start_time_seconds", "process_open_fds"):
            self.assertIn(f"\n{name} ", text)
        self.assertIn('timecoin_build_info{python="', text)
        line = next(row for row in text.splitlines()
                    if row.startswith("timecoin_build_info{"))
        self.assertIn(f'version="{__version__}"', line)
        self.assertTrue(line.endswith(" 1.0"), line)
        self.assertIn("\ntimecoin_utxos ", text)
        self.assertNotIn("utxo_count", text)

    def test_version_in_rpc_and_log(self) -> None:
        """
        C{getnetworkinfo} shows version (0.1.0 as 100, Bitcoin Core's
        encoding) and subversion C{/timecoin:VERSION/}; the log's start
        line names the version; with the default log_level neither RPC
        calls nor scrapes write a line each.
        """
        info = self.node.call("getnetworkinfo")
        major, minor, patch = (int(p) for p in __version__.split("."))
        self.assertEqual(info["version"],
                         major * 10_000 + minor * 100 + patch)
        self.assertEqual(info["subversion"], f"/timecoin:{__version__}/")
        for _ in range(5):
            self.node.call("getblockcount")
            self.scrape()
        log = (self.node.datadir / "node.log").read_text()
        self.assertIn(f"timecoin {__version__} starting on devnet", log)
        self.assertNotIn("RPC HTTP", log)
        self.assertNotIn("/metrics", log)


class DebugLogTests(unittest.TestCase):
    """
    C{--log-level debug} brings the per-request lines back.
    """

    def test_debug_level_logs_requests(self) -> None:
        """
        With log_level debug each RPC request and scrape writes its
        access line.
        """
        node = NodeProcess(Path(self.mktemp()).resolve(), "--log-level",
                           "debug")
        self.addCleanup(node.kill)
        node.start()
        node.call("getblockcount")
        with urllib.request.urlopen(metrics_request(node), timeout=10):
            pass
        node.wait_for(lambda: "/metrics" in (
            node.datadir / "node.log").read_text(), 10)
        self.assertIn("RPC HTTP b'POST' b'/'",
                      (node.datadir / "node.log").read_text())


class VersionOptionTests(unittest.TestCase):
    """
    C{twistd timecoin --version}.
    """

    def test_twistd_timecoin_version(self) -> None:
        """
        C{twistd timecoin --version} prints timecoin's version and exits
        0 (twistd's own --version, before the plugin name, prints
        Twisted's).
        """
        done = subprocess.run(
            [sys.executable, "-c", TWISTD, "timecoin", "--version"],
            cwd=str(ROOT), env=dict(os.environ, PYTHONPATH=str(ROOT)),
            capture_output=True, timeout=60)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.decode().strip(),
                         f"timecoin {__version__}")
