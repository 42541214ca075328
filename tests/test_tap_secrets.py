"""
The config line C{twistd timecoin} logs at start holds no secret (issue 16
item 1): not the RPC password, not the rpcauth hashes, not a password in
the redis URL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from timecoin import tap
from timecoin.rpc.auth import make_line

PASSWORD = "hunter2-correct-horse"
REDIS_PASSWORD = "redis-pw-battery-staple"


class ConfigLogTests(unittest.TestCase):
    """
    What makeService logs about the config.
    """

    def config_events(self, toml: str) -> list[dict[str, Any]]:
        """
        Build the service tree from C{toml} (plus a fresh data dir and
        memory storage); the events logged by L{tap}.
        """
        path = Path(self.mktemp())
        path.write_text(toml)
        options = tap.Options()
        options.parseOptions(["--config", str(path), "--datadir",
                              self.mktemp(), "--storage", "memory"])
        events: list[dict[str, Any]] = []
        self.patch(tap, "log", Logger(observer=events.append))
        tap.makeService(options)
        return [e for e in events if "config" in e]

    def test_no_secret_in_config_line(self) -> None:
        """
        The logged config (its text and its C{config} field, which JSON
        log output writes as is) shows the ordinary settings but neither
        rpc_password, nor the rpcauth line's salt and hash, nor the
        password of redis_url; it says those settings are set.
        """
        line, _ = make_line("alice", "whatever")
        events = self.config_events(
            f'redis_url = "redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"\n'
            f'[rpc]\nuser = "bob"\npassword = "{PASSWORD}"\n'
            f'auth = ["{line.line()}"]\n')
        self.assertEqual(len(events), 1)
        event = events[0]
        everything = formatEvent(event) + json.dumps(event, default=repr)
        for secret in (PASSWORD, line.salt, line.digest, REDIS_PASSWORD):
            self.assertNotIn(secret, everything)
        logged = json.loads(event["config"])
        self.assertEqual(logged["rpc_password"], tap.REDACTED)
        self.assertEqual(logged["rpc_auth"], [tap.REDACTED])
        self.assertEqual(logged["redis_url"],
                         f"redis://{tap.REDACTED}@127.0.0.1:6379/0")
        self.assertEqual((logged["rpc_user"], logged["storage"],
                          logged["rpc_unauth_timeout"]),
                         ("bob", "memory", 5.0))
