"""The listener container end to end against a real redis-server."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from streamboot import RedisOperator
from streamboot.listener.container import ListenerContainer
from tests.conftest import wait_until
from tests.faults.proxy import FaultyProxy
from tests.handlers import (
    BlockingSyncHandler,
    FailingHandler,
    LoggingHandler,
    RawHandler,
    Recorder,
    RecordingHandler,
    SlowHandler,
)
from tests.streams import awaited, equals, lag, make_spec, pel, produce, start, true


async def test_ten_thousand_entries_each_handled_exactly_once(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    ids = await produce(operator, key, 10_000)
    recorder = Recorder()
    await start(container, make_spec(key, batch_size=100, concurrency=8),
                RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 10_000), timeout=60)
    sub = container.subscriptions["orders"]
    await container.stop()
    assert set(recorder.seen) == set(ids)
    # The counters agree with Redis: each XACK reply (acks ride with reads, alone when a
    # read blocks, and at stop) is counted once.
    assert (sub.stats.handled, sub.stats.acked) == (10_000, 10_000)
    assert max(recorder.seen.values()) == 1
    assert await pel(operator, key) == 0
    assert await lag(operator, key) == 0
    assert recorder.max_in_flight <= 8


async def test_concurrency_is_reached_and_never_exceeded(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 40)
    recorder = Recorder()
    await start(container, make_spec(key, batch_size=20, concurrency=5),
                RecordingHandler(recorder, delay=0.02))
    await wait_until(lambda: true(len(recorder.seen) == 40))
    assert recorder.max_in_flight == 5


async def test_payload_is_validated_into_the_model(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 1)
    recorder = Recorder()
    await start(container, make_spec(key), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 1))
    (order,) = recorder.payloads
    assert (order.order_id, order.qty) == ("o0", 1)  # type: ignore[attr-defined]


async def test_failing_handler_leaves_entry_pending_and_loop_alive(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    bad = await operator.xadd(key, {"n": "0", "fail": "yes"})
    recorder = Recorder()
    await start(container, make_spec(key, concurrency=1), FailingHandler(recorder))
    good = await produce(operator, key, 5)
    await wait_until(lambda: true(len(recorder.seen) == 5))
    sub = container.subscriptions["orders"]
    assert sub.stats.failed == 1
    assert set(recorder.seen) == set(good)
    await wait_until(lambda: equals(pel(operator, key), 1))
    (row,) = await operator.pending_range(key, "g")
    assert row.id == bad
    assert container.running


async def test_invalid_payload_without_dead_letter_stream_is_logged_and_left_pending(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await operator.xadd(key, {"order_id": "o1", "qty": "many"})
    ok = await operator.xadd(key, {"order_id": "o2", "qty": "2"})
    recorder = Recorder()
    lines: list[str] = []
    sink = logger.add(lines.append, level="ERROR", format="{message}")
    try:
        await start(container, make_spec(key, dead_letter_stream=None),
                    RecordingHandler(recorder))
        await wait_until(lambda: true(list(recorder.seen) == [ok]))
    finally:
        logger.remove(sink)
    assert container.subscriptions["orders"].stats.invalid == 1
    assert any("entry rejected (invalid Order: qty: Input should be a valid integer" in ln
               and "it stays pending" in ln for ln in lines)
    await wait_until(lambda: equals(pel(operator, key), 1))


async def test_stop_finishes_and_acks_in_flight_work(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 6)
    recorder = Recorder()
    await start(container, make_spec(key, batch_size=6, concurrency=6),
                RecordingHandler(recorder, delay=0.3))
    await wait_until(lambda: true(recorder.in_flight == 6))
    assert await pel(operator, key) == 6
    await container.stop()
    assert len(recorder.seen) == 6
    assert await pel(operator, key) == 0
    assert not container.running


async def test_stop_past_shutdown_timeout_leaves_entries_pending(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 2)
    recorder = Recorder()
    spec = make_spec(key, shutdown_timeout=timedelta(milliseconds=100))
    await start(container, spec, RecordingHandler(recorder, delay=30))
    await wait_until(lambda: true(recorder.in_flight == 2))
    await container.stop()
    assert recorder.seen == {}
    assert await pel(operator, key) == 2  # nothing acked that was not handled


async def test_sync_handler_runs_in_bounded_thread_pool(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 6)
    recorder = Recorder()
    release = threading.Event()
    await start(container, make_spec(key, concurrency=3), BlockingSyncHandler(recorder, release))
    # Three handlers block their threads; the event loop keeps running meanwhile.
    await wait_until(lambda: true(recorder.in_flight == 3))
    for _ in range(5):
        await asyncio.sleep(0.01)
    assert recorder.in_flight == 3
    release.set()
    await wait_until(lambda: true(len(recorder.seen) == 6))
    assert recorder.max_in_flight == 3
    assert all(name.startswith("sb-orders") for name in recorder.threads)


async def test_own_pending_entries_are_reread_first_on_start(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    ids = await produce(operator, key, 3)
    await operator.create_group(key, "g", "0")
    # A previous run of consumer c1 read them and died before acking.
    await operator.xreadgroup(key, "g", "c1", count=3)
    later = await produce(operator, key, 2)
    recorder = Recorder()
    await start(container, make_spec(key), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 5))
    # Delivered once to the dead run, once now: XREADGROUP 0 counts the re-delivery.
    assert {i: recorder.deliveries[i] for i in ids} == dict.fromkeys(ids, 2)
    assert {i: recorder.deliveries[i] for i in later} == dict.fromkeys(later, 1)
    await wait_until(lambda: equals(pel(operator, key), 0))


async def test_pending_entries_deleted_from_the_stream_are_released(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    ids = await produce(operator, key, 3)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c1", count=3)
    await operator.xdel(key, ids[:2])
    recorder = Recorder()
    await start(container, make_spec(key), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 1))
    await wait_until(lambda: equals(pel(operator, key), 0))
    assert container.subscriptions["orders"].stats.deleted_while_pending == 2


async def test_group_created_at_start_id(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    await produce(operator, key, 3)
    recorder = Recorder()
    await start(container, make_spec(key, start_id="$"), RawHandler(recorder))
    fresh = await produce(operator, key, 1)
    await wait_until(lambda: true(len(recorder.seen) == 1))
    assert list(recorder.seen) == fresh


async def test_group_recreated_after_stream_deleted(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    await produce(operator, key, 1)
    recorder = Recorder()
    await start(container, make_spec(key), RawHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 1))
    await client.delete(key)  # expired, flushed, or deleted by an admin
    await wait_until(lambda: awaited(operator.group_exists(key, "g")))
    again = await produce(operator, key, 2)
    await wait_until(lambda: true(set(again) <= set(recorder.seen)))


async def test_wrongtype_stops_only_that_listener(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    await client.set(key + ":clash", "a string")
    recorder = Recorder()
    container.register(make_spec(key + ":clash", name="broken"), RawHandler(Recorder()))
    container.register(make_spec(key), RawHandler(recorder))
    await container.start(timeout=None)
    broken = container.subscriptions["broken"]
    await wait_until(lambda: true(broken.failure is not None))
    assert "is not a stream (WRONGTYPE)" in str(broken.failure)
    ids = await produce(operator, key, 3)
    await wait_until(lambda: true(set(recorder.seen) == set(ids)))


async def test_log_lines_from_handlers_carry_entry_context(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    entry = (await produce(operator, key, 1))[0]
    records: list[Any] = []  # loguru records
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    try:
        await start(container, make_spec(key), LoggingHandler())
        await wait_until(lambda: true(any("user log line" in r["message"] for r in records)))
    finally:
        logger.remove(sink)
    (line,) = [r for r in records if "user log line" in r["message"]]
    assert {k: line["extra"][k] for k in ("stream", "group", "consumer", "entry_id")} == {
        "stream": key, "group": "g", "consumer": "c1", "entry_id": entry}


async def test_sync_handler_log_lines_carry_context_too(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    entry = (await produce(operator, key, 1))[0]
    release = threading.Event()
    release.set()
    records: list[Any] = []  # loguru records
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    try:
        await start(container, make_spec(key), BlockingSyncHandler(Recorder(), release))
        await wait_until(lambda: true(any("sync handled" in r["message"] for r in records)))
    finally:
        logger.remove(sink)
    (line,) = [r for r in records if "sync handled" in r["message"]]
    assert line["extra"]["entry_id"] == entry
    assert line["extra"]["stream"] == key


async def test_json_codec(operator: RedisOperator, container: ListenerContainer,
                          key: str) -> None:
    await operator.xadd(key, {"payload": '{"order_id": "j1", "qty": 3}'})
    recorder = Recorder()
    await start(container, make_spec(key, codec="json"), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 1))
    (order,) = recorder.payloads
    assert (order.order_id, order.qty) == ("j1", 3)  # type: ignore[attr-defined]


async def test_redis_down_at_start_is_retried_not_fatal(redis_server: Any) -> None:
    from streamboot.client import build_client
    from streamboot.config import RedisSettings
    from streamboot.devserver import free_port

    client = build_client(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    listeners = ListenerContainer(RedisOperator(client))
    sub = listeners.register(make_spec("nowhere"), RawHandler(Recorder()))
    await listeners.start(timeout=None)
    await wait_until(lambda: true(sub.stats.redis_errors >= 2))
    assert listeners.running
    await listeners.stop()
    await client.aclose()


async def test_stop_does_not_wait_out_a_long_blocking_read(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """An idle listener blocks in XREADGROUP for poll_timeout (30s here); stop ends that
    read at once (CLIENT UNBLOCK on its own connection) instead of waiting for it."""
    recorder = Recorder()
    sub = container.register(make_spec(key, poll_timeout=timedelta(seconds=30)),
                             RawHandler(recorder))
    await container.start(timeout=5)
    (entry,) = await produce(operator, key, 1)
    await wait_until(lambda: true(entry in recorder.seen))
    await wait_until(lambda: equals(pel(operator, key), 0))  # idle, blocked on the next read
    await asyncio.wait_for(container.stop(), timeout=10)
    assert not container.running
    assert sub.stats.acked == 1


async def test_an_unknown_server_error_is_survived_and_no_ack_is_lost(
    redis_url: str, client: Redis, key: str
) -> None:
    """NOPERM on XACK (an ACL change) mid-run: the loop logs, backs off and keeps the acks;
    once the permission is back they are sent, and nothing stays pending."""
    from streamboot.client import build_client
    from streamboot.config import RedisSettings

    await client.execute_command("ACL", "SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all")
    settings = RedisSettings(url=redis_url, username="app", password="s3cret")
    app_client = build_client(settings)
    operator = RedisOperator(app_client)
    listeners = ListenerContainer(operator)
    recorder = Recorder()
    sub = listeners.register(make_spec(key, batch_size=5), RawHandler(recorder))
    await listeners.start(timeout=5)
    try:
        await client.execute_command("ACL", "SETUSER", "app", "-xack")
        ids = await produce(operator, key, 5)
        await wait_until(lambda: true(set(ids) <= set(recorder.seen)))
        await wait_until(lambda: true(sub.stats.redis_errors >= 1))  # XACK refused
        assert await pel(operator, key) == 5
        await client.execute_command("ACL", "SETUSER", "app", "+xack")
        await wait_until(lambda: equals(pel(operator, key), 0), timeout=20)
    finally:
        await listeners.stop()
        await app_client.aclose()
        await client.execute_command("ACL", "DELUSER", "app")
    assert sub.stats.acked == 5
    assert max(recorder.seen.values()) == 1  # kept, not handled again


async def test_a_dataclass_payload_end_to_end(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """StreamHandler[SomeDataclass] once received a raw dict silently; now it gets the
    dataclass, built and validated, and an invalid one is dead-lettered."""
    from streamboot.codecs import FlatCodec
    from streamboot.publisher import Publisher
    from tests.handlers import Shipment, ShipmentHandler

    publisher = Publisher(operator, key, FlatCodec())
    good = await publisher.publish(Shipment(order_id="o1", parcels=2))
    bad = await operator.xadd(key, {"order_id": "o2", "parcels": "lots"})
    recorder = Recorder()
    await start(container, make_spec(key), ShipmentHandler(recorder))
    await wait_until(lambda: true(good in recorder.seen))
    assert recorder.payloads == [Shipment(order_id="o1", parcels=2)]
    await wait_until(lambda: equals(operator.xlen(f"{{{key}}}:dlq"), 1))
    (dead,) = await operator.xrange(f"{{{key}}}:dlq")
    assert dead.fields["dlq_id"] == bad
    assert dead.fields["dlq_error"].startswith("PayloadError: invalid Shipment: parcels:")


async def test_a_hand_over_starts_nothing_more_of_a_key_that_still_runs(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    """A partition's hand-over lets the running handler finish and leaves the rest pending
    for the next owner. An entry of the running key that still reaches the dispatcher (the
    reply of a read on its way when the hand-over began) must not start: it once did,
    beside the running one and before the dropped entry of its key (16 order violations
    and 3 overlaps in one of 18 runs of tests/partitions/test_many_hosts.py)."""
    from streamboot.wire.records import StreamEntry

    gate, started = asyncio.Event(), []

    class Gated(LoggingHandler):
        async def handle(self, message: Any) -> None:
            started.append(message.id)
            if len(started) == 1:
                await gate.wait()

    ids = await produce(operator, key, 2, customer="c4")
    await start(container, make_spec(key, ordering_key="customer"), Gated())
    await wait_until(lambda: true(started == ids[:1]))
    sub = container.subscriptions["orders"]
    leaving = asyncio.create_task(container.unregister("orders", hand_over=True))
    await asyncio.sleep(0.05)
    late = (await produce(operator, key, 1, customer="c4"))[0]
    await client.xreadgroup("g", "c1", {key: ">"}, count=1)  # delivered to this consumer
    fields = {"order_id": "o2", "qty": "1", "n": "2", "customer": "c4"}
    # What the poll loop does with a reply (poll.py): hold its entries, then dispatch.
    sub._acks.hold([late], time.perf_counter())
    await sub._dispatcher.dispatch([StreamEntry(late, fields)])
    await asyncio.sleep(0.1)
    assert started == ids[:1]  # neither the dropped one nor the late one ran beside it
    gate.set()
    await leaving
    assert started == ids[:1]
    assert await pel(operator, key) == 2  # the dropped and the late: the next owner's


async def test_counters_of_a_subscription_outlive_its_unregistering(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """A partition handed away and taken back is one subscription after another of one
    name: its counters go on from where they were (Prometheus counters never go down),
    and they are still shown while it is away."""
    recorder = Recorder()
    await produce(operator, key, 30)
    await start(container, make_spec(key), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 30))
    await container.unregister("orders")
    assert [(spec.name, stats.handled) for spec, stats in container.counters] == \
        [("orders", 30)]
    await produce(operator, key, 20)
    container.register(make_spec(key), RecordingHandler(recorder))
    await wait_until(lambda: true(len(recorder.seen) == 50))
    sub = container.subscriptions["orders"]
    await wait_until(lambda: true(sub.stats.acked == 50))
    await container.stop()
    assert (sub.stats.handled, sub.stats.acked) == (50, 50)
    assert [stats for _, stats in container.counters] == [sub.stats]


async def test_a_group_that_vanishes_is_recreated_from_the_start_not_from_now(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    """A group lost while read (here destroyed; in production a failover whose new
    primary never had it) is not a new group: even with ``start_id: $`` it is recreated
    from the stream's start, so entries written meanwhile are handled, never skipped."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    recorder = Recorder()
    try:
        await start(container, make_spec(key, start_id="$"), RecordingHandler(recorder))
        first = await produce(operator, key, 3)
        await wait_until(lambda: true(len(recorder.seen) == 3))
        pipe = client.pipeline(transaction=True)  # gone, and 2 written before it is back
        pipe.xgroup_destroy(key, "g")
        pipe.xadd(key, {"order_id": "late-1", "qty": "1"})
        pipe.xadd(key, {"order_id": "late-2", "qty": "1"})
        _, *late = await pipe.execute()
        await wait_until(lambda: true(all(str(i) in recorder.seen for i in late)))
        await container.stop()
    finally:
        logger.remove(sink)
    assert set(recorder.seen) == {*first, *(str(i) for i in late)}
    said = [line for line in lines if "it vanished while read" in line]
    assert len(said) == 1, lines
    assert "recreating it from the stream's start: 5 entries in the stream are handled " \
        "again rather than skipped" in said[0]


async def test_entries_whose_ack_was_lost_with_a_timed_out_read_are_not_handled_again(
    redis_url: str, key: str, client: Redis
) -> None:
    """Handlers finish while the connections are silent (a proxy swallows everything):
    their XACK never arrives, so the acks are owed again and the loop re-reads its own
    pending list on a new connection, which still lists them. They stay in hand until
    an XACK is confirmed, so they are acked, not handled a second time (a second run
    would overtake the later entries of its key)."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    with FaultyProxy(host, int(port)) as proxy:
        flaky = Redis.from_url(proxy.url, decode_responses=True, socket_timeout=0.3)
        operator = RedisOperator(flaky)
        container = ListenerContainer(operator)
        recorder = Recorder()
        ids = await produce(operator, key, 10)
        try:
            await start(container, make_spec(key, batch_size=10, concurrency=10),
                        SlowHandler(recorder, 0.3))
            await asyncio.sleep(0.1)  # all ten running
            assert await asyncio.to_thread(proxy.silence) >= 1
            await wait_until(lambda: true(len(recorder.seen) == 10), timeout=10)
            await wait_until(lambda: equals(pel(RedisOperator(client), key), 0), timeout=10)
            await asyncio.sleep(0.3)  # a replay that would run them again had its chance
        finally:
            await container.stop()
            await flaky.aclose()
    assert set(recorder.seen) == set(ids)
    assert max(recorder.seen.values()) == 1, recorder.seen
