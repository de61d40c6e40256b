"""Metrics and health, scraped over HTTP from a running application; alert crossings."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import timedelta

from loguru import logger
from redis.asyncio import Redis

from streamboot import Application, Message, RedisOperator, StreamHandler
from streamboot.config import settings_from_mapping
from streamboot.config.models import AlertSettings
from streamboot.devserver import RedisServer
from streamboot.listener.container import ListenerContainer
from streamboot.observability.alerts import AlertState, crossed
from streamboot.observability.health import health
from streamboot.observability.stream_views import GroupView
from streamboot.partitions.keys import partition_key
from streamboot.wire.ids import waited
from tests.conftest import http_get as get
from tests.conftest import wait_until
from tests.streams import make_spec, start


async def test_metrics_and_health_over_http() -> None:
    with RedisServer() as server:
        settings = settings_from_mapping({
            "redis": {"url": server.url, "socket_timeout": "1s"},
            "container": {"poll_timeout": "100ms"},
            "metrics": {"enabled": True, "port": 0, "refresh": "100ms"},
            "listeners": {"m": {"stream": "m", "group": "g",
                                "handler": "tests.handlers:LoggingHandler"}},
        })
        application = Application(settings)
        await application.start()
        try:
            assert application.metrics_server is not None
            base = f"http://127.0.0.1:{application.metrics_server.port}"
            client = Redis.from_url(server.url)
            for i in range(10):
                await client.xadd("m", {"n": str(i)})
            await client.aclose()
            sub = application.listeners.subscriptions["m"]  # type: ignore[union-attr]
            await wait_until(lambda: _true(sub.stats.acked == 10))
            async def refreshed() -> bool:  # the monitor job has seen the 10 entries
                return 'streamboot_stream_length{stream="m"} 10.0' in (
                    await asyncio.to_thread(get, f"{base}/metrics"))[1]

            await wait_until(refreshed, timeout=5)
            status, text = await asyncio.to_thread(get, f"{base}/metrics")
            assert status == 200
            assert 'streamboot_entries_handled_total{listener="m",stream="m"} 10.0' in text
            assert 'streamboot_handler_duration_seconds_count{listener="m",stream="m"} 10.0' in text
            assert 'streamboot_batch_size_bucket{le="+Inf",listener="m",stream="m"}' in text
            assert 'streamboot_group_lag{group="g",stream="m"} 0.0' in text
            assert 'streamboot_stream_length{stream="m"} 10.0' in text
            for lost in ("lost", "acked_elsewhere", "deleted_while_pending", "unconfirmed",
                         "already_acked"):  # every way out of the hand is counted, at 0
                assert f'streamboot_entries_{lost}_total{{listener="m",stream="m"}} 0.0' in text
            assert 'streamboot_renewal_failures_total{listener="m",stream="m"} 0.0' in text
            assert 'streamboot_renewal_age_seconds{listener="m",stream="m"}' in text
            # Each of the 10 was handled within a second of its publish (its id's time).
            assert 'streamboot_delivery_latency_seconds_bucket{le="1.0",listener="m",' \
                   'stream="m"} ' in text
            batches = _sample(text, 'streamboot_batch_size_count{listener="m",stream="m"}')
            assert _sample(text, 'streamboot_delivery_latency_seconds_bucket{le="1.0",'
                                 'listener="m",stream="m"}') == batches >= 1
            assert 'streamboot_listener_up{listener="m",stream="m"} 1.0' in text
            assert 'streamboot_group_oldest_pending_age_seconds{group="g",stream="m"} 0.0' in text
            assert 'streamboot_dead_letters{dlq="{m}:dlq",listener="m",stream="m"} 0.0' in text
            status, body = await asyncio.to_thread(get, f"{base}/healthz")
            assert (status, json.loads(body)["healthy"]) == (200, True)
            server.stop()  # Redis goes away: health turns red
            status, body = await asyncio.to_thread(get, f"{base}/healthz")
            report = json.loads(body)
            assert status == 503
            assert any("redis unreachable" in p for p in report["problems"])
        finally:
            await application.stop()


def _sample(text: str, name: str) -> float:
    """The value of one sample line of an exposition."""
    return float(next(line for line in text.splitlines()
                      if line.startswith(name + " ")).split()[-1])


def test_the_oldest_pending_age_alert_reads_the_time_in_the_oldest_id() -> None:
    settings = AlertSettings(max_oldest_pending_age=timedelta(minutes=15),
                             max_oldest_pending_idle=None)
    group = GroupView("g", 0, 1, 10, "0-0", [], oldest_pending_id="1700000000000-0")
    now = 1_700_000_000 + 15 * 60
    assert not crossed(group, settings, now=now)["oldest_pending_age"]
    assert crossed(group, settings, now=now + 1)["oldest_pending_age"]
    assert not crossed(GroupView("g", 0, 0, None, "0-0"), settings, now=now + 1)[
        "oldest_pending_age"]


def test_waited_is_the_seconds_since_an_ids_time_never_negative() -> None:
    assert waited("1700000000000-5", 1_700_000_002.5) == 2.5
    assert waited("1700000000000-5", 1_699_999_999.0) == 0.0  # clocks apart
    assert waited("not-an-id", 1_700_000_000.0) == 0.0


def test_an_alert_is_logged_once_per_crossing() -> None:
    state = AlertState()
    settings = AlertSettings(max_pending_per_consumer=10, max_lag=100,
                             max_oldest_pending_idle=None)
    lines: list[str] = []
    sink = logger.add(lines.append, level="INFO", format="{level} {message}")
    try:
        calm = GroupView("g", 5, 3, None, "0-0", [])
        busy = GroupView("g", 500, 30, 1000, "0-0", [])
        for view in (calm, busy, busy, busy, calm):
            state.update("orders", "orders", view, settings)
    finally:
        logger.remove(sink)
    warnings = [ln for ln in lines if ln.startswith("WARNING")]
    assert len(warnings) == 2  # pending and lag, once each, not three times
    assert any("alert lag" in ln for ln in warnings)
    assert any("alert pending" in ln for ln in warnings)
    assert sum("cleared" in ln for ln in lines) == 2
    assert state.active[("orders", "orders", "lag")] is False


async def _true(value: bool) -> bool:
    return value


class Deaf(StreamHandler[dict[str, str]]):
    """Slow work, or (for ``deaf`` entries) a handler that ignores its cancellation."""

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if not message.payload.get("deaf"):
            await asyncio.sleep(0.6)  # legitimately slow: 3 x poll_timeout
            return
        deadline = asyncio.get_running_loop().time() + 1.5
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0.05)


async def test_health_tells_slow_work_from_a_handler_past_its_timeout(
        operator: RedisOperator, container: ListenerContainer, key: str) -> None:
    """Handlers running longer than 2 x poll_timeout are work, not a stall: healthy (once
    they reported the worker not live, so an orchestrator would restart it mid-work). A
    handler past handler_timeout — here one that swallows its cancellation — is what
    health reports."""
    for _ in range(8):
        await operator.xadd(key, {"n": "1"})
    spec = make_spec(key, batch_size=4, concurrency=4, poll_timeout=timedelta(milliseconds=200),
                     handler_timeout=timedelta(milliseconds=800))
    await start(container, spec, Deaf())
    samples = []
    for _ in range(20):  # 1 s: two full batches of slow handlers, read-ahead on
        samples.append(await health(operator, container.subscriptions))
        await asyncio.sleep(0.05)
    assert all(s["healthy"] for s in samples), [s["problems"] for s in samples]
    deaf = await operator.xadd(key, {"deaf": "1"})
    await wait_until(lambda: _true(container.subscriptions["orders"].stats.timed_out == 0
                                   and bool(container.subscriptions["orders"].overdue())),
                     timeout=5)
    report = await health(operator, container.subscriptions)
    assert not report["healthy"]
    problems = report["problems"]
    assert isinstance(problems, list)
    (problem,) = problems
    assert f"handler on entry {deaf} running for" in problem
    assert "(handler_timeout 0.8s)" in problem


class AlwaysFails(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        raise RuntimeError("down")


async def test_a_partitioned_listeners_alert_is_labelled_with_the_listener_not_the_partition(
) -> None:
    """``streamboot_alert{listener=…}`` names the listener as every other metric does
    (``events``, not ``events[p0]``); the partition is in its ``stream`` label."""
    with RedisServer() as server:
        settings = settings_from_mapping({
            "redis": {"url": server.url, "socket_timeout": "1s"},
            "container": {"poll_timeout": "100ms"},
            "metrics": {"enabled": True, "port": 0, "refresh": "100ms"},
            "membership": {"lease_ttl": "2s", "heartbeat": "400ms"},
            "listeners": {"events": {
                "stream": "events", "group": "g", "partitions": 2,
                "handler": "tests.observability.test_metrics:AlwaysFails",
                "alerts": {"max_pending_per_consumer": 1}}},
        })
        application = Application(settings)
        await application.start()
        try:
            assert application.metrics_server is not None
            client = Redis.from_url(server.url)
            for i in range(3):
                await client.xadd(partition_key("events", 0), {"n": str(i)})
            await client.aclose()
            await wait_until(lambda: _true(application.alerts.active.get(
                ("events", partition_key("events", 0), "pending"), False)), timeout=10)
            _status, text = await asyncio.to_thread(
                get, f"http://127.0.0.1:{application.metrics_server.port}/metrics")
            alerts = [ln for ln in text.splitlines() if ln.startswith("streamboot_alert{")]
            assert ('streamboot_alert{alert="pending",listener="events",stream="'
                    + partition_key("events", 0) + '"} 1.0') in alerts, alerts
            assert not any("[p" in ln for ln in alerts), alerts
        finally:
            await application.stop()


async def test_the_idle_alert_sees_abandoned_entries_behind_a_reclaimed_oldest() -> None:
    """A consumer died holding three entries; the oldest was reclaimed (its idle starts
    over), the two behind it still wait: the alert stays on (it flapped off when it
    compared the oldest entry's idle alone)."""
    with RedisServer() as server:
        settings = settings_from_mapping({
            "redis": {"url": server.url},
            "metrics": {"enabled": False, "refresh": "1h"},
            "listeners": {"m": {"stream": "m", "group": "g", "pending_scan": {
                "enabled": False}, "alerts": {"max_oldest_pending_idle": "300ms"},
                "handler": "tests.handlers:LoggingHandler"}},
        })
        client = Redis.from_url(server.url, decode_responses=True)
        ids = [await client.xadd("m", {"n": str(i)}) for i in range(3)]
        await client.xgroup_create("m", "g", id="0")
        await client.xreadgroup("g", "dead", {"m": ">"}, count=3)
        application = Application(settings)
        await application.start()
        try:
            await asyncio.sleep(0.4)
            await client.xclaim("m", "g", "alive", 0, [ids[0]])  # the oldest: idle 0 again
            await application.monitor()
            view = application.stream_views["m"].groups[0]
            assert view.oldest_pending_idle_ms is not None
            assert view.oldest_pending_idle_ms < 300  # the oldest alone says nothing is late
            assert application.alerts.active[("m", "m", "oldest_pending_idle")] is True
            assert view.max_pending_idle_ms is not None
            assert view.max_pending_idle_ms >= 400
            await client.xack("m", "g", *ids[1:])  # the abandoned ones settled
            await application.monitor()
            assert application.alerts.active[("m", "m", "oldest_pending_idle")] is False
        finally:
            await application.stop()
            await client.aclose()
