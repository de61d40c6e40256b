"""Middlewares declared in the application file, around real handlings: their order, the
outcome they see and decide, the context they add; and what a bad declaration says."""

from __future__ import annotations

from typing import Any

import pytest
from loguru import logger

from streamboot import ConfigError
from streamboot.config import settings_from_mapping
from streamboot.testing import run_app
from tests.middleware import beans


def settings(key: str, handler: str = "tests.middleware.beans:Echo", **listener: Any) -> Any:
    return settings_from_mapping({
        "container": {"poll_timeout": "50ms", "middleware": ["tests.middleware.beans:Outer"]},
        "listeners": {"events": {
            "stream": key, "group": "g", "handler": handler,
            "middleware": ["tests.middleware.beans:Tenant"],
            "retry": {"max_deliveries": 2, "backoff": "10ms"}, **listener}},
    })


@pytest.fixture(autouse=True)
def _clean_journal() -> None:
    beans.JOURNAL.clear()


async def test_the_chain_runs_outermost_first_and_sees_the_outcome(
        key: str, redis_url: str) -> None:
    records: list[Any] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    try:
        async with run_app(settings(key), url=redis_url) as app:
            ok = await app.publish_fields("events", {"n": "1", "tenant": "acme"})
            await app.handled(ok)
            bad = await app.publish_fields("events", {"n": "2", "fail": "yes"})
            (dead,) = await app.dead_lettered(bad)
    finally:
        logger.remove(sink)
    assert beans.JOURNAL[:4] == ["outer>1", "tenant>1", "handler 1", "outer<ok-1"]
    # The failure passes back out through the chain on each delivery, then dead-letters.
    assert beans.JOURNAL[4:] == ["outer>2", "tenant>2", "outer saw ValueError"] * 2
    assert dead.error == "ValueError: bad 2"
    (line,) = [r for r in records if r["message"] == "handled 1"]
    assert line["extra"]["tenant"] == "acme"  # the middleware's context, in the handler
    assert line["extra"]["listener"] == "events"


async def test_a_middleware_that_swallows_the_failure_makes_it_a_success(
        key: str, redis_url: str) -> None:
    config = settings(key, middleware=["tests.middleware.beans:Forgiving"])
    async with run_app(config, url=redis_url) as app:
        entry = await app.publish_fields("events", {"n": "3", "fail": "yes"})
        await app.handled(entry)  # acked, not retried, not dead-lettered
    assert beans.JOURNAL == ["outer>3", "forgiven 3", "outer<None"]


async def test_a_sync_handler_runs_in_its_thread_inside_the_chain(
        key: str, redis_url: str) -> None:
    async with run_app(settings(key, "tests.middleware.beans:SyncEcho"), url=redis_url) as app:
        await app.handled(await app.publish_fields("events", {"n": "4"}))
    assert beans.JOURNAL == ["outer>4", "tenant>4", "sync handler 4", "outer<ok-4"]


@pytest.mark.parametrize(("middleware", "says"), [
    ("tests.middleware.beans:Nowhere", "module 'tests.middleware.beans' has no 'Nowhere'"),
    ("tests.middleware.beans:NotAsync", "NotAsync.__call__ must be `async def __call__"),
    ("tests.middleware.beans:Renamed", "Renamed.__call__(self, msg: 'Message[Any]', nxt: "
     "'CallNext') -> 'Any' cannot be called as __call__(self, message, call_next=…)"),
    ("tests.middleware.beans:NoNext", "NoNext.__call__(self, message: 'Message[Any]') -> "
     "'Any' cannot be called as __call__(self, message, call_next=…)"),
    ("nosuch", "the container has no provider named 'nosuch'"),
])
async def test_a_middleware_that_cannot_be_made_is_one_problem_naming_it(
        key: str, redis_url: str, middleware: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        async with run_app(settings(key, middleware=[middleware]), url=redis_url):
            pass
    (problem,) = caught.value.problems
    assert problem.path == "listeners.events.middleware"
    assert says in problem.message
    assert f"middleware {middleware!r}" in problem.message


async def test_a_container_middleware_that_cannot_be_made_names_container_middleware(
        key: str, redis_url: str) -> None:
    config = settings(key)
    config.container.middleware.append("tests.middleware.beans:Nowhere")
    with pytest.raises(ConfigError) as caught:
        async with run_app(config, url=redis_url):
            pass
    (problem,) = caught.value.problems
    assert problem.path == "container.middleware"
    assert "has no 'Nowhere'" in problem.message
