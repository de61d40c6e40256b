"""The pure rules of partitioning and worker shares: keys, routing, what is refused."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from streamboot.config.loader import settings_from_mapping
from streamboot.errors import ConfigError
from streamboot.partitions.assignment import assigned_listeners
from streamboot.partitions.keys import RoundRobin, partition_key, partition_of
from streamboot.partitions.shared_order import other_readers
from streamboot.process.worker_identity import WorkerIdentity, current_worker
from streamboot.wire.hash_slots import same_slot
from streamboot.wire.records import ConsumerInfo


def app(**listener: Any) -> dict[str, Any]:
    return {"listeners": {"orders": {"stream": "orders", "group": "g", "handler": "h",
                                     **listener}}}


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(data)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_each_partition_is_its_own_hash_tag_and_its_dlq_shares_it() -> None:
    settings = settings_from_mapping(app(partitions=4))
    names = [(a.name, a.settings.stream, a.settings.dead_letter_stream)
             for a in assigned_listeners(settings)]
    assert names == [(f"orders[p{i}]", f"{{orders:p{i}}}", f"{{orders:p{i}}}:dlq")
                     for i in range(4)]
    assert all(same_slot(stream, dlq) for _, stream, dlq in names if dlq)


def test_routing_is_crc32_mod_n_so_other_producers_can_compute_it() -> None:
    for value in ("c-1", "customer-42", "ü"):
        assert partition_of(value, 6) == zlib.crc32(value.encode()) % 6
    assert partition_key("orders", 2) == "{orders:p2}"


def test_round_robin_visits_every_partition_in_turn_from_a_random_start() -> None:
    picks = [RoundRobin(5)() for _ in range(200)]
    assert set(picks) == set(range(5))  # first picks spread, not all partition 0
    rr = RoundRobin(3)
    first = rr()
    assert [rr() for _ in range(5)] == [(first + i) % 3 for i in range(1, 6)]


@pytest.mark.parametrize(("listener", "expected"), [
    ({"partitions": 3, "stream": "{shop}:orders"}, "braces"),
    ({"partitions": 3, "rotation": {"key_format": "{o}:%Y%m%d%H"}}, "braces"),
    ({"partitions": 3, "dead_letter": {"stream": "x:dlq"}}, "each partition has its own"),
    ({"partition_by": "customer"}, "partitions is 1"),
    ({"partitions": 2, "partition_by": "a", "ordering_key": "b"}, "differ"),
    ({"partitions": 0}, "greater than or equal to 1"),
])
def test_what_cannot_work_is_refused_with_the_reason(listener: dict[str, Any],
                                                      expected: str) -> None:
    (problem,) = problems(app(**listener))
    assert problem.startswith("listeners.orders"), problem
    assert expected in problem, problem


def test_ordering_key_routes_when_partition_by_is_not_given() -> None:
    settings = settings_from_mapping(app(partitions=2, ordering_key="customer"))
    assert settings.listeners["orders"].routed_by == "customer"


def test_every_worker_is_a_candidate_for_every_partition_and_reads_every_plain_stream(
) -> None:
    data = app(partitions=4)
    data["listeners"]["audit"] = {"stream": "audit", "group": "g", "handler": "h"}
    settings = settings_from_mapping(data)
    candidates = [[a.name for a in assigned_listeners(settings, WorkerIdentity(i, 2, f"h-1-w{i}"))]
                  for i in range(2)]
    everything = ["orders[p0]", "orders[p1]", "orders[p2]", "orders[p3]", "audit"]
    assert candidates == [everything, everything]  # the leases decide who reads what
    consumers = {a.consumer for a in assigned_listeners(settings, WorkerIdentity(1, 2, "h-1-w1"))}
    assert consumers == {"h-1-w1"}  # the default name: stable across the worker's restarts


def test_a_member_id_names_the_partitions_consumer_and_each_worker_adds_its_index() -> None:
    data = app(partitions=2)
    data["membership"] = {"member_id": "orders-0"}
    data["listeners"]["audit"] = {"stream": "audit", "group": "g", "handler": "h"}
    settings = settings_from_mapping(data)
    alone = {a.name: a.consumer for a in assigned_listeners(settings)}
    assert alone["orders[p0]"] == alone["orders[p1]"] == "orders-0"
    assert alone["audit"] is None  # unpartitioned: the file's consumer name
    worker = {a.consumer for a in assigned_listeners(settings, WorkerIdentity(1, 2, "h-1-w1"))
              if a.partition is not None}
    assert worker == {"orders-0-w1"}


def test_a_heartbeat_too_slow_for_its_lease_or_a_read_longer_than_a_lease_is_refused(
) -> None:
    (slow,) = problems({**app(partitions=2),
                        "membership": {"lease_ttl": "3s", "heartbeat": "2s"}})
    assert "membership" in slow
    assert "at most a third of membership.lease_ttl (3s)" in slow
    (long_read,) = problems({**app(partitions=2), "container": {"poll_timeout": "5s"},
                             "membership": {"lease_ttl": "6s", "heartbeat": "1s"}})
    assert ("listeners.orders: poll_timeout (5s, from container.poll_timeout) must end well "
            "inside a lease: at most 3550ms here") in long_read
    assert "shorten container.poll_timeout or lengthen membership.lease_ttl" in long_read
    (blank,) = problems({**app(partitions=2), "membership": {"member_id": "pod 0"}})
    assert "membership.member_id" in blank
    assert "must be one word" in blank
    # The same poll_timeout on an unpartitioned listener needs no lease.
    settings_from_mapping({**app(), "container": {"poll_timeout": "5s"},
                           "membership": {"lease_ttl": "6s", "heartbeat": "1s"}})


def test_a_configured_consumer_name_gets_the_worker_index() -> None:
    settings = settings_from_mapping(app(consumer="api"))
    (only,) = assigned_listeners(settings, WorkerIdentity(3, 4, "h-1-w3"))
    assert only.consumer == "api-w3"


def test_the_worker_variable_is_read_and_checked() -> None:
    assert current_worker({}) is None
    assert current_worker({"STREAMBOOT_WORKER": "1/3", "STREAMBOOT_WORKER_NAME": "h-9-w1"}) == \
        WorkerIdentity(1, 3, "h-9-w1")
    with pytest.raises(ValueError, match="expected <index>/<count>"):
        current_worker({"STREAMBOOT_WORKER": "3/3"})


def test_a_worker_is_restarted_with_growing_backoff_unless_a_restart_cannot_help() -> None:
    from streamboot.process.restarts import AfterExit, after_exit

    first = after_exit(-9, ran_for=2.0, deaths=0)
    again = after_exit(1, ran_for=2.0, deaths=first.deaths)
    assert (first.restart, first.delay, first.deaths) == (True, 0.5, 1)
    assert (again.delay, again.deaths) == (1.0, 2)
    assert after_exit(1, ran_for=2.0, deaths=20).delay == 30.0  # capped
    steady = after_exit(-9, ran_for=31.0, deaths=5)
    assert (steady.delay, steady.deaths) == (0.5, 0)  # a steady run starts over
    for code in (2, 3):
        assert after_exit(code, ran_for=100.0, deaths=0) == AfterExit(restart=False,
                                                                       exit_code=code)


def test_other_readers_leave_out_this_consumer_idle_ones_and_sibling_workers() -> None:
    rows = [ConsumerInfo("h-1-w0", 3, 100, None), ConsumerInfo("h-1-w1", 0, 50, None),
            ConsumerInfo("other-w0", 0, 200, None), ConsumerInfo("gone", 5, 60_000, None),
            ConsumerInfo("pod-b", 0, 9_000, None)]
    assert other_readers(rows, "h-1-w0", worker=True) == ["other-w0", "pod-b"]
    assert other_readers(rows, "h-1-w0", worker=False) == ["h-1-w1", "other-w0", "pod-b"]
    assert other_readers(rows[:1], "h-1-w0", worker=False) == []
