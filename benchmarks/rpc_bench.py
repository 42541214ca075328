"""
RPC micro-benchmark: the cost of C{sendrawtransaction} batches on top of
the admission they lead to, in process.

::

    python benchmarks/rpc_bench.py [--txs 10000] [--batch 50] [--repeat 3]
        [--baseline OLD_RPC.py] [--profile FILE.html]

One real L{timecoin.node.Node} (devnet, memory store, the only
masternode, block production stopped) on a
L{twisted.internet.task.Clock}, as L{benchmarks.ingest_bench} builds it;
C{--txs} payments signed up front.  Each measurement takes a fresh node
and submits every payment, C{--batch} per JSON-RPC batch:

- C{direct}: C{Transaction.decode} of the hex and C{Node.submit}, no RPC
  (the floor: what the RPC itself costs is the difference);
- C{body}: C{RPCServer.handle_body} of each batch's bytes (JSON parse,
  dispatch, the method, the reply's encoding);
- C{http}: the same batches as HTTP requests written into the RPC site's
  protocol on a L{StringTransport} (twisted.web and the site's resource
  included; C{POST /} bypasses Klein's routing);
- C{http_klein_routing}: the same through Klein's routes, as C{POST /}
  was served before L{timecoin.rpc.resource};
- C{busy_refusal}: the same batches to a node whose admission control
  refuses them all (C{node-busy}): what a refusal costs.

The clock is advanced between batches so vote batches are signed and
payments finalize, as on a running node.  C{--baseline} loads another
version of the RPC from one file providing C{RPCMethods}, C{RPCServer},
C{BasicAuth} and C{RPCSite} (as C{timecoin/rpc.py} did before it became
the package C{timecoin/rpc/}; it must import only modules of this tree)
and measures C{body} and C{http} with it too, in the same run,
interleaved: the before/after of a change.  The best of
C{--repeat} interleaved runs counts (a shared machine only slows runs
down).  The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import gc
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet.testing import StringTransport  # noqa: E402

from benchmarks.ingest_bench import Setup  # noqa: E402
from timecoin.node import Node  # noqa: E402
from timecoin.rpc.auth import BasicAuth  # noqa: E402
from timecoin.rpc.methods import RPCMethods  # noqa: E402
from timecoin.rpc.resource import RPCResource  # noqa: E402
from timecoin.rpc.server import RPCServer  # noqa: E402
from timecoin.rpc.site import RPCSite  # noqa: E402
from timecoin.tx import Transaction  # noqa: E402

USER = "bench"
PASSWORD = "bench"

current_rpc = SimpleNamespace(RPCMethods=RPCMethods, RPCServer=RPCServer,
                              BasicAuth=BasicAuth, RPCSite=RPCSite,
                              RPCResource=RPCResource)
"""The RPC of this tree, as the four names a measured version provides
(and its site's resource, which an older version may lack)."""


def load_rpc(path: str) -> ModuleType:
    """
    Another version of the RPC loaded from C{path} as its own module: a
    single file that provides C{RPCMethods}, C{RPCServer}, C{BasicAuth}
    and C{RPCSite} (as C{timecoin/rpc.py} did before it became a package)
    and imports only modules of this tree.
    """
    spec = importlib.util.spec_from_file_location("timecoin_rpc_baseline",
                                                  path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def batches(raw: list[str], size: int) -> list[bytes]:
    """
    The JSON-RPC 2.0 batch bodies of C{sendrawtransaction} for C{raw}.
    """
    return [json.dumps([{"jsonrpc": "2.0", "id": i, "method":
                         "sendrawtransaction", "params": [h]}
                        for i, h in enumerate(raw[start:start + size])
                        ]).encode()
            for start in range(0, len(raw), size)]


def _check(node: Node, count: int) -> None:
    finalized = node.finality.counters["finalized"]
    assert finalized == count, (finalized, count)


def measure_direct(setup: Setup, size: int) -> float:
    """
    Payments per second through decode and C{Node.submit}.
    """
    node = setup.node()
    clock: Any = node.clock
    gc.collect()
    began = time.process_time()
    for start in range(0, len(setup.raw), size):
        for text in setup.raw[start:start + size]:
            node.submit(Transaction.decode(bytes.fromhex(text)))
        clock.advance(0.06)
    elapsed = time.process_time() - began
    _check(node, len(setup.raw))
    return len(setup.raw) / elapsed


def _server(module: ModuleType, node: Node) -> Any:
    methods = module.RPCMethods(node)
    return module.RPCServer(methods.registry(),
                            module.BasicAuth([(USER, PASSWORD)]),
                            node.config.rpc.max_body_bytes)


def measure_body(setup: Setup, module: ModuleType, size: int,
                 profile: str | None = None) -> float:
    """
    Payments per second through C{RPCServer.handle_body}.
    """
    node = setup.node()
    clock: Any = node.clock
    server = _server(module, node)
    bodies = batches(setup.raw, size)
    profiler = None
    if profile:
        from pyinstrument import Profiler
        profiler = Profiler(interval=0.0002)
        profiler.start()
    gc.collect()
    began = time.process_time()
    for body in bodies:
        d = server.handle_body(body)
        status, reply = d.result
        clock.advance(0.06)
    elapsed = time.process_time() - began
    if profiler is not None:
        profiler.stop()
        Path(profile or "").write_text(profiler.output_html())
    assert status == 200 and b'"error"' not in reply, reply[:300]
    _check(node, len(setup.raw))
    return len(setup.raw) / elapsed


def measure_busy(setup: Setup, size: int) -> float:
    """
    Refusals per second of a busy node (admission control: C{node-busy}
    before decoding) through C{RPCServer.handle_body}.
    """
    node = setup.node()
    node.config.rpc = replace(node.config.rpc, max_undecided=1)
    # The only masternode decides at once: hold its backlog at the bound.
    node.admission.undecided = lambda: 1  # type: ignore[method-assign]
    server = _server(current_rpc, node)
    bodies = batches(setup.raw, size)
    gc.collect()
    began = time.process_time()
    for body in bodies:
        status, reply = server.handle_body(body).result
    elapsed = time.process_time() - began
    assert reply.count(b"node-busy") == reply.count(b'"error"') > 0, reply
    assert node.admission.busy_refusals == len(setup.raw)
    return len(setup.raw) / elapsed


def measure_http(setup: Setup, module: ModuleType, size: int,
                 klein: bool = False) -> float:
    """
    Payments per second through the RPC site's HTTP protocol: with the
    site's resource (C{POST /} without routing) when C{module} has one
    and not C{klein}, else through the Klein routes.
    """
    node = setup.node()
    clock: Any = node.clock
    server = _server(module, node)
    if hasattr(module, "RPCResource") and not klein:
        root = module.RPCResource(server)
    else:
        root = server.app.resource()
    site = module.RPCSite(root, node.config.rpc.max_body_bytes)
    protocol = site.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    requests = [b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Basic " + auth + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
                for body in batches(setup.raw, size)]
    gc.collect()
    began = time.process_time()
    for request in requests:
        protocol.dataReceived(request)
        clock.advance(0.06)
    elapsed = time.process_time() - began
    out = transport.value()
    assert out.count(b"HTTP/1.1 200") == len(requests), out[-400:]
    protocol.connectionLost(None)
    _check(node, len(setup.raw))
    return len(setup.raw) / elapsed


def main(argv: list[str] | None = None) -> int:
    """
    Run the measurements; print a summary and, last, one JSON line.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--txs", type=int, default=10_000,
                        help="payments (at most 10,000 keep the default "
                             "mempool limit)")
    parser.add_argument("--batch", type=int, default=50,
                        help="calls per JSON-RPC batch")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved repeats (the best of each counts)")
    parser.add_argument("--baseline", default=None,
                        help="another version of the RPC, in one file, to compare with")
    parser.add_argument("--profile", default=None,
                        help="write a pyinstrument HTML profile of body")
    options = parser.parse_args(argv)
    from twisted.logger import globalLogBeginner
    globalLogBeginner.beginLoggingTo([], discardBuffer=True,
                                     redirectStandardIO=False)
    load_before = os.getloadavg()[0]
    versions = {"": current_rpc}
    if options.baseline:
        versions["baseline_"] = load_rpc(options.baseline)
    runs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="timecoin-rpc-") as tmp:
        setup = Setup(Path(tmp), options.txs)
        for _ in range(options.repeat):
            runs.setdefault("direct", []).append(
                measure_direct(setup, options.batch))
            runs.setdefault("busy_refusal", []).append(
                measure_busy(setup, options.batch))
            for prefix, module in versions.items():
                runs.setdefault(prefix + "body", []).append(
                    measure_body(setup, module, options.batch))
                runs.setdefault(prefix + "http", []).append(
                    measure_http(setup, module, options.batch))
            runs.setdefault("http_klein_routing", []).append(
                measure_http(setup, current_rpc, options.batch, klein=True))
        if options.profile:
            measure_body(setup, current_rpc, options.batch, options.profile)
    best = {name: max(values) for name, values in runs.items()}
    figures: dict[str, Any] = {"txs": options.txs, "batch": options.batch,
                               "loadavg_before": round(load_before, 2)}
    for name, rate in best.items():
        figures[name + "_tps"] = round(rate)
        if name not in ("direct", "busy_refusal"):
            # What the RPC adds per payment on top of decode + submit.
            figures[name + "_overhead_us"] = round(
                1e6 / rate - 1e6 / best["direct"], 1)
    for name in best:
        line = f"{name}: {figures[name + '_tps']:,} tx/s"
        if name not in ("direct", "busy_refusal"):
            line += f", RPC overhead {figures[name + '_overhead_us']} us/tx"
        print(line)
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
