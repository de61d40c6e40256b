"""Fencing entry ownership (listener/ownership.py): the pure rule, and what a live
consumer says of the entries it loses — taken over, deleted or trimmed — against a real
redis-server. The frozen and cut-off processes are in tests/faults/."""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from loguru import logger
from redis.asyncio import Redis

from streamboot import Application, RedisOperator
from streamboot.config import settings_from_mapping
from streamboot.config.models import PendingScanSettings
from streamboot.errors import ConfigError
from streamboot.listener.acks import Acks
from streamboot.listener.container import ListenerContainer
from streamboot.listener.losses import LossReport
from streamboot.listener.ownership import trusted, verdict_of
from streamboot.listener.stats import ListenerStats
from streamboot.observability.health import health
from streamboot.wire.records import Renewal
from tests.conftest import wait_until
from tests.faults.proxy import FaultyProxy
from tests.listener.test_live_work import Tally
from tests.streams import age, equals, make_spec, pel, produce, true

SCAN = PendingScanSettings(interval=timedelta(hours=1), min_idle=timedelta(milliseconds=600))
"""Renewals every 200 ms; no recovery job runs in these tests (they drive none)."""


# -- the rule, alone ---------------------------------------------------------------------
def test_an_entry_starts_only_on_evidence_sent_within_trust() -> None:
    fresh, stale = (1, 10.0), (1, 5.0)
    assert trusted(fresh, (0, -math.inf), now=9.9)  # its own delivery vouches
    assert not trusted(stale, (0, -math.inf), now=9.9)
    assert trusted(stale, (1, 12.0), now=9.9)  # a renewal that copied hold 1 covers it
    assert not trusted(stale, (0, 12.0), now=9.9)  # held after that renewal's copy
    assert not trusted(stale, (1, 9.0), now=9.9)  # the renewal's word has expired too


def test_a_renewal_after_a_freeze_covers_only_what_it_copied() -> None:
    """The defect: a renewal that succeeded after a freeze moved one deadline forward for
    everything, so the read-ahead's entries — parsed after it, sent before the freeze —
    started unchecked. Now the verdict covers hold numbers up to its copy only."""
    acks = Acks(_ok, ListenerStats(), trust=2.4)
    acks.hold(["1-0", "2-0"], sent_at=0.0)  # the batch in hand, read at t=0
    copied = acks.sequence
    verdict = verdict_of(copied, 20.0, 2.4, ["1-0", "2-0"], [Renewal(["1-0"], [], [], 0)])
    acks.hold(["3-0"], sent_at=0.1)  # the read-ahead, sent before the freeze, parsed now
    assert verdict.gone == ["2-0"]
    assert verdict.until == 22.4
    cover = (verdict.sequence, verdict.until)
    assert trusted(acks.in_hand["1-0"], cover, now=20.5)
    assert not trusted(acks.in_hand["3-0"], cover, now=20.5)  # asked of Redis first


def test_a_verdict_lets_go_only_of_holds_it_knew() -> None:
    acks = Acks(_ok, ListenerStats(), trust=1.0)
    acks.hold(["1-0", "2-0"], sent_at=0.0)
    copied = acks.sequence
    acks.hold(["2-0"], sent_at=5.0)  # held again since (reclaimed back): a new delivery
    assert acks.release_covered(["1-0", "2-0"], copied) == ["1-0"]
    assert acks.holds("2-0")


def test_the_ids_a_renewal_was_given_are_sorted_by_what_it_found() -> None:
    verdict = verdict_of(3, 1.0, 2.0, ["a", "b", "c", "d"],
                         [Renewal(["a"], ["b"], [], 0), Renewal([], [], ["c"], 0)], " why")
    assert (verdict.taken, verdict.deleted, verdict.gone) == (["b"], ["c"], ["d"])
    assert (verdict.sequence, verdict.until, verdict.why) == (3, 3.0, " why")


def test_a_deleted_entry_is_counted_once_whichever_paths_meet_it() -> None:
    stats, lines = ListenerStats(), list[str]()
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        report = LossReport(stats, logger)
        report.deleted(["1-0", "2-0"])  # the re-read of the own pending list
        report.deleted(["2-0", "3-0"])  # the recovery job's XAUTOCLAIM, after a restart
    finally:
        logger.remove(sink)
    assert stats.deleted_while_pending == 3
    assert len(lines) == 2
    assert "2 entries pending here were deleted" in lines[0]


async def _ok(ids: list[str], markers: list[str]) -> int:
    return len(ids)


# -- against redis-server ----------------------------------------------------------------
@pytest.fixture
def lines() -> Iterator[list[str]]:
    found: list[str] = []
    sink = logger.add(lambda m: found.append(str(m)), level="WARNING", format="{message}")
    yield found
    logger.remove(sink)


@pytest.mark.parametrize("how", ["xdel", "xtrim"])
async def test_entries_deleted_while_held_are_said_deleted_not_taken_over(
    operator: RedisOperator, keeper_client: redis.Redis, client: redis.asyncio.Redis,
    key: str, how: str, lines: list[str]
) -> None:
    """Six entries, one worker, 0.3 s each: five wait in hand. Two of the waiting ones
    are deleted (XDEL), or the three oldest trimmed (XTRIM), by someone else. Before, each
    logged "another consumer took the entry over" and counted as lost."""
    ids = await produce(operator, key, 6)
    handled: Counter[str] = Counter()
    first = asyncio.Event()
    container = ListenerContainer(operator, keeper_client)
    sub = container.register(make_spec(key, batch_size=6, concurrency=1, pending_scan=SCAN),
                             Tally(handled, 0.3, first))
    try:
        await container.start(timeout=5)
        await asyncio.wait_for(first.wait(), 5)  # ids[0] runs, the rest wait
        if how == "xdel":
            gone = [ids[3], ids[4]]
            await client.xdel(key, *gone)
        else:
            gone = ids[:3]  # ids[0] is running: it finishes; 1 and 2 are never started
            await client.xtrim(key, maxlen=3, approximate=False)
        never = [i for i in gone if i != ids[0]]
        await wait_until(lambda: true(len(handled) == 6 - len(never)), timeout=10)
        await wait_until(lambda: equals(pel(operator, key), 0))
    finally:
        await container.stop()
    assert sorted(handled) == sorted(set(ids) - set(never))
    assert max(handled.values()) == 1
    assert sub.stats.deleted_while_pending == len(gone)
    assert sub.stats.lost == 0
    said = [line for line in lines if "deleted or trimmed" in line]
    assert len(said) == 1
    assert f"{len(gone)} entries pending here" in said[0]
    assert not [line for line in lines if "taken over" in line]


async def test_an_entry_taken_over_while_waiting_is_said_once_and_not_started(
    operator: RedisOperator, keeper_client: redis.Redis, key: str, lines: list[str]
) -> None:
    ids = await produce(operator, key, 4)
    handled: Counter[str] = Counter()
    first = asyncio.Event()
    container = ListenerContainer(operator, keeper_client)
    sub = container.register(make_spec(key, batch_size=4, concurrency=1, pending_scan=SCAN),
                             Tally(handled, 0.4, first))
    try:
        await container.start(timeout=5)
        await asyncio.wait_for(first.wait(), 5)
        await operator.xclaim(key, "g", "rival", timedelta(0), [ids[2]])
        await wait_until(lambda: true(len(handled) == 3), timeout=10)
    finally:
        await container.stop()
    assert ids[2] not in handled
    assert sub.stats.lost == 1
    said = [line for line in lines if "taken over" in line]
    assert len(said) == 1
    assert ids[2] in said[0]
    assert "1 entry held here" in said[0]


async def test_an_entry_acknowledged_elsewhere_while_waiting_is_said_so_not_taken_over(
    operator: RedisOperator, keeper_client: redis.Redis, key: str, lines: list[str]
) -> None:
    """Another consumer acknowledges an entry this one holds (it took it over and finished,
    or it is the frozen former owner finishing late): not started here, and said as what
    it is — a new user's trial saw the rightful owner report it "taken over"."""
    ids = await produce(operator, key, 4)
    handled: Counter[str] = Counter()
    first = asyncio.Event()
    container = ListenerContainer(operator, keeper_client)
    sub = container.register(make_spec(key, batch_size=4, concurrency=1, pending_scan=SCAN),
                             Tally(handled, 0.4, first))
    try:
        await container.start(timeout=5)
        await asyncio.wait_for(first.wait(), 5)
        await operator.xack(key, "g", [ids[2]])
        await wait_until(lambda: true(len(handled) == 3), timeout=10)
    finally:
        await container.stop()
    assert ids[2] not in handled
    assert (sub.stats.acked_elsewhere, sub.stats.lost) == (1, 0)
    said = [line for line in lines if "by another consumer" in line]
    assert len(said) == 1
    assert "1 entry held here was acknowledged meanwhile" in said[0]


async def test_an_ack_that_finds_entries_acknowledged_already_says_they_ran_twice() -> None:
    stats = ListenerStats()
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")

    async def two_of_three(ids: list[str], markers: list[str]) -> int:
        return 2  # Redis found one of them acknowledged already

    try:
        acks = Acks(two_of_three, stats, losses=LossReport(stats, logger))
        acks.hold(["1-0", "2-0", "3-0"])
        for entry_id in ("1-0", "2-0", "3-0"):
            acks.succeeded(entry_id, None)
        assert await acks.ack_now()
        acks._losses.flush()  # type: ignore[union-attr]
    finally:
        logger.remove(sink)
    assert stats.already_acked == 1
    assert len(lines) == 1
    assert "1 entry handled here was no longer pending when this consumer's XACK" in lines[0]


async def test_a_restart_counts_each_entry_deleted_while_pending_once(
    operator: RedisOperator, redis_url: str, client: redis.asyncio.Redis, key: str,
    lines: list[str]
) -> None:
    """A consumer restarted under its own name meets the entries deleted while it was
    away twice: re-reading its own pending list, and in its recovery job's XAUTOCLAIM.
    Before, 82 deletions were logged for 81 deleted entries."""
    ids = await produce(operator, key, 81)
    await operator.create_group(key, "g", "0")
    await operator.xreadgroup(key, "g", "c1", count=81)  # then the process died
    await age(client, key, "g", "c1", ids, timedelta(seconds=1))  # past min_idle: the
    await client.xdel(key, *ids)  # recovery job meets them at start, and so does the re-read
    settings = settings_from_mapping({
        "redis": {"url": redis_url, "socket_connect_timeout": "75ms"},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"orders": {
            "stream": key, "group": "g", "consumer": "c1",
            "handler": "tests.handlers:LoggingHandler",
            "pending_scan": {"interval": "100ms", "min_idle": "300ms"}}},
    })
    application = Application(settings)
    await application.start()
    try:
        assert application.listeners is not None
        sub = application.listeners.subscriptions["orders"]
        await wait_until(lambda: equals(pel(operator, key), 0))
        await asyncio.sleep(0.3)  # a recovery run or two more: nothing left to count
    finally:
        await application.stop()
    assert sub.stats.deleted_while_pending == 81
    assert sub.stats.handled == 0


def test_min_idle_too_short_for_a_reconnect_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({
            "redis": {"url": "redis://127.0.0.1:1/0", "socket_timeout": "10s"},
            "listeners": {"orders": {"stream": "orders", "group": "g", "handler": "h",
                                     "pending_scan": {"min_idle": "2s"}}}})
    message = str(refused.value)
    assert "listeners.orders: pending_scan.min_idle (2s) is too short for " \
        "redis.socket_connect_timeout (5s)" in message
    assert "at most 500ms" in message
    assert "at least 20s" in message
    assert message.count("\n") == 0  # one line
    ok = settings_from_mapping({
        "redis": {"url": "redis://127.0.0.1:1/0", "socket_connect_timeout": "500ms"},
        "listeners": {"orders": {"stream": "orders", "group": "g", "handler": "h",
                                 "pending_scan": {"min_idle": "2s"}}}})
    # The renewal's own reply timeout is a tenth of min_idle, not socket_timeout's 10 s.
    assert ok.renewal_timeout() == timedelta(milliseconds=200)


async def test_failing_renewals_are_said_once_counted_and_shown_in_health(
    operator: RedisOperator, key: str, lines: list[str]
) -> None:
    """The renewal thread cannot reach Redis at all (its connection is refused); the
    listener's own connections work. The failure is said once, every attempt counts, and
    /healthz reports the entries in hand going unrenewed; entries whose receipts aged are
    confirmed by the listener itself before they start, so nothing is lost or doubled."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    broken = redis.Redis(port=dead_port, socket_connect_timeout=0.05, socket_timeout=0.05)
    ids = await produce(operator, key, 4)
    handled: Counter[str] = Counter()
    container = ListenerContainer(operator, broken)
    sub = container.register(make_spec(key, batch_size=4, concurrency=1, pending_scan=SCAN),
                             Tally(handled, 0.4))
    problems: list[str] = []
    try:
        await container.start(timeout=5)
        await wait_until(lambda: true(len(handled) >= 2), timeout=10)  # past 0.8 x 600ms
        report = await health(operator, container.subscriptions)
        problems = list(report["problems"])  # type: ignore[call-overload]
        await wait_until(lambda: true(len(handled) == 4), timeout=10)
    finally:
        await container.stop()
        broken.close()
    assert sorted(handled) == sorted(ids)
    assert max(handled.values()) == 1
    assert sub.keeper is not None
    assert sub.keeper.failed_attempts >= 4  # two attempts a round, a round every 200 ms
    assert len([line for line in lines if "could not renew ownership" in line]) == 1
    assert any("ownership of" in p and "not renewed for" in p for p in problems), problems
    assert sub.stats.lost == sub.stats.unconfirmed == 0


async def test_a_slow_renewal_call_is_said_as_such_not_as_a_pause(
    operator: RedisOperator, redis_url: str, key: str, lines: list[str]
) -> None:
    """A renewal call held 1.2 s by the server (CLIENT PAUSE: what a slow or silent
    connection does to the one renewal thread) delays every listener's renewal. That is
    said once as a slow call, not as this process being paused, and no pause is counted:
    the thread's time inside calls explains the gap. (Entries whose receipts aged
    meanwhile are confirmed or left pending, as with any late renewal.)"""
    slow_client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5.0)
    admin = redis.Redis.from_url(redis_url)
    container = ListenerContainer(operator, slow_client)
    handled: Counter[str] = Counter()
    subs = []
    for name in (key, f"{key}-b"):
        await produce(operator, name, 4)
        subs.append(container.register(
            make_spec(name, name=name, batch_size=4, concurrency=1, pending_scan=SCAN),
            Tally(handled, 0.5)))
    try:
        await container.start(timeout=5)
        await wait_until(lambda: true(len(handled) >= 1), timeout=10)
        admin.execute_command("CLIENT", "PAUSE", 1200, "ALL")
        await asyncio.sleep(2.0)  # the pause, then renewals on time again
    finally:
        await container.stop()
        slow_client.close()
        admin.close()
    assert [line for line in lines if "was paused" in line] == []
    assert len([line for line in lines if "a renewal call to redis took" in line]) == 1
    assert [sub.keeper.pauses for sub in subs if sub.keeper is not None] == [0, 0]


def test_every_listener_too_short_for_a_reconnect_is_named_in_one_problem() -> None:
    with pytest.raises(ConfigError) as refused:
        settings_from_mapping({
            "redis": {"url": "redis://127.0.0.1:1/0", "socket_connect_timeout": "2s"},
            "listeners": {name: {"stream": name, "group": "g", "handler": "h",
                                 "pending_scan": {"min_idle": idle}}
                          for name, idle in (("a", "1s"), ("b", "4s"), ("c", "6s"),
                                             ("d", "8s"))}})
    assert len(refused.value.problems) == 1
    message = str(refused.value)
    assert "listeners.a, listeners.b, listeners.c: pending_scan.min_idle (1s, 4s, 6s)" in message
    assert "at most 250ms" in message  # a quarter of the shortest: one fix for all of them


@pytest.mark.parametrize("key", ["socket_connect_timeout", "socket_timeout"])
def test_a_zero_socket_timeout_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=f"redis.{key}: {key} must be at least 1ms"):
        settings_from_mapping({"redis": {"url": "redis://127.0.0.1:1/0", key: "0ms"}})


# -- a partition's lease lost while a handler runs ----------------------------------------
class HeldLease:
    """A partition's lease as the fence sees it (listener/tenure.py's Tenure): trusted
    until the test says it is lost. The real one is partitions/membership.py's Lease."""

    epoch = 3

    def __init__(self) -> None:
        self.lost = False

    def trusted(self, until: float = 0.0) -> bool:
        return not self.lost

    async def renewed(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, 0.01))


async def test_a_member_that_lost_the_lease_neither_retries_nor_dead_letters(
    operator: RedisOperator, container: ListenerContainer, key: str, client: Redis
) -> None:
    """Its handler fails after the lease was lost: the entry is the new owner's, so this
    member does not schedule a retry nor dead-letter it (max_deliveries 1 would have), and
    does not ack it: it stays pending, counted fenced, said in one line."""
    from streamboot import Message, StreamHandler
    from streamboot.config.models import RetrySettings

    lease, gate, started = HeldLease(), asyncio.Event(), asyncio.Event()

    class FailsLate(StreamHandler[dict[str, str]]):
        async def handle(self, message: Message[dict[str, str]]) -> None:
            started.set()
            await gate.wait()
            raise RuntimeError("the store refused a stale epoch")

    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        await produce(operator, key, 1)
        spec = make_spec(key, retry=RetrySettings(max_deliveries=1))
        sub = container.register(spec, FailsLate(), lease)
        await container.start(timeout=5)
        await asyncio.wait_for(started.wait(), 10)
        lease.lost = True
        gate.set()
        await wait_until(lambda: true(sub.stats.fenced == 1))
        await container.stop()
    finally:
        logger.remove(sink)
    assert await pel(operator, key) == 1
    assert await client.xlen(spec.dead_letter_stream or "") == 0
    assert (sub.stats.dead_lettered, sub.stats.retried) == (0, 0)
    assert [line for line in lines if "not retried here" in line], lines


class WindowLease:
    """A lease trusted until a moment the test moves (``trusted_until``, monotonic)."""

    epoch = 1
    lost = False

    def __init__(self, trusted_until: float) -> None:
        self.trusted_until = trusted_until

    def trusted(self, until: float = 0.0) -> bool:
        return time.monotonic() + until < self.trusted_until

    async def renewed(self, timeout: float) -> None:
        await asyncio.sleep(min(timeout, 0.01))


async def test_a_read_is_sent_only_if_its_whole_block_ends_inside_the_trusted_window(
    operator: RedisOperator, container: ListenerContainer, key: str
) -> None:
    """Trusted for 0.3 s more, a read that may block 1 s is not sent: an entry read after
    the lease may have expired would be delivered to a member that no longer owns the
    partition. Trusted for longer, it reads at once."""
    await produce(operator, key, 3)
    lease = WindowLease(time.monotonic() + 0.3)
    handled: Counter[str] = Counter()
    container.register(make_spec(key, poll_timeout=timedelta(seconds=1)), Tally(handled, 0),
                       lease)
    await container.start(timeout=None)
    await asyncio.sleep(0.6)
    assert (len(handled), await pel(operator, key)) == (0, 0)  # nothing read, nothing held
    lease.trusted_until = time.monotonic() + 60
    await wait_until(lambda: true(len(handled) == 3), timeout=5)


def test_a_lease_is_trusted_for_a_share_of_its_ttl_after_its_renewal_was_sent() -> None:
    """The rule of partitions/membership.py's Lease: trusted (may act) until
    LEASE_TRUST × ttl after the last renewal's send, and for ``until`` more only if that
    ends inside the window; lost (for good) at the ttl itself, or when told."""
    from streamboot.config.models import LEASE_TRUST
    from streamboot.partitions.membership import Lease

    now = time.monotonic()
    ttl = 10.0
    fresh = Lease("k", 4, ttl, sent=now - 1.0)
    assert fresh.trusted()
    assert fresh.trusted(until=LEASE_TRUST * ttl - 1.5)
    assert not fresh.trusted(until=LEASE_TRUST * ttl - 0.5)  # a read ending past trust
    late = Lease("k", 4, ttl, sent=now - (LEASE_TRUST * ttl + 0.5))
    assert not late.trusted()
    assert not late.lost  # not trusted, but not expired: it waits for the next renewal
    late.renew(sent=time.monotonic())
    assert late.trusted()
    expired = Lease("k", 4, ttl, sent=now - ttl - 0.1)
    assert expired.lost
    told = Lease("k", 4, ttl, sent=now)
    told.lose()
    assert told.lost
    assert not told.trusted()


async def test_a_failed_renewal_round_is_tried_again_soon_not_a_whole_interval_later(
    operator: RedisOperator, key: str, redis_url: str
) -> None:
    """The renewal connection is cut and refused for 1.3 s around a due renewal
    (``min_idle`` 6 s: one every 2 s). The round is tried again every 0.5 s, so renewals
    resume within about half a second of Redis coming back — not at the next interval,
    2 s after the failure (after a failover, 10 s with the default min_idle)."""
    found: list[str] = []
    sink = logger.add(lambda m: found.append(str(m)), level="INFO", format="{message}")
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    scan = PendingScanSettings(min_idle=timedelta(seconds=6), interval=timedelta(seconds=30))
    try:
        with FaultyProxy(host, int(port)) as proxy:
            keeper_client = redis.Redis.from_url(proxy.url, socket_connect_timeout=0.2,
                                                 socket_timeout=0.5)
            await produce(operator, key, 1)
            handled: Counter[str] = Counter()
            container = ListenerContainer(operator, keeper_client)
            container.register(make_spec(key, batch_size=1, concurrency=1, pending_scan=scan),
                               Tally(handled, 5.0))
            try:
                await container.start(timeout=5)
                await asyncio.sleep(1.0)
                proxy.refuse(True)
                await asyncio.to_thread(proxy.reset)
                await asyncio.sleep(1.3)  # the renewal due at 2 s fails meanwhile
                proxy.refuse(False)
                await wait_until(lambda: true(any("renewed again" in f for f in found)),
                                 timeout=5)
            finally:
                await container.stop()
                keeper_client.close()
    finally:
        logger.remove(sink)
    (line,) = [f for f in found if "ownership renewed again after" in f]
    seconds = float(line.split("after ")[1].split("s")[0])
    assert seconds < 1.2, line
    assert handled[next(iter(handled))] == 1
