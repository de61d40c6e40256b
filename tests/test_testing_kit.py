"""The test kit itself: its waits end as soon as Redis says so, fail at once when the
answer is already no, and fail at their bound naming each entry's state."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import BaseModel

from streamboot import Message, StreamHandler
from streamboot.config import settings_from_mapping
from streamboot.errors import StreambootError
from streamboot.testing import message_of, run_app

GATE: dict[str, asyncio.Event] = {}


class Item(BaseModel):
    sku: str
    qty: int


class Keeps(StreamHandler[Item]):
    def __init__(self) -> None:
        self.seen: list[Item] = []

    async def handle(self, message: Message[Item]) -> None:
        self.seen.append(message.payload)


class Declines(StreamHandler[Item]):
    async def handle(self, message: Message[Item]) -> None:
        raise RuntimeError(f"no stock for {message.payload.sku}")


class Waits(StreamHandler[Item]):
    async def handle(self, message: Message[Item]) -> None:
        await GATE["open"].wait()


def app_settings(handler: str, **listener: Any) -> Any:
    return settings_from_mapping({
        "container": {"poll_timeout": "50ms"},
        "listeners": {"items": {"stream": "items", "group": "g",
                                "handler": f"tests.test_testing_kit:{handler}",
                                "retry": {"max_deliveries": 2, "backoff": "10ms"},
                                **listener}}})


async def test_handled_returns_once_each_entry_is_acked(streamboot_url: str) -> None:
    async with run_app(app_settings("Keeps"), url=streamboot_url) as app:
        ids = [await app.publish("items", Item(sku=f"s{i}", qty=i)) for i in range(5)]
        await app.handled(*ids)
        handler = app.handler("items")
        assert isinstance(handler, Keeps)
        assert [item.sku for item in handler.seen] == [f"s{i}" for i in range(5)]


async def test_handled_fails_at_once_naming_the_dead_letter(streamboot_url: str) -> None:
    async with run_app(app_settings("Declines"), url=streamboot_url) as app:
        entry = await app.publish("items", Item(sku="a", qty=1))
        began = time.monotonic()
        with pytest.raises(AssertionError) as info:
            await app.handled(entry, timeout=30)
        assert time.monotonic() - began < 5  # not the 30 s bound: the answer was known
    assert str(info.value) == (f"expected handled, but {entry} was dead-lettered "
                               "(max_deliveries: RuntimeError: no stock for a)")


async def test_a_wait_fails_at_its_bound_naming_the_state(streamboot_url: str) -> None:
    GATE["open"] = asyncio.Event()
    async with run_app(app_settings("Waits", consumer="c1"), url=streamboot_url) as app:
        entry = await app.publish("items", Item(sku="a", qty=1))
        began = time.monotonic()
        with pytest.raises(AssertionError) as info:
            await app.handled(entry, timeout=0.5)
        took = time.monotonic() - began
        GATE["open"].set()
        await app.handled(entry)  # released: now it is
    assert 0.5 <= took < 2.0
    assert str(info.value) == (f"not all handled within 0.5s — {entry}: pending (delivered "
                               "1×, to c1)")


async def test_dead_lettered_gives_reason_error_and_original_fields(streamboot_url: str) -> None:
    async with run_app(app_settings("Keeps"), url=streamboot_url) as app:
        entry = await app.publish_fields("items", {"sku": "a", "qty": "many"})
        (dead,) = await app.dead_lettered(entry)
    assert dead.id == entry
    assert dead.reason == "invalid_payload"
    assert dead.fields == {"sku": "a", "qty": "many"}
    assert "qty: Input should be a valid integer" in dead.error


async def test_mistakes_in_a_test_are_named(streamboot_url: str) -> None:
    with pytest.raises(StreambootError, match="the container has no provider 'paymnet'"):
        async with run_app(app_settings("Keeps"), url=streamboot_url,
                           overrides={"paymnet": object()}):
            pass
    async with run_app(app_settings("Keeps"), url=streamboot_url) as app:
        with pytest.raises(KeyError, match="no listener 'itmes': the file declares items"):
            await app.publish("itmes", Item(sku="a", qty=1))
        with pytest.raises(ValueError, match="1-1 was not published by this app"):
            await app.handled("1-1")


def test_message_of_builds_what_a_handler_receives() -> None:
    message = message_of(Item(sku="a", qty=2), delivery_count=3)
    assert message.payload == Item(sku="a", qty=2)
    assert message.fields == {"sku": "a", "qty": "2"}
    assert message.delivery_count == 3
    assert message.marker is None


async def test_a_file_reading_redis_url_loads_and_a_hung_stop_is_bounded(
        streamboot_url: str, tmp_path: Any) -> None:
    """`${REDIS_URL}` without default reads the kit's url; `shutdown_timeout` bounds the stop
    of a test that leaves a handler hung (else the file's 30 s)."""
    path = tmp_path / "app.yaml"
    path.write_text("""redis: {url: "${REDIS_URL}"}
container: {poll_timeout: 50ms}
listeners:
  items: {stream: items, group: g, handler: "tests.test_testing_kit:Waits"}
""")
    GATE["open"] = asyncio.Event()
    began = time.monotonic()
    async with run_app(path, url=streamboot_url, env={}, shutdown_timeout=0.3) as app:
        entry = await app.publish("items", Item(sku="a", qty=1))
        with pytest.raises(AssertionError, match="pending"):
            await app.handled(entry, timeout=0.3)
    assert time.monotonic() - began < 5
    GATE["open"].set()


def test_a_starter_never_shadows_an_importable_module() -> None:
    from streamboot.cli.scaffold import package_name

    assert package_name("my-shop") == "my_shop"
    assert package_name("redis") == "app_redis"  # a dependency
    assert package_name("json") == "app_json"  # the standard library
    assert package_name("streamboot") == "app_streamboot"
    assert package_name("2nd shop") == "app_2nd_shop"


async def test_a_block_that_ends_at_once_logs_no_job_errors(
        streamboot_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """The stop cancels jobs that had not begun: a cancellation at stop is not an error (a
    new user's trial saw APScheduler's "Error running job" with a CancelledError)."""
    with caplog.at_level("ERROR", logger="apscheduler"):
        for _ in range(3):
            async with run_app(app_settings("Keeps"), url=streamboot_url):
                pass
    assert [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")] == []
