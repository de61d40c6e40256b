"""A listener's effective settings: its own overrides on top of the container defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from ..config.models import (
    BatchSettings,
    ContainerSettings,
    IdempotencySettings,
    ListenerSettings,
    PendingScanSettings,
    RetrySettings,
)


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    name: str
    stream: str
    group: str
    consumer: str
    handler: str
    start_id: str
    batch_size: int
    concurrency: int
    poll_timeout: timedelta
    shutdown_timeout: timedelta
    handler_timeout: timedelta = timedelta(minutes=5)
    codec: Literal["flat", "json"] = "flat"
    json_field: str = "payload"
    retry: RetrySettings = field(default_factory=RetrySettings)
    dead_letter_stream: str | None = None
    pending_scan: PendingScanSettings = field(default_factory=PendingScanSettings)
    idempotency: IdempotencySettings | None = None
    tracing: bool = False
    owns_stream: bool = True
    """False for a rotated period's stream: never create it (MKSTREAM would resurrect an
    expired period without its TTL); when it is gone, the subscription ends."""
    ordering_key: str | None = None
    listener: str = ""
    """The declared listener this subscription belongs to (its partitions and periods
    share it): the ``listener`` label of the metrics."""
    middleware: tuple[Any, ...] = ()
    """The resolved middleware beans, outermost first (``container.middleware``, then the
    listener's): set by the application once they are resolved, shared by its
    partitions and periods."""
    batch: BatchSettings | None = None
    """``batch`` of a :class:`~streamboot.BatchHandler`'s listener (None: the defaults)."""
    rate_limiter: Any = None
    """The listener's :class:`~streamboot.middleware.RateLimiter` (``rate_limit``), one for
    all its subscriptions; None: no limit."""

    @property
    def listener_name(self) -> str:
        return self.listener or self.name


def period_subscription(listener: str, key: str) -> str:
    """The subscription name of one period's stream of a rotated listener."""
    return f"{listener}@{key}"


def listener_of(subscription: str) -> str:
    """The listener a subscription belongs to (itself, or a rotated period's)."""
    return subscription.partition("@")[0]


def resolve_listener(
    name: str, listener: ListenerSettings, defaults: ContainerSettings,
    declared_as: str | None = None, consumer: str | None = None,
) -> ListenerSpec:
    """``declared_as``: the listener's name in the file when ``name`` is one of its
    partitions; ``consumer``: the name used instead of the file's (a supervised worker's,
    process/worker_identity.py, or a partition member's id)."""
    return ListenerSpec(
        name=name,
        listener=declared_as or name,
        stream=listener.stream,
        group=listener.group,
        consumer=consumer or listener.consumer,
        handler=listener.handler,
        start_id=listener.start_id,
        batch_size=listener.batch_size or defaults.batch_size,
        concurrency=listener.concurrency or defaults.concurrency,
        poll_timeout=listener.poll_timeout or defaults.poll_timeout,
        shutdown_timeout=listener.shutdown_timeout or defaults.shutdown_timeout,
        handler_timeout=listener.handler_timeout or defaults.handler_timeout,
        codec=listener.codec,
        json_field=listener.json_field,
        retry=listener.retry,
        dead_letter_stream=listener.dead_letter_stream,
        pending_scan=listener.pending_scan,
        idempotency=listener.idempotency,
        tracing=listener.tracing,
        ordering_key=listener.ordering_key,
        batch=listener.batch,
    )
