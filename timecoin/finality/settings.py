"""
The finality settings (config section C{[finality]}, C{config.finality};
documented in ``etc/timecoin.toml``).

This module imports nothing of timecoin: the config may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FinalitySettings:
    """
    Named finality settings (config section C{[finality]}).

    @ivar batch_delay: seconds a masternode gathers decisions before it
        signs them as one batch (0: sign each at once).  A decision that
        completes a quorum is signed at once.
    @ivar batch_max: decisions that trigger signing without waiting.
    @ivar late_ttl: seconds a rejected transaction keeps collecting votes,
        so that a late approval certificate still finalizes it.
    @ivar max_late: such rejected transactions kept at most.
    @ivar query_after: seconds an undecided transaction waits before the
        node re-announces it and asks its peers for its votes (and then
        between such queries).
    @ivar max_queries: queries per transaction.
    @ivar certificate_blocks: blocks after archiving during which a
        transaction's finality certificate is kept.
    @ivar max_certificates: archived certificates kept at most.
    @ivar max_released: transactions this masternode approved and then saw
        rejected, remembered (with their inputs) while their votes can
        still count.
    @ivar signature_cache: verified batch signatures remembered.
    """

    batch_delay: float = 0.05
    batch_max: int = 512
    late_ttl: float = 60.0
    max_late: int = 10_000
    query_after: float = 2.0
    max_queries: int = 3
    certificate_blocks: int = 1_000
    max_certificates: int = 100_000
    max_released: int = 100_000
    signature_cache: int = 100_000
