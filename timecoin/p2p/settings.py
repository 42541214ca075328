"""
Every limit and timer of the P2P layer as one named setting with a default:
L{P2PSettings}, the config section C{[p2p]} (C{config.p2p}; documented in
``etc/timecoin.toml``).  Its C{rate_limits} is the table
C{[p2p.rate_limits]}, whose entries override L{DEFAULT_RATE_LIMITS} per
message type.

This module imports nothing of timecoin: the config and every P2P module
may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_RATE_LIMITS: dict[str, tuple[float, float]] = {
    "ping": (1.0, 5.0),
    "pong": (1.0, 5.0),
    "error": (5.0, 20.0),
    "get_peers": (0.1, 3.0),
    "get_blocks": (2.0, 10.0),
    "get_tip": (1.0, 5.0),
    "tx": (1000.0, 2000.0),
    "txs": (5000.0, 20000.0),
    "tx_vote": (4000.0, 8000.0),
    "tx_votes": (1000.0, 2000.0),
    "get_tx_votes": (5.0, 20.0),
    "get_txs": (5.0, 20.0),
    "block": (20.0, 1000.0),
    "proposal": (10.0, 50.0),
    "block_vote": (500.0, 2000.0),
    "heartbeat": (400.0, 2000.0),
    "vote_bundle": (2000.0, 4000.0),
    "reach": (10.0, 50.0),
}
"""Per peer and message type: (tokens per second, bucket size).  A batch
takes one token per item (C{txs}: per transaction).  Responses (C{peers},
C{blocks}, C{tip}) are bounded by our own requests instead."""


@dataclass(frozen=True)
class P2PSettings:
    """
    Settings of the P2P layer.

    @ivar listen: whether to accept inbound connections at all.
    @ivar bind: interface to listen on.
    @ivar port: port to listen on and to announce in C{hello}; 0: the
        network's (mainnet 24000, testnet 24100, devnet 24200).
    @ivar connect: seed peers, C{"host:port"} strings.
    @ivar max_peers: completed connections, both directions together.
    @ivar max_outbound: peers dialled (connected or in backoff) at once.
    @ivar max_inbound_per_ip: inbound connections still in the handshake
        from one IP (after the handshake, identity allows one per IP).
    @ivar max_pending_handshakes: connections in the handshake at once.
    @ivar max_pending_per_subnet: inbound connections still in the
        handshake from one /24 (IPv4) or /48 (IPv6) at once.
    @ivar evict_protect_rtt: when C{max_peers} is full, the inbound peers
        with the lowest ping time protected from eviction.
    @ivar evict_protect_blocks: ... the inbound peers that most recently
        sent us a new block or proposal, protected.
    @ivar evict_protect_votes: ... the inbound peers that most recently
        sent us a new vote, protected.
    @ivar evict_protect_txs: ... the inbound peers that most recently
        sent us a new transaction, protected.
    @ivar evict_protect_oldest: ... the longest-connected inbound peers,
        protected (masternodes of the snapshot always are).
    @ivar table_size: addresses the peer table keeps.
    @ivar addr_buckets: buckets of addresses learned by peer exchange.
    @ivar addr_bucket_size: addresses one bucket holds.
    @ivar addr_buckets_per_source: buckets the addresses from one source
        (its /24, /48, or itself on loopback) may use: one source fills at
        most C{addr_buckets_per_source * addr_bucket_size} entries.
    @ivar anchors: last good outbound peers remembered across restarts and
        always dialled, like the seeds.
    @ivar learned_retry_max: the longest a learned address whose dial
        failed waits before it may be dialled again (its dialer is freed at
        once; the wait doubles per failure from C{initial_delay}).
    @ivar stable_after: seconds an outbound connection must last after its
        handshake before its dialer's backoff is reset (a peer refusing
        us right after the hellos keeps the delay growing).
    @ivar proven_max_delay: the longest redial delay of a peer whose
        connection once lasted C{stable_after} (a cut link comes back).
    @ivar max_failures: consecutive failed dials after which a learned
        (non-seed) address is forgotten.
    @ivar handshake_timeout: seconds for both C{hello}s to be exchanged.
    @ivar ping_interval: seconds between our pings on each connection.
    @ivar pong_timeout: a ping unanswered this long counts as missed.
    @ivar max_missed_pongs: missed pongs in a row that end a connection.
    @ivar request_timeout: seconds a request waits for its response.
    @ivar max_pending_requests: our outstanding requests per connection.
    @ivar initial_delay: first reconnection delay, seconds.
    @ivar max_delay: reconnection delay cap, seconds.
    @ivar backoff_factor: the delay grows by this factor per failure.
    @ivar backoff_jitter: relative jitter of each delay (0.1 = ±10 %).
    @ivar connect_timeout: TCP connect timeout, seconds.
    @ivar passive_wait: seconds we wait for a peer with a lower key (which
        dials us) before we dial it ourselves.
    @ivar maintain_interval: seconds between dial-rule passes.
    @ivar tip_interval: seconds between C{get_tip} queries to each peer.
    @ivar relay_interval: seconds between sweeps of expired orphan votes.
    @ivar save_interval: seconds between writes of C{peers.json}.
    @ivar sync_batch: blocks asked for per C{get_blocks} (at most 100).
    @ivar sync_retry_after: a peer that failed a sync request is not asked
        again for this long.
    @ivar sync_retry_max: the longest a peer that keeps not delivering
        the blocks it claims is skipped (its skip doubles per miss).
    @ivar sync_undelivered_points: misbehaviour points for a claim of
        blocks a peer then did not deliver (C{sync-undelivered}).
    @ivar sync_unproven_cooldown: after a block beyond our tip from a peer
        came with a certificate that does not verify, no other certificate
        of that peer is checked for this long (it proves nothing then).
    @ivar sync_window: C{get_blocks} requests in flight at once, all
        peers together; downloads never run more than C{sync_window *
        sync_batch} blocks past our tip.
    @ivar sync_peer_requests: C{get_blocks} requests in flight per peer.
    @ivar sync_request_timeout: a range not delivered in this long is
        asked of another peer (the slow peer is skipped, not scored).
    @ivar sync_stall_timeout: catching up with no block connected for this
        long resets the download (no sync state outlives it).
    @ivar sync_synced_ttl: seconds a peer's height report counts; with no
        fresh report from any peer the state falls back to idle.
    @ivar sync_lag: blocks a peer may be ahead while we still count as
        synced (a block announcement in flight).
    @ivar sync_start_grace: a masternode whose own weight is a quorum
        waits this long after start for its known peers' heights before
        it produces alone.
    @ivar sync_buffer_bytes: no new range is requested while downloaded
        blocks of this many bytes wait to be connected.
    @ivar sync_log_interval: seconds between progress lines while
        catching up.
    @ivar tx_batch_delay: seconds transactions to announce or relay wait
        to be sent together in one C{txs} message per peer; 0 sends what
        one reactor turn admitted in the next turn.
    @ivar tx_batch_count: a C{txs} batch is sent at once when it holds
        this many transactions (at most 1,024).
    @ivar tx_batch_bytes: ... or this many bytes of entries; a line never
        exceeds it unless one transaction alone does (the C{txs} cap fits
        the largest transaction).
    @ivar admit_slice: transactions from peers admitted per reactor turn
        once some wait: a C{txs} batch beyond it, or anything arriving
        while others wait, is queued and admitted this many at a time, so
        block-consensus messages and vote batches (cheap, and what keeps
        blocks coming) are handled between slices instead of behind
        seconds of signature checks.
    @ivar admit_queue: transactions from peers waiting for admission at
        most; beyond it new ones are dropped (counted; their origin
        re-announces what stays undecided).
    @ivar seen_size: entries of each gossip deduplication cache.
    @ivar seen_lines: digests of gossip lines already handled (repeats are
        dropped before parsing).
    @ivar known_size: per connection, digests of gossip lines the peer is
        known to hold (it sent them to us or we sent them to it); a line
        is never sent to a peer known to hold it.
    @ivar relay_fanout: with more than this many peers (a dense mesh), a
        proposal, vote, vote batch or heartbeat first received from a
        peer, whose signer is not one of our peers, is relayed to at most
        this many other peers (chosen at random among those not known to
        hold it); with at most this many (a small network, a sparse
        overlay), or 0, to every one.  A node's own messages go to every
        peer.
    @ivar relay_fanout_direct: ... and, in a dense mesh, one whose signer
        is one of our peers to at most this many: the signer sends it to all its
        peers, so in a dense mesh the others have it (or soon will) and
        the relay only repairs a loss; in a sparse overlay the nodes that
        are not the signer's neighbours carry it on (C{relay_fanout}).
    @ivar resend_known_after: a node's periodic re-broadcast of its own
        consensus messages goes to peers not known to hold them, and to a
        peer that is known to hold one only when it was last sent or
        received over that connection this many seconds ago (a peer may
        have dropped it as too early, catching up).
    @ivar aggregate_votes: in a dense mesh (more than C{relay_fanout}
        peers, all on protocol 3), send our block votes and vote batches to
        their aggregator (the proposer of their round), which sends all it
        gathered to every peer in one C{vote_bundle}
        (L{timecoin.p2p.aggregation}); off, every vote goes to every peer.
    @ivar aggregate_delay: seconds an aggregator gathers votes before it
        sends them as one bundle.
    @ivar aggregate_timeout: seconds a vote sent to its aggregator may take
        to come back in a bundle before it is sent to every peer.
    @ivar orphan_votes: votes kept for transactions not yet seen.
    @ivar orphan_ttl: seconds an orphan vote is kept.
    @ivar fetch_after: seconds a transaction known only by its (orphan)
        votes waits before it is asked for (C{get_txs}), and before the
        second ask; the wait doubles after each (L{timecoin.p2p.fetch}).
    @ivar fetch_tries: times such a transaction is asked for at most, of
        the peers that sent its votes in turn (within C{orphan_ttl}).
    @ivar ban_threshold: misbehaviour score that bans.
    @ivar ban_seconds: how long a ban lasts.
    @ivar score_half_life: seconds in which a score halves.
    @ivar rate_limits: per message type, (per second, burst): the
        entries of the table C{[p2p.rate_limits]} over
        L{DEFAULT_RATE_LIMITS}.
    @ivar output_soft_bytes: while more than this many bytes we wrote to
        a peer wait in its transport (it reads slower than we answer), its
        requests (C{get_blocks}, C{get_peers}, C{get_tip},
        C{get_tx_votes}) are held, not served, until the buffer drains.
    @ivar output_hard_bytes: a peer with more than this many bytes waiting
        in its transport is dropped (C{output-overflow}).
    @ivar held_requests: requests held per peer at most; past it we stop
        reading the peer's socket until its buffer drains (an honest peer
        never has more than its own C{max_pending_requests} in flight).
    @ivar close_grace: seconds a closed connection may take to flush its
        last C{error} line before it is aborted (a peer that does not
        read, or a ping timeout, is aborted at once).  The peer leaves
        the peer set at once either way.
    @ivar tls: run every connection inside TLS with certificates pinned to
        the node keys (L{timecoin.p2p.tls}); all peers must agree.
    """

    listen: bool = True
    bind: str = "127.0.0.1"
    port: int = 0
    connect: tuple[str, ...] = ()
    max_peers: int = 32
    max_outbound: int = 16
    max_inbound_per_ip: int = 1
    max_pending_handshakes: int = 64
    max_pending_per_subnet: int = 8
    evict_protect_rtt: int = 4
    evict_protect_blocks: int = 4
    evict_protect_votes: int = 4
    evict_protect_txs: int = 4
    evict_protect_oldest: int = 4
    table_size: int = 1000
    addr_buckets: int = 64
    addr_bucket_size: int = 16
    addr_buckets_per_source: int = 4
    anchors: int = 2
    learned_retry_max: float = 3600.0
    stable_after: float = 10.0
    proven_max_delay: float = 15.0
    max_failures: int = 10
    handshake_timeout: float = 10.0
    ping_interval: float = 10.0
    pong_timeout: float = 10.0
    max_missed_pongs: int = 3
    request_timeout: float = 30.0
    max_pending_requests: int = 16
    initial_delay: float = 5.0
    max_delay: float = 300.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.1
    connect_timeout: float = 10.0
    passive_wait: float = 120.0
    maintain_interval: float = 10.0
    tip_interval: float = 30.0
    relay_interval: float = 0.2
    save_interval: float = 300.0
    sync_batch: int = 100
    sync_retry_after: float = 60.0
    sync_retry_max: float = 600.0
    sync_undelivered_points: int = 10
    sync_unproven_cooldown: float = 10.0
    sync_window: int = 8
    sync_peer_requests: int = 4
    sync_request_timeout: float = 15.0
    sync_stall_timeout: float = 60.0
    sync_synced_ttl: float = 90.0
    sync_lag: int = 1
    sync_start_grace: float = 15.0
    sync_buffer_bytes: int = 64 * 1024 * 1024
    sync_log_interval: float = 5.0
    tx_batch_delay: float = 0.0
    tx_batch_count: int = 512
    tx_batch_bytes: int = 256 * 1024
    admit_slice: int = 512
    admit_queue: int = 20_000
    seen_size: int = 100_000
    seen_lines: int = 20_000
    known_size: int = 4096
    relay_fanout: int = 8
    relay_fanout_direct: int = 2
    resend_known_after: float = 10.0
    aggregate_votes: bool = True
    aggregate_delay: float = 0.05
    aggregate_timeout: float = 0.5
    orphan_votes: int = 10_000
    orphan_ttl: float = 60.0
    fetch_after: float = 1.0
    fetch_tries: int = 6
    ban_threshold: float = 100.0
    ban_seconds: float = 3600.0
    score_half_life: float = 600.0
    output_soft_bytes: int = 1024 * 1024
    output_hard_bytes: int = 32 * 1024 * 1024
    held_requests: int = 16
    close_grace: float = 2.0
    tls: bool = False
    rate_limits: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
