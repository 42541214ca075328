"""
What a commit certificate a peer sends proves: the checks block sync runs
before it believes a peer's block (L{timecoin.p2p.sync}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from timecoin.block import CommitCertificate

if TYPE_CHECKING:
    from timecoin.chain import Chain


def certifies(chain: Chain, cert: CommitCertificate | None, height: int,
              block_hash: bytes) -> bool:
    """
    Whether C{cert} commits C{block_hash} at C{height}: valid signatures
    of the snapshot's masternodes reaching the quorum.
    """
    if cert is None or cert.height != height or \
            cert.block_hash != block_hash:
        return False
    snapshot = chain.committee_for(height)
    members = {m.pubkey: m for m in snapshot}
    weight = sum(chain.quorum.weight(members[v])
                 for v in cert.valid_votes(chain.network.name)
                 if v in members)
    return bool(chain.quorum.approved(weight, chain.total_weight(snapshot)))


def may_certify(chain: Chain, cert: CommitCertificate, height: int) -> bool:
    """
    Cheap checks before any signature: the certificate's voters are
    distinct masternodes of the snapshot whose weight reaches the quorum.
    """
    snapshot = chain.committee_for(height)
    members = {m.pubkey: m for m in snapshot}
    voters = [v.voter for v in cert.votes]
    if len(set(voters)) != len(voters) or \
            any(v not in members for v in voters):
        return False
    weight = sum(chain.quorum.weight(members[v]) for v in voters)
    return bool(chain.quorum.approved(weight, chain.total_weight(snapshot)))
