"""
The peer-to-peer layer: one line-delimited JSON protocol for inbound and
outbound connections, peer identity by IP, gossip with deduplication, block
catch-up, misbehaviour scores and the service that runs it all.

``docs/protocol.md`` is the prose specification of everything here.

- L{timecoin.p2p.messages}: one class per wire message and the registry.
- L{timecoin.p2p.protocol}: the connection (framing, states, ping, requests)
  and its two factories.
- L{timecoin.p2p.manager}: who is connected, handshake acceptance, dial rule.
- L{timecoin.p2p.gossip}: relay of transactions, votes and blocks.
- L{timecoin.p2p.sync}: catch-up by block ranges.
- L{timecoin.p2p.peers}, L{timecoin.p2p.scoring}, L{timecoin.p2p.ratelimit}:
  the peer table, misbehaviour scores and bans, token buckets.
- L{timecoin.p2p.service}: C{P2PService}, the Twisted service.
- L{timecoin.p2p.testing}: an in-memory network for tests.
"""
