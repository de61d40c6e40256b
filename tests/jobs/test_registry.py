"""Each feature declares itself: a listener gets the jobs its settings ask for, and no
others; rotation takes the subscription over, otherwise the listener reads its stream."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamboot.config import settings_from_mapping
from streamboot.jobs.clock import FakeClock
from streamboot.jobs.contract import DeclaredListener
from streamboot.jobs.registry import declare
from streamboot.listener.container import ListenerContainer
from streamboot.listener.spec import resolve_listener
from streamboot.wire.operator import RedisOperator
from tests.handlers import LoggingHandler


def _listener(operator: RedisOperator, key: str, **extra: Any) -> DeclaredListener:
    settings = settings_from_mapping({"listeners": {"l": {
        "stream": key, "group": "g", "handler": "tests.handlers:LoggingHandler", **extra}}})
    listener = settings.listeners["l"]
    spec = resolve_listener("l", listener, settings.container)
    return DeclaredListener("l", listener, spec, LoggingHandler(), operator,
                            ListenerContainer(operator),
                            FakeClock(datetime(2026, 11, 23, 5, 30, tzinfo=UTC)))


async def test_defaults_give_recovery_and_cleanup_on_the_stream(
    operator: RedisOperator, key: str
) -> None:
    listener = _listener(operator, key)
    await declare(listener)
    assert sorted(listener.jobs) == ["cleanup", "recovery"]
    assert [job.every().id for job in listener.jobs.values()] == ["recovery:l", "cleanup:l"]
    assert listener.streams() == [key]
    assert list(listener.listeners.subscriptions) == ["l"]


async def test_disabled_features_declare_no_job(operator: RedisOperator, key: str) -> None:
    listener = _listener(operator, key, pending_scan={"enabled": False},
                         cleanup={"enabled": False})
    await declare(listener)
    assert listener.jobs == {}
    assert list(listener.listeners.subscriptions) == ["l"]  # still read, just no jobs


async def test_rotation_subscribes_to_the_period_instead_of_the_stream(
    operator: RedisOperator, key: str
) -> None:
    listener = _listener(operator, key, rotation={"key_format": f"{key}:%Y%m%d%H"},
                         retention={"max_len": 10})
    await declare(listener)
    assert sorted(listener.jobs) == ["cleanup", "recovery", "retention", "rotation"]
    current = f"{key}:2026112305"
    assert listener.streams() == [current]
    assert list(listener.listeners.subscriptions) == [f"l@{current}"]
    assert await operator.exists(current)  # created with its group by the rotation job
    assert not await operator.exists(key)
