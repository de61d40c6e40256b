"""What this process may read: every enabled listener — each partition of a partitioned
one as a listener of its own. Which partitions it reads at a given moment is the leases'
business (membership.py): every member is a candidate for every partition.

Pure: the application, ``check`` and the supervisor ask the same question and get the same
answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config.models import AppSettings, ListenerSettings
from ..process.worker_identity import WorkerIdentity
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
    """The consumer name when it is not the file's: a worker's, or the member id."""
    partition: int | None = None
    """The partition's index, for a partition."""


def assigned_listeners(settings: AppSettings,
                       worker: WorkerIdentity | None = None) -> list[Assigned]:
    """Every enabled listener (or partition) this process may read, in file order."""
    assigned: list[Assigned] = []
    member_id = settings.membership.member_id
    for name, listener in settings.listeners.items():
        if not listener.enabled:
            continue
        consumer = None
        if worker is not None:
            given = listener.consumer if "consumer" in listener.model_fields_set else None
            consumer = worker.consumer(given)
        if listener.partitions == 1:
            assigned.append(Assigned(name, name, listener, consumer))
            continue
        if member_id is not None:  # the member id is the consumer: one PEL per member
            consumer = f"{member_id}-w{worker.index}" if worker is not None else member_id
        for index in range(listener.partitions):
            assigned.append(Assigned(partition_name(name, index), name,
                                     partition_settings(listener, index), consumer, index))
    return assigned

