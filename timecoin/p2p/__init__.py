"""
The peer-to-peer layer: one line-delimited JSON protocol for inbound and
outbound connections, peer identity by IP, gossip with deduplication, block
catch-up, misbehaviour scores and the service that runs it all.

``docs/protocol.md`` is the prose specification of everything here.

- L{timecoin.p2p.messages}: one class per wire message and the registry.
- L{timecoin.p2p.dependencies}: the narrow interfaces the pieces are typed
  against (C{Connection}, C{PeerSet}, C{ConnectionHost}), the enums
  C{Direction} and C{State} (a connection's direction and state),
  C{RequestFailed} and the one C{HandlerTable} of ready-state messages.
- L{timecoin.p2p.caches}: seen-caches, per-connection known sets and the
  cache of handled gossip lines.
- L{timecoin.p2p.protocol}: the connection (its state and counters) and
  its two factories; the objects it coordinates, one per connection:
  L{timecoin.p2p.intake} (framing, the messages each state accepts, rate
  limits, dispatch), L{timecoin.p2p.hellos} (the handshake steps),
  L{timecoin.p2p.keepalive}
  (ping), L{timecoin.p2p.requests} (our requests), L{timecoin.p2p.output}
  (the output bound), L{timecoin.p2p.closing} (closes and offences);
  L{timecoin.p2p.framing}: partial lines.
- L{timecoin.p2p.registry}: the connected peers and dialers, counters,
  broadcast and relay to the ready peers, offences.
- L{timecoin.p2p.manager}: handshake acceptance and dispatch of
  ready-state messages; L{timecoin.p2p.gate}: the caps on connections in
  handshake; L{timecoin.p2p.slots}: the ready slots (duplicates,
  eviction); L{timecoin.p2p.dialing}: the dial rule;
  L{timecoin.p2p.eviction}: whom to evict when the slots are full;
  L{timecoin.p2p.exchange}: peer exchange (C{get_peers}).
- L{timecoin.p2p.gossip}: relay of transactions, votes and blocks, with
  L{timecoin.p2p.outbox} (C{txs} batches), L{timecoin.p2p.admission}
  (admission of peers' transactions), L{timecoin.p2p.orphans} (orphan
  votes), L{timecoin.p2p.heartbeats} (heartbeat relay),
  L{timecoin.p2p.aggregation} (votes through an aggregator in a dense
  mesh) and L{timecoin.p2p.reach} (whether a peer reaches every
  masternode);
  L{timecoin.p2p.consensus_relay}: relay of proposals and block votes.
- L{timecoin.p2p.sync}: catch-up by block ranges, a package split by
  object (its docstring lists the parts); C{BlockSync} coordinates them.
- L{timecoin.p2p.peers}, L{timecoin.p2p.scoring}, L{timecoin.p2p.ratelimit}:
  the peer table (with C{Source}, where an address came from),
  misbehaviour scores and bans, token buckets.
- L{timecoin.p2p.service}: C{P2PService}, the Twisted service, which builds
  the pieces in order: registry, relays, manager.
- L{timecoin.p2p.testing}: an in-memory network for tests.

What may import what (C{tests/test_architecture.py} fails on any loop):
the relays (C{gossip}, C{sync}, C{consensus_relay}) and gossip's parts
import C{dependencies}, C{caches} and C{messages}, never C{protocol},
C{registry} or C{manager}; C{protocol} imports C{dependencies} and its
per-connection objects (which see it through small C{typing.Protocol}s of
their own and never import it), never C{manager}; C{registry} imports
C{dependencies}; C{dialing}, C{eviction} and C{gate} import C{protocol}
and C{registry}, C{exchange} imports those and C{dialing}, C{slots}
those and C{eviction} and C{sync}; C{manager} imports all of those; only
C{service} wires them.
"""
