"""``ordering_key``: one key's entries never run at the same time and run in stream order,
retries included; other keys run in parallel; what waits behind a busy key is bounded."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

from streamboot.config.models import AppSettings
from streamboot.testing import run_app
from tests.partitions.conftest import Target
from tests.partitions.handlers import Event, Ran

HANDLER = "tests.partitions.handlers:EventHandler"


def settings(url: str, cluster: bool = False, **listener: Any) -> AppSettings:
    return AppSettings(
        redis={"url": url, "cluster": cluster},
        container={"poll_timeout": "100ms"},
        listeners={"orders": {"stream": "orders", "group": "g", "handler": HANDLER,
                              "ordering_key": "customer", "batch_size": 10, "concurrency": 8,
                              "retry": {"max_deliveries": 3, "backoff": "200ms"},
                              **listener}})


def per_key(ran: list[Ran]) -> dict[str, list[Ran]]:
    calls: dict[str, list[Ran]] = defaultdict(list)
    for r in sorted(ran, key=lambda r: r.started):
        calls[r.customer].append(r)
    return calls


def assert_one_at_a_time_in_order(ran: list[Ran]) -> None:
    for customer, calls in per_key(ran).items():
        for before, after in itertools.pairwise(calls):
            assert after.started >= before.ended, f"{customer}: {before} overlaps {after}"
        seqs = [c.seq for c in calls if c.delivery == 1 or c.seq not in
                {d.seq for d in calls if d.delivery == 1}]
        assert seqs == sorted(seqs), f"{customer} out of order: {seqs}"


async def test_one_key_at_a_time_in_order_while_keys_run_in_parallel(redis_url: str) -> None:
    """Full batches with read-ahead (batch 10, 300 entries): the real shape of the loop."""
    async with run_app(settings(redis_url), url=redis_url) as app:
        events = [Event(customer=f"c{i % 10}", seq=i) for i in range(300)]
        ids = [await app.publish("orders", e) for e in events]
        await app.handled(*ids)
        handler: Any = app.handler("orders")
    assert sorted(r.seq for r in handler.ran) == list(range(300))
    assert_one_at_a_time_in_order(handler.ran)
    assert handler.most_at_once > 1  # other keys did run side by side


async def test_a_retry_holds_back_the_later_entries_of_its_key_only(redis_url: str) -> None:
    async with run_app(settings(redis_url), url=redis_url) as app:
        ids = [await app.publish("orders", Event(customer="a", seq=0)),
               await app.publish("orders", Event(customer="a", seq=1, fail_first=True))]
        ids += [await app.publish("orders", Event(customer="a", seq=s)) for s in (2, 3, 4)]
        ids += [await app.publish("orders", Event(customer="b", seq=s)) for s in range(5)]
        await app.handled(*ids)
        handler: Any = app.handler("orders")
    calls = per_key(handler.ran)
    assert [(c.seq, c.delivery) for c in calls["a"]] == [(0, 1), (1, 1), (1, 2), (2, 1),
                                                          (3, 1), (4, 1)]
    retry = calls["a"][2]
    assert all(c.started >= retry.ended for c in calls["a"][3:])
    # b did not wait for a's 200ms backoff
    assert max(c.ended for c in calls["b"]) < retry.started


async def test_a_hot_key_does_not_make_the_loop_read_without_bound(redis_url: str) -> None:
    """One key, 200 entries: they run one by one, and what is in hand stays under the
    bound: a batch waiting behind the key, the batch just read, the read-ahead, and the
    handled entries whose XACK rides the next read — 4 batches (without the bound the
    loop read 167 of the 200 at once)."""
    async with run_app(settings(redis_url), url=redis_url) as app:
        ids = [await app.publish("orders", Event(customer="hot", seq=i)) for i in range(200)]
        (sub,) = app.application.listeners.subscriptions.values()  # type: ignore[union-attr]
        most = 0
        waiter = asyncio.ensure_future(app.handled(*ids, timeout=60))
        while not waiter.done():
            most = max(most, len(sub._acks.in_hand))
            await asyncio.sleep(0.005)
        await waiter
        handler: Any = app.handler("orders")
    assert handler.most_at_once == 1
    assert [r.seq for r in sorted(handler.ran, key=lambda r: r.started)] == list(range(200))
    assert 10 < most <= 4 * 10 + 1, most  # it did read ahead, and no further than the bound


async def test_partitions_and_ordering_on_both_servers(target: Target) -> None:
    config = settings(target.url, target.cluster, partitions=3)
    async with run_app(config, url=target.url) as app:
        ids = [await app.publish("orders", Event(customer=f"c{i % 6}", seq=i))
               for i in range(120)]
        await app.handled(*ids)
        handler: Any = app.handler("orders")
    assert_one_at_a_time_in_order(handler.ran)
    assert len({r.stream for r in handler.ran}) == 3
