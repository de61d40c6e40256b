"""The record a handler receives: one stream entry with its context and validated payload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(slots=True)
class Message(Generic[P]):
    """One entry as delivered to this consumer.

    ``delivery_count`` is 1 for an entry read fresh (``>``) and None when the entry was
    re-read from this consumer's own PEL, where XREADGROUP does not say how often it
    was delivered before.
    """

    id: str
    stream: str
    group: str
    consumer: str
    fields: dict[str, str]
    payload: P
    delivery_count: int | None = None
