"""Jittered, capped exponential backoff for loops that must never exit and never spin."""

from __future__ import annotations

import asyncio
import contextlib

from tenacity import RetryCallState, Retrying, wait_exponential, wait_random


class ReconnectBackoff:
    """Successive delays 0.1s, 0.2s, 0.4s… (plus jitter) up to ``cap``; ``reset`` on success.

    Built on tenacity's wait strategy so the arithmetic is a well-tested library's; the
    sleep itself is ours because it must end early when the loop is asked to stop.
    """

    def __init__(self, initial: float = 0.1, cap: float = 10.0) -> None:
        self._wait = wait_exponential(multiplier=initial, max=cap) + wait_random(0, initial)
        self._state = RetryCallState(Retrying(), None, (), {})
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        self._state.attempt_number = self.failures
        return float(self._wait(self._state))

    def reset(self) -> None:
        self.failures = 0

    @staticmethod
    async def wait(delay: float, stop: asyncio.Event) -> None:
        """Sleep ``delay`` seconds, or less if ``stop`` is set meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
