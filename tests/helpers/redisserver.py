"""
L{RedisServer}: a real C{redis-server} child process on a loopback port,
for the tests and benchmarks of the Redis store (skipped without the
binary).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

from twisted.trial import unittest

from tests.nodeprocess import free_port

SERVER_START_ATTEMPTS = 3


PING_ATTEMPTS = 400


PING_INTERVAL = 0.0125


def redis_server_binary() -> str:
    """
    The path of C{redis-server}, or raise C{SkipTest}.
    """
    found = shutil.which("redis-server") or shutil.which(
        "redis-server", path="/usr/sbin:/usr/bin:/usr/local/bin")
    if found is None:
        raise unittest.SkipTest(
            "no redis-server binary: run scripts/ensure-redis (make test "
            "does) to install it")
    return found


def answers_ping(port: int) -> bool:
    """
    Whether a Redis server on C{port} answers C{PING} right now.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """
    A C{redis-server} child process on a loopback port, with its data and
    log in C{directory}.

    @ivar durable: run with C{appendonly yes} and C{appendfsync always}
        rather than with no persistence at all.
    """

    def __init__(self, directory: str, durable: bool = False) -> None:
        self.binary = redis_server_binary()
        self.directory = directory
        self.durable = durable
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """
        The C{redis://} URL of database C{db} of this server.
        """
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        """
        Start the server (on a new free port the first time, on the same
        port afterwards) and wait until it answers C{PING}.
        """
        for _ in range(1 if self.port else SERVER_START_ATTEMPTS):
            port = self.port or free_port()
            if self._start_on(port):
                self.port = port
                return
        raise RuntimeError(
            f"redis-server did not start; see {self.directory}/redis.log")

    def _start_on(self, port: int) -> bool:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"]
                       if self.durable else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--dir", self.directory, "--daemonize", "no",
             "--logfile", "redis.log", *persistence],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        for _ in range(PING_ATTEMPTS):
            if self.process.poll() is not None:
                self.process = None
                return False
            if answers_ping(port):
                return True
            time.sleep(PING_INTERVAL)
        self.kill()
        return False

    def kill(self) -> None:
        """
        SIGKILL the server, as a crash would, and reap it.
        """
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None
