"""Per-listener counters: what /healthz, metrics and the CLI read, updated on the hot path.

Plain integers and one bucket array: the hot path pays an increment, never a lock or a
metrics-library call; the Prometheus collector reads them at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   300.0, 900.0, 3600.0)
"""Publish-to-handling seconds: from a few milliseconds (a live stream) to an hour (a
backlog, a replay, an entry reclaimed after its consumer died)."""


@dataclass(slots=True)
class Histogram:
    """Cumulative-ready bucket counts (the last slot is +Inf) and a running sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


@dataclass(slots=True)
class ListenerStats:
    handled: int = 0
    failed: int = 0
    invalid: int = 0
    acked: int = 0
    deleted_while_pending: int = 0
    dead_lettered: int = 0
    deduplicated: int = 0
    retried: int = 0
    timed_out: int = 0
    lost: int = 0
    """Entries held here that another consumer took over (renewals lapsed); none of them
    is started here after that."""
    acked_elsewhere: int = 0
    """Entries held here that another consumer acknowledged before they started here."""
    unconfirmed: int = 0
    fenced: int = 0
    """Entries left pending for recovery because Redis could not confirm they were ours."""
    already_acked: int = 0
    """Entries handled here whose XACK found them acknowledged already (handled twice)."""
    reclaimed: int = 0
    reads: int = 0
    redis_errors: int = 0
    last_poll: float = 0.0
    handler_seconds: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    batch_sizes: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    delivery_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    """Seconds from each new batch's oldest entry's publish (the time in its id) to its
    handling here: once per read, not per entry (the batch's longest wait)."""
