"""Prometheus metrics, read from the listeners' own counters at scrape time.

Counters and histograms cost the hot path nothing beyond the integer increments it does
anyway; stream gauges (length, lag, pending) come from a scheduled refresh.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import accumulate
from time import monotonic, perf_counter, time
from typing import Any

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from ..listener.poll import Subscription
from ..listener.spec import ListenerSpec
from ..listener.stats import Histogram, ListenerStats
from ..partitions.membership import Membership
from ..wire.ids import waited
from .alerts import AlertState
from .health import subscription_problems
from .stream_views import StreamView

_COUNTERS = {
    "handled": "Entries handled successfully.",
    "failed": "Handler failures (each attempt).",
    "dead_lettered": "Entries written to the dead-letter stream.",
    "deduplicated": "Entries skipped because their idempotency key was already handled.",
    "reclaimed": "Entries reclaimed from dead or hung consumers.",
    "invalid": "Entries whose payload failed validation.",
    "retried": "In-process retries.",
    "timed_out": "Handler calls cancelled (or their thread abandoned) at handler_timeout.",
    "lost": "Entries held here that another consumer took over (renewals lapsed); not "
            "started here after that.",
    "acked_elsewhere": "Entries held here that another consumer acknowledged before they "
                       "started here; not started here after that.",
    "unconfirmed": "Entries left pending for recovery: Redis could not confirm they were "
                   "still this consumer's.",
    "fenced": "Entries of a partition whose lease this member lost, left unstarted (or "
              "unacked) for the partition's new owner.",
    "already_acked": "Entries handled here whose XACK found them acknowledged already "
                     "(another consumer took them over while they ran here: handled twice).",
    "deleted_while_pending": "Entries deleted or trimmed from the stream while pending here "
                             "(counted once each): nothing left to handle.",
    "redis_errors": "Redis errors met by the poll loop.",
}


Counters = Callable[[], list[tuple[ListenerSpec, ListenerStats]]]
DeadLetters = Callable[[], dict[tuple[str, str, str], int]]
"""(listener, stream, dead-letter stream) → its length (``Application.dead_letters``)."""


class StreambootCollector(Collector):
    def __init__(self, subscriptions: Callable[[], dict[str, Subscription]],
                 streams: Callable[[], dict[str, StreamView]], alerts: AlertState,
                 membership: Callable[[], Membership | None] = lambda: None,
                 counters: Counters | None = None,
                 dead_letters: DeadLetters = dict) -> None:
        """``counters``: every subscription's counters, handed-away partitions' too
        (``ListenerContainer.counters``); without it, the live subscriptions' own.
        ``dead_letters``: the dead-letter streams' lengths at the last refresh."""
        self._subscriptions = subscriptions
        self._counters: Counters = counters or (
            lambda: [(s.spec, s.stats) for s in self._subscriptions().values()])
        self._membership = membership
        self._streams = streams
        self._alerts = alerts
        self._dead_letters = dead_letters

    def collect(self) -> Iterator[Any]:
        subs = self._subscriptions()
        counters = self._counters()
        for name, help_text in _COUNTERS.items():
            family = CounterMetricFamily(f"streamboot_entries_{name}", help_text,
                                         labels=["listener", "stream"])
            for spec, stats in counters:
                family.add_metric([spec.listener_name, spec.stream], getattr(stats, name))
            yield family
        yield from _renewals(subs)
        yield _histogram("streamboot_handler_duration_seconds", "Handler duration.", counters,
                         lambda s: s.handler_seconds)
        yield _histogram("streamboot_batch_size", "Entries per XREADGROUP batch.", counters,
                         lambda s: s.batch_sizes)
        yield _histogram("streamboot_delivery_latency_seconds", "Seconds from publish (the "
                         "time in the entry's id) to handling here, for each new batch's "
                         "oldest entry.", counters, lambda s: s.delivery_latency)
        yield _up(subs)
        yield from self._stream_gauges()
        dead = GaugeMetricFamily("streamboot_dead_letters", "Entries in the dead-letter "
                                 "stream (XLEN): what waits for a replay or a purge.",
                                 labels=["listener", "stream", "dlq"])
        for (listener, stream, dlq), size in self._dead_letters().items():
            dead.add_metric([listener, stream, dlq], size)
        yield dead
        yield from _leases(self._membership())
        alert = GaugeMetricFamily("streamboot_alert", "1 while a threshold is crossed.",
                                  labels=["listener", "stream", "alert"])
        for (listener, stream, name), on in self._alerts.active.items():
            alert.add_metric([listener, stream, name], 1.0 if on else 0.0)
        yield alert

    def _stream_gauges(self) -> Iterator[Any]:
        length = GaugeMetricFamily("streamboot_stream_length", "XLEN.", labels=["stream"])
        lag = GaugeMetricFamily("streamboot_group_lag", "Entries not yet delivered.",
                                labels=["stream", "group"])
        pending = GaugeMetricFamily("streamboot_group_pending", "Entries in the PEL.",
                                    labels=["stream", "group"])
        age = GaugeMetricFamily("streamboot_group_oldest_pending_age_seconds", "Seconds since "
                                "the oldest pending entry was published (its id's time); 0 "
                                "with nothing pending.", labels=["stream", "group"])
        idle = GaugeMetricFamily("streamboot_group_max_pending_idle_seconds", "The longest "
                                 "idle (since last delivered or renewed) among the 100 oldest "
                                 "pending entries: an abandoned entry's grows, a held one's "
                                 "is renewed.", labels=["stream", "group"])
        now = time()
        for key, view in self._streams().items():
            length.add_metric([key], view.length)
            for group in view.groups:
                labels = [key, group.name]
                lag.add_metric(labels, float(group.lag or 0))
                pending.add_metric(labels, group.pending)
                oldest = group.oldest_pending_id
                age.add_metric(labels, waited(oldest, now) if oldest else 0.0)
                idle.add_metric(labels, (group.max_pending_idle_ms or 0) / 1000)
        yield from (length, lag, pending, age, idle)


def _up(subs: dict[str, Subscription]) -> GaugeMetricFamily:
    """1 while a subscription is live as /healthz judges it (observability/health.py)."""
    up = GaugeMetricFamily("streamboot_listener_up", "1 while the listener reads and its "
                           "handlers and renewals keep up (as /healthz judges), else 0.",
                           labels=["listener", "stream"])
    now, clock = monotonic(), perf_counter()
    for name, sub in subs.items():
        live = not subscription_problems(name, sub, now, clock)
        up.add_metric([sub.spec.listener_name, sub.spec.stream], 1.0 if live else 0.0)
    return up


def _leases(membership: Membership | None) -> Iterator[Any]:
    """This member's partitions (partitions/membership.py)."""
    if membership is None:
        return
    owned = GaugeMetricFamily("streamboot_partitions_owned", "Partitions whose lease this "
                              "member holds (0: a standby).", labels=["listener"])
    rebalances = CounterMetricFamily("streamboot_partition_rebalances", "Heartbeats at "
                                     "which this member took or gave up a partition.",
                                     labels=["listener"])
    takeover = GaugeMetricFamily("streamboot_partition_takeover_seconds", "Seconds the "
                                 "last partition taken here took, from the lease request "
                                 "to its subscription (pending entries claimed).",
                                 labels=["listener"])
    release = GaugeMetricFamily("streamboot_partition_release_seconds", "Seconds the last "
                                "partition given up here took, from reading stopped to "
                                "the lease's release (its running handlers settled).",
                                labels=["listener"])
    owner = GaugeMetricFamily("streamboot_partition_owner", "1 for each partition whose "
                              "lease this member holds (summed over every process: who "
                              "reads which partition).",
                              labels=["listener", "partition", "member"])
    failing = GaugeMetricFamily("streamboot_partition_renewal_failing", "1 when this "
                                "member's last heartbeat could not renew its leases.",
                                labels=["listener"])
    for listener in membership.listeners:
        owned.add_metric([listener.name], sum(1 for s in listener.scopes if s.held))
        failing.add_metric([listener.name], 1.0 if membership.renewal_failing else 0.0)
        for scope in listener.scopes:
            if scope.held:
                owner.add_metric([listener.name, scope.stream, listener.member], 1.0)
        rebalances.add_metric([listener.name], listener.rebalances)
        if listener.takeovers:
            takeover.add_metric([listener.name], listener.takeovers[-1])
        if listener.releases:
            release.add_metric([listener.name], listener.releases[-1])
    yield from (owned, rebalances, takeover, release, owner, failing)


def _renewals(subs: dict[str, Subscription]) -> Iterator[Any]:
    """The ownership keeper's renewals (listener/ownership.py), per subscription."""
    failures = CounterMetricFamily(
        "streamboot_renewal_failures", "Renewal attempts that failed (timeout, connection "
        "lost, refused); each is retried at once on a new connection.",
        labels=["listener", "stream"])
    pauses = CounterMetricFamily(
        "streamboot_renewal_pauses", "Times renewals did not run for longer than 1.5 "
        "intervals though none failed: the process was paused (SIGSTOP, a VM pause).",
        labels=["listener", "stream"])
    since = GaugeMetricFamily(
        "streamboot_renewal_age_seconds", "Seconds since the last successful renewal of the "
        "entries in hand (alert when it nears pending_scan.min_idle).",
        labels=["listener", "stream"])
    now = perf_counter()
    for sub in subs.values():
        keeper = sub.keeper
        if keeper is None:
            continue
        labels = [sub.spec.listener_name, sub.spec.stream]
        failures.add_metric(labels, keeper.failed_attempts)
        pauses.add_metric(labels, keeper.pauses)
        since.add_metric(labels, max(0.0, now - keeper.last_renewed))
    yield from (failures, pauses, since)


def _histogram(name: str, doc: str, counters: list[tuple[ListenerSpec, ListenerStats]],
               pick: Callable[[ListenerStats], Histogram]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["listener", "stream"])
    for spec, stats in counters:
        hist = pick(stats)
        cumulative = list(accumulate(hist.counts))
        buckets = [(str(b), float(c)) for b, c in zip(hist.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", float(cumulative[-1])))
        family.add_metric([spec.listener_name, spec.stream], buckets, hist.total)
    return family


def build_registry(collector: StreambootCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
