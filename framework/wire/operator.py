"""RedisOperator: the one module that sends stream commands.

A port of seed 004's Kotlin ``RedisOperator`` with what it lacked: stream creation and
TTL in one atomic step, XAUTOCLAIM with Redis 7's deleted ids, typed records for every
reply, and specific exceptions for NOGROUP and WRONGTYPE. Every command touches one key,
so each works unchanged on Redis Cluster.

Commands: https://redis.io/docs/latest/commands/?group=stream
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, ResponseError

from ..config.durations import to_ms
from ..errors import MissingStreamError
from . import scripts
from .commands import (
    ack_commands,
    marker_says_handled,
    parse_entries,
    parsed_entries,
    parsed_read_reply,
    read_command,
)
from .decoding import WIRE_ERRORS, from_wire, to_wire
from .leases import LeaseCommands
from .records import (
    AutoClaimResult,
    ConsumerInfo,
    GroupInfo,
    PendingEntry,
    PendingSummary,
    ReclaimStep,
    Renewal,
    StreamEntry,
    StreamInfo,
)
from .redis_errors import host_port, translate_response_error
from .replication import with_wait

RedisClient = Redis | RedisCluster


class RedisOperator:
    """Typed, async access to every stream command the framework and its users need."""

    def __init__(self, client: RedisClient) -> None:
        """``client`` stays the caller's (the DI container closes it): the operator only
        sends stream commands through it, and no other module reaches it through here."""
        self._client = client
        self._create_script = client.register_script(scripts.CREATE_STREAM_WITH_TTL)
        self._claim_if_owner = client.register_script(scripts.CLAIM_IF_OWNER)
        self._dead_letter = client.register_script(scripts.DEAD_LETTER)
        self._delete_idle_consumer = client.register_script(scripts.DELETE_IDLE_CONSUMER)
        self._range = client.register_script(scripts.RANGE)
        self._reclaim_one = client.register_script(scripts.RECLAIM_ONE)
        self._renew_owned = client.register_script(scripts.RENEW_OWNED)
        self._take_token = client.register_script(scripts.TAKE_TOKEN)
        self.said_read_only = False
        """Whether the hint for a read-only replica (redis_errors.READ_ONLY_HINT) was said:
        once per process, whichever listener or job met it first."""

    # -- keys ---------------------------------------------------------------------------
    async def create_stream(
        self,
        key: str,
        ttl: timedelta | None = None,
        group: str | None = None,
        start_id: str = "0",
    ) -> bool:
        """Create ``key`` (and ``group``) with ``ttl`` atomically; False if it already existed."""
        ttl_ms = to_ms(ttl) if ttl else 0
        created = await self._run(key, group or "", self._create_script,
                                  keys=[key], args=[ttl_ms, group or "", start_id])
        return bool(created)

    async def delete(self, key: str) -> bool:
        """DEL one key (a dead-letter stream purged, a test's leftovers)."""
        return bool(await self._client.delete(key))

    async def memory_usage(self, key: str) -> int | None:
        """MEMORY USAGE in bytes; None when the key does not exist."""
        used = await self._client.memory_usage(key)
        return None if used is None else int(used)

    async def exists(self, key: str) -> bool:
        return bool(await self._client.exists(key))

    async def get_text(self, key: str) -> str | None:
        """GET of a small bookkeeping key (a listener's partition count)."""
        value = await self._client.get(key)
        return None if value is None else str(value)

    async def set_text(self, key: str, value: str) -> None:
        await self._client.set(key, value)

    async def key_type(self, key: str) -> str:
        """``stream``, ``none`` (absent) or another type's name."""
        return str(await self._client.type(key))

    async def expire(self, key: str, ttl: timedelta) -> bool:
        return bool(await self._client.pexpire(key, to_ms(ttl)))

    async def ttl(self, key: str) -> timedelta | None:
        """Remaining time to live; None when the key has none or does not exist."""
        ms = int(await self._client.pttl(key))
        return timedelta(milliseconds=ms) if ms >= 0 else None

    # -- entries ------------------------------------------------------------------------
    async def xadd(
        self,
        key: str,
        fields: Mapping[str, str | int | float | bytes],
        *,
        entry_id: str = "*",
        maxlen: int | None = None,
        minid: str | None = None,
        approximate: bool = True,
        nomkstream: bool = False,
    ) -> str:
        """Append an entry; ``maxlen``/``minid`` trim in the same command (``~`` by default).

        With ``nomkstream`` a missing stream is not created: that raises
        :class:`MissingStreamError` — nothing was written, and no placeholder id is returned.
        """
        reply = await self._run(
            key, "", self._client.xadd, key, dict(fields), id=entry_id, maxlen=maxlen,
            minid=minid, approximate=approximate, nomkstream=nomkstream,
        )
        if reply is None:
            raise MissingStreamError(key)
        return str(reply)

    async def xadd_many(
        self,
        key: str,
        entries: Sequence[Mapping[str, str]],
        *,
        maxlen: int | None = None,
        nomkstream: bool = False,
    ) -> list[str | None]:
        """XADD every entry in one pipelined round trip, in order. None where NOMKSTREAM
        found no stream (that entry was not written)."""
        pipe = self._client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(key, dict(fields), maxlen=maxlen,  # type: ignore[arg-type]
                      approximate=True, nomkstream=nomkstream)
        try:
            replies = await pipe.execute()
        except ResponseError as exc:
            raise translate_response_error(exc, key) from exc
        return [None if r is None else str(r) for r in replies]

    async def xadd_many_durable(
        self,
        key: str,
        entries: Sequence[Mapping[str, str]],
        replicas: int,
        timeout_ms: int,
        *,
        maxlen: int | None = None,
        nomkstream: bool = False,
    ) -> tuple[list[str | None], int]:
        """:meth:`xadd_many` followed by ``WAIT replicas timeout_ms`` in the same pipeline:
        one round trip, one connection (WAIT counts the writes of its own connection). On
        a Cluster the WAIT goes to the key's node in that node's part of the pipeline.
        Returns the ids and how many replicas acknowledged them (0 when the key's slot
        moved during the call: the WAIT then ran where the entries were not written)."""
        def queue(pipe: Any) -> None:
            for fields in entries:
                pipe.xadd(key, dict(fields), maxlen=maxlen, approximate=True,
                          nomkstream=nomkstream)

        try:
            replies, acknowledged = await with_wait(self._client, key, replicas, timeout_ms,
                                                    queue)
        except ResponseError as exc:
            raise translate_response_error(exc, key) from exc
        return [None if r is None else str(r) for r in replies], acknowledged

    async def xadd_pairs(self, key: str, pairs: Sequence[str]) -> str:
        """XADD a flat ``[name, value, …]`` list exactly as given: repeated names kept,
        escaped raw bytes sent as the bytes they came from (decoding.py)."""
        reply = await self._run(key, "", self._client.execute_command,
                                "XADD", key, "*", *(to_wire(p) for p in pairs))
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    async def xlen(self, key: str) -> int:
        return int(await self._run(key, "", self._client.xlen, key))

    async def xrange(
        self, key: str, start: str = "-", end: str = "+", count: int | None = None
    ) -> list[StreamEntry]:
        return parsed_entries(await self._run(key, "", self._client.xrange, key, start, end, count))

    async def xrevrange(
        self, key: str, end: str = "+", start: str = "-", count: int | None = None
    ) -> list[StreamEntry]:
        return parsed_entries(await self._run(key, "", self._client.xrevrange, key, end, start,
                                              count))

    async def read_entry(self, key: str, entry_id: str) -> StreamEntry | None:
        """The entry with exactly this id, or None if it was deleted or trimmed."""
        found = await self.xrange(key, entry_id, entry_id, count=1)
        return found[0] if found else None

    async def xdel(self, key: str, ids: Sequence[str]) -> int:
        return int(await self._run(key, "", self._client.xdel, key, *ids)) if ids else 0

    async def xtrim(
        self,
        key: str,
        *,
        maxlen: int | None = None,
        minid: str | None = None,
        approximate: bool = True,
        limit: int | None = None,
    ) -> int:
        """Trim by length or by minimum id; returns how many entries were removed."""
        return int(
            await self._run(
                key, "", self._client.xtrim, key, maxlen=maxlen, minid=minid,
                approximate=approximate, limit=limit if approximate else None,
            )
        )

    # -- groups -------------------------------------------------------------------------
    async def create_group(
        self, key: str, group: str, start_id: str = "0", *, mkstream: bool = True
    ) -> bool:
        """Create the group (and the stream with MKSTREAM). False when it already existed."""
        try:
            await self._client.xgroup_create(key, group, id=start_id, mkstream=mkstream)
        except ResponseError as exc:
            if str(exc).startswith("BUSYGROUP"):
                return False
            raise translate_response_error(exc, key, group) from exc
        return True

    async def group_exists(self, key: str, group: str) -> bool:
        return any(g.name == group for g in await self.info_groups(key))

    async def set_group_id(
        self, key: str, group: str, entry_id: str, entries_read: int | None = None
    ) -> None:
        """XGROUP SETID: move the group's last-delivered id (replay or skip)."""
        await self._run(key, group, self._client.xgroup_setid, key, group, entry_id,
                        entries_read=entries_read)

    async def delete_consumer(self, key: str, group: str, consumer: str) -> int:
        """XGROUP DELCONSUMER; returns how many pending entries the consumer still had."""
        return int(await self._run(key, group, self._client.xgroup_delconsumer, key, group,
                                   consumer))

    async def delete_idle_consumer(self, key: str, group: str, consumer: str,
                                   min_idle: timedelta) -> bool:
        """DELCONSUMER only if it holds nothing pending and idled ``min_idle``, atomically."""
        return bool(await self._run(key, group, self._delete_idle_consumer, keys=[key],
                                    args=[group, consumer, to_ms(min_idle)]))

    async def take_token(self, key: str, rate: float, burst: float) -> float:
        """Take a token of the shared bucket ``key`` (a rate limit): 0.0 when taken, else
        the seconds until one is there."""
        reply = await self._take_token(keys=[key], args=[repr(rate), repr(burst)])
        return float(reply.decode() if isinstance(reply, bytes) else reply)

    async def destroy_group(self, key: str, group: str) -> bool:
        return bool(await self._run(key, group, self._client.xgroup_destroy, key, group))

    # -- consuming ----------------------------------------------------------------------
    async def xreadgroup(
        self,
        key: str,
        group: str,
        consumer: str,
        *,
        count: int | None = None,
        block: timedelta | None = None,
        entry_id: str = ">",
    ) -> list[StreamEntry]:
        """One XREADGROUP on one stream. ``entry_id='0'`` re-reads this consumer's PEL."""
        reply = await self._run(key, group, self._client.execute_command,
                                *read_command(key, group, consumer, count=count,
                                              block=block, entry_id=entry_id))
        return parsed_read_reply(reply)

    async def ack_and_read(
        self,
        key: str,
        group: str,
        consumer: str,
        ack_ids: Sequence[str],
        *,
        count: int,
        block: timedelta,
        entry_id: str = ">",
        markers: Sequence[str] = (),
        marker_ttl: timedelta | None = None,
    ) -> tuple[int, list[StreamEntry]]:
        """XACK the finished batch and XREADGROUP the next one in a single round trip.

        ``markers`` (idempotency keys of the acked entries) are SET NX in the same pipeline,
        before the XACK, so an entry is never acked without its marker.
        """
        if not ack_ids and not markers:
            return 0, await self.xreadgroup(key, group, consumer, count=count, block=block,
                                            entry_id=entry_id)
        pipe = self._client.pipeline(transaction=False)
        for command in (*ack_commands(key, group, ack_ids, markers, marker_ttl),
                        read_command(key, group, consumer, count=count, block=block,
                                     entry_id=entry_id)):
            pipe.execute_command(*command)
        try:
            replies = await pipe.execute()
        except ResponseError as exc:
            raise translate_response_error(exc, key, group) from exc
        acked = int(replies[-2]) if ack_ids else 0
        return acked, parsed_read_reply(replies[-1])

    async def ack(
        self,
        key: str,
        group: str,
        ids: Sequence[str],
        markers: Sequence[str] = (),
        marker_ttl: timedelta | None = None,
    ) -> int:
        """XACK many ids (with their idempotency markers) in one round trip."""
        if not ids and not markers:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for command in ack_commands(key, group, ids, markers, marker_ttl):
            pipe.execute_command(*command)
        try:
            replies = await pipe.execute()
        except ResponseError as exc:
            raise translate_response_error(exc, key, group) from exc
        return int(replies[-1]) if ids else 0

    @property
    def standalone(self) -> bool:
        """A single server (not Redis Cluster): a read may have a connection of its own,
        and one XREADGROUP may span streams."""
        return isinstance(self._client, Redis)

    async def dedicated_connection(self) -> tuple[Any, int]:
        """A connection of its own, outside the client's pool (same settings), decoding
        with ``surrogateescape``; and its CLIENT ID, for :meth:`unblock`. Standalone only:
        the poll loop's reader and the shared idle read block on one for ``poll_timeout``,
        which would otherwise hold a pooled connection."""
        assert isinstance(self._client, Redis), "standalone servers only"
        pool = self._client.connection_pool
        kwargs = {**pool.connection_kwargs, "decode_responses": True,
                  "encoding_errors": WIRE_ERRORS}
        conn = pool.connection_class(**kwargs)
        try:
            await conn.connect()
            await conn.send_command("CLIENT", "ID")
            client_id = int(await conn.read_response())
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        return conn, client_id

    async def unblock(self, client_id: int) -> None:
        """CLIENT UNBLOCK (timeout mode): a read blocked on that connection returns nil at
        once, as if its BLOCK had expired."""
        await self._client.execute_command("CLIENT", "UNBLOCK", client_id)

    async def xack(self, key: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge many ids in one XACK."""
        if not ids:
            return 0
        return int(await self._run(key, group, self._client.xack, key, group, *ids))

    async def markers_handled(self, keys: Sequence[str],
                              entry_ids: Sequence[str]) -> list[bool]:
        """Whether each idempotency marker says "handled" for the entry beside it
        (commands.marker_says_handled; an IdempotentScript's "2" is applied, not
        handled), in one round trip (keys may live on different cluster nodes)."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for k in keys:
            pipe.get(k)
        return [marker_says_handled(v, i)
                for v, i in zip(await pipe.execute(), entry_ids, strict=True)]

    # -- pending ------------------------------------------------------------------------
    async def pending_summary(self, key: str, group: str) -> PendingSummary:
        reply = await self._run(key, group, self._client.xpending, key, group)
        return PendingSummary(
            count=int(reply["pending"]),
            min_id=reply["min"],
            max_id=reply["max"],
            consumers={c["name"]: int(c["pending"]) for c in reply["consumers"]},
        )

    async def pending_range(
        self,
        key: str,
        group: str,
        *,
        consumer: str | None = None,
        min_idle: timedelta | None = None,
        start: str = "-",
        end: str = "+",
        count: int = 100,
    ) -> list[PendingEntry]:
        """PEL rows of the group or one consumer, oldest first, bounded by ``count``."""
        reply = await self._run(
            key, group, self._client.xpending_range, key, group, start, end, count,
            consumername=consumer, idle=to_ms(min_idle) if min_idle else None,
        )
        return [
            PendingEntry(
                id=row["message_id"],
                consumer=row["consumer"],
                idle_ms=int(row["time_since_delivered"]),
                deliveries=int(row["times_delivered"]),
            )
            for row in reply
        ]

    async def xclaim(
        self, key: str, group: str, consumer: str, min_idle: timedelta, ids: Sequence[str]
    ) -> list[StreamEntry]:
        """Take over ``ids`` idle for at least ``min_idle``; returns the entries claimed."""
        if not ids:
            return []
        reply = await self._run(key, group, self._client.xclaim, key, group, consumer,
                                to_ms(min_idle), list(ids))
        return [e for e in parsed_entries(reply) if e.id is not None]

    async def touch(self, key: str, group: str, consumer: str, ids: Sequence[str]) -> list[str]:
        """XCLAIM … JUSTID by the owner itself: resets idle time without a delivery count."""
        if not ids:
            return []
        reply = await self._run(key, group, self._client.xclaim, key, group, consumer, 0,
                                list(ids), justid=True)
        return [str(i) for i in reply]

    async def xautoclaim(
        self,
        key: str,
        group: str,
        consumer: str,
        min_idle: timedelta,
        start_id: str = "0-0",
        count: int = 100,
    ) -> AutoClaimResult:
        """One bounded XAUTOCLAIM step; continue with ``result.next_id`` until ``done``."""
        reply = await self._run(key, group, self._client.xautoclaim, key, group, consumer,
                                to_ms(min_idle), start_id=start_id, count=count)
        deleted = [str(i) for i in reply[2]] if len(reply) > 2 else []
        return AutoClaimResult(str(reply[0]), parsed_entries(reply[1]), deleted)

    async def claim_all_pending(self, key: str, group: str, consumer: str) -> int:
        """Every pending entry of the group, whoever holds it, claimed to ``consumer``
        (XAUTOCLAIM … 0 JUSTID, 1,000 per step): a partition's new owner takes over
        what its previous owner left, before it reads anything new. Returns how many.
        A script, since redis-py's JUSTID reply drops the cursor."""
        cursor, claimed = "0-0", 0
        while True:
            reply = await self._run(key, group, self._claim_all, keys=[key],
                                    args=[group, consumer, cursor, 1000])
            cursor, claimed = str(reply[0]), claimed + int(reply[1])
            if cursor == "0-0":
                return claimed

    @functools.cached_property
    def _claim_all(self) -> Any:
        return self._client.register_script(scripts.CLAIM_ALL_PENDING)

    @functools.cached_property
    def leases(self) -> LeaseCommands:
        """The partition lease and membership scripts (leases.py)."""
        return LeaseCommands(self._client)

    async def reclaim_one(self, key: str, group: str, consumer: str, min_idle: timedelta,
                          start_id: str = "0-0", steps: int = 100) -> ReclaimStep:
        """XAUTOCLAIM at most one entry idle for ``min_idle`` (scanning up to ``steps`` × 10
        PEL rows), with its delivery count, in one round trip. Binary-safe: the entry keeps
        its exact fields (``StreamEntry.raw``)."""
        cursor, row, deleted, deliveries = await self._eval_exact(
            key, group, self._reclaim_one, [key], [group, consumer, to_ms(min_idle), start_id,
                                                   steps])
        entry = parse_entries([row])[0] if row else None
        return ReclaimStep(str(cursor), entry, int(deliveries), [str(i) for i in deleted])

    async def delivery_counts(self, key: str, group: str, ids: Sequence[str]) -> dict[str, int]:
        """How often each pending id was delivered (absent: no longer pending)."""
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(key, group, entry_id, entry_id, 1)
        try:
            replies = await pipe.execute()
        except ResponseError as exc:
            raise translate_response_error(exc, key, group) from exc
        return {rows[0]["message_id"]: int(rows[0]["times_delivered"])
                for rows in replies if rows}

    async def claim_owned(
        self, key: str, group: str, consumer: str, ids: Sequence[str], *, count_delivery: bool
    ) -> Renewal:
        """XCLAIM the ids this consumer still owns (resetting their idle time); says which
        were claimed, and which were taken over or deleted meanwhile.

        ``count_delivery`` also increments their delivery counter, as a retry should.
        """
        if not ids:
            return Renewal([], [], [], 0)
        reply = await self._run(key, group, self._claim_if_owner, keys=[key],
                                args=[group, consumer, "0" if count_delivery else "1", *ids])
        return Renewal.from_reply(reply)

    async def renew_owned(self, key: str, group: str, consumer: str, ids: Sequence[str],
                          *, after: str = "", ahead: int = 0) -> Renewal:
        """Reset the idle time of the ``ids`` this consumer still owns, and of up to
        ``ahead`` of its pending entries above ``after`` (delivered, not yet received);
        say which of the others were taken over or deleted. Changes nothing it does not
        own: a plain XCLAIM would take an entry back from the consumer that reclaimed it."""
        reply = await self._run(key, group, self._renew_owned, keys=[key],
                                args=[group, consumer, after, ahead, *ids])
        return Renewal.from_reply(reply)

    async def dead_letter(
        self, key: str, dead_letter_key: str, group: str, consumer: str, entry_id: str,
        pairs: Sequence[str],
    ) -> str | None:
        """XADD ``pairs`` (``[name, value, …]``) to the dead-letter stream and XACK
        ``entry_id``, atomically. Binary-safe: escaped raw bytes are written as they came.

        None when this consumer no longer owns the entry (another consumer took it over or
        acked it): then nothing is written, so no entry is dead-lettered twice.
        """
        reply = await self._eval_exact(key, group, self._dead_letter,
                                       [key, dead_letter_key], [group, consumer, entry_id,
                                                                *pairs])
        return None if reply is None else str(reply)

    async def xrange_exact(self, key: str, start: str = "-", end: str = "+",
                           count: int = 100) -> list[StreamEntry]:
        """XRANGE whose entries keep their exact field lists (``StreamEntry.raw``): repeated
        names and non-UTF-8 bytes survive, whatever the client's decoding settings."""
        return parse_entries(await self._eval_exact(key, "", self._range, [key],
                                                    [start, end, count]))

    # -- introspection ------------------------------------------------------------------
    async def info_stream(self, key: str) -> StreamInfo:
        return StreamInfo.from_reply(await self._run(key, "", self._client.xinfo_stream, key))

    async def info_groups(self, key: str) -> list[GroupInfo]:
        """Groups of the stream; empty when the stream does not exist."""
        try:
            rows = await self._run(key, "", self._client.xinfo_groups, key)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return []
            raise
        return [GroupInfo.from_reply(r) for r in rows]

    async def info_consumers(self, key: str, group: str) -> list[ConsumerInfo]:
        rows = await self._run(key, group, self._client.xinfo_consumers, key, group)
        return [ConsumerInfo.from_reply(r) for r in rows]

    @property
    def follows_failover(self) -> bool:
        """The primary is found through Sentinel: a reconnect asks where it is now."""
        return hasattr(getattr(self._client, "connection_pool", None), "sentinel_manager")

    @property
    def reconnect_cap(self) -> float:
        """The longest wait between reconnects of a loop that must not exit. Through
        Sentinel a retry is one question to a Sentinel and a connect, and the primary may
        be back (promoted) at any moment: 1 s, so a loop resumes within about 1 s of a
        failover. Otherwise 10 s: a server that is down is asked less often."""
        return 1.0 if self.follows_failover else 10.0

    async def unknown_primary_name(self) -> str | None:
        """With Sentinel: when the Sentinels that answer monitor no primary by the
        configured name, the one line that says so (no retry heals a wrong name); else
        None (not Sentinel, none answered, or the name is known: a failover under way)."""
        pool = getattr(self._client, "connection_pool", None)
        manager, service = (getattr(pool, "sentinel_manager", None),
                            getattr(pool, "service_name", None))
        if manager is None or service is None:
            return None
        for sentinel in manager.sentinels:
            try:
                masters = await sentinel.sentinel_masters()
            except Exception:  # this one is down: ask the next
                continue
            if service in masters:
                return None
            nodes = ", ".join(host_port(str(s.connection_pool.connection_kwargs.get("host")),
                                        s.connection_pool.connection_kwargs.get("port"))
                              for s in manager.sentinels)
            return (f"the Sentinels at {nodes} monitor no primary named {service!r} "
                    f"(they monitor: {', '.join(sorted(masters)) or 'none'}); check "
                    "redis.sentinel.master")
        return None

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def server_version(self) -> str:
        """``redis_version`` from INFO server (of one node, on Cluster)."""
        info = await self._client.info("server")
        if isinstance(self._client, RedisCluster):  # {node: info}
            info = next(iter(info.values())) if info and "redis_version" not in info else info
        return str(info.get("redis_version", ""))

    @property
    def address(self) -> str:
        """Where this operator's Redis is, for messages: ``host:port``, a socket path, or
        the first cluster node. Never the password."""
        if isinstance(self._client, RedisCluster):
            nodes = self._client.nodes_manager.startup_nodes
            first = next(iter(nodes), "?")
            return f"{first} (cluster)"
        pool = self._client.connection_pool
        service = getattr(pool, "service_name", None)
        if service is not None:  # found through Sentinel: the primary it found last
            found = getattr(pool, "master_address", None)
            where = f"{host_port(*found)}, " if found else ""
            return f"{where}primary of {service!r} by Sentinel"
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return str(kwargs["path"])
        return host_port(str(kwargs.get("host", "?")), kwargs.get("port", 6379))

    # -- plumbing -----------------------------------------------------------------------
    async def _eval_exact(self, key: str, group: str, script: Any, keys: Sequence[str],
                          args: Sequence[str | int]) -> Any:
        """Run a registered script with its arguments sent as bytes and its reply read
        undecoded, then decoded as the listener's connections decode (decoding.py)."""
        wire = [to_wire(k) for k in keys] + [a if isinstance(a, int) else to_wire(a)
                                             for a in args]
        try:
            try:
                reply = await self._client.execute_command(
                    "EVALSHA", script.sha, len(keys), *wire, **{NEVER_DECODE: True})
            except NoScriptError:
                reply = await self._client.execute_command(
                    "EVAL", script.script, len(keys), *wire, **{NEVER_DECODE: True})
        except ResponseError as exc:
            raise translate_response_error(exc, key, group) from exc
        return from_wire(reply)

    async def _run(self, key: str, group: str, command: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await command(*args, **kwargs)
        except ResponseError as exc:
            raise translate_response_error(exc, key, group) from exc
