"""The fields of a dead-lettered entry: the original fields plus where and why."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

REASON_MAX_DELIVERIES = "max_deliveries"
REASON_INVALID_PAYLOAD = "invalid_payload"


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:1997] + "..."


def dead_letter_fields(
    fields: Mapping[str, str],
    *,
    reason: str,
    error: BaseException | None,
    stream: str,
    entry_id: str,
    group: str,
    deliveries: int | None,
    now: datetime | None = None,
) -> dict[str, str]:
    """``dlq_*`` fields are added after the originals, so ``dlq replay`` can strip them."""
    at = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    out = {k: v for k, v in fields.items() if not k.startswith("dlq_")}
    out.update(
        dlq_reason=reason,
        dlq_error=describe_error(error),
        dlq_stream=stream,
        dlq_id=entry_id,
        dlq_group=group,
        dlq_deliveries="" if deliveries is None else str(deliveries),
        dlq_at=at,
    )
    return out


def original_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """A dead-lettered entry's fields without the ``dlq_*`` ones, as first published."""
    return {k: v for k, v in fields.items() if not k.startswith("dlq_")}
