"""``rate_limit``: the bucket's rule, and real listeners held to a rate — in one process,
and shared by two through Redis."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest

from streamboot import ConfigError
from streamboot.config import settings_from_mapping
from streamboot.middleware.rate_limit import Bucket, rate_key
from streamboot.testing import run_app
from tests.middleware import beans


def test_the_bucket_gives_its_burst_then_one_per_period() -> None:
    bucket = Bucket(rate=10.0, burst=2.0, tokens=2.0, at=100.0)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == pytest.approx(0.1)  # empty: one is there in 0.1 s
    assert bucket.take(100.05) == pytest.approx(0.05)
    assert bucket.take(100.11) == 0.0
    assert bucket.take(200.0) == 0.0  # a quiet spell refills up to the burst, no more
    assert bucket.take(200.0) == 0.0
    assert bucket.take(200.0) > 0.0
    assert bucket.take(150.0) > 0.0  # a clock that goes back gives nothing


def test_the_shared_bucket_lives_in_the_streams_slot() -> None:
    assert rate_key("orders", "g") == "{orders}:rate:g"
    assert rate_key("{orders}:notifications", "n") == "{orders}:notifications:rate:n"


@pytest.mark.parametrize("limit", [{"per_second": 0}, {"per_second": -1},
                                   {"per_second": 5, "burst": 0}, {"rate": 5}])
def test_a_rate_limit_that_cannot_work_is_refused(limit: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="rate_limit"):
        settings_from_mapping({"listeners": {"l": {"stream": "s", "group": "g",
                                                   "handler": "a:B", "rate_limit": limit}}})


def settings(key: str, consumer: str, **limit: Any) -> Any:
    return settings_from_mapping({
        "container": {"poll_timeout": "50ms", "concurrency": 8, "batch_size": 5},
        "listeners": {"events": {"stream": key, "group": "g", "consumer": consumer,
                                 "handler": "tests.middleware.beans:Stamp",
                                 "rate_limit": {"per_second": 20, "burst": 1, **limit}}},
    })


async def _handle(key: str, redis_url: str, processes: int, count: int,
                  **limit: Any) -> float:
    """Seconds from the first handling's start to the last's, ``processes`` apps."""
    beans.STARTS.clear()
    async with AsyncExitStack() as stack:
        apps = [await stack.enter_async_context(run_app(
            settings(key, f"c{i}", **limit), url=redis_url)) for i in range(processes)]
        ids = [await apps[0].publish_fields("events", {"n": str(n)}) for n in range(count)]
        await apps[0].handled(*ids, timeout=20)
    assert len(beans.STARTS) == count
    return max(beans.STARTS) - min(beans.STARTS)


async def test_one_process_starts_no_more_than_the_rate(key: str, redis_url: str) -> None:
    took = await _handle(key, redis_url, 1, 30)
    assert 29 / 20 * 0.95 <= took < 29 / 20 + 1.0  # 20/s with a burst of 1: ≥ 1.45 s


async def test_a_shared_limit_holds_two_processes_to_one_rate(
        key: str, redis_url: str) -> None:
    own = await _handle(key, redis_url, 2, 40)  # each its own bucket: about twice the rate
    shared = await _handle(f"{key}-shared", redis_url, 2, 40, shared=True)
    assert shared >= 39 / 20 * 0.95  # 20/s for both together: ≥ 1.95 s
    assert own < shared * 0.75
