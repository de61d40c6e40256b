"""``rate_limit``: at most ``per_second`` handlings of a listener start per second, with
bursts of up to ``burst`` — per process, or shared by every process through Redis.

A token bucket: ``burst`` tokens, refilled at ``per_second``; a handling takes one before
it starts, and waits while there is none. The wait is before the handler's start (and
outside ``handler_timeout``): entries wait in hand, renewed as any entry in hand is.

Shared (``shared: true``), the bucket is one Redis hash per listener and group,
``{<stream>}:rate:<group>``, taken from by one script with the server's clock (no process's
clock skew enters it), so N processes together stay under the one rate.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..config.models import RateLimitSettings
from ..wire.operator import RedisOperator


@dataclass
class Bucket:
    """The pure rule: ``tokens`` at time ``at`` (seconds), refilled at ``rate``/s up to
    ``burst``."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one token at ``now``: 0.0 when taken, else the seconds until one is there
        (nothing taken)."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = max(self.at, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def rate_key(stream: str, group: str) -> str:
    """The shared bucket's key: the listener's stream as hash tag (its own slot)."""
    tag = stream if stream.startswith("{") and "}" in stream else f"{{{stream}}}"
    return f"{tag}:rate:{group}"


class RateLimiter:
    """One per listener: all its subscriptions (partitions, periods) take from it."""

    def __init__(self, settings: RateLimitSettings, operator: RedisOperator | None = None,
                 key: str | None = None) -> None:
        self.settings = settings
        self._rate = settings.per_second
        self._burst = float(settings.burst or max(1, round(settings.per_second)))
        self._bucket = Bucket(self._rate, self._burst, self._burst, time.monotonic())
        self._operator = operator if settings.shared else None
        self._key = key
        if settings.shared and (operator is None or key is None):
            raise ValueError("a shared rate limit needs the operator and its key")
        self.waited = 0.0
        """Seconds handlings spent waiting for a token here (a gauge of throttling)."""

    async def acquire(self) -> None:
        """Until a token is taken. Shared: if Redis cannot be asked (down, failing over),
        the local bucket decides meanwhile — a limit is a protection, never a stall."""
        while True:
            wait = await self._take()
            if wait <= 0.0:
                return
            self.waited += wait
            await asyncio.sleep(wait)

    async def _take(self) -> float:
        if self._operator is not None and self._key is not None:
            try:
                return await self._operator.take_token(self._key, self._rate, self._burst)
            except Exception:
                pass
        return self._bucket.take(time.monotonic())


def limiter_for(settings: Any, operator: RedisOperator, stream: str,
                group: str) -> RateLimiter | None:
    """The listener's limiter, or None when it declares no ``rate_limit``."""
    limit: RateLimitSettings | None = getattr(settings, "rate_limit", None)
    if limit is None:
        return None
    return RateLimiter(limit, operator, rate_key(stream, group))
