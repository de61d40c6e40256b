"""How a ``streamboot run`` process stops: signals, a bounded stop, the exit code.

A stop must end within ``shutdown_timeout`` plus a small bound *whatever handlers do*. The
listener container cancels handlers still running at ``shutdown_timeout`` and abandons sync
threads (their entries stay pending); what is left — an ``async def`` handler that blocks
the event loop itself (``time.sleep``, a CPU loop) — no event-loop code can interrupt. So
the signal is taken by a plain ``signal.signal`` handler, which Python runs between
bytecodes of the main thread even while the loop is blocked, and it arms a deadline on a
timer thread: past it, the process exits at once with :data:`EXIT_FORCED`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_OK = 0
"""Stopped on a signal; every entry in hand finished and was acknowledged."""
EXIT_FORCED = 1
"""Stopped, but not every handler finished (a second signal, or still running at
``shutdown_timeout``): their entries stay pending and are delivered again."""

STOP_MARGIN = 5.0
"""Seconds past the listeners' own stop bound before the process exits regardless."""

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopDeadline:
    """Exit the process if a stop has not ended ``seconds`` after it began."""

    def __init__(self) -> None:
        self._timer: threading.Timer | None = None

    def arm(self, seconds: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(seconds, self._expire, args=(seconds,))
            self._timer.daemon = True
            self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    @staticmethod
    def _expire(seconds: float) -> None:
        # Not through loguru: its sink may be what the blocked loop holds.
        sys.stderr.write(f"streamboot: the stop did not end within {seconds:g}s (a handler "
                         "blocks the event loop?); exiting now, unfinished entries stay "
                         "pending\n")
        sys.stderr.flush()
        os._exit(EXIT_FORCED)


def take_signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None],
                 on_arrival: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to ``on_signal`` on the loop; ``on_arrival`` runs at once, in
    the signal handler itself (it must only start threads or set flags). Returns a
    function restoring the previous handlers."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        on_arrival()
        loop.call_soon_threadsafe(on_signal, signum)

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
