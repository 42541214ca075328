"""
C{[notify] wallet} and C{[notify] block}: Bitcoin Core's C{-walletnotify}
and C{-blocknotify}, commands run on wallet transactions and new blocks.

The command line is split once, at start, as a POSIX shell would split it
(C{shlex.split}), and run directly (C{reactor.spawnProcess}), never through
a shell: the substituted values cannot inject anything.  In each argument
C{%s} becomes the txid (wallet) or the block hash (block); for the wallet
command also C{%b} the block hash (or C{unconfirmed}), C{%h} the block
height (or -1) and C{%w} the wallet name (always empty), as in Bitcoin
Core; C{%%} is a literal C{%}.  To use a shell, write it out and pass the
value as an argument: C{sh -c 'echo "$1" >> /tmp/tx' sh %s}.

When the wallet command runs: once when a wallet transaction becomes final
(finalized by the masternodes, not yet in a block: C{%b} is
C{unconfirmed}) and once when it is mined (C{%b} is its block), as Bitcoin
Core runs it at first sight (mempool) and at confirmation; a transaction
the node first sees in a block runs it once.  Payments to the wallet and
from it both count, as in Bitcoin Core.  The block command runs for each
block connected once the node has caught up (not during block sync, as
Bitcoin Core skips initial block download).

Rate safety: at most C{[notify] max_running} commands run at once; more
wait in a queue of at most C{[notify] max_queue}; beyond that an event is
dropped, counted (C{dropped}) and logged with the reason code
C{notify-queue-full} (rate-limited).  A command running longer than
C{[notify] timeout} seconds is killed (reason code C{notify-timeout}).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from timecoin.logs import RateLimitedLog
from timecoin.wallettxs import WalletTxEvent

log = Logger()

LOG_INTERVAL = 60.0
"""Seconds between two log lines of the same notify problem."""
_PLACEHOLDER = re.compile(r"%[%sbhw]")


@dataclass(frozen=True)
class NotifySettings:
    """
    The C{[notify]} settings (C{config.notify}; documented in
    ``etc/timecoin.toml``).

    @ivar wallet: the command run on wallet transactions (C{""}: none).
    @ivar block: the command run on connected blocks (C{""}: none).
    @ivar max_running: commands running at once.
    @ivar max_queue: events waiting beyond those; more are dropped
        (C{notify-queue-full}).
    @ivar timeout: seconds before a running command is killed
        (C{notify-timeout}).
    """

    wallet: str = ""
    block: str = ""
    max_running: int = 4
    max_queue: int = 1_000
    timeout: float = 60.0

    def check(self) -> None:
        """
        Refuse values out of range.

        @raise ValueError: naming the key.
        """
        for name in ("max_running", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


class NotifyError(ValueError):
    """
    A notify command cannot be used (unparsable, or no such program).
    """


def split_command(text: str) -> list[str]:
    """
    The argument vector of a configured command, its program resolved on
    C{PATH}.

    @raise NotifyError: unparsable, empty, or the program is not found.
    """
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise NotifyError(f"cannot split {text!r}: {e}") from None
    if not argv:
        raise NotifyError("empty command")
    program = shutil.which(argv[0])
    if program is None:
        raise NotifyError(f"program {argv[0]!r} not found or not "
                          f"executable")
    return [program, *argv[1:]]


def substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    """
    C{argv} with each C{%X} placeholder of C{values} (keyed by C{X})
    replaced in every argument after the program, in one pass; C{%%} is
    C{%}.
    """
    def one(match: re.Match[str]) -> str:
        key = match.group(0)[1]
        if key == "%":
            return "%"
        return values.get(key, match.group(0))

    return [argv[0], *(_PLACEHOLDER.sub(one, arg) for arg in argv[1:])]


class _Run(protocol.ProcessProtocol):
    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner
        self.timeout: Any = None

    def processEnded(self, reason: Any) -> None:
        self.runner._ended(self, reason)


class CommandRunner:
    """
    Runs one configured command per event, a bounded number at once.

    @ivar counters: C{run}, C{failed} (non-zero exit or killed),
        C{dropped} (queue full) and C{killed} (timeout).
    """

    def __init__(self, name: str, argv: list[str],
                 spawn: Callable[..., Any], clock: IReactorTime,
                 max_running: int = 4, max_queue: int = 1000,
                 timeout: float = 60.0) -> None:
        self.name = name
        self.argv = argv
        self.spawn = spawn
        self.clock = clock
        self.max_running = max_running
        self.max_queue = max_queue
        self.timeout = timeout
        self.running: set[_Run] = set()
        self.queue: deque[list[str]] = deque()
        self.counters = {"run": 0, "failed": 0, "dropped": 0, "killed": 0}
        self._log = RateLimitedLog(log, clock, LOG_INTERVAL)

    def run(self, values: dict[str, str]) -> None:
        """
        Run the command with C{values} substituted, now or once a running
        one ends; drop it (counted, logged) when the queue is full.
        """
        argv = substitute(self.argv, values)
        if len(self.running) < self.max_running:
            self._start(argv)
        elif len(self.queue) < self.max_queue:
            self.queue.append(argv)
        else:
            self.counters["dropped"] += 1
            self._log.warn(("dropped", self.name),
                           "{name} notify command dropped: {running} "
                           "running and {queued} queued ({reason})",
                           name=self.name, running=len(self.running),
                           queued=len(self.queue),
                           reason="notify-queue-full")

    def _start(self, argv: list[str]) -> None:
        run = _Run(self)
        self.counters["run"] += 1
        self.running.add(run)
        try:
            self.spawn(run, argv[0], argv, env=dict(os.environ))
        except OSError as e:
            self.running.discard(run)
            self.counters["failed"] += 1
            self._log.warn(("spawn", self.name),
                           "{name} notify command could not start: "
                           "{error} ({reason})", name=self.name,
                           error=str(e), reason="notify-spawn-failed")
            return
        run.timeout = self.clock.callLater(self.timeout, self._kill, run)

    def _kill(self, run: _Run) -> None:
        run.timeout = None
        self.counters["killed"] += 1
        self._log.warn(("timeout", self.name),
                       "{name} notify command killed after {seconds} s "
                       "({reason})", name=self.name, seconds=self.timeout,
                       reason="notify-timeout")
        transport = run.transport
        if transport is not None:
            try:
                transport.signalProcess("KILL")
            except Exception:
                pass

    def _ended(self, run: _Run, reason: Any) -> None:
        if run.timeout is not None and run.timeout.active():
            run.timeout.cancel()
        self.running.discard(run)
        code = getattr(reason.value, "exitCode", 0)
        if code:
            self.counters["failed"] += 1
            self._log.warn(("exit", self.name),
                           "{name} notify command exited with {code} "
                           "({reason})", name=self.name, code=code,
                           reason="notify-failed")
        while self.queue and len(self.running) < self.max_running:
            self._start(self.queue.popleft())


class Notifier:
    """
    The node's C{[notify]} commands, fed by its wallet history and chain.
    """

    def __init__(self, wallet: CommandRunner | None,
                 block: CommandRunner | None,
                 catching_up: Callable[[], bool] = lambda: False) -> None:
        self.wallet = wallet
        self.block = block
        self.catching_up = catching_up

    @classmethod
    def from_settings(cls, settings: NotifySettings,
                      spawn: Callable[..., Any],
                      clock: IReactorTime) -> Notifier:
        """
        The notifier the C{[notify]} C{settings} describe.

        @raise NotifyError: a command cannot be used.
        """
        def runner(name: str, text: str) -> CommandRunner | None:
            if not text:
                return None
            try:
                argv = split_command(text)
            except NotifyError as e:
                raise NotifyError(f"[notify] {name}: {e}") from None
            return CommandRunner(name, argv, spawn, clock,
                                 settings.max_running, settings.max_queue,
                                 settings.timeout)

        return cls(runner("wallet", settings.wallet),
                   runner("block", settings.block))

    def attach(self, node: Any) -> None:
        """
        Feed on C{node}'s wallet transactions and connected blocks.
        """
        if self.wallet is not None:
            node.wallet_txs.observers.connect(self.wallet_tx)
        if self.block is not None:
            node.chain.block_connected.connect(self.block_connected)

            def catching_up() -> bool:
                p2p = node.p2p
                sync = p2p.sync if p2p is not None else None
                return sync is not None and not sync.is_synced()

            self.catching_up = catching_up

    def wallet_tx(self, change: WalletTxEvent) -> None:
        """
        A wallet transaction became final or was mined.
        """
        if self.wallet is None:
            return
        wtx = change.wtx
        block_hash = wtx.block_hash
        mined = block_hash is not None
        self.wallet.run({
            "s": wtx.txid.hex(),
            "b": block_hash.hex() if block_hash is not None
            else "unconfirmed",
            "h": str(wtx.height) if mined else "-1", "w": ""})

    def block_connected(self, block: Any) -> None:
        """
        A block connected: run the block command unless catching up.
        """
        if self.block is None or self.catching_up():
            return
        self.block.run({"s": block.hash.hex()})
