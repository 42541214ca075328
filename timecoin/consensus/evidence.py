"""
Equivocation evidence of block consensus: a proposer that signed two
blocks for one round, or a voter that signed two votes for one (phase,
height, round).  L{EvidenceLog} keeps the last ones and a count per
masternode (its offence score), across heights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger(namespace="timecoin.consensus")
"""The consensus log lines keep the namespace they always had."""

MAX_EVIDENCE = 100
"""Equivocation records kept (the newest)."""


class EvidenceLog:
    """
    The equivocations this node saw.

    @ivar evidence: equivocations seen (bounded by L{MAX_EVIDENCE}),
        newest last.
    @ivar offences: equivocations counted per masternode key (its score).
    """

    def __init__(self, clock: IReactorTime,
                 count: Callable[[str], None]) -> None:
        self.clock = clock
        self.count = count
        self.evidence: list[dict[str, Any]] = []
        self.offences: dict[bytes, int] = {}

    def equivocation(self, kind: str, signer: bytes, height: int,
                     round: int, first: bytes, second: bytes) -> None:
        """
        C{signer} signed both C{first} and C{second} (block hashes) as
        C{kind} (C{proposal}, C{prevote}, C{precommit}) at (C{height},
        C{round}): count it, keep the record, log it.
        """
        self.count("equivocations")
        self.offences[signer] = self.offences.get(signer, 0) + 1
        record = {"kind": kind, "signer": signer.hex(),
                  "height": height, "round": round,
                  "first": first.hex(), "second": second.hex(),
                  "at": self.clock.seconds()}
        self.evidence.append(record)
        del self.evidence[:-MAX_EVIDENCE]
        log.warn("equivocation by {signer}: two {kind}s at height {height} "
                 "round {round}", signer=signer.hex(), kind=kind,
                 height=height, round=round)
