"""A listener's features — rotation, pending recovery, retention, cleanup — each declared
by its own module.

Each feature module has a ``declare`` function that looks at one listener's settings and
returns the job it runs (or ``None`` when the listener does not have the feature); the
application walks :data:`FEATURES` and schedules what comes back, so it never reads a
feature's settings itself. Adding a feature is a ``declare`` function in its module and one
line here. Rotation comes first because it decides *where* the listener reads (one
subscription per period); every later feature asks :meth:`DeclaredListener.streams`, which
then answers with the periods, and otherwise with the one stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from . import cleanup, recovery, retention, rotation
from .contract import DeclaredListener, Job

Feature = Callable[[DeclaredListener], Awaitable["Job | None"]]

FEATURES: tuple[tuple[str, Feature], ...] = (
    ("rotation", rotation.declare),
    ("recovery", recovery.declare),
    ("retention", retention.declare),
    ("cleanup", cleanup.declare),
)


async def declare(listener: DeclaredListener) -> None:
    """Let every feature declare itself for ``listener``; subscribe it to its one stream
    unless a feature (rotation) subscribed it already."""
    for key, feature in FEATURES:
        job = await feature(listener)
        if job is not None:
            listener.jobs[key] = job
    if listener.streams_from is None:
        listener.listeners.register(listener.spec, listener.handler)
