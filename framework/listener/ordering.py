"""Per-key order within one subscription (``ordering_key``).

Entries with the same key are never handled at the same time, and run in the order they
were read; entries of different keys run in parallel as before. The first entry of a key
*holds* it until it is settled here — handled, dead-lettered, left to recovery, or found
taken over — and a failed entry waiting for its retry keeps holding it, so a retry never
lets a later entry of its key overtake it. Later entries of a held key wait here, in
order, and the settled holder hands the key to the next one.

Waiting entries are in hand (read, renewed by the ownership keeper), so their number is
bounded: past ``limit`` the poll loop stops reading until the keys move (``room``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

from ..wire.records import StreamEntry
from .idempotency import business_key

J = TypeVar("J")


class KeyOrder(Generic[J]):
    def __init__(self, field: str, json_field: str | None, limit: int) -> None:
        self._field = field
        self._json_field = json_field
        self._limit = limit
        self._holder: dict[str, str] = {}
        """key → the id of the entry holding it (running, or waiting for its retry)."""
        self._key_of: dict[str, str] = {}
        self._waiting: dict[str, deque[tuple[str, J]]] = {}
        self.waiting = 0
        self.room = asyncio.Event()
        """Set while no more than ``limit`` entries wait: the poll loop may read."""
        self.room.set()

    def admit(self, entry: StreamEntry, job: J) -> bool:
        """True: run it now. False: it waits behind the holder of its key (and is handed
        back by :meth:`settled`). An entry without the key field is not ordered."""
        key = business_key(entry.fields, self._field, self._json_field)
        if key is None:
            return True
        holder = self._holder.get(key)
        if holder is None:
            self._holder[key] = entry.id
            self._key_of[entry.id] = key
            return True
        if holder == entry.id:  # the holder itself again: its retry
            return True
        self._waiting.setdefault(key, deque()).append((entry.id, job))
        self.waiting += 1
        if self.waiting > self._limit:
            self.room.clear()
        return False

    def settled(self, entry_id: str) -> J | None:
        """``entry_id`` has nothing left to do here: its key goes to the next entry waiting
        for it, which is returned to be run now (None when none waits)."""
        key = self._key_of.pop(entry_id, None)
        if key is None:
            return None
        queue = self._waiting.get(key)
        if not queue:
            del self._holder[key]
            return None
        next_id, job = queue.popleft()
        if not queue:
            del self._waiting[key]
        self.waiting -= 1
        self._holder[key] = next_id
        self._key_of[next_id] = key
        if self.waiting <= self._limit:
            self.room.set()
        return job

    def nudge(self) -> None:
        """Wake a poll loop waiting for room (a retry fell due: it must run to free its
        key)."""
        self.room.set()

    @property
    def backlogged(self) -> bool:
        return self.waiting > self._limit

    def drop(self) -> list[J]:
        """At stop or hand-over: every waiting job (their entries stay pending). The
        holders keep their keys until they settle: an entry admitted while its key's
        holder still runs must wait, never run beside it (a hand-over lets the running
        handlers finish — two of one key at once there broke the order across members)."""
        jobs = [job for queue in self._waiting.values() for _, job in queue]
        self._waiting.clear()
        self.waiting = 0
        self.room.set()
        return jobs
