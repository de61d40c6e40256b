"""``handler_timeout``: a handler that overruns it is cancelled and counts as a failure.

Not ``asyncio.timeout`` around every call: that is a timer per entry on the hot path. Each
dispatch worker has one :class:`Running` record that says which entry it runs since when;
one timer per listener, armed for the earliest deadline, cancels the worker that overran.
The record is set right before the handler is awaited and cleared right after it returns,
with no suspension point in between, so while it is set the worker is suspended inside the
handler and the cancellation lands there — nowhere else in the loop.

A handler that ignores its cancellation (catches ``CancelledError`` and goes on) is given
``STUCK_GRACE`` to end; past it its worker is abandoned like a stuck thread: the entry
counts as failed, a new worker takes its place, and whatever the handler does later no
longer counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from time import perf_counter
from typing import Any

STUCK_GRACE = 1.0
"""Seconds a cancelled handler gets to end before its worker is given up on."""


class Running:
    """What one dispatch worker is running now."""

    __slots__ = ("abandoned", "batch", "deliveries", "entry", "entry_id", "future", "started",
                 "task", "timed_out")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.entry_id: str | None = None
        self.entry: Any = None
        self.deliveries = 0
        self.batch: list[tuple[Any, int]] | None = None
        """A batch handler's entries and their deliveries (batches.py)."""
        self.started = 0.0
        self.timed_out = False
        self.abandoned = False
        """The handler ignored its cancellation: its outcome no longer counts."""
        self.future: Future[Any] | None = None
        """The thread job of a sync handler, so a timeout can abandon its thread."""


class Watchdog:
    """Times are ``time.perf_counter()``: the dispatcher reads it once per entry for the
    duration histogram anyway, and the same reading starts the deadline."""

    def __init__(self, timeout: float, on_stuck: Callable[[Running], None]) -> None:
        self.timeout = timeout
        self._on_stuck = on_stuck
        self._running: set[Running] = set()
        self._timer: asyncio.TimerHandle | None = None

    def worker(self) -> Running:
        task = asyncio.current_task()
        assert task is not None
        running = Running(task)
        self._running.add(running)
        return running

    def retire(self, running: Running) -> None:
        self._running.discard(running)

    @property
    def idle(self) -> bool:
        """No timer armed: the next handler to start arms one."""
        return self._timer is None

    def arm(self, started: float) -> None:
        """A timer for the deadline of a handler that started at ``started``; later
        handlers' deadlines are later, so the earliest one is always the armed one."""
        self._timer = asyncio.get_running_loop().call_later(
            max(0.0, started + self.timeout - perf_counter()), self._check)

    def overdue(self) -> list[tuple[str, float]]:
        """(entry id, seconds running) of handlers past the timeout and still running."""
        now = perf_counter()
        return [(r.entry_id, now - r.started) for r in list(self._running)
                if r.entry_id is not None and now - r.started > self.timeout]

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        now = perf_counter()
        upcoming: float | None = None
        for running in list(self._running):
            if running.entry_id is None or running.abandoned:
                continue
            deadline = running.started + self.timeout
            if running.timed_out:  # cancelled already: has it ended since?
                deadline += STUCK_GRACE
            if deadline <= now:
                if running.timed_out:
                    running.abandoned = True
                    self._on_stuck(running)  # it ignores its cancellation
                else:
                    running.timed_out = True
                    running.task.cancel()
                    deadline += STUCK_GRACE
            if not running.abandoned and (upcoming is None or deadline < upcoming):
                upcoming = deadline
        if upcoming is not None:
            self.arm(upcoming - self.timeout)
