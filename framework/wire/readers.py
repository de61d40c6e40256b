"""GroupReader: one subscription's XACK + XREADGROUP round trips, split into send/receive.

The poll loop sends the acknowledgement of the handled batch and the read of the next
one, handles the batch it holds while Redis works, then receives. On a standalone server
this runs on a connection of its own (a blocking XREADGROUP holds its connection anyway,
as in Spring's StreamMessageListenerContainer), written and read directly: no task, no
pool round trip and no extra event-loop turns per batch. On Redis Cluster the same
commands go through a pooled pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from redis.exceptions import ResponseError

from .commands import ack_commands, parse_read_reply, read_command
from .records import StreamEntry
from .redis_errors import translate_response_error

if TYPE_CHECKING:
    from .operator import RedisOperator


def group_reader(operator: RedisOperator, stream: str, group: str,
                 consumer: str) -> GroupReader:
    """The poll loop's split XACK + XREADGROUP round trip: a connection of its own on a
    standalone server, a pooled pipeline on Redis Cluster (chosen once, at start)."""
    if operator.standalone:
        return ConnectionGroupReader(operator, stream, group, consumer)
    return PipelineGroupReader(operator, stream, group, consumer)


@dataclass(frozen=True, slots=True)
class ReadResult:
    """What one round trip brought back. ``ack_error`` is set when the acknowledgement part
    (XACK, markers) was refused while the read itself succeeded: the entries are valid and
    must be handled; only the acks have to be sent again."""

    acked: int
    entries: list[StreamEntry]
    ack_error: Exception | None = None


class GroupReader(Protocol):
    interruptible: bool
    """Whether ``interrupt`` really ends a blocked read (else it ends with its BLOCK)."""

    async def send(self, ack_ids: Sequence[str], markers: Sequence[str],
                   marker_ttl: timedelta | None, *, count: int, block: timedelta,
                   entry_id: str) -> None: ...

    async def receive(self) -> ReadResult: ...

    async def close(self) -> None: ...

    async def interrupt(self) -> None:
        """End a read blocked on an empty stream now (it returns no entries)."""


class ConnectionGroupReader:
    """Standalone Redis: a dedicated connection, commands written and replies read in turn.

    The connection is the reader's own, made from the client's settings but outside its
    pool: a read blocked for ``poll_timeout`` would otherwise hold a pooled connection, and
    with more listeners than ``max_connections`` the rest would never read. It always
    decodes with ``surrogateescape`` (see decoding.py), whatever the client does, so one
    entry with non-UTF-8 bytes cannot fail the read of its whole batch.
    """

    interruptible = True

    def __init__(self, operator: RedisOperator, stream: str, group: str,
                 consumer: str) -> None:
        self._operator = operator
        self._stream, self._group, self._consumer = stream, group, consumer
        self._conn: Any = None
        self._client_id: int | None = None
        self._expected = 0  # replies owed by the server for the last send
        self._acking = False

    async def _connect(self) -> Any:
        conn, self._client_id = await self._operator.dedicated_connection()
        return conn

    async def send(self, ack_ids: Sequence[str], markers: Sequence[str],
                   marker_ttl: timedelta | None, *, count: int, block: timedelta,
                   entry_id: str) -> None:
        if self._conn is None:
            self._conn = await self._connect()
        commands = ack_commands(self._stream, self._group, ack_ids, markers, marker_ttl)
        self._acking = bool(ack_ids)
        commands.append(read_command(self._stream, self._group, self._consumer, count=count,
                                     block=block, entry_id=entry_id))
        try:
            await self._conn.send_packed_command(self._conn.pack_commands(commands))
        except BaseException:
            await self._drop()
            raise
        self._expected = len(commands)

    async def receive(self) -> ReadResult:
        replies: list[Any] = []
        errors: list[ResponseError | None] = []
        try:
            for _ in range(self._expected):
                try:
                    replies.append(await self._conn.read_response())
                    errors.append(None)
                except ResponseError as exc:  # a whole error reply: the stream stays in sync
                    replies.append(None)
                    errors.append(exc)
        except BaseException:  # connection lost or cancelled mid-reply: start afresh
            await self._drop()
            raise
        finally:
            self._expected = 0
        if errors and errors[-1] is not None:  # the read itself failed
            raise translate_response_error(errors[-1], self._stream, self._group) from errors[-1]
        ack_error = next((e for e in errors[:-1] if e is not None), None)
        acked = int(replies[-2]) if self._acking and errors[-2] is None else 0
        return ReadResult(acked, parse_read_reply(replies[-1]),
                          None if ack_error is None
                          else translate_response_error(ack_error, self._stream, self._group))

    async def interrupt(self) -> None:
        """CLIENT UNBLOCK (timeout mode): the blocked XREADGROUP returns nil at once, as if
        its BLOCK had expired, so a stop need not wait for poll_timeout."""
        if self._expected and self._client_id is not None:
            await self._operator.unblock(self._client_id)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._client_id = None
        self._expected = 0
        if conn is not None:
            await conn.disconnect(nowait=True)

    async def close(self) -> None:
        await self._drop()


class PipelineGroupReader:
    """Redis Cluster (or any client): the same round trip through a pooled pipeline."""

    interruptible = False

    def __init__(self, operator: RedisOperator, stream: str, group: str,
                 consumer: str) -> None:
        self._operator = operator
        self._stream, self._group, self._consumer = stream, group, consumer
        self._task: asyncio.Future[tuple[int, list[StreamEntry]]] | None = None

    async def send(self, ack_ids: Sequence[str], markers: Sequence[str],
                   marker_ttl: timedelta | None, *, count: int, block: timedelta,
                   entry_id: str) -> None:
        self._task = asyncio.ensure_future(self._operator.ack_and_read(
            self._stream, self._group, self._consumer, ack_ids, count=count, block=block,
            entry_id=entry_id, markers=markers, marker_ttl=marker_ttl))
        await asyncio.sleep(0)  # let the request leave before the caller gets busy

    async def receive(self) -> ReadResult:
        assert self._task is not None
        task, self._task = self._task, None
        acked, entries = await task
        return ReadResult(acked, entries)

    async def interrupt(self) -> None:
        """Cluster: the pooled read cannot be told apart from others; let BLOCK expire."""

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
