"""Typed records for what stream commands return, instead of nested lists of bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class StreamEntry(NamedTuple):
    """One stream entry. ``fields`` is empty when the entry was deleted while pending.

    ``raw`` is the entry's ``[name, value, …]`` list exactly as stored, set when the
    framework parsed the reply itself (the poll loop, recovery, exact ranges): it keeps what
    a dict cannot, a field name given twice, so a dead letter can carry the entry as it came.
    """

    id: str
    fields: dict[str, str]
    raw: list[str] | None = None

    @property
    def pairs(self) -> list[str]:
        """``[name, value, …]`` as stored (from ``raw`` when known, else from ``fields``)."""
        if self.raw is not None:
            return self.raw
        return [text for pair in self.fields.items() for text in pair]

    @property
    def deleted(self) -> bool:
        return not self.fields


@dataclass(frozen=True, slots=True)
class PendingSummary:
    """XPENDING without range: how many, the id span, and per-consumer counts."""

    count: int
    min_id: str | None
    max_id: str | None
    consumers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One PEL row: who holds it, for how long, and how often it was delivered."""

    id: str
    consumer: str
    idle_ms: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class AutoClaimResult:
    """XAUTOCLAIM's three-part reply (Redis 7): cursor, claimed entries, deleted ids."""

    next_id: str
    entries: list[StreamEntry]
    deleted_ids: list[str]

    @property
    def done(self) -> bool:
        """The scan reached the end of the PEL."""
        return self.next_id == "0-0"


@dataclass(frozen=True, slots=True)
class Renewal:
    """What one renewal (``scripts.RENEW_OWNED``) found of the ids it was given: still this
    consumer's (and now fresh), taken over by another consumer, or deleted from the stream;
    the ids it was given and that are in none of these were acknowledged. ``ahead``: how
    many delivered-but-not-received entries were renewed too."""

    touched: list[str]
    taken: list[str]
    deleted: list[str]
    ahead: int

    @classmethod
    def from_reply(cls, reply: Any) -> Renewal:
        touched, taken, deleted, ahead = reply
        return cls([str(i) for i in touched], [str(i) for i in taken],
                   [str(i) for i in deleted], int(ahead))


@dataclass(frozen=True, slots=True)
class ReclaimStep:
    """One entry reclaimed (or none found this step), with its delivery count."""

    next_id: str
    entry: StreamEntry | None
    deliveries: int
    deleted_ids: list[str]

    @property
    def done(self) -> bool:
        """The scan reached the end of the PEL."""
        return self.next_id == "0-0"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    length: int
    first_entry: StreamEntry | None
    last_entry: StreamEntry | None
    last_generated_id: str
    groups: int
    entries_added: int | None
    max_deleted_entry_id: str | None
    recorded_first_entry_id: str | None

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> StreamInfo:
        return cls(
            length=int(data["length"]),
            first_entry=_entry_or_none(data.get("first-entry")),
            last_entry=_entry_or_none(data.get("last-entry")),
            last_generated_id=str(data["last-generated-id"]),
            groups=int(data["groups"]),
            entries_added=_int_or_none(data.get("entries-added")),
            max_deleted_entry_id=data.get("max-deleted-entry-id"),
            recorded_first_entry_id=data.get("recorded-first-entry-id"),
        )


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """XINFO GROUPS row. ``lag`` is None when Redis cannot compute it (after deletions)."""

    name: str
    consumers: int
    pending: int
    last_delivered_id: str
    entries_read: int | None
    lag: int | None

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> GroupInfo:
        return cls(
            name=str(data["name"]),
            consumers=int(data["consumers"]),
            pending=int(data["pending"]),
            last_delivered_id=str(data["last-delivered-id"]),
            entries_read=_int_or_none(data.get("entries-read")),
            lag=_int_or_none(data.get("lag")),
        )


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    """XINFO CONSUMERS row; ``inactive_ms`` is -1 for a consumer that never read (Redis 7.2+)."""

    name: str
    pending: int
    idle_ms: int
    inactive_ms: int | None

    @classmethod
    def from_reply(cls, data: dict[str, Any]) -> ConsumerInfo:
        return cls(
            name=str(data["name"]),
            pending=int(data["pending"]),
            idle_ms=int(data["idle"]),
            inactive_ms=_int_or_none(data.get("inactive")),
        )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _entry_or_none(value: Any) -> StreamEntry | None:
    if not value or value[0] is None:
        return None
    return StreamEntry(str(value[0]), dict(value[1] or {}))
