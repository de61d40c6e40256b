"""Every RedisOperator command against a real redis-server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from redis.asyncio import Redis

from streamboot.errors import MissingStreamError, NoGroupError, WrongTypeError
from streamboot.wire.operator import RedisOperator
from streamboot.wire.records import StreamEntry


async def fill(operator: RedisOperator, key: str, n: int) -> list[str]:
    return [await operator.xadd(key, {"n": str(i)}) for i in range(n)]


async def test_create_stream_sets_ttl_atomically(operator: RedisOperator, key: str) -> None:
    assert await operator.create_stream(key, ttl=timedelta(hours=3))
    ttl = await operator.ttl(key)
    assert ttl is not None
    assert timedelta(hours=2, minutes=59) < ttl <= timedelta(hours=3)
    assert await operator.key_type(key) == "stream"
    assert await operator.xlen(key) == 0
    # A second call leaves the existing stream (and its TTL) alone.
    assert not await operator.create_stream(key, ttl=timedelta(seconds=5))
    assert (await operator.ttl(key) or timedelta()) > timedelta(hours=2)


async def test_create_stream_with_group_and_ttl(operator: RedisOperator, key: str) -> None:
    assert await operator.create_stream(key, ttl=timedelta(minutes=5), group="g", start_id="$")
    assert await operator.group_exists(key, "g")
    assert await operator.ttl(key) is not None


async def test_create_stream_without_ttl(operator: RedisOperator, key: str) -> None:
    assert await operator.create_stream(key)
    assert await operator.exists(key)
    assert await operator.ttl(key) is None


async def test_xadd_xrange_xrevrange_read_entry(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 5)
    entries = await operator.xrange(key)
    assert [e.id for e in entries] == ids
    assert entries[0] == StreamEntry(ids[0], {"n": "0"})
    assert [e.id for e in await operator.xrange(key, count=2)] == ids[:2]
    assert [e.id for e in await operator.xrevrange(key, count=2)] == ids[:-3:-1]
    assert await operator.read_entry(key, ids[3]) == StreamEntry(ids[3], {"n": "3"})
    assert await operator.read_entry(key, "1-1") is None


async def test_xadd_trims_with_maxlen_and_minid(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 10)
    await operator.xadd(key, {"n": "x"}, maxlen=3, approximate=False)
    assert await operator.xlen(key) == 3
    await operator.xadd(key, {"n": "y"}, minid=ids[-1], approximate=False)
    assert (await operator.xrange(key))[0].id >= ids[-1]


async def test_xadd_nomkstream_does_not_create(operator: RedisOperator, key: str) -> None:
    with pytest.raises(MissingStreamError):
        await operator.xadd(key, {"a": "b"}, nomkstream=True)
    assert not await operator.exists(key)


async def test_create_group_is_idempotent(operator: RedisOperator, key: str) -> None:
    assert await operator.create_group(key, "g")  # MKSTREAM
    assert not await operator.create_group(key, "g")  # BUSYGROUP means success
    assert await operator.group_exists(key, "g")
    assert not await operator.group_exists(key, "other")
    assert not await operator.group_exists("absent-" + key, "g")


async def test_read_ack_and_pending(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 4)
    await operator.create_group(key, "g", "0")
    got = await operator.xreadgroup(key, "g", "c1", count=3, block=timedelta(milliseconds=10))
    assert [e.id for e in got] == ids[:3]
    summary = await operator.pending_summary(key, "g")
    assert (summary.count, summary.min_id, summary.max_id) == (3, ids[0], ids[2])
    assert summary.consumers == {"c1": 3}
    rows = await operator.pending_range(key, "g", consumer="c1", count=10)
    assert [(r.id, r.consumer, r.deliveries) for r in rows] == [(i, "c1", 1) for i in ids[:3]]
    assert await operator.xack(key, "g", ids[:3]) == 3
    assert (await operator.pending_summary(key, "g")).count == 0
    assert await operator.xack(key, "g", []) == 0


async def test_pending_range_idle_filter(operator: RedisOperator, key: str) -> None:
    await fill(operator, key, 2)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c1", count=2)
    assert await operator.pending_range(key, "g", min_idle=timedelta(hours=1)) == []
    assert len(await operator.pending_range(key, "g", min_idle=timedelta(0))) == 2


async def test_own_pel_reread_with_id_zero(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 3)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c1", count=3)
    again = await operator.xreadgroup(key, "g", "c1", count=10, entry_id="0")
    assert [e.id for e in again] == ids
    assert await operator.xreadgroup(key, "g", "c2", count=10, entry_id="0") == []


async def test_ack_and_read_is_one_pipeline(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 4)
    await operator.create_group(key, "g", "0")
    first = await operator.xreadgroup(key, "g", "c", count=2)
    acked, second = await operator.ack_and_read(
        key, "g", "c", [e.id for e in first], count=5, block=timedelta(milliseconds=10))
    assert acked == 2
    assert [e.id for e in second] == ids[2:]
    assert (await operator.pending_summary(key, "g")).count == 2


async def test_xclaim_moves_ownership(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 2)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "dead", count=2)
    claimed = await operator.xclaim(key, "g", "alive", timedelta(0), ids)
    assert [e.id for e in claimed] == ids
    assert (await operator.pending_summary(key, "g")).consumers == {"alive": 2}
    assert await operator.xclaim(key, "g", "x", timedelta(hours=1), ids) == []


async def test_touch_resets_idle_without_counting_a_delivery(
    operator: RedisOperator, key: str, client: Redis
) -> None:
    ids = await fill(operator, key, 1)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c", count=1)
    assert await operator.touch(key, "g", "c", ids) == ids
    (row,) = await operator.pending_range(key, "g")
    assert row.deliveries == 1
    assert row.consumer == "c"


async def test_xautoclaim_reports_deleted_ids(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 3)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "dead", count=3)
    await operator.xdel(key, [ids[1]])
    result = await operator.xautoclaim(key, "g", "alive", timedelta(0), count=10)
    assert [e.id for e in result.entries] == [ids[0], ids[2]]
    assert result.deleted_ids == [ids[1]]
    assert result.done
    # The deleted id was removed from the PEL by XAUTOCLAIM itself.
    assert (await operator.pending_summary(key, "g")).count == 2


async def test_xautoclaim_cursor_is_bounded(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 5)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "dead", count=5)
    first = await operator.xautoclaim(key, "g", "alive", timedelta(0), count=2)
    assert [e.id for e in first.entries] == ids[:2]
    assert not first.done
    second = await operator.xautoclaim(key, "g", "alive", timedelta(0), first.next_id, count=10)
    assert [e.id for e in second.entries] == ids[2:]


async def test_info_stream_groups_consumers(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 3)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c1", count=1)
    info = await operator.info_stream(key)
    assert (info.length, info.groups, info.last_generated_id) == (3, 1, ids[-1])
    assert info.first_entry is not None
    assert info.first_entry.id == ids[0]
    (group,) = await operator.info_groups(key)
    assert (group.name, group.pending, group.last_delivered_id, group.lag) == ("g", 1, ids[0], 2)
    (consumer,) = await operator.info_consumers(key, "g")
    assert (consumer.name, consumer.pending) == ("c1", 1)


async def test_set_group_id_replays(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 3)
    await operator.create_group(key, "g", "$")
    assert await operator.xreadgroup(key, "g", "c", count=10) == []
    await operator.set_group_id(key, "g", "0")
    assert [e.id for e in await operator.xreadgroup(key, "g", "c", count=10)] == ids


async def test_delete_consumer_returns_its_pending(operator: RedisOperator, key: str) -> None:
    await fill(operator, key, 2)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c", count=2)
    assert await operator.delete_consumer(key, "g", "c") == 2
    assert await operator.info_consumers(key, "g") == []


async def test_xtrim_and_expire(operator: RedisOperator, key: str) -> None:
    ids = await fill(operator, key, 10)
    assert await operator.xtrim(key, maxlen=4, approximate=False) == 6
    assert await operator.xtrim(key, minid=ids[8], approximate=False) == 2
    assert await operator.expire(key, timedelta(seconds=100))
    assert await operator.ttl(key) is not None


async def test_nogroup_is_a_specific_error(operator: RedisOperator, key: str) -> None:
    await fill(operator, key, 1)
    with pytest.raises(NoGroupError) as info:
        await operator.xreadgroup(key, "missing", "c", count=1)
    assert (info.value.stream, info.value.group) == (key, "missing")


async def test_wrongtype_names_the_key(operator: RedisOperator, key: str, client: Redis) -> None:
    await client.set(key, "not a stream")
    with pytest.raises(WrongTypeError, match=key):
        await operator.xadd(key, {"a": "b"})
    with pytest.raises(WrongTypeError):
        await operator.create_group(key, "g")
    assert await operator.key_type(key) == "string"
