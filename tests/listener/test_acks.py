"""What a subscription holds and owes (listener/acks.py), with and without an ownership
keeper: an entry in hand is never handled a second time because the own pending list
still lists it."""

from __future__ import annotations

import asyncio
import gc
import warnings
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from streamboot import RedisOperator
from streamboot.config.models import RetrySettings
from streamboot.listener.acks import Acks
from streamboot.listener.container import ListenerContainer
from streamboot.listener.stats import ListenerStats
from tests.conftest import wait_until
from tests.handlers import FlakyHandler, Recorder
from tests.ops_app import OpsHandler
from tests.streams import make_spec, produce, true


@pytest.mark.parametrize("with_keeper", [False, True], ids=["no keeper", "keeper"])
async def test_an_entry_waiting_for_its_retry_is_not_handled_again_after_an_error(
        operator: RedisOperator, client: Redis, keeper_client: object, key: str,
        with_keeper: bool) -> None:
    """The retry timer holds the entry; a connection error makes the loop re-read its own
    pending list, which still lists it. Before listener/acks.py, a container without a
    keeper handled it there too: 2 successes (3 handlings) instead of 1 (2)."""
    listeners = (ListenerContainer(operator, keeper_client) if with_keeper  # type: ignore[arg-type]
                 else ListenerContainer(operator))
    recorder = Recorder()
    handler = FlakyHandler(recorder, fail_times=1)
    spec = make_spec(key, retry=RetrySettings(max_deliveries=5,
                                              backoff=timedelta(seconds=1.5),
                                              backoff_max=timedelta(seconds=1.5)))
    (entry,) = await produce(operator, key, 1)
    listeners.register(spec, handler)
    try:
        await listeners.start(timeout=5)
        await wait_until(lambda: true(handler.attempts[entry] == 1))  # failed, retry timer set
        # The poll loop's own connection dropped (the one reading XREADGROUP): its read
        # fails, it backs off and re-reads its own pending list (id 0), where the entry
        # still is. Only that connection: others (pools) would leak closed sockets.
        await _kill_reader(client)
        reads = listeners.subscriptions["orders"].stats.reads
        await wait_until(lambda: true(listeners.subscriptions["orders"].stats.reads > reads + 2),
                         timeout=5)
        assert handler.attempts[entry] == 1  # not handled again while waiting
        await wait_until(lambda: true(recorder.seen[entry] == 1), timeout=5)  # the retry
        await asyncio.sleep(0.3)  # room for a wrong second success to show
    finally:
        await listeners.stop()
        _collect_cut_connection()
    assert handler.attempts[entry] == 2
    assert recorder.seen[entry] == 1
    assert (await operator.pending_summary(key, "g")).count == 0


def _collect_cut_connection() -> None:
    """A connection the server killed mid-read may be left for the garbage collector
    (redis-py closes its transport without waiting); collect it here, where it is
    expected, rather than in whichever later test the collector happens to run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


async def _kill_reader(client: Redis) -> None:
    for _ in range(200):
        clients = await client.client_list()
        readers = [c["id"] for c in clients if c.get("cmd") == "xreadgroup"]
        if readers:
            for reader in readers:
                await client.execute_command("CLIENT", "KILL", "ID", reader)
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no connection blocked in XREADGROUP to cut")


async def _ok(ids: list[str], markers: list[str]) -> int:
    return len(ids)


async def test_acks_ride_with_the_read_and_come_back_when_it_fails() -> None:
    acks = Acks(_ok, ListenerStats())
    acks.hold(["1-0", "2-0", "3-0"])
    acks.succeeded("1-0", "m1")
    acks.succeeded("2-0", None)
    assert acks.watermark == "3-0"
    assert acks.ride() == (["1-0", "2-0"], ["m1\n1-0"])  # with its entry
    assert acks.unconfirmed_markers() == {"m1"}
    acks.missed()  # the read failed: its acks wait for the next one
    assert acks.ride() == (["1-0", "2-0"], ["m1\n1-0"])
    acks.arrived(2)
    assert not acks.holds("1-0")
    assert not acks.holds("2-0")
    assert acks.holds("3-0")
    assert acks.ride() == ([], [])


async def test_a_success_is_acked_within_a_bound_while_slow_handlers_hold_the_loop(
        operator: RedisOperator, client: Redis, key: str) -> None:
    """Concurrency 2, a batch of 4: the fast entry's success used to wait for a slot to
    free (the loop busy handing the batch out, no read going out to carry its XACK), so
    the PEL kept it as long as the slow handlers took; now within ACK_WITHIN."""
    listeners = ListenerContainer(operator)
    handler = OpsHandler(client)
    spec = make_spec(key, batch_size=4, concurrency=2)
    fast = await client.xadd(key, {"n": "fast"})
    for n in range(3):
        await client.xadd(key, {"n": f"slow{n}", "sleep": "3"})
    listeners.register(spec, handler)
    try:
        await listeners.start(timeout=5)
        await wait_until(lambda: _handled(client, "fast"), timeout=5)
        done = asyncio.get_running_loop().time()
        await wait_until(lambda: _not_pending(client, key, str(fast)), timeout=2)
        assert asyncio.get_running_loop().time() - done < 1.0  # the slow ones run 3 s
        assert (await operator.pending_summary(key, "g")).count == 3
    finally:
        await listeners.stop()


async def _handled(client: Redis, n: str) -> bool:
    return n in await client.lrange("{ops}:handled", 0, -1)


async def _not_pending(client: Redis, key: str, entry: str) -> bool:
    rows = await client.xpending_range(key, "g", "-", "+", 10)
    return all(row["message_id"] != entry for row in rows)
