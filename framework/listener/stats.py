"""Per-listener counters: what /healthz, metrics and the CLI read, updated on the hot path."""

from __future__ import annotations

from dataclasses import dataclass


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
    reclaimed: int = 0
    reads: int = 0
    redis_errors: int = 0
    last_poll: float = 0.0
