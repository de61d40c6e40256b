"""The record a handler receives: one stream entry with its context and validated payload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .config.models import DurabilitySettings

P = TypeVar("P")


@dataclass(slots=True)
class Message(Generic[P]):
    """One entry as delivered to this consumer.

    ``delivery_count`` is how often Redis delivered the entry, this delivery included
    (1 for a fresh read).
    """

    id: str
    stream: str
    group: str
    consumer: str
    fields: dict[str, str]
    payload: P
    delivery_count: int | None = None
    marker: tuple[str, timedelta] | None = None
    """The idempotency marker key and TTL, when the listener declares ``idempotency``."""
    epoch: int | None = None
    """The epoch of the partition's lease this member held when the handler started
    (partitioned listeners; None otherwise). It only grows: a store that remembers the
    highest epoch it saw per partition can refuse a write carrying a lower one — the write
    of a member that was frozen or cut off while another took the partition over
    (docs/scaling.md, "Fencing a handler's own store")."""
    durability: DurabilitySettings | None = None
    """The listener's ``idempotency.durability``: :class:`IdempotentScript` waits for it."""
