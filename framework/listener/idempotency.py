"""Idempotency by business key: an entry whose key this group already handled is skipped.

The framework sets the marker (``SET … "1 <entry id>" PX ttl``) in the same pipeline as
the XACK, only after the handler succeeded. For effects inside Redis,
:class:`IdempotentScript` makes the effect and the marker one atomic step, so a crash
between them cannot apply it twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.durations import to_ms
from ..config.models import IdempotencySettings
from ..errors import NoMarkerError, NotDurableError
from ..message import Message
from ..wire.decoding import is_text
from ..wire.operator import RedisClient
from ..wire.records import StreamEntry
from ..wire.replication import with_wait
from ..wire.scripts import idempotent_script


def marker_key(prefix: str, group: str, value: str) -> str:
    """``<prefix>:<group>:{<value>}``: per group (fan-out groups each handle the entry once)
    and hash-tagged by the business key, so a handler's own keys tagged ``{<value>}`` share
    the marker's cluster slot."""
    return f"{prefix}:{group}:{{{value}}}"


def business_key(fields: dict[str, str], key: str, json_field: str | None) -> str | None:
    """The business key of an entry, read from its raw fields (or its JSON payload)."""
    value = fields.get(key)
    if value is not None:
        return value
    if json_field is not None and json_field in fields:
        try:
            found = json.loads(fields[json_field]).get(key)
        except (ValueError, AttributeError):
            return None
        return None if found is None else str(found)
    return None


class Idempotency:
    """Marker names and TTL for one listener."""

    def __init__(self, settings: IdempotencySettings, group: str, json_field: str | None):
        self.settings = settings
        self.group = group
        self.json_field = json_field
        self.ttl = settings.ttl

    def marker_for(self, fields: dict[str, str]) -> str | None:
        """None when the entry has no usable key (absent, or not UTF-8: such an entry is
        dead-lettered, and a key made of escaped bytes must not reach the server)."""
        value = business_key(fields, self.settings.key, self.json_field)
        if value is None or not is_text(value):
            return None
        return marker_key(self.settings.prefix, self.group, value)


@dataclass(frozen=True, slots=True)
class Sorted:
    """A batch sorted by what its idempotency markers say (stream order kept in each)."""

    todo: list[StreamEntry]
    """To handle: no key, or a key not handled yet (the first of its key in the batch)."""
    done: list[str]
    """Ids whose key this group handled already: acked, not handled."""
    later: list[StreamEntry]
    """A second entry of a key in the batch: it waits until the first has an outcome."""


def sort_batch(entries: Sequence[StreamEntry], markers: Sequence[str | None],
               found: Iterable[bool], unconfirmed: set[str],
               in_hand: Mapping[str, str] | None = None) -> Sorted:
    """``markers``: each entry's marker (None: no key); ``found``: EXISTS of each marker
    that is not None, in order; ``unconfirmed``: markers set by successes whose SET is
    still on its way (they count as set); ``in_hand``: marker → the id of the entry of
    that key being handled here (queued, running, waiting for its retry): another entry
    of the key waits for its outcome, the entry itself (a retry) does not."""
    exists = iter(found)
    todo: list[StreamEntry] = []
    done: list[str] = []
    later: list[StreamEntry] = []
    first: dict[str, str] = dict(in_hand or {})
    for entry, marker in zip(entries, markers, strict=True):
        if marker is None:
            todo.append(entry)
        elif next(exists) or marker in unconfirmed:
            done.append(entry.id)
        elif marker in first and first[marker] != entry.id:
            later.append(entry)
        else:
            first[marker] = entry.id
            todo.append(entry)
    return Sorted(todo, done, later)


class IdempotentScript:
    """A Lua script that runs only if the message's marker was not set, and sets it once
    the body has returned. A body that fails (a Redis error) leaves no marker, so the
    retry runs it again — Redis keeps what a script wrote before its error, so a body
    should make its checks before its first write.

    The body sees its own ``KEYS``/``ARGV`` from 1; the marker is handled around it::

        body = "return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)"
        add_to_ledger = IdempotentScript(client, body)
        result = await add_to_ledger(message, keys=["{o-1}:ledger"], args=["total"])
        # None: this order was already applied, nothing ran
    """

    def __init__(self, client: RedisClient, body: str) -> None:
        self._client = client
        self._script = client.register_script(idempotent_script(body))
        self._durable = idempotent_script(body, durable=True)
        """Sent as EVAL beside its WAIT: a pipeline of any client (a Cluster's too) takes
        it, where EVALSHA would need the script loaded on that node first."""

    async def __call__(
        self, message: Message[Any], keys: Sequence[str] = (), args: Sequence[Any] = ()
    ) -> Any:
        if message.marker is None:
            raise NoMarkerError(
                f"entry {message.id} has no idempotency marker: configure "
                "listeners.<name>.idempotency and make sure the entry carries the key field"
            )
        marker, ttl = message.marker
        durability = message.durability
        if durability is None:
            result = await self._script(keys=[marker, *keys],
                                        args=[to_ms(ttl), message.id, *args])
            return None if result is None else result
        # Effect, marker and WAIT in one round trip on one connection: the entry is acked
        # only once enough replicas have them (else this raises and it is retried).
        timeout_ms = to_ms(durability.timeout)
        reply, acknowledged = await with_wait(
            self._client, marker, durability.replicas, timeout_ms,
            lambda pipe: pipe.execute_command("EVAL", self._durable, 1 + len(keys), marker,
                                              *keys, to_ms(ttl), message.id, *args))
        if acknowledged < durability.replicas:
            raise NotDurableError([marker], [message.id], acknowledged, durability.replicas,
                                  timeout_ms, setting="idempotency.durability",
                                  what=f"the effect and marker of entry {message.id}")
        return None if reply[0] is None else reply[0]
