"""How a ``streamboot run`` process stops: signals, a bounded stop, the exit code.

A stop must end within ``shutdown_timeout`` plus a small bound *whatever handlers do*. The
listener container cancels handlers still running at ``shutdown_timeout`` and abandons sync
threads (their entries stay pending). Two things remain that event-loop code alone cannot
bound:

- a handler that ignores its cancellation: ``asyncio.run`` would wait for its task for
  ever while tearing the loop down. :func:`run_process` runs the loop like ``asyncio.run``
  but gives leftover tasks ``grace`` seconds after their cancellation, then exits without
  them;
- an ``async def`` handler that blocks the event loop itself (``time.sleep``, a CPU
  loop). So the signal is taken by a plain ``signal.signal`` handler, which Python runs
  between bytecodes of the main thread even while the loop is blocked, and it arms a
  deadline on a timer thread: past it, the process exits at once with :data:`EXIT_FORCED`.
  The deadline stays armed until the process has torn its loop down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from types import FrameType
from typing import Any

EXIT_OK = 0
"""Stopped on a signal; every entry in hand finished and was acknowledged."""
EXIT_FORCED = 1
"""Stopped, but not every handler finished (a second signal, or still running at
``shutdown_timeout``): their entries stay pending and are delivered again."""
EXIT_CONFIG = 2
"""The application file (or the environment overriding it) is invalid."""
EXIT_CANNOT_START = 3
"""Something no retry heals: authentication, a permission, a key that is not a stream on
every listener, a server too old."""

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
                         "blocks the event loop, or ignores its cancellation?); exiting now, "
                         "unfinished entries stay pending\n")
        sys.stderr.flush()
        os._exit(EXIT_FORCED)


def _exit_now(signum: int, frame: FrameType | None) -> None:
    """A signal after the stop began and its handlers were released: force, at once."""
    sys.stderr.write(f"streamboot: {signal.Signals(signum).name} during the stop: exiting "
                     "now, unfinished entries stay pending\n")
    sys.stderr.flush()
    os._exit(EXIT_FORCED)


def take_signals(loop: asyncio.AbstractEventLoop, on_signal: Callable[[int], None],
                 on_arrival: Callable[[], None]) -> Callable[[], None]:
    """Route SIGINT/SIGTERM to ``on_signal`` on the loop; ``on_arrival`` runs at once, in
    the signal handler itself (it must only start threads or set flags). Returns a
    function that releases them: the previous handlers come back — unless a signal already
    started the stop, in which case a further one exits the process at once (the loop that
    ``on_signal`` needs may be tearing down)."""
    previous: dict[int, Any] = {}
    arrived = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal arrived
        arrived = True
        on_arrival()
        loop.call_soon_threadsafe(on_signal, signum)

    for sig in SIGNALS:
        previous[sig] = signal.signal(sig, handler)

    def release() -> None:
        for sig, old in previous.items():
            signal.signal(sig, _exit_now if arrived else old)

    return release


def run_process(main: Coroutine[Any, Any, int], grace: float) -> int:
    """``asyncio.run(main)`` for a process, with a bounded teardown: tasks still alive at
    the end are cancelled and get ``grace`` seconds; those that ignore it are left behind
    (named on stderr), so the process can exit."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop, grace)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: asyncio.AbstractEventLoop, grace: float) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(tasks, timeout=grace))
    if stuck:
        names = ", ".join(sorted(task.get_name() for task in stuck))
        sys.stderr.write(f"streamboot: {len(stuck)} task(s) ignored their cancellation "
                         f"({names}); exiting without them\n")
        _LEFT_BEHIND.update(stuck)  # kept referenced: no "destroyed but pending" noise


_LEFT_BEHIND: set[asyncio.Task[Any]] = set()
