"""
Tests of the status page (L{timecoin.rpc.status}, C{GET /} and
C{GET /status.json} of the RPC port): auth, content and escaping in
process, the history behind it, and the page rendered by headless
Chromium from a running two-node devnet of real processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.helpers.rpc import START, URL, RPCTestBase
from tests.nodeprocess import NodeProcess
from timecoin.config import Config
from timecoin.node import Node
from timecoin.rpc.status import (
    RECENT_BLOCKS,
    StatusHistory,
    _nice_ceiling,
    latency_chart,
    render_page,
    status_data,
)
from timecoin.wiring import build

CHROMIUM = os.environ.get("TIMECOIN_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT_COPY = os.environ.get("TIMECOIN_STATUS_SCREENSHOT")
"""If set, the browser test copies its screenshot there (this is how
docs/status-page.png is made)."""


class PageTests(RPCTestBase):
    """
    The page and its JSON over HTTP, in process.
    """

    def get(self, path: str, auth: str | None = "cookie") -> tuple[int, Any,
                                                                  bytes]:
        """
        GET C{path} of the RPC port.
        """
        return self.http(b"", auth=auth, method="GET", url=URL + path)

    def test_requires_auth(self) -> None:
        """
        Without credentials, / and /status.json get 401 with a Basic
        challenge (so a browser asks) and a JSON body; wrong ones too.
        """
        for path in ("", "status.json"):
            for auth in (None, "Basic eDp5"):
                status, headers, body = self.get(path, auth)
                self.assertEqual(status, 401, path)
                self.assertEqual(headers.getRawHeaders("WWW-Authenticate"),
                                 ['Basic realm="jsonrpc"'])
                self.assertEqual(json.loads(body)["error"]["code"], -32001)

    def test_page(self) -> None:
        """
        With the cookie, / is self-contained HTML: a strict CSP, no
        script, no external reference (no src or href), the height, this
        node as the only masternode, alive, and the empty-chart message.
        """
        status, headers, body = self.get("")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders("Content-Type"),
                         ["text/html; charset=utf-8"])
        csp = headers.getRawHeaders("Content-Security-Policy")[0]
        self.assertIn("default-src 'none'", csp)
        page = body.decode("utf-8")
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        self.assertIn('id="height">0</span>', page)
        self.assertIn("Masternodes (1)", page)
        self.assertIn(self.node.key.public.hex()[:16], page)
        self.assertIn('<span class="ok">alive</span>', page)
        self.assertIn("no transaction finalized since the node started",
                      page)
        self.assertNotIn("<script", page)
        self.assertIsNone(re.search(r"\b(src|href)\s*=", page))

    def test_live_data(self) -> None:
        """
        After three payments and a block, /status.json shows height 1,
        block 1 produced by this node in round 0 with 4 transactions, three
        finality latencies, and the page shows the chart and the block.
        """
        for amount in (1, 2, 3):
            self.rpc("sendtoaddress", self.external_address(), amount)
        waiting = json.loads(self.get("status.json")[2])
        self.assertEqual(waiting["mempool"]["size"], 3)
        self.assertEqual(waiting["mempool"]["finalized"], 3)
        self.block()
        status, headers, body = self.get("status.json")
        self.assertEqual(status, 200)
        data = json.loads(body, parse_float=Decimal)
        self.assertEqual(data["height"], 1)
        self.assertEqual(data["network"], "devnet")
        newest = data["recent_blocks"][0]
        self.assertEqual((newest["height"], newest["producer"],
                          newest["round"], newest["ntx"]),
                         (1, self.node.key.public.hex(), 0, 4))
        self.assertEqual([b["height"] for b in data["recent_blocks"]],
                         [1, 0])
        latency = data["finality_latency"]
        self.assertEqual(latency["count"], 3)
        self.assertEqual(len(latency["samples"]), 3)
        self.assertEqual(data["mempool"]["size"], 0)
        self.assertEqual(data["masternode"]["blocks_produced"], 1)
        self.assertIsNone(data["peers"])
        page = self.get("")[2].decode()
        self.assertIn("<polyline", page)
        self.assertIn("3 transactions", page)
        self.assertIn('id="height">1</span>', page)

    def test_escaped(self) -> None:
        """
        Text that comes from outside (a masternode's P2P address, a peer
        address) is HTML-escaped.
        """
        data = status_data(self.node, StatusHistory(self.node))
        data["masternodes"][0]["p2p_address"] = "<script>x</script>"
        data["peers"] = {"count": 1, "inbound": 1, "outbound": 0, "list": [
            {"addr": '"><img src=x>', "direction": "inbound",
             "state": "ready", "height": 0, "pubkey": None, "rtt": 0.01}]}
        page = render_page(data).decode()
        self.assertNotIn("<script>", page)
        self.assertNotIn("<img", page)
        self.assertIn("&lt;script&gt;x&lt;/script&gt;", page)
        self.assertIn("&quot;&gt;&lt;img src=x&gt;", page)


class ChartTests(unittest.TestCase):
    """
    The server-side SVG chart.
    """

    def test_empty(self) -> None:
        """
        Without samples the chart says so.
        """
        svg = latency_chart([], 100.0)
        self.assertTrue(svg.startswith("<svg"))
        self.assertIn("no transaction finalized", svg)

    def test_bins(self) -> None:
        """
        Samples over 60 s fall in time bins: one median dot and one
        maximum dot per non-empty bin, a polyline through the medians, and
        a seconds axis topped at a round value above the maximum.
        """
        samples = [[1000.0 + t, 0.2 + (t % 3) / 10] for t in range(60)]
        svg = latency_chart(samples, 1060.0)
        self.assertEqual(svg.count('class="median-dot"'), 60)
        self.assertEqual(svg.count('class="max"'), 60)
        self.assertEqual(svg.count("<polyline"), 1)
        self.assertIn(">500 ms<", svg)
        self.assertIn(">now<", svg)

    def test_nice_ceiling(self) -> None:
        """
        The axis top is the next of 1, 2, 2.5, 5 × 10^k.
        """
        for value, top in ((0.0012, 0.002), (0.3, 0.5), (0.5, 0.5),
                           (3.2, 5.0), (12, 20.0), (0, 1.0)):
            self.assertAlmostEqual(_nice_ceiling(value), top, msg=value)


class HistoryTests(unittest.TestCase):
    """
    L{StatusHistory}: recent blocks across reverts and restarts.
    """

    def node(self, datadir: str, clock: Clock) -> Node:
        """
        A devnet node (not yet started) on SQLite in C{datadir}.
        """
        config = Config(network="devnet", datadir=datadir, block_time=2.0,
                        storage="sqlite")
        config.resolve()
        node = build(config, clock, with_p2p=False).node
        return node

    def test_restart_preload(self) -> None:
        """
        After a restart on the same data dir, the history reads the blocks
        below the tip: recent blocks and this node's last block are known
        before any new block.
        """
        datadir = self.mktemp()
        clock = Clock()
        clock.advance(START)
        first = self.node(datadir, clock)
        first.startService()
        for _ in range(3):
            clock.advance(2.1)
        self.assertEqual(first.chain.height, 3)
        self.successResultOf(first.stopService())

        again = self.node(datadir, clock)
        history = StatusHistory(again)
        again.startService()
        self.addCleanup(again.stopService)
        self.assertEqual([b.height for b in history.blocks], [0, 1, 2, 3])
        assert history.last_produced is not None
        self.assertEqual(history.last_produced.height, 3)
        self.assertEqual(history.produced, 0)

    def test_bounded_and_reverted(self) -> None:
        """
        The history keeps RECENT_BLOCKS blocks, and a block at a height it
        holds replaces that block and everything above.
        """
        clock = Clock()
        clock.advance(START)
        node = self.node(self.mktemp(), clock)
        history = StatusHistory(node)
        node.startService()
        self.addCleanup(node.stopService)
        for _ in range(RECENT_BLOCKS + 5):
            clock.advance(2.1)
        self.assertEqual(len(history.blocks), RECENT_BLOCKS)
        self.assertEqual(history.blocks[-1].height, RECENT_BLOCKS + 5)
        replacement = node.chain.genesis
        history.block_connected(replacement)
        self.assertEqual([b.height for b in history.blocks], [0])


def png_size(data: bytes) -> tuple[int, int]:
    """
    Width and height from a PNG's IHDR chunk.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_distinct_bytes(data: bytes) -> int:
    """
    How many distinct byte values the decompressed image data holds (a
    blank page has a handful).
    """
    pos, idat = 8, b""
    while pos < len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


class BrowserTests(unittest.TestCase):
    """
    The page in headless Chromium (Debian's chromium package), from a
    running devnet of two real node processes.
    """

    def chromium(self, *args: str) -> subprocess.CompletedProcess[str]:
        """
        Run headless Chromium with a fresh profile.
        """
        profile = Path(self.mktemp()).resolve()
        profile.mkdir(parents=True)
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}",
             "--window-size=1280,900", *args],
            capture_output=True, text=True, timeout=120)

    def test_rendered(self) -> None:
        """
        Chromium, given the cookie credentials in the URL, answers the
        Basic challenge and renders the page: the DOM holds the live height
        (between the heights read before and after), the connected peer,
        this node as masternode and the latency chart of the payments just
        made; the 1280×900 screenshot is a real picture, not a blank page.
        """
        if not os.access(CHROMIUM, os.X_OK):
            raise unittest.SkipTest(
                f"{CHROMIUM} not found: scripts/ensure-chromium (run by make "
                f"test) installs Debian's chromium; set TIMECOIN_CHROMIUM to "
                f"use another")
        base = Path(self.mktemp()).resolve()
        base.mkdir(parents=True)
        config = base / "p2p.toml"
        config.write_text("[p2p]\ninitial_delay = 1.0\nmax_delay = 4.0\n")
        a = NodeProcess(base / "a", "--config", str(config), block_time=1.0)
        b = NodeProcess(base / "b", "--config", str(config), "--genesis",
                        str(base / "a" / "genesis.json"), block_time=1.0)
        a.args += ["--connect", f"127.0.0.1:{b.p2p_port}"]
        b.args += ["--connect", f"127.0.0.1:{a.p2p_port}"]
        for node in (a, b):
            self.addCleanup(node.kill)
        a.start()
        b.start()
        a.wait_for(lambda: any(p["state"] == "ready"
                               for p in a.call("getpeerinfo")), 30)
        to = b.call("getnewaddress")
        for n in range(12):
            txid = a.call("sendtoaddress", to, 1 + n)
            self.assertEqual(a.call("waitfortransaction", txid, 10)["state"],
                             "finalized")
            time.sleep(0.25)
        a.wait_for(lambda: a.call("getmempoolinfo")["size"] == 0, 30)

        secret = (a.datadir / ".cookie").read_text().strip().split(":", 1)[1]
        url = f"http://__cookie__:{secret}@127.0.0.1:{a.rpc_port}/"
        before = a.call("getblockcount")
        dom = self.chromium("--dump-dom", url)
        after = a.call("getblockcount")
        self.assertEqual(dom.returncode, 0, dom.stderr[-2000:])
        match = re.search(r'id="height">(\d+)<', dom.stdout)
        self.assertIsNotNone(match, dom.stdout[:2000])
        assert match is not None
        self.assertTrue(before <= int(match.group(1)) <= after,
                        (before, match.group(1), after))
        self.assertIn(a.call("masternodestatus")["pubkey"][:16], dom.stdout)
        self.assertIn("12 transactions", dom.stdout)
        self.assertIn("<polyline", dom.stdout)
        self.assertIn("1 connected", dom.stdout)

        shot = base / "status.png"
        result = self.chromium(f"--screenshot={shot}", url)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        data = shot.read_bytes()
        self.assertEqual(png_size(data), (1280, 900))
        self.assertGreater(len(data), 20_000)
        self.assertGreater(png_distinct_bytes(data), 64)
        if SCREENSHOT_COPY:
            shutil.copyfile(shot, SCREENSHOT_COPY)
