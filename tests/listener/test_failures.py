"""Retries, dead letters and idempotency, end to end against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import redis
from redis.asyncio import Redis

from streamboot import RedisOperator, StreamHandler
from streamboot.config.models import DurabilitySettings, IdempotencySettings, RetrySettings
from streamboot.devserver import RedisServer
from streamboot.errors import NotDurableError
from streamboot.listener.container import ListenerContainer
from streamboot.listener.idempotency import IdempotentScript
from streamboot.message import Message
from streamboot.wire.hash_slots import colocated
from tests.conftest import wait_until
from tests.handlers import FailingHandler, FlakyHandler, RawHandler, Recorder, RecordingHandler
from tests.streams import equals, make_spec, pel, produce, start, true

FAST_RETRY = RetrySettings(max_deliveries=3, backoff=timedelta(milliseconds=20),
                           backoff_max=timedelta(milliseconds=100))


async def test_fails_twice_then_succeeds(operator: RedisOperator, container: ListenerContainer,
                                         key: str) -> None:
    (entry,) = await produce(operator, key, 1)
    recorder = Recorder()
    await start(container, make_spec(key, retry=FAST_RETRY), FlakyHandler(recorder, fail_times=2))
    await wait_until(lambda: true(entry in recorder.seen))
    assert recorder.deliveries[entry] == 3  # counted by Redis: read, retry, retry
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert await operator.xlen(f"{{{key}}}:dlq") == 0
    assert container.subscriptions["orders"].stats.retried == 2


async def test_always_failing_entry_is_dead_lettered_with_every_field(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    entry = await operator.xadd(key, {"n": "7", "fail": "yes"})
    await start(container, make_spec(key, retry=FAST_RETRY), FailingHandler(Recorder()))
    dlq = f"{{{key}}}:dlq"
    await wait_until(lambda: equals(operator.xlen(dlq), 1))
    (dead,) = await operator.xrange(dlq)
    at = dead.fields.pop("dlq_at")
    assert dead.fields == {
        "n": "7", "fail": "yes", "dlq_reason": "max_deliveries",
        "dlq_error": "RuntimeError: boom on 7", "dlq_stream": key, "dlq_id": entry,
        "dlq_group": "g", "dlq_deliveries": "3", "dlq_fields": "2"}
    assert abs((datetime.fromisoformat(at) - datetime.now(datetime.fromisoformat(at).tzinfo))
               .total_seconds()) < 30
    assert await pel(operator, key) == 0  # acked in the same step
    assert container.subscriptions["orders"].stats.dead_lettered == 1


async def test_invalid_payload_is_dead_lettered_at_first_delivery(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    entry = await operator.xadd(key, {"order_id": "o1", "qty": "lots"})
    await start(container, make_spec(key, retry=FAST_RETRY), RecordingHandler(Recorder()))
    dlq = f"{{{key}}}:dlq"
    await wait_until(lambda: equals(operator.xlen(dlq), 1))
    (dead,) = await operator.xrange(dlq)
    assert dead.fields["dlq_reason"] == "invalid_payload"
    assert dead.fields["dlq_deliveries"] == "1"
    assert dead.fields["dlq_id"] == entry
    assert dead.fields["dlq_error"].startswith("PayloadError: invalid Order: qty:")
    assert await pel(operator, key) == 0


async def test_custom_dead_letter_stream(operator: RedisOperator, container: ListenerContainer,
                                         key: str) -> None:
    await operator.xadd(key, {"n": "1", "fail": "yes"})
    spec = make_spec(key, retry=FAST_RETRY, dead_letter_stream=f"{{{key}}}:poison")
    await start(container, spec, FailingHandler(Recorder()))
    await wait_until(lambda: equals(operator.xlen(f"{{{key}}}:poison"), 1))


async def test_without_dead_letter_stream_entry_stays_pending(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await operator.xadd(key, {"n": "1", "fail": "yes"})
    sub = container.register(make_spec(key, retry=FAST_RETRY, dead_letter_stream=None),
                             FailingHandler(Recorder()))
    await container.start(timeout=5)
    await wait_until(lambda: true(sub.stats.failed >= 3))
    assert await pel(operator, key) == 1
    assert not await operator.exists(f"{{{key}}}:dlq")


async def test_dead_letters_equal_entries_acked_by_dead_lettering_under_concurrency(
    operator: RedisOperator, keeper_client: redis.Redis, key: str
) -> None:
    good = await produce(operator, key, 150)
    bad = [await operator.xadd(key, {"n": str(i), "fail": "yes"}) for i in range(150)]
    recorder = Recorder()
    retry = RetrySettings(max_deliveries=2, backoff=timedelta(milliseconds=5))
    workers = [ListenerContainer(operator, keeper_client) for _ in range(2)]
    for i, worker in enumerate(workers):
        worker.register(make_spec(key, consumer=f"w{i}", concurrency=16, batch_size=25,
                                  retry=retry), FailingHandler(recorder))
        await worker.start(timeout=5)
    dlq = f"{{{key}}}:dlq"
    try:
        await wait_until(lambda: equals(operator.xlen(dlq), 150), timeout=30)
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        for worker in workers:
            await worker.stop()
    dead_ids = [e.fields["dlq_id"] for e in await operator.xrange(dlq)]
    assert sorted(dead_ids) == sorted(bad)  # each failing entry once, no duplicates
    assert sum(w.subscriptions["orders"].stats.dead_lettered for w in workers) == 150
    assert set(recorder.seen) == set(good)


async def test_idempotency_skips_a_repeated_business_key(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    first = await operator.xadd(key, {"order_id": "o-1", "qty": "1"})
    await operator.xadd(key, {"order_id": "o-1", "qty": "1"})  # a duplicate publish
    other = await operator.xadd(key, {"order_id": "o-2", "qty": "1"})
    recorder = Recorder()
    spec = make_spec(key, concurrency=1, batch_size=1,
                     idempotency=IdempotencySettings(key="order_id", ttl=timedelta(hours=1)))
    sub = container.register(spec, RecordingHandler(recorder))
    await container.start(timeout=5)
    await wait_until(lambda: true(sub.stats.deduplicated == 1))
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert set(recorder.seen) == {first, other}
    ttl = await client.pttl("streamboot:done:g:{o-1}")
    assert 3_500_000 < ttl <= 3_600_000


async def test_marker_is_set_only_after_success(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    await operator.xadd(key, {"order_id": "o-9", "n": "1", "fail": "yes"})
    spec = make_spec(key, retry=FAST_RETRY,
                     idempotency=IdempotencySettings(key="order_id"))
    sub = container.register(spec, FailingHandler(Recorder()))
    await container.start(timeout=5)
    await wait_until(lambda: true(sub.stats.dead_lettered == 1))
    assert not await client.exists("streamboot:done:g:{o-9}")


async def test_idempotent_script_applies_effect_and_marker_together(client: Redis) -> None:
    apply = IdempotentScript(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    message: Message[dict[str, str]] = Message("1-0", "s", "g", "c", {}, {}, 1,
                                               ("m:{o-1}", timedelta(minutes=1)))
    assert await apply(message, keys=["total:{o-1}"], args=[5]) == 5
    assert await apply(message, keys=["total:{o-1}"], args=[5]) is None  # already applied
    assert await client.get("total:{o-1}") == "5"
    assert await client.exists("m:{o-1}")


async def test_an_idempotent_script_that_fails_leaves_no_marker_so_its_retry_applies(
        client: Redis) -> None:
    """A new user's trial: the effect's INCRBY failed once (the total held text), and the
    retry found the marker the failed run had written first — "already applied", acked,
    the amount lost. Redis keeps a script's writes made before an error."""
    apply = IdempotentScript(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")
    message: Message[dict[str, str]] = Message("1-0", "s", "g", "c", {}, {}, 1,
                                               ("m:{o-2}", timedelta(minutes=1)))
    await client.set("total:{o-2}", "oops")
    with pytest.raises(redis.ResponseError, match="not an integer"):
        await apply(message, keys=["total:{o-2}"], args=[10])
    assert not await client.exists("m:{o-2}")  # before: set, and the retry skipped
    await client.set("total:{o-2}", "0")
    assert await apply(message, keys=["total:{o-2}"], args=[10]) == 10  # the retry applies
    assert await apply(message, keys=["total:{o-2}"], args=[10]) is None  # then only once
    assert await client.get("total:{o-2}") == "10"


async def test_idempotent_script_requires_a_marker(client: Redis) -> None:
    apply = IdempotentScript(client, "return 1")
    with pytest.raises(ValueError, match="no idempotency marker"):
        await apply(Message("1-0", "s", "g", "c", {}, {}, 1))


async def test_retry_waits_are_not_in_the_poll_loop(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """While one entry waits 30s for its retry, new entries keep flowing."""
    await operator.xadd(key, {"n": "0", "fail": "yes"})
    recorder = Recorder()
    slow_retry = RetrySettings(max_deliveries=5, backoff=timedelta(seconds=30))
    await start(container, make_spec(key, retry=slow_retry), FailingHandler(recorder))
    later = await produce(operator, key, 20)
    await wait_until(lambda: true(set(recorder.seen) == set(later)))
    await wait_until(lambda: equals(pel(operator, key), 1))  # acks ride with the next read


async def test_raw_handler_untouched_by_idempotency_without_key(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    entry = await operator.xadd(key, {"x": "1"})  # no order_id field: handled normally
    recorder = Recorder()
    await start(container, make_spec(key, idempotency=IdempotencySettings(key="order_id")),
              RawHandler(recorder))
    await wait_until(lambda: true(entry in recorder.seen))


async def test_duplicates_in_one_batch_and_in_consecutive_batches_are_handled_once(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """Ten business keys published five times each, interleaved, read 5 at a time with
    read-ahead: each key is handled exactly once, every other entry is skipped."""
    await operator.xadd_many(key, [{"order_id": f"k{k}", "round": str(round_)}
                                   for round_ in range(5) for k in range(10)])
    handled: list[str] = []

    class Once(StreamHandler[dict[str, str]]):
        async def handle(self, message: Message[dict[str, str]]) -> None:
            handled.append(message.payload["order_id"])

    spec = make_spec(key, batch_size=5, concurrency=4,
                     idempotency=IdempotencySettings(key="order_id"))
    sub = container.register(spec, Once())
    await container.start(timeout=5)
    await wait_until(lambda: true(sub.stats.deduplicated == 40))
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert sorted(handled) == sorted(f"k{k}" for k in range(10))


class _TimedFailures(StreamHandler[dict[str, str]]):
    """Fails every delivery, noting when each began."""

    def __init__(self) -> None:
        self.at: list[float] = []

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.at.append(time.monotonic())
        raise RuntimeError("gateway down")


async def test_a_retry_runs_after_its_backoff_not_after_the_blocked_read(
        operator: RedisOperator, container: ListenerContainer, key: str) -> None:
    """On a drained stream the loop sits in XREADGROUP BLOCK poll_timeout (2 s here); a
    retry due after 200 ms ends that read instead of waiting it out (the log line says
    "retrying in 0.20s", and so it is)."""
    handler = _TimedFailures()
    spec = make_spec(key, poll_timeout=timedelta(seconds=2),
                     retry=RetrySettings(max_deliveries=3, backoff=timedelta(milliseconds=200),
                                         backoff_max=timedelta(milliseconds=200)))
    await produce(operator, key, 1)
    await start(container, spec, handler)
    await wait_until(lambda: true(len(handler.at) == 3), timeout=5)
    gaps = [b - a for a, b in zip(handler.at, handler.at[1:], strict=False)]
    assert all(0.15 < gap < 1.0 for gap in gaps), gaps


@contextlib.contextmanager
def replica_of(primary: RedisServer) -> Iterator[RedisServer]:
    """A replica of ``primary``, in sync with it (the durability tests)."""
    replica = RedisServer()
    replica.extra_args = ["--replicaof", "127.0.0.1", str(primary.port)]
    with replica, redis.Redis(port=replica.port, decode_responses=True) as probe:
        deadline = time.monotonic() + 10
        while probe.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        yield replica


async def test_a_durable_idempotent_script_returns_only_once_a_replica_has_it() -> None:
    """``idempotency.durability``: effect, marker and WAIT in one round trip. With the
    replica cut off the call raises (the entry would not be acked) though the effect is
    applied; the retry is a no-op whose own WAIT covers that earlier effect, so it
    returns once the replica caught up — and the replica has the effect exactly once."""
    with RedisServer() as primary, replica_of(primary) as replica:
        sync_replica = redis.Redis(port=replica.port, decode_responses=True)
        client = Redis(port=primary.port, decode_responses=True)
        apply = IdempotentScript(client, "return redis.call('INCRBY', KEYS[1], ARGV[1])")

        def message(timeout_ms: int, key: str = "o-1") -> Message[dict[str, str]]:
            return Message("1-0", "s", "g", "c", {}, {}, 1,
                           (f"m:{{{key}}}", timedelta(minutes=1)),
                           durability=DurabilitySettings(
                               replicas=1, timeout=timedelta(milliseconds=timeout_ms)))

        try:
            assert await apply(message(1000, "o-0"), keys=["a:{o-0}"], args=[2]) == 2
            assert sync_replica.get("a:{o-0}") == "2"  # there once it returned
            assert replica.pid is not None
            os.kill(replica.pid, signal.SIGSTOP)
            try:
                await client.execute_command("CLIENT", "KILL", "TYPE", "replica")
                with pytest.raises(NotDurableError) as short:
                    await apply(message(100), keys=["total:{o-1}"], args=[5])
            finally:
                os.kill(replica.pid, signal.SIGCONT)
            assert str(short.value) == (
                "the effect and marker of entry 1-0 was acknowledged by 0 of the 1 "
                "replica required within 100ms (idempotency.durability): a failover "
                "now could lose it")
            assert await client.get("total:{o-1}") == "5"  # applied, not yet safe
            # The retry: already applied, so nothing runs; it returns once the
            # replica (reconnecting, resyncing) has the first call's effect.
            assert await apply(message(10_000), keys=["total:{o-1}"], args=[5]) is None
            assert sync_replica.get("total:{o-1}") == "5"
        finally:
            await client.aclose()
            sync_replica.close()


class ReserveThenNotify(StreamHandler[dict[str, str]]):
    """An effect inside Redis (IdempotentScript), then a follow-up that builds on it."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.apply = IdempotentScript(redis, "return redis.call('INCR', KEYS[1])")

    async def handle(self, message: Message[dict[str, str]]) -> None:
        order = message.payload["order_id"]
        await self.apply(message, keys=[f"applied:{{{order}}}"])
        await self.redis.rpush(f"notified:{{{order}}}", message.id)


async def test_a_listener_with_durable_idempotency_acks_only_once_a_replica_has_the_effect(
) -> None:
    """The replica cut off: the script's effect is applied but not confirmed, so the
    handler fails before its follow-up and the entry stays pending; its retries are not
    skipped as done (the marker says applied, not handled) and succeed once the replica
    is back. The effect once, the follow-up once, acked last."""
    with RedisServer() as primary, replica_of(primary) as replica:
        sync_replica = redis.Redis(port=replica.port, decode_responses=True)
        client = Redis(port=primary.port, decode_responses=True)
        operator = RedisOperator(client)
        container = ListenerContainer(operator)
        spec = make_spec("orders", idempotency=IdempotencySettings(
            key="order_id", durability=DurabilitySettings(
                replicas=1, timeout=timedelta(milliseconds=100))),
            retry=RetrySettings(max_deliveries=50, backoff=timedelta(milliseconds=100)))
        assert replica.pid is not None
        try:
            await start(container, spec, ReserveThenNotify(client))
            os.kill(replica.pid, signal.SIGSTOP)
            try:
                await client.execute_command("CLIENT", "KILL", "TYPE", "replica")
                await operator.xadd("orders", {"order_id": "o1"})
                await wait_until(lambda: equals(client.get("applied:{o1}"), "1"))
                await asyncio.sleep(0.5)  # several retries, each refused
                assert await client.llen("notified:{o1}") == 0
                assert await pel(operator, "orders") == 1
            finally:
                os.kill(replica.pid, signal.SIGCONT)
            await wait_until(lambda: equals(client.llen("notified:{o1}"), 1),
                             timeout=15)
            await wait_until(lambda: equals(pel(operator, "orders"), 0))
        finally:
            await container.stop()
            await client.aclose()
        assert sync_replica.get("applied:{o1}") == "1"
        assert str(sync_replica.get("streamboot:done:g:{o1}")).startswith("1 ")  # handled
        sync_replica.close()


async def test_a_second_entry_of_a_key_waits_for_the_slow_first_one(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """The first entry of a key still running (a slow handler, concurrency 4): a second one
    of the key — read with it, or in a later read — waits for its outcome, then is skipped.
    Before, it ran at once beside the first (the marker was not set yet): handled twice."""
    await operator.xadd_many(key, [{"order_id": k} for k in ("q1", "q1", "q2", "q1", "q3")])
    handled: list[str] = []

    class Slow(StreamHandler[dict[str, str]]):
        async def handle(self, message: Message[dict[str, str]]) -> None:
            await asyncio.sleep(0.3)
            handled.append(message.payload["order_id"])

    spec = make_spec(key, batch_size=2, concurrency=4,
                     idempotency=IdempotencySettings(key="order_id"))
    sub = container.register(spec, Slow())
    await container.start(timeout=5)
    await wait_until(lambda: true(sub.stats.deduplicated == 2), timeout=10)
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert sorted(handled) == ["q1", "q2", "q3"]
    await operator.xadd_many(key, [{"order_id": "q1"}])  # long after: skipped too
    await wait_until(lambda: true(sub.stats.deduplicated == 3))
    assert sorted(handled) == ["q1", "q2", "q3"]


async def test_a_second_entry_of_a_key_runs_once_the_first_was_dead_lettered(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """The first entry of the key fails for good: its twin is then handled (its marker was
    never set), not skipped, and not run while the first still waited for its retry."""
    await operator.xadd_many(key, [{"order_id": "k", "fail": "yes"}, {"order_id": "k"}])
    calls: list[str] = []

    class FailsFirst(StreamHandler[dict[str, str]]):
        async def handle(self, message: Message[dict[str, str]]) -> None:
            calls.append(message.payload.get("fail", "no"))
            if message.payload.get("fail"):
                raise RuntimeError("declined")

    spec = make_spec(key, concurrency=4, retry=FAST_RETRY,
                     idempotency=IdempotencySettings(key="order_id"))
    container.register(spec, FailsFirst())
    await container.start(timeout=5)
    await wait_until(lambda: equals(pel(operator, key), 0), timeout=10)
    assert calls == ["yes", "yes", "yes", "no"]  # three deliveries, dead letter, then it
    assert await operator.xlen(colocated(key, ":dlq")) == 1
