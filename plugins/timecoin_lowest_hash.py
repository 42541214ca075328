"""
A drop-in selection policy that is not part of the timecoin package: it
shows that a third party can swap the policy without touching
``timecoin/``.  Put this directory in the config's ``plugin_dirs`` and set
``policy = "lowest-hash"``.

Candidates are ordered by SHA-256(height ‖ prev hash ‖ pubkey), lowest
first; round r's proposer is the r-th of that order (cyclically).
"""

import hashlib

from twisted.plugin import IPlugin
from zope.interface import implementer

from timecoin.interfaces import ISelectionPolicy


@implementer(IPlugin, ISelectionPolicy)
class LowestHash:
    """
    Order masternodes by a per-height hash of their key.
    """

    name = "lowest-hash"

    def candidates(self, snapshot, height, prev_hash, round):
        def draw(masternode):
            return hashlib.sha256(height.to_bytes(8, "big") + prev_hash
                                  + masternode.pubkey).digest()

        order = [m.pubkey for m in sorted(snapshot, key=draw)]
        shift = round % len(order)
        return order[shift:] + order[:shift]


lowest_hash = LowestHash()
