"""
The undo record stored with each block: what reverting it needs, and
its own commit certificate (what P2P serves with an old block and a
replay of the chain reads).  Its byte encoding is part of what the store
holds: change it only with a migration.

Imports the core (C{block}, C{encoding}).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timecoin.block import CommitCertificate
from timecoin.encoding import canonical, decode, unhex

__all__ = ["BlockUndo", "undo_commit"]


@dataclass
class BlockUndo:
    """
    What reverting a block needs: the entries it deleted or overwrote
    (C{spent}, restored on revert), the masternode state keys it wrote
    (C{state}: registrations and statuses, deleted on revert before the
    old values come back), and its own commit certificate.
    """

    spent: list[tuple[bytes, bytes]]
    commit: CommitCertificate | None
    state: list[bytes] | None = None
    committee: list[bytes] | None = None
    """With committees: the members due to vote this block."""

    def encode(self) -> bytes:
        obj: dict[str, Any] = {
            "spent": [[k.hex(), v.hex()] for k, v in self.spent],
            "commit": None if self.commit is None else self.commit.to_obj(),
            "state": [k.hex() for k in self.state or []]}
        if self.committee is not None:
            obj["committee"] = [k.hex() for k in self.committee]
        return canonical(obj)

    @staticmethod
    def with_commit(raw: bytes, commit: CommitCertificate) -> bytes:
        """
        The encoding of undo data C{raw} (encoded without a commit) with
        C{commit} put in: the same bytes as decoding, setting the commit
        and encoding again, without re-encoding the spent entries
        (thousands in a full block).
        """
        head = b'{"commit":null,'
        assert raw.startswith(head), raw[:32]
        return (b'{"commit":' + canonical(commit.to_obj()) + b","
                + raw[len(head):])

    @classmethod
    def decode(cls, raw: bytes) -> BlockUndo:
        obj = decode(raw)
        commit = obj["commit"]
        state, committee = obj.get("state"), obj.get("committee")
        return cls([(unhex(k), unhex(v)) for k, v in obj["spent"]],
                   None if commit is None
                   else CommitCertificate.from_obj(commit),
                   None if state is None else [unhex(k) for k in state],
                   None if committee is None
                   else [unhex(k) for k in committee])


def undo_commit(raw: bytes) -> CommitCertificate | None:
    """
    The block's own commit certificate, from its stored undo record (what
    P2P serves with an old block, and what a replay of the chain needs).
    """
    return BlockUndo.decode(raw).commit
