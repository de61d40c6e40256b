"""What this process reads: every enabled listener — each partition of a partitioned one
as a listener of its own — and, under ``--workers``, only this worker's share.

Pure: the application, ``check`` and the supervisor ask the same question and get the same
answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.models import AppSettings, ListenerSettings
from ..process.worker_slot import WorkerSlot
from .keys import partition_name, partition_settings


@dataclass(frozen=True, slots=True)
class Assigned:
    name: str
    """``orders``, or ``orders[p3]`` for a partition."""
    listener: str
    """The listener's name in the file."""
    settings: ListenerSettings
    """Its settings; a partition's name its own keys (see keys.py)."""
    consumer: str | None = None
    """A worker's consumer name, when a supervisor started this process."""


def assigned_listeners(settings: AppSettings, slot: WorkerSlot | None = None) -> list[Assigned]:
    """Every enabled listener (or partition) this process reads, in file order."""
    assigned: list[Assigned] = []
    for name, listener in settings.listeners.items():
        if not listener.enabled:
            continue
        consumer = None
        if slot is not None:
            given = listener.consumer if "consumer" in listener.model_fields_set else None
            consumer = slot.consumer(given)
        if listener.partitions == 1:
            assigned.append(Assigned(name, name, listener, consumer))
            continue
        for index in range(listener.partitions):
            if slot is None or slot.owns(index):
                assigned.append(Assigned(partition_name(name, index), name,
                                         partition_settings(listener, index), consumer))
    return assigned


def idle_workers(settings: AppSettings, workers: int) -> list[int]:
    """Workers of ``workers`` that would read nothing: every enabled listener is
    partitioned, into fewer partitions than there are workers."""
    listeners = [ls for ls in settings.listeners.values() if ls.enabled]
    if not listeners or any(ls.partitions == 1 for ls in listeners):
        return []
    most = max(ls.partitions for ls in listeners)
    return list(range(most, workers))
