"""Helpers shared by the listener and reliability tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import redis

from streamboot import RedisOperator, StreamHandler
from streamboot.listener.container import ListenerContainer
from streamboot.listener.spec import ListenerSpec
from streamboot.wire.hash_slots import colocated


def make_spec(stream: str, **overrides: Any) -> ListenerSpec:
    spec = ListenerSpec(
        name="orders", stream=stream, group="g", consumer="c1", handler="-", start_id="0",
        batch_size=10, concurrency=4, poll_timeout=timedelta(milliseconds=50),
        shutdown_timeout=timedelta(seconds=5), dead_letter_stream=colocated(stream, ":dlq"),
    )
    return replace(spec, **overrides)


async def produce(operator: RedisOperator, key: str, n: int, **extra: str) -> list[str]:
    """``n`` entries in one pipelined round trip; their ids, in order."""
    ids = await operator.xadd_many(
        key, [{"order_id": f"o{i}", "qty": "1", "n": str(i), **extra} for i in range(n)])
    return [str(i) for i in ids]


async def age(client: Any, key: str, group: str, consumer: str, ids: list[str],
              idle: timedelta) -> None:
    """Make pending entries look idle for ``idle`` (XCLAIM … IDLE, same owner, no delivery
    counted) instead of sleeping past ``min_idle``. Before any XDEL or XTRIM of them:
    XCLAIM drops a deleted entry from the pending list."""
    await client.execute_command("XCLAIM", key, group, consumer, 0, *ids, "IDLE",
                                 int(idle.total_seconds() * 1000), "JUSTID")


async def pel(operator: RedisOperator, key: str, group: str = "g") -> int:
    return (await operator.pending_summary(key, group)).count


async def lag(operator: RedisOperator, key: str, group: str = "g") -> int | None:
    return {g.name: g for g in await operator.info_groups(key)}[group].lag


async def true(value: bool) -> bool:
    return value


async def awaited(value: Any) -> bool:
    return bool(await value)


async def equals(value: Any, expected: object) -> bool:
    return bool(await value == expected)


async def start(container: ListenerContainer, spec: ListenerSpec,
                handler: StreamHandler[Any]) -> None:
    """Register one listener and wait until it is live."""
    container.register(spec, handler)
    await container.start(timeout=5)


def entries_of(client: redis.Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """XRANGE on a decoding sync client, typed (redis-py types every reply as a union)."""
    return cast(list[tuple[str, dict[str, str]]], client.xrange(key))
