"""The fields of a dead-lettered entry: the original fields, as stored, then where and why.

The original ``[name, value, …]`` pairs come first and unchanged — names the entry may share
with ours (``dlq_reason``…), repeated names and non-UTF-8 bytes included — so the dead letter
is the entry as it came. ``dlq_fields`` (last) says how many pairs are original, which is
what ``dlq replay`` republishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from ..records import StreamEntry

REASON_MAX_DELIVERIES = "max_deliveries"
REASON_INVALID_PAYLOAD = "invalid_payload"
REASON_UNDECODABLE = "undecodable"
REASON_TIMEOUT = "handler_timeout"
ORIGINAL_COUNT = "dlq_fields"


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:1997] + "..."


def dead_letter_pairs(
    entry: StreamEntry,
    *,
    reason: str,
    error: BaseException | None,
    stream: str,
    group: str,
    deliveries: int | None,
    now: datetime | None = None,
) -> list[str]:
    """``[name, value, …]``: the entry's own pairs, then the ``dlq_*`` ones."""
    at = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    original = entry.pairs
    return [
        *original,
        "dlq_reason", reason,
        "dlq_error", describe_error(error),
        "dlq_stream", stream,
        "dlq_id", entry.id,
        "dlq_group", group,
        "dlq_deliveries", "" if deliveries is None else str(deliveries),
        "dlq_at", at,
        ORIGINAL_COUNT, str(len(original) // 2),
    ]


def original_pairs(entry: StreamEntry) -> list[str]:
    """A dead letter's original ``[name, value, …]``, as first published."""
    pairs = entry.pairs
    count = entry.fields.get(ORIGINAL_COUNT)
    if count is not None and count.isdigit() and 2 * int(count) <= len(pairs):
        return pairs[:2 * int(count)]
    # Written before dlq_fields existed: the originals are the non-dlq_* fields.
    return [text for name, value in original_fields(entry.fields).items()
            for text in (name, value)]


def original_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Legacy dead letters: the fields without the ``dlq_*`` ones."""
    return {k: v for k, v in fields.items() if not k.startswith("dlq_")}

