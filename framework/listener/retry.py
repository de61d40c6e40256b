"""What happens to an entry after its handler failed: a pure decision, tested alone."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..config.models import RetrySettings


class Next(Enum):
    DEAD_LETTER = "dead_letter"
    RETRY_LATER = "retry_later"  # in this process, after ``delay``
    LEAVE_PENDING = "leave_pending"  # the recovery job reclaims it after min_idle


@dataclass(frozen=True, slots=True)
class Decision:
    next: Next
    delay: float = 0.0


def after_failure(deliveries: int, retry: RetrySettings, can_dead_letter: bool) -> Decision:
    """``deliveries`` counts the attempt that just failed."""
    if deliveries >= retry.max_deliveries and can_dead_letter:
        return Decision(Next.DEAD_LETTER)
    base = retry.backoff.total_seconds()
    if base <= 0:
        return Decision(Next.LEAVE_PENDING)
    delay = min(base * 2 ** max(deliveries - 1, 0), retry.backoff_max.total_seconds())
    return Decision(Next.RETRY_LATER, delay)


def exhausted(deliveries: int, retry: RetrySettings) -> bool:
    """Delivered more often than allowed before a handler even ran: a consumer died on
    it each time (a crash, an OOM kill), so it is dead-lettered unhandled."""
    return deliveries > retry.max_deliveries
