"""Publisher: the producing side, resolving the stream key from the listener's own policy.

A rotated listener's producers must write to the key its consumers read; both resolve it
from the same :class:`RotationPolicy` and clock, so they always agree. A partitioned
listener's producers pick the partition by the same rule (partitions/keys.py): by the
``partition_by`` field, else round-robin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .codecs import Codec, codec_for
from .config.durations import to_ms
from .config.models import BackpressureSettings, DurabilitySettings, ListenerSettings
from .errors import (
    Backpressure,
    MissingStreamError,
    NotDurableError,
    PublishUnavailable,
    UnpublishableError,
)
from .jobs.clock import Clock, SystemClock
from .jobs.rotation import RotationPolicy
from .listener.idempotency import business_key
from .observability import tracing
from .partitions.keys import RoundRobin, partition_key, partition_of
from .wire.operator import RedisOperator
from .wire.reconnect import ReconnectBackoff
from .wire.redis_errors import (
    describe_permanent,
    describe_unavailable,
    is_permanent,
    is_transient,
    no_primary_found,
)


class EntryId(str):
    """An entry id as a publish returns it: a plain ``str`` (the id XADD gave) that also
    knows the stream it went to, ``.stream`` — a partition's key, a period's. Ids are
    unique per stream only: two partitions may give the same id in the same millisecond."""

    stream: str

    def __new__(cls, entry_id: str, stream: str) -> EntryId:
        made = super().__new__(cls, entry_id)
        made.stream = stream
        return made

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (a thread pool, a queue) keep .stream
        return (EntryId, (str(self), self.stream))


RETRY_CAP = 1.0
"""The longest pause between a publish's attempts: a failover is over in seconds, and a
caller waiting on a publish should learn within a second once it is."""


class Publisher:
    def __init__(self, operator: RedisOperator, stream: str, codec: Codec,
                 rotation: RotationPolicy | None = None, clock: Clock | None = None,
                 max_len: int | None = None, schema_version: int | None = None,
                 backpressure: BackpressureSettings | None = None,
                 group: str | None = None, tracing: bool = False, partitions: int = 1,
                 partition_by: str | None = None, json_field: str | None = None,
                 durability: DurabilitySettings | None = None,
                 retry_for: float = 0.0) -> None:
        """``durability``: each write is followed by WAIT in its round trip, and a publish
        whose entries fewer replicas acknowledged raises :class:`NotDurableError`.
        ``retry_for``: seconds a write is tried again while Redis is unreachable or has
        no primary (``publish.retry_for``; 0: never), then :class:`PublishUnavailable`."""
        self._operator = operator
        self._durability = durability
        self._retry_for = retry_for
        self._stream = stream
        self._codec = codec
        self._rotation = rotation
        self._clock = clock or SystemClock()
        self._max_len = max_len
        self._schema_version = schema_version
        self._backpressure = backpressure
        self._group = group
        self._tracing = tracing
        """Write the current trace context into each entry (the listener traces)."""
        self._partitions = partitions
        self._partition_by = partition_by
        self._json_field = json_field
        """Where ``partition_by`` is read when the codec is ``json``."""
        self._round_robin = RoundRobin(partitions)
        self._checked_at: dict[str, float] = {}
        self._full: dict[str, bool] = {}
        self._ready: set[str] = set()  # period streams known to exist

    @classmethod
    def for_listener(cls, operator: RedisOperator, listener: ListenerSettings,
                     clock: Clock | None = None) -> Publisher:
        # No MAXLEN from the listener's retention: XADD MAXLEN trims whatever is oldest,
        # consumed or not. The retention job trims, never past what a group still needs.
        rotation = RotationPolicy(listener.rotation) if listener.rotation else None
        return cls(operator, listener.stream, codec_for(listener.codec, listener.json_field),
                   rotation, clock, None, listener.publish.schema_version,
                   listener.publish.backpressure, listener.group, listener.tracing,
                   listener.partitions, listener.routed_by,
                   listener.json_field if listener.codec == "json" else None,
                   listener.publish.durability,
                   listener.publish.retry_for.total_seconds())

    def key(self) -> str:
        """The stream key a message published now goes to (of an unpartitioned stream: a
        partitioned one's depends on the message, see :meth:`key_for`)."""
        if self._partitions > 1:
            raise UnpublishableError(f"{self._stream!r} is partitioned: an entry's key depends "
                                     "on its fields (Publisher.key_for)")
        return self._period_key()

    def _period_key(self) -> str:
        if self._rotation is None:
            return self._stream
        return self._rotation.current(self._clock.now()).key

    def key_for(self, fields: Mapping[str, str]) -> str:
        """The key an entry with these fields goes to now: its partition's (by
        ``partition_by``, else the next in round-robin) of the current period's."""
        key = self._period_key()
        if self._partitions == 1:
            return key
        if self._partition_by is None:
            return partition_key(key, self._round_robin())
        value = business_key(dict(fields), self._partition_by, self._json_field)
        if value is None:
            raise UnpublishableError(
                f"cannot pick a partition of {self._stream!r}: the entry has no "
                f"{self._partition_by!r} field (partition_by)")
        return partition_key(key, partition_of(value, self._partitions))

    def fields(self, payload: Any) -> dict[str, str]:
        """The entry's fields for ``payload``: a pydantic model, a dataclass, a mapping."""
        fields = self._codec.encode(payload)
        if self._schema_version is not None:
            fields.setdefault("schema_version", str(self._schema_version))
        if self._tracing:
            tracing.inject(fields)
        return fields

    async def publish(self, payload: Any) -> EntryId:
        """XADD the payload with the listener's codec (``MAXLEN ~ max_len`` if given).

        A rotated period's stream is never created by XADD (NOMKSTREAM): when no consumer
        has created it yet (a deploy across a boundary), the publisher creates it first
        with its group and TTL in one step, as the rotation job does. Either the entry is
        written and its id returned (an :class:`EntryId`: ``.stream`` is where it went),
        or this raises.
        """
        return (await self.publish_many([payload]))[0]

    async def publish_fields(self, fields: Mapping[str, str]) -> EntryId:
        """XADD fields exactly as given (no codec, no schema_version) to the stream a
        publish would use now — the current period's for a rotated listener, created if
        missing — under the same backpressure. For hand-made entries (``streamboot
        publish``, a malformed one in a test)."""
        (entry,) = await self._publish_routed([dict(fields)])
        return entry

    async def publish_many(self, payloads: Sequence[Any], chunk: int = 500) -> list[EntryId]:
        """XADD many payloads, ``chunk`` per pipelined round trip; the ids in the payloads'
        order (entries of one partition are written in that order too)."""
        return await self._publish_routed([self.fields(p) for p in payloads], chunk)

    async def _publish_routed(self, entries: list[dict[str, str]],
                              chunk: int = 500) -> list[EntryId]:
        by_key: dict[str, list[int]] = {}
        for index, fields in enumerate(entries):
            by_key.setdefault(self.key_for(fields), []).append(index)
        placed: list[EntryId] = [EntryId("", "")] * len(entries)
        short: list[tuple[str, list[str], int]] = []  # writes too few replicas acknowledged
        for key, indexes in by_key.items():
            for start in range(0, len(indexes), chunk):
                part = indexes[start:start + chunk]
                ids = await self._admit_and_write(key, [entries[i] for i in part], short)
                for index, entry_id in zip(part, ids, strict=True):
                    placed[index] = EntryId(entry_id, key)
        if short and self._durability is not None:
            # Everything was written (nothing is undone); the caller learns which entries
            # a failover could still lose.
            raise NotDurableError(list(dict.fromkeys(k for k, _, _ in short)),
                                  [i for _, ids, _ in short for i in ids],
                                  min(n for _, _, n in short), self._durability.replicas,
                                  to_ms(self._durability.timeout),
                                  list(placed))
        return placed

    async def _admit_and_write(self, key: str, entries: list[dict[str, str]],
                               short: list[tuple[str, list[str], int]]) -> list[str]:
        """Admit and write one chunk, again while Redis is unreachable or failing over —
        for ``retry_for`` seconds from the first failure, backing off up to
        :data:`RETRY_CAP` — then :class:`PublishUnavailable`. A refusal that waiting does
        not cure (wrong type, no permission, too few replicas) is raised at once."""
        failed_at: float | None = None
        backoff = ReconnectBackoff(initial=0.05, cap=RETRY_CAP)
        while True:
            try:
                await self._admit(key)
                return await self._write(key, entries, short)
            except Exception as exc:
                if isinstance(exc, NotDurableError):
                    raise
                if no_primary_found(exc):  # never redis-py's pool dump: one line
                    wrong = await self._operator.unknown_primary_name()
                    if wrong is not None or is_permanent(exc):
                        raise PublishUnavailable(f"cannot publish to {key!r}: "
                                                 f"{wrong or describe_permanent(exc)}") from exc
                if not is_transient(exc):
                    raise
                if self._retry_for <= 0:
                    raise PublishUnavailable(
                        f"could not publish to {key!r} (publish.retry_for 0s: not retried): "
                        f"{describe_unavailable(exc, self._operator.address)}") from exc
                now = time.monotonic()
                failed_at = now if failed_at is None else failed_at
                left = failed_at + self._retry_for - now
                if left <= 0:
                    raise PublishUnavailable(
                        f"could not publish to {key!r} within {self._retry_for:g}s "
                        f"(publish.retry_for): "
                        f"{describe_unavailable(exc, self._operator.address)}") from exc
                await asyncio.sleep(min(backoff.next_delay(), left))

    async def _write(self, key: str, entries: list[dict[str, str]],
                     short: list[tuple[str, list[str], int]]) -> list[str]:
        await self._ensure_period(key)
        ids = await self._xadd(key, entries, short)
        missing = [i for i, entry_id in enumerate(ids) if entry_id is None]
        if missing:  # the period's stream vanished since it was made (deleted, flushed)
            self._ready.discard(key)
            await self._ensure_period(key)
            again = await self._xadd(key, [entries[i] for i in missing], short)
            for index, entry_id in zip(missing, again, strict=True):
                if entry_id is None:
                    raise MissingStreamError(key)
                ids[index] = entry_id
        return [str(i) for i in ids]

    async def _xadd(self, key: str, entries: list[dict[str, str]],
                    short: list[tuple[str, list[str], int]]) -> list[str | None]:
        """One pipelined XADD of ``entries``; with durability, its WAIT rides along and a
        short count is noted in ``short`` for the publish to raise once all is written."""
        rotated = self._rotation is not None
        durability = self._durability
        if durability is None:
            return await self._operator.xadd_many(key, entries, maxlen=self._max_len,
                                                  nomkstream=rotated)
        ids, acknowledged = await self._operator.xadd_many_durable(
            key, entries, durability.replicas, to_ms(durability.timeout),
            maxlen=self._max_len, nomkstream=rotated)
        if acknowledged < durability.replicas:
            written = [i for i in ids if i is not None]
            if written:
                short.append((key, written, acknowledged))
        return ids

    async def _ensure_period(self, key: str) -> None:
        """Create the period's stream (with the listener's group and the TTL) unless this
        publisher already saw it: one round trip per period, not per publish."""
        if self._rotation is None or key in self._ready:
            return
        await self._operator.create_stream(key, ttl=self._rotation.settings.ttl,
                                           group=self._group, start_id="0")
        if len(self._ready) > 2 * self._partitions:  # past periods' keys: forget them
            self._ready.clear()
        self._ready.add(key)

    async def _admit(self, key: str) -> None:
        """Refuse (or wait) while the stream is over its limits; checked at most every
        ``check_every``, so a burst of publishes costs one XLEN/XINFO, not one each — and
        may overshoot a limit by what it publishes within one ``check_every``."""
        policy = self._backpressure
        if policy is None:
            return
        deadline = time.monotonic() + policy.wait_timeout.total_seconds()
        while await self._over_limit(key, policy):
            if policy.mode == "raise" or time.monotonic() >= deadline:
                raise Backpressure(f"stream {key!r} is over its limit (max_length "
                                   f"{policy.max_length}, max_lag {policy.max_lag})")
            await asyncio.sleep(policy.check_every.total_seconds())

    async def _over_limit(self, key: str, policy: BackpressureSettings) -> bool:
        now = time.monotonic()
        if now - self._checked_at.get(key, -1.0) < policy.check_every.total_seconds():
            return self._full.get(key, False)  # a check in flight: as it was
        if len(self._checked_at) > 2 * self._partitions:  # past periods' keys
            self._checked_at.clear()
            self._full.clear()
        self._checked_at[key] = now
        full = False
        if policy.max_length is not None:
            full = await self._operator.xlen(key) >= policy.max_length
        if not full and policy.max_lag is not None and self._group is not None:
            groups = {g.name: g for g in await self._operator.info_groups(key)}
            lag = groups[self._group].lag if self._group in groups else None
            full = lag is not None and lag >= policy.max_lag
        self._full[key] = full
        return full
