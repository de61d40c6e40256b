"""The charts' data: lag, pending and deliveries per second of each listener over the last
hour — sampled by the console itself (History), or read from Prometheus when it has one
(prometheus.py) — as ``(epoch seconds, value)`` points."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

Points = list[tuple[float, float]]
SERIES = ("lag", "pending", "throughput")
"""What each listener's charts show; throughput is deliveries per second (the growth of the
group's entries-read, XINFO GROUPS)."""


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    lag: int | None
    pending: int
    entries_read: int | None


class History:
    """The last ``keep`` samples of each listener (a ring: memory stays bounded)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._samples: dict[str, deque[Sample]] = {}

    def add(self, listener: str, sample: Sample) -> None:
        self._samples.setdefault(listener, deque(maxlen=self._keep)).append(sample)

    def series(self, listener: str) -> dict[str, Points]:
        samples = list(self._samples.get(listener, ()))
        return {"lag": [(s.at, float(s.lag)) for s in samples if s.lag is not None],
                "pending": [(s.at, float(s.pending)) for s in samples],
                "throughput": rates(samples)}


def rates(samples: list[Sample]) -> Points:
    """Deliveries per second between consecutive samples; none across a counter that went
    back (a group recreated) or is unknown."""
    points = []
    for before, after in itertools.pairwise(samples):
        if before.entries_read is None or after.entries_read is None:
            continue
        grown, span = after.entries_read - before.entries_read, after.at - before.at
        if grown >= 0 and span > 0:
            points.append((after.at, grown / span))
    return points
