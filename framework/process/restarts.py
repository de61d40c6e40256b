"""What the supervisor does when a worker exits: a pure rule, tested alone.

A worker that exits by itself was not asked to. Exit code 2 (the file) or 3 (cannot
start: authentication, a permission, key types) would fail the same way again, so a
restart would only be a crash loop: the supervisor stops every worker and exits with that
code. Anything else — a crash, a kill, an out-of-memory, exit 1 — is restarted, after a
backoff that grows while the worker keeps dying young and resets once it has run
``STEADY`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shutdown import EXIT_CANNOT_START, EXIT_CONFIG

STEADY = 30.0
"""A worker that ran this long before dying starts its backoff over."""
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


@dataclass(frozen=True, slots=True)
class AfterExit:
    restart: bool
    delay: float = 0.0
    """Seconds before the restart."""
    exit_code: int | None = None
    """When not restarting: the supervisor's own exit code."""
    deaths: int = 0
    """Young deaths in a row, counting this one (0 after a steady run): the next exit's
    ``deaths``."""


def after_exit(code: int, ran_for: float, deaths: int) -> AfterExit:
    """``deaths``: how many times in a row this worker died young before this exit."""
    if code in (EXIT_CONFIG, EXIT_CANNOT_START):
        return AfterExit(restart=False, exit_code=code)
    young = 0 if ran_for >= STEADY else deaths
    return AfterExit(restart=True, delay=min(MAX_DELAY, FIRST_DELAY * 2 ** young),
                     deaths=0 if ran_for >= STEADY else deaths + 1)
