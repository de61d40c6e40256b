"""Batch handlers against a real Redis: what a batch holds, each entry's outcome, the
retry and dead-letter path of a failed entry, the wait to fill, the order with
``ordering_key``, timeouts, middleware, and what a bad declaration says."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from loguru import logger
from redis.asyncio import Redis

from streamboot import ConfigError
from streamboot.config import settings_from_mapping
from streamboot.listener.batches import failures_of
from streamboot.testing import run_app
from tests.batches import beans
from tests.conftest import wait_until


def settings(key: str, handler: str = "tests.batches.beans:Collect",
             **listener: Any) -> Any:
    return settings_from_mapping({
        "container": {"poll_timeout": "50ms"},
        "listeners": {"ledger": {
            "stream": key, "group": "g", "handler": handler,
            "retry": {"max_deliveries": 2, "backoff": "10ms"}, **listener}},
    })


@pytest.fixture(autouse=True)
def _clean() -> None:
    beans.clear()


async def _seed(client: Redis, key: str, rows: list[dict[str, str]]) -> list[str]:
    """Entries already in the stream when the listener starts (its first reads are full)."""
    async with client.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.xadd(key, row)  # type: ignore[arg-type]
        return [str(i) for i in await pipe.execute()]


async def _dead_letters(client: Redis, key: str) -> dict[str, dict[str, str]]:
    """The listener's dead letters by the id of the entry each one holds."""
    letters: Any = await client.xrange(f"{{{key}}}:dlq")
    return {fields["dlq_id"]: fields for _, fields in letters}


async def _drained(client: Redis, key: str) -> bool:
    groups = await client.xinfo_groups(key)
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0


async def test_a_batch_holds_up_to_max_size_and_every_entry_is_acked_once(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": str(i)} for i in range(250)])
    config = settings(key, batch_size=100, batch={"max_size": 64})
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key))
    sizes = [len(call) for call in beans.CALLS]
    assert max(sizes) == 64  # full batches, never more
    assert sorted(i for call in beans.CALLS for i in call) == sorted(ids)  # each once
    assert Counter(i for call in beans.CALLS for i in call).most_common(1)[0][1] == 1
    for call in beans.CALLS:  # a batch is in stream order
        assert call == sorted(call, key=lambda i: tuple(map(int, i.split("-"))))


async def test_only_the_entries_reported_failed_are_retried_then_dead_lettered(
        key: str, client: Redis, redis_url: str) -> None:
    rows = [{"n": str(i)} for i in range(20)]
    rows[3]["fail"], rows[11]["fail"] = "yes", "text"
    ids = await _seed(client, key, rows)
    async with run_app(settings(key), url=redis_url):
        await wait_until(lambda: _drained(client, key))
    dead = await _dead_letters(client, key)
    assert set(dead) == {ids[3], ids[11]}
    assert dead[ids[3]]["dlq_error"] == "ValueError: bad 3"
    assert dead[ids[11]]["dlq_error"] == "BatchEntryError: row 11 rejected"
    assert dead[ids[3]]["dlq_reason"] == dead[ids[11]]["dlq_reason"] == "max_deliveries"
    assert beans.DELIVERIES[ids[3]] == beans.DELIVERIES[ids[11]] == [1, 2]
    # The others succeeded in their batch and were never handed over again.
    assert all(beans.DELIVERIES[i] == [1] for n, i in enumerate(ids) if n not in (3, 11))
    assert [ids[3], ids[11]] in beans.CALLS  # the retries came back as a later batch


async def test_an_exception_fails_every_entry_of_its_batch(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": "0"}, {"n": "1", "boom": "1"}, {"n": "2"}])
    async with run_app(settings(key), url=redis_url):
        await wait_until(lambda: _drained(client, key))
    assert beans.CALLS[0] == ids
    assert all(beans.DELIVERIES[i] == [1, 2] for i in ids)


async def test_a_batch_waits_at_most_max_wait_to_fill(
        key: str, client: Redis, redis_url: str) -> None:
    config = settings(key, batch={"max_size": 10, "max_wait": "400ms"})
    async with run_app(config, url=redis_url) as app:
        await app.publish_fields("ledger", {"n": "warmup"})
        await wait_until(lambda: _drained(client, key))
        beans.clear()
        for n in range(10):  # a trickle: one entry every 20 ms
            await app.publish_fields("ledger", {"n": str(n)})
            await asyncio.sleep(0.02)
        await wait_until(lambda: _drained(client, key))
        assert len(beans.CALLS) <= 2, beans.VALUES  # gathered, not ten batches of one
        assert [v for call in beans.VALUES for v in call] == [str(n) for n in range(10)]
        beans.clear()
        started = time.monotonic()
        lone = await app.publish_fields("ledger", {"n": "lone"})
        await app.handled(lone)
        waited = time.monotonic() - started
    assert beans.VALUES == [["lone"]]
    assert 0.35 < waited < 1.5  # it waited for company, then went alone


async def test_with_ordering_key_a_batch_never_holds_two_entries_of_one_key(
        key: str, client: Redis, redis_url: str) -> None:
    rows = [{"n": str(i), "account": f"a{i % 3}"} for i in range(30)]
    rows[4]["fail"] = "once"  # a1's entry fails once: its key waits for its retry
    ids = await _seed(client, key, rows)
    config = settings(key, ordering_key="account", retry={"max_deliveries": 3,
                                                          "backoff": "10ms"})
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key))
    for call, values in zip(beans.CALLS, beans.VALUES, strict=True):
        accounts = [rows[int(v)]["account"] for v in values]
        assert len(accounts) == len(set(accounts)), values  # one entry per key per batch
        assert len(call) <= 3
    # Per key, the successful handlings are in stream order (the failed one dead-lettered
    # after max_deliveries, holding its key until then).
    for account in ("a0", "a1", "a2"):
        seen = [int(v) for values in beans.VALUES for v in values
                if rows[int(v)]["account"] == account]
        firsts = list(dict.fromkeys(seen))
        assert firsts == sorted(firsts), (account, seen)
    assert beans.DELIVERIES[ids[4]] == [1, 2, 3]
    later = [i for i in range(5, 30) if rows[i]["account"] == "a1"]
    last_of_4 = max(n for n, values in enumerate(beans.VALUES) if "4" in values)
    first_of_7 = min(n for n, values in enumerate(beans.VALUES) if str(later[0]) in values)
    assert last_of_4 < first_of_7  # nothing of a1 ran while its failed entry waited


async def test_handler_timeout_fails_the_whole_batch_and_it_is_retried(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": str(i)} for i in range(5)])
    config = settings(key, "tests.batches.beans:Slow", handler_timeout="300ms")
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING", format="{message}")
    started = time.monotonic()
    try:
        async with run_app(config, url=redis_url):
            await wait_until(lambda: _drained(client, key))
    finally:
        logger.remove(sink)
    assert time.monotonic() - started < 5
    assert all(beans.DELIVERIES[i] == [1, 2] for i in ids)
    # Each entry's failure names the entry itself (it named the first one, for all).
    for entry in ids:
        assert sum(f"did not finish entry {entry} within" in line for line in lines) == 1


async def test_a_batch_handler_that_ignores_its_cancellation_is_abandoned(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": str(i)} for i in range(3)])
    config = settings(key, "tests.batches.beans:Stubborn", handler_timeout="200ms")
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key), timeout=8)
    assert all(beans.DELIVERIES[i] == [1, 2] for i in ids)


async def test_idempotency_keeps_a_second_entry_of_a_key_out_of_a_filling_batch(
        key: str, client: Redis, redis_url: str) -> None:
    """Reads gathered for 100 ms into one batch: a second entry of a key read while the
    first waits in the filling batch waits for its outcome, then is skipped (before, three
    q1 went into one batch, out of stream order)."""
    ids = await _seed(client, key, [{"n": k} for k in ("q1", "q1", "q2", "q1", "q3")])
    config = settings(key, batch_size=2, batch={"max_size": 10, "max_wait": "100ms"},
                      idempotency={"key": "n"})
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key))
    assert [v for values in beans.VALUES for v in values] == ["q1", "q2", "q3"]
    assert [i for call in beans.CALLS for i in call] == [ids[0], ids[2], ids[4]]


async def test_an_invalid_payload_is_dead_lettered_alone_and_the_rest_is_one_batch(
        key: str, client: Redis, redis_url: str) -> None:
    rows = [{"n": str(i), "item": "tea"} for i in range(6)]
    rows[2]["n"] = "two"
    ids = await _seed(client, key, rows)
    async with run_app(settings(key, "tests.batches.beans:Orders"), url=redis_url):
        await wait_until(lambda: _drained(client, key))
    (dead,) = (await _dead_letters(client, key)).values()
    assert dead["dlq_id"] == ids[2]
    assert dead["dlq_reason"] == "invalid_payload"
    assert "n: Input should be a valid integer" in dead["dlq_error"]
    assert [[i for n, i in enumerate(ids) if n != 2]] == beans.CALLS


async def test_a_sync_batch_handler_runs_in_a_thread(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": str(i)} for i in range(40)])
    async with run_app(settings(key, "tests.batches.beans:SyncCollect"), url=redis_url):
        await wait_until(lambda: _drained(client, key))
    assert sorted(i for call in beans.CALLS for i in call) == sorted(ids)


async def test_idempotency_skips_a_key_handled_before_and_holds_a_twin(
        key: str, client: Redis, redis_url: str) -> None:
    ids = await _seed(client, key, [{"n": "0", "order": "o1"}, {"n": "1", "order": "o2"},
                                    {"n": "2", "order": "o1"}])
    config = settings(key, idempotency={"key": "order"})
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key))
    handled = [v for values in beans.VALUES for v in values]
    assert sorted(handled) == ["0", "1"]  # o1's twin was acked, not handled
    assert ids[2] not in beans.DELIVERIES


async def test_middleware_runs_around_each_batch(
        key: str, client: Redis, redis_url: str) -> None:
    await _seed(client, key, [{"n": str(i)} for i in range(7)])
    config = settings(key, middleware=["tests.batches.beans:Counting"])
    async with run_app(config, url=redis_url):
        await wait_until(lambda: _drained(client, key))
    assert beans.JOURNAL == ["before 7", "after None"]


@pytest.mark.parametrize(("handler", "says"), [
    ("tests.batches.beans:ReturnsList",
     "TypeError: handle_batch returned a list; return None (all succeeded) or a mapping"),
])
async def test_a_wrong_answer_fails_the_batch_with_a_clear_error(
        key: str, client: Redis, redis_url: str, handler: str, says: str) -> None:
    (entry,) = await _seed(client, key, [{"n": "0"}])
    async with run_app(settings(key, handler), url=redis_url):
        await wait_until(lambda: _drained(client, key))
    assert (await _dead_letters(client, key))[entry]["dlq_error"].startswith(says)


async def test_ids_not_in_the_batch_are_said_and_ignored(
        key: str, client: Redis, redis_url: str) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="ERROR")
    try:
        await _seed(client, key, [{"n": "0"}])
        async with run_app(settings(key, "tests.batches.beans:Strangers"), url=redis_url):
            await wait_until(lambda: _drained(client, key))
    finally:
        logger.remove(sink)
    assert any("handle_batch reported 1 id(s) not in its batch ('0-1')" in line
               for line in lines)
    assert len(beans.CALLS) == 1  # the entry itself succeeded


@pytest.mark.parametrize(("handler", "listener", "path", "says"), [
    ("tests.batches.beans:OneAtATime", {"batch": {"max_size": 10}}, "listeners.ledger.batch",
     "batch is set, but OneAtATime is a StreamHandler (one entry at a time): subclass "
     "BatchHandler"),
    ("tests.batches.beans:Misplaced", {}, "listeners.ledger.handler",
     "Misplaced has handle_batch but subclasses StreamHandler, which calls only handle(message)"),
    ("tests.batches.beans:BothKinds", {}, "listeners.ledger.handler",
     "BothKinds has handle_batch but subclasses StreamHandler, which calls only "
     "handle(message): subclass BatchHandler to take entries in batches, or remove "
     "handle_batch (never called)"),
    ("tests.batches.beans:WithHandle", {}, "listeners.ledger.handler",
     "WithHandle is a BatchHandler: implement handle_batch(self, messages), not handle"),
])
async def test_a_handler_of_the_wrong_kind_is_one_problem_naming_it(
        key: str, redis_url: str, handler: str, listener: dict[str, Any], path: str,
        says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        async with run_app(settings(key, handler, **listener), url=redis_url):
            pass
    (problem,) = caught.value.problems
    assert problem.path == path
    assert says in problem.message


@pytest.mark.parametrize(("batch", "says"), [
    ({"max_size": 0}, "greater than or equal to 1"),
    ({"max_wait": "2m"}, "must be between 0s and 1m"),
    ({"max_wait": "-1s"}, "a duration cannot be negative"),
    ({"size": 3}, "batch.size: unknown key; expected one of: max_size, max_wait"),
])
def test_bad_batch_settings_are_refused(batch: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings("s", batch=batch)
    assert says in str(caught.value)
    assert "listeners.ledger.batch" in str(caught.value)


def test_failures_of_reads_the_handlers_answer() -> None:
    error = ValueError("x")
    assert failures_of(None, ["1-0"]) == {}
    assert failures_of({"1-0": error}, ["1-0", "2-0"]) == {"1-0": error}
    (text,) = failures_of({"2-0": "why"}, ["1-0", "2-0"]).values()
    assert str(text) == "why"
    assert failures_of({"9-0": error}, ["1-0"]) == {}
    # A bytes id is the same entry (acked as a success before: "not in its batch"); a
    # mapping names failures, so one without a reason is a failure, said plainly.
    assert failures_of({b"1-0": error}, ["1-0"]) == {"1-0": error}
    (unexplained,) = failures_of({"1-0": None}, ["1-0"]).values()
    assert str(unexplained) == "failed (handle_batch named it without a reason)"
    wrong = failures_of(["1-0"], ["1-0", "2-0"])
    assert set(wrong) == {"1-0", "2-0"}
    assert isinstance(wrong["1-0"], TypeError)
