"""Partitioned streams: one logical stream spread over N keys in N hash slots.

One stream lives in one hash slot, so on Redis Cluster it is one node's throughput however
many nodes there are. ``partitions: N`` gives a listener N keys, ``{orders:p0}`` …
``{orders:pN-1}``: the whole key is the hash tag, so each lands on its own slot (which node
holds it is the cluster's slot map). Each partition is a complete stream of its own — its
group, its dead-letter stream ``{orders:p0}:dlq`` in its slot, its rotation, retention,
recovery and cleanup — so every feature that works on one stream works on each partition
unchanged: :func:`partition_settings` turns a partitioned listener into one plain listener
per partition, and the features never know.

Routing is a pure function both sides share: ``crc32(value) mod N`` of the
``partition_by`` field (so producers in any language can compute it), else round-robin.
"""

from __future__ import annotations

import random
import re
import zlib
from itertools import count

from ..config.models import DeadLetterSettings, ListenerSettings
from ..wire.hash_slots import colocated


def partition_key(key: str, index: int) -> str:
    """The key of partition ``index`` of ``key`` (a stream, or a period's key format)."""
    return f"{{{key}:p{index}}}"


def members_key(stream: str, group: str) -> str:
    """The member list of one partitioned listener (its group on its logical stream)."""
    return f"streamboot:members:{{{stream}}}:{group}"


def lease_key(partition_stream: str) -> str:
    """A partition's lease (membership.py), in its stream's slot: the partition key is its
    own hash tag."""
    return f"{partition_stream}:lease"


PARTITION_KEY = re.compile(r"^\{.+:p\d+\}$")
"""A partition's stream key (``{orders:p3}``): the only keys that have a lease."""


def partition_of(value: str, partitions: int) -> int:
    """The partition an entry with routing value ``value`` goes to."""
    return zlib.crc32(value.encode()) % partitions


def stream_keys(stream: str, partitions: int) -> list[str]:
    """The keys a listener of ``stream`` reads with ``partitions`` partitions (itself when
    unpartitioned)."""
    if partitions == 1:
        return [stream]
    return [partition_key(stream, i) for i in range(partitions)]


def partition_keys(listener: ListenerSettings) -> list[str]:
    """The listener's stream keys: one per partition (itself when unpartitioned)."""
    return stream_keys(listener.stream, listener.partitions)


def partitions_of(listener: ListenerSettings) -> list[ListenerSettings]:
    """Each partition as a plain listener of its own keys (itself when unpartitioned)."""
    if listener.partitions == 1:
        return [listener]
    return [partition_settings(listener, i) for i in range(listener.partitions)]


def partition_settings(listener: ListenerSettings, index: int) -> ListenerSettings:
    """Partition ``index`` of a partitioned listener, as a plain listener of its own keys."""
    stream = partition_key(listener.stream, index)
    update: dict[str, object] = {
        "stream": stream, "partitions": 1, "partition_by": None,
        "dead_letter": DeadLetterSettings(enabled=listener.dead_letter.enabled,
                                          stream=colocated(stream, ":dlq")),
    }
    if listener.rotation is not None:
        update["rotation"] = listener.rotation.model_copy(
            update={"key_format": partition_key(listener.rotation.key_format, index)})
    return listener.model_copy(update=update)


def partition_name(listener: str, index: int) -> str:
    """How a partition is named in logs, metrics and ``app.declared``: ``orders[p3]``."""
    return f"{listener}[p{index}]"


class RoundRobin:
    """Round-robin over the partitions, for a publisher without ``partition_by``. It starts
    at a random partition: many short-lived publishers (one per request, say) would
    otherwise all write their first entry to partition 0."""

    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self._next = count(random.randrange(partitions))

    def __call__(self) -> int:
        return next(self._next) % self._partitions
