"""Which worker of a supervised group this process is, and what that changes for it.

The supervisor (supervisor.py) starts each worker with ``STREAMBOOT_WORKER=<i>/<N>`` and
``STREAMBOOT_WORKER_NAME=<host>-<supervisor pid>-w<i>``. Two things follow, both pure:

- **A stable consumer name.** A restarted worker keeps its index, so with the default
  consumer name it comes back as the same consumer and reads its own pending entries at
  once, instead of leaving them for another consumer's recovery ``min_idle`` later.
- **A member of each partitioned listener.** Each worker is a member like any other
  process (partitions/membership.py): the partitions' leases share them out among every
  worker of every supervisor, one reader per partition. Unpartitioned listeners are read
  by every worker (competing consumers of one group).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

WORKER_VARIABLE = "STREAMBOOT_WORKER"
NAME_VARIABLE = "STREAMBOOT_WORKER_NAME"
_SLOT = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    index: int
    count: int
    name: str
    """This worker's default consumer name (stable across its restarts)."""

    def consumer(self, configured: str | None) -> str:
        """The consumer name: a configured one gets ``-w<i>`` (workers must not share a
        pending list); otherwise this worker's stable name."""
        return f"{configured}-w{self.index}" if configured is not None else self.name


def current_worker(env: Mapping[str, str] | None = None) -> WorkerIdentity | None:
    """Which worker this process is when a supervisor started it; None otherwise."""
    env = os.environ if env is None else env
    value = env.get(WORKER_VARIABLE)
    if value is None:
        return None
    match = _SLOT.match(value)
    if match is None or not int(match[1]) < int(match[2]):
        raise ValueError(f"{WORKER_VARIABLE}={value!r}: expected <index>/<count>, set by "
                         "`streamboot run --workers`")
    index, total = int(match[1]), int(match[2])
    return WorkerIdentity(index, total, env.get(NAME_VARIABLE) or f"worker-{index}")
