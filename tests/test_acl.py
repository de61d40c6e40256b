"""Least privilege: the ACL line docs/operations.md gives is enough for everything
Streamboot does — and nothing it does is refused — as a user with only that line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from loguru import logger

from streamboot.config import settings_from_mapping
from streamboot.devserver import RedisServer
from streamboot.testing import run_app

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"


def documented_acl_line() -> str:
    section = DOC.read_text().split("## Least privilege", 1)[1]
    (line,) = re.findall(r"^ACL SETUSER .*$", section, re.M)
    return str(line).replace(">CHANGE-ME", ">s3cret")


@pytest.fixture
def acl_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        admin = redis.Redis.from_url(server.url)
        admin.execute_command(*documented_acl_line().split())
        admin.close()
        yield server


def settings(url: str) -> Any:
    return settings_from_mapping({
        "redis": {"url": url, "username": "streamboot", "password": "s3cret",
                  "socket_connect_timeout": "75ms"},
        "container": {"poll_timeout": "50ms"},
        "listeners": {
            "orders": {"stream": "orders", "group": "g", "consumer": "c1",
                       "handler": "tests.test_testing_kit:Keeps",
                       "idempotency": {"key": "sku"},
                       "retry": {"max_deliveries": 2, "backoff": "10ms"},
                       "pending_scan": {"interval": "200ms", "min_idle": "300ms"},
                       "retention": {"max_len": 1000, "interval": "200ms"},
                       "cleanup": {"interval": "200ms", "consumer_idle": "100ms"}},
            "failing": {"stream": "{orders}:failing", "group": "g",
                        "handler": "tests.test_testing_kit:Declines",
                        "retry": {"max_deliveries": 2, "backoff": "10ms"}},
            "rotated": {"stream": "orders:hourly", "group": "g",
                        "handler": "tests.test_testing_kit:Keeps",
                        "rotation": {"key_format": "orders:hourly:%Y%m%d%H",
                                     "check_interval": "1s", "precreate": "1s"}}}})


async def test_everything_streamboot_does_runs_as_the_documented_acl_user(
        acl_server: RedisServer) -> None:
    from tests.test_testing_kit import Item

    admin = redis.Redis.from_url(acl_server.url, decode_responses=True)
    # An orphan: delivered to a consumer that died, for the recovery job to reclaim.
    admin.xgroup_create("orders", "g", "0", mkstream=True)
    orphan = admin.xadd("orders", {"sku": "orphan", "qty": "1"})
    admin.xreadgroup("g", "dead-consumer", {"orders": ">"})
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    url = acl_server.url
    try:
        async with run_app(settings(url), url=url) as app:
            assert app.application.settings.redis.username == "streamboot"
            handled = [await app.publish("orders", Item(sku=f"s{i}", qty=1)) for i in range(3)]
            again = await app.publish("orders", Item(sku="s0", qty=1))  # a duplicate key
            await app.handled(*handled, again)
            (dead,) = await app.dead_lettered(await app.publish("failing", Item(sku="x", qty=1)))
            assert dead.reason == "max_deliveries"
            rotated = await app.publish("rotated", Item(sku="r", qty=1))
            await app.handled(rotated)
            await _until(lambda: not admin.xpending("orders", "g")["pending"], "recovery")
            await _until(lambda: "dead-consumer" not in
                         {c["name"] for c in admin.xinfo_consumers("orders", "g")}, "cleanup")
    finally:
        logger.remove(sink)
    assert [w for w in warnings if "permission" in w.lower() or "NOPERM" in w] == []
    handler = app.handler("orders")
    skus = sorted(item.sku for item in handler.seen)  # type: ignore[attr-defined]
    assert skus == ["orphan", "s0", "s1", "s2"]  # the duplicate skipped, the orphan reclaimed
    period = f"orders:hourly:{datetime.now(UTC):%Y%m%d%H}"
    assert admin.ttl(period) > 0  # created with its TTL by the rotation job
    assert orphan
    admin.close()


async def _until(condition: Any, what: str, timeout: float = 10.0) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"{what} did not happen within {timeout}s"
        await asyncio.sleep(0.05)


async def test_a_permission_a_script_needs_is_one_line_naming_what_to_do(
        acl_server: RedisServer) -> None:
    """Scripts' commands refused by ACL used to be tracebacks every run of the job (a new
    user's trial); XAUTOCLAIM taken away here, which the recovery script runs."""
    admin = redis.Redis.from_url(acl_server.url, decode_responses=True)
    admin.execute_command("ACL", "SETUSER", "streamboot", "-xautoclaim")
    admin.xgroup_create("orders", "g", "0", mkstream=True)
    admin.xadd("orders", {"sku": "orphan", "qty": "1"})
    admin.xreadgroup("g", "dead-consumer", {"orders": ">"})
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING",
                      format="{message}{exception}")
    try:
        async with run_app(settings(acl_server.url), url=acl_server.url):
            await _until(lambda: any("job failed" in line for line in lines), "a job run")
    finally:
        logger.remove(sink)
        admin.close()
    failed = [line.strip() for line in lines if "job failed" in line]
    assert failed[0] == ("job failed: permission denied: one of Streamboot's scripts runs a "
                         "command this user may not run (ACL LOG names it); grant the commands "
                         "of the ACL line in docs/operations.md, Least privilege; it runs "
                         "again next time")
    assert not any("Traceback" in line for line in lines)
