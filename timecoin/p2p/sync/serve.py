"""
Serving our blocks to peers: the answer to C{get_blocks}
(L{BlockServer}).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from timecoin.block import Block, CommitCertificate
from timecoin.p2p.dependencies import Connection
from timecoin.p2p.messages import MAX_LINE_BYTES, GetBlocks, blocks_reply

if TYPE_CHECKING:
    from timecoin.node import Node

log = Logger()


class BlockServer:
    """
    Answers peers' C{get_blocks} from our main chain.

    Tests and the simulator replace L{serve_blocks} on one node's instance
    to make it slow, silent or corrupting; the handler table looks it up
    by name at each dispatch.
    """

    def __init__(self, node: Node, counters: Counter[str]) -> None:
        self.node = node
        self.counters = counters

    @defer.inlineCallbacks
    def serve_blocks(self, conn: Connection, msg: GetBlocks) -> Any:
        """
        Answer C{get_blocks}: consecutive main-chain blocks with their
        certificates, within the reply size cap.
        """
        entries: list[tuple[Block, CommitCertificate]] = []
        try:
            end = min(self.node.chain.height, msg.start + msg.count - 1)
            size = 0
            for height in range(msg.start, end + 1):
                found = yield self.node.committed_block(height)
                if found is None or found[1] is None:
                    break
                entries.append(found)
                size += found[0].size
                if size >= MAX_LINE_BYTES:
                    break
        except Exception:
            log.failure("reading blocks for {peer} failed", peer=conn.peer)
        self.counters["served-requests"] += 1
        conn.send(blocks_reply(msg.id, entries))
