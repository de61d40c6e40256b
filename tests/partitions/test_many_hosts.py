"""Several supervisors with one application file stand for several hosts: the partitions'
leases (partitions/membership.py) give each partition one reader at a time, hand it over
in order, and fence a member that lost it. Each handler call is recorded with its start
and end (tests.partitions.handlers:TimelineHandler), so per-key order, overlaps, losses
and duplicates are counted across every process. The shapes that need no proxy run on
one redis-server and on the three-master cluster (``place``). Real processes: marked
fault."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TextIO

import pytest
import redis

from streamboot.client import close_sync_client
from streamboot.partitions.keys import lease_key, partition_key, partition_of
from tests.conftest import http_get as get
from tests.faults.proxy import FaultyProxy
from tests.partitions.conftest import Target
from tests.process.test_supervisor import free_port, until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.fault
PARTITIONS = 4
CUSTOMERS = 40
Client = redis.Redis | redis.RedisCluster


@dataclass(frozen=True)
class Place:
    """Where the members run: a URL, the variables that say it (cluster or not) and a
    test-side client (text replies) on a flushed server or cluster."""

    url: str
    r: Client
    variables: dict[str, str]


@pytest.fixture
def place(target: Target) -> Iterator[Place]:
    client: Client = (redis.RedisCluster.from_url(target.url, decode_responses=True)
                      if target.cluster else
                      redis.Redis.from_url(target.url, decode_responses=True))
    yield Place(target.url, client,
                {"STREAMBOOT_REDIS__CLUSTER": "true"} if target.cluster else {})
    while Producer.running:  # left running by a test that failed
        Producer.running[-1].stop()
    close_sync_client(client)


def timeline_key(customer: int, kind: str = "timeline") -> str:
    """Where TimelineHandler records the calls of a customer: its partition's slot."""
    name = f"c{customer}"
    return f"{kind}:{partition_key('orders', partition_of(name, PARTITIONS))}:{name}"


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(f"""\
redis: {{socket_connect_timeout: 500ms, socket_timeout: 1s}}
container: {{poll_timeout: 200ms, shutdown_timeout: 5s}}
metrics: {{enabled: true}}
membership: {{lease_ttl: 2s, heartbeat: 400ms}}
listeners:
  orders:
    stream: orders
    group: g
    handler: tests.partitions.handlers:TimelineHandler
    partitions: {PARTITIONS}
    partition_by: customer
    ordering_key: customer
    batch_size: 20
    concurrency: 8
    pending_scan: {{interval: 1s, min_idle: 3s}}
""")
    return path


@dataclass
class Supervisor:
    proc: subprocess.Popen[str]
    port: int
    log: Path
    sink: TextIO

    def owned(self) -> dict[str, int]:
        try:
            status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        except OSError:
            return {}
        if status != 200:
            return {}
        return {m[1] or "": int(float(m[2])) for m in re.finditer(
            r'streamboot_partitions_owned\{listener="orders"(?:,worker="(\d+)")?\} ([\d.]+)',
            text)}

    def owns(self) -> int:
        return sum(self.owned().values())

    def metric(self, name: str) -> float | None:
        """One of the listener's membership metrics (the first sample), None if absent."""
        try:
            _status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        except OSError:
            return None
        match = re.search(rf'^{name}\{{listener="orders"[^}}]*\}} ([\d.e+-]+)$', text,
                          re.MULTILINE)
        return float(match[1]) if match else None

    def per_stream(self, name: str) -> dict[str, float]:
        """A listener counter by stream (summed over workers), as the scrape shows it."""
        try:
            _status, text = get(f"http://127.0.0.1:{self.port}/metrics")
        except OSError:
            return {}
        found: dict[str, float] = {}
        for m in re.finditer(rf'^{name}\{{listener="orders",stream="([^"]+)"[^}}]*\}} '
                             r'([\d.e+-]+)$', text, re.MULTILINE):
            found[m[1]] = found.get(m[1], 0.0) + float(m[2])
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it is frozen
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=40)
        finally:
            self.sink.close()


def start(config: Path, url: str, log: Path, *, workers: int = 2,
          env: dict[str, str] | None = None) -> Supervisor:
    """``streamboot run FILE --workers N``; with ``workers=1``, one member process."""
    port = free_port()
    env = {**os.environ, "STREAMBOOT_REDIS__URL": url, "PYTHONUNBUFFERED": "1",
           "STREAMBOOT_METRICS__PORT": str(port), **(env or {})}
    sink = log.open("w")
    command = [sys.executable, "-m", "streamboot", "run", str(config)]
    if workers > 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env,
                            stdout=sink, stderr=subprocess.STDOUT, text=True)
    return Supervisor(proc, port, log, sink)


def publish(r: Client, start_seq: int, n: int) -> None:
    """Entries ``start_seq`` … of 40 customers, routed as the Publisher routes them."""
    pipe = r.pipeline(transaction=False)
    for seq in range(start_seq, start_seq + n):
        customer = f"c{seq % CUSTOMERS}"
        pipe.xadd(partition_key("orders", partition_of(customer, PARTITIONS)),
                  {"customer": customer, "seq": str(seq)})
    pipe.execute()


@dataclass
class Verdict:
    handled: int
    lost: list[int]
    duplicates: int
    violations: int
    """Entries of a key first started after a later entry of that key was first started
    (a redelivery after a crash is a duplicate, not a violation)."""
    overlaps: int
    """Calls of a key that started before the key's previous call ended."""
    members: set[str]
    refused: int
    """Writes of a stale owner that the handler's fenced store refused."""
    details: list[str]
    """The first violations and overlaps, each with both calls (for the failure's text)."""


def verdict(r: Client, total: int) -> Verdict:
    seen: dict[int, int] = {}
    violations = overlaps = refused = 0
    members: set[str] = set()
    details: list[str] = []
    for c in range(CUSTOMERS):
        calls = []
        for item in r.lrange(timeline_key(c), 0, -1):
            number, begun, ended, epoch, consumer, _stream = str(item).split()
            calls.append((float(begun), float(ended), int(number), f"{consumer}@{epoch}"))
            members.add(consumer)
        refused += int(r.llen(timeline_key(c, "refused")))
        calls.sort()
        newest, last_end, last = -1, 0.0, ""
        for start, end, seq, who in calls:
            first = seq not in seen
            seen[seq] = seen.get(seq, 0) + 1
            late, early = first and seq < newest, start < last_end
            violations += late
            overlaps += early
            if (late or early) and len(details) < 12:
                details.append(f"c{c} #{seq} by {who} [{start:.3f}, {end:.3f}]"
                               f"{' after #' + str(newest) if late else ''}"
                               f"{' overlapping ' + last if early else ''}")
            if end > last_end:
                last = f"{who} ending {end:.3f}"
            newest, last_end = max(newest, seq), max(last_end, end)
    return Verdict(len(seen), sorted(set(range(total)) - set(seen)),
                   sum(n - 1 for n in seen.values()), violations, overlaps, members, refused,
                   details)


def pending(r: Client) -> int:
    return sum(r.xpending(partition_key("orders", i), "g")["pending"]
               for i in range(PARTITIONS))


@pytest.mark.parametrize(("supervisors", "target"),
                         [(2, "single"), (3, "single"), (2, "cluster")], indirect=["target"])
def test_supervisors_started_together_over_a_backlog_keep_every_keys_order(
        tmp_path: Path, place: Place, supervisors: int) -> None:
    config = write_config(tmp_path)
    r = place.r
    publish(r, 0, 1_500)  # a backlog waiting before anyone starts
    groups = [start(config, place.url, tmp_path / f"s{i}.log", env=place.variables)
              for i in range(supervisors)]
    try:
        for burst in range(5):  # bursts while they start, balance and hand over
            time.sleep(0.3)
            publish(r, 1_500 + burst * 100, 100)
        total = 2_000
        until(lambda: verdict(r, total).handled == total, f"all {total} handled", 60)
        until(lambda: pending(r) == 0, "nothing pending", 10)
        result = verdict(r, total)
        logs = "".join(g.log.read_text()[-2000:] for g in groups)
        assert result.lost == [], logs
        assert (result.violations, result.overlaps, result.duplicates) == (0, 0, 0), \
            "\n".join(result.details) + "\n" + logs

        def balanced() -> bool:  # one each, the rest standby (it may settle after the work)
            owned = [n for g in groups for n in g.owned().values()]
            return (len(owned) == 2 * supervisors and sum(owned) == PARTITIONS
                    and max(owned) == 1)

        until(balanced, "one partition per member", 15)
        assert len(result.members) >= PARTITIONS  # every partition's owner handled some
    finally:
        codes = [g.stop() for g in groups]
    assert codes == [0] * supervisors, "".join(g.log.read_text()[-3000:] for g in groups)


class Producer:
    """Publishes entries 0, 1, 2 … at about ``rate`` per second in a thread, until told
    to stop or ``limit`` entries (bounded in count and time)."""

    running: ClassVar[list[Producer]] = []
    """Started and not stopped yet: a failed test's producer is stopped by the ``place``
    fixture before it closes the client (else the thread fails the next test)."""

    def __init__(self, r: Client, rate: float = 200.0, limit: int = 6_000) -> None:
        self._r, self._pause, self._limit = r, 1.0 / rate, limit
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        Producer.running.append(self)

    def _run(self) -> None:
        while not self._stop.is_set() and self.sent < self._limit:
            publish(self._r, self.sent, 4)
            self.sent += 4
            time.sleep(4 * self._pause)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        if self in Producer.running:
            Producer.running.remove(self)
        return self.sent


def records_of(r: Client, consumer: str) -> list[tuple[float, str, int]]:
    """(start, stream, epoch) of every call ``consumer`` recorded, refused ones included."""
    found = []
    for c in range(CUSTOMERS):
        for name in (timeline_key(c), timeline_key(c, "refused")):
            for item in r.lrange(name, 0, -1):
                _seq, begun, _ended, epoch, who, stream = str(item).split()
                if who == consumer:
                    found.append((float(begun), stream, int(epoch)))
    return found


def consumer_of(member: Supervisor) -> str:
    text = member.log.read_text()
    match = re.search(r"shared by lease; member (\S+)", text)
    assert match is not None, text[-2000:]
    return match[1]


def two_members(config: Path, place: Place, tmp_path: Path) -> tuple[Supervisor, Supervisor]:
    a = start(config, place.url, tmp_path / "a.log", workers=1, env=place.variables)
    until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
    b = start(config, place.url, tmp_path / "b.log", workers=1, env=place.variables)
    until(lambda: (a.owns(), b.owns()) == (2, 2), "two partitions each", 15)
    return a, b


def settle(r: Client, producer: Producer, *members: Supervisor) -> Verdict:
    total = producer.stop()
    until(lambda: verdict(r, total).handled == total, f"all {total} handled", 60)
    until(lambda: pending(r) == 0, "nothing pending", 15)
    return verdict(r, total)


def test_a_member_joining_then_the_first_leaving_hands_over_in_order(
        tmp_path: Path, place: Place) -> None:
    config, r = write_config(tmp_path), place.r
    a = start(config, place.url, tmp_path / "a.log", workers=1, env=place.variables)
    b: Supervisor | None = None
    try:
        until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
        producer = Producer(r)
        time.sleep(1.0)
        handled = "streamboot_entries_handled_total"
        until(lambda: len(a.per_stream(handled)) == PARTITIONS
              and all(a.per_stream(handled).values()), "every partition handled entries")
        before = a.per_stream(handled)
        b = start(config, place.url, tmp_path / "b.log", workers=1, env=place.variables)
        until(lambda: (a.owns(), b.owns()) == (2, 2), "two partitions each", 15)
        # The partitions handed away keep their counts here (counters never go down).
        after = a.per_stream(handled)
        assert after.keys() == before.keys(), (before, after)
        assert all(after[k] >= before[k] for k in before), (before, after)
        # Both halves of the hand-over are shown, each within a few heartbeats here.
        until(lambda: a.metric("streamboot_partition_release_seconds") is not None
              and b.metric("streamboot_partition_takeover_seconds") is not None,
              "both halves of the hand-over shown", 5)
        release = a.metric("streamboot_partition_release_seconds")
        takeover = b.metric("streamboot_partition_takeover_seconds")
        assert release is not None
        assert takeover is not None
        assert 0 <= release < 2.0, release
        assert 0 <= takeover < 2.0, takeover
        assert (a.metric("streamboot_partition_rebalances_total") or 0) >= 1
        time.sleep(1.0)
        assert a.stop() == 0, a.log.read_text()[-3000:]  # SIGTERM: settles, releases, leaves
        released = time.monotonic()
        until(lambda: b.owns() == PARTITIONS, "the second member owns every partition", 10)
        took = time.monotonic() - released
        result = settle(r, producer, b)
        logs = a.log.read_text()[-2000:] + b.log.read_text()[-2000:]
        assert result.lost == [], logs
        assert (result.violations, result.overlaps, result.duplicates, result.refused) == \
            (0, 0, 0, 0), logs
        # docs/scaling.md: owned by others within one heartbeat (400ms) of the release.
        assert took < 0.4 + 0.6, took  # + the metrics scrape's own delay
    finally:
        codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}


def test_a_member_killed_hands_its_partitions_over_within_the_lease(
        tmp_path: Path, place: Place) -> None:
    config, r = write_config(tmp_path), place.r
    a, b = two_members(config, place, tmp_path)
    try:
        producer = Producer(r)
        time.sleep(1.0)
        a.proc.kill()  # kill -9: no release, no ack of what it was handling
        killed = time.monotonic()
        a.proc.wait(5)
        until(lambda: b.owns() == PARTITIONS, "the survivor owns every partition", 10)
        took = time.monotonic() - killed
        result = settle(r, producer, b)
        logs = b.log.read_text()[-3000:]
        assert result.lost == [], logs
        assert (result.violations, result.overlaps, result.refused) == (0, 0, 0), logs
        # lease_ttl (2s) + heartbeat (400ms), + the claim and the scrape.
        assert 1.0 < took < 2.0 + 0.4 + 0.6, took
    finally:
        a.sink.close()
        code = b.stop()
    assert code == 0


def test_a_member_frozen_past_its_lease_starts_nothing_of_what_it_lost(
        tmp_path: Path, place: Place) -> None:
    config, r = write_config(tmp_path), place.r
    a, b = two_members(config, place, tmp_path)
    try:
        producer = Producer(r)
        time.sleep(1.0)
        frozen_consumer = consumer_of(a)
        a.proc.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        frozen_wall = time.time()
        until(lambda: b.owns() == PARTITIONS, "the other member owns every partition", 10)
        took = time.monotonic() - frozen
        time.sleep(1.0)
        resumed_wall = time.time()
        a.proc.send_signal(signal.SIGCONT)
        until(lambda: "lease lost" in a.log.read_text(), "the frozen member says so", 10)
        result = settle(r, producer, a, b)
        logs = a.log.read_text()[-3000:]
        assert result.lost == [], logs
        assert (result.violations, result.overlaps) == (0, 0), logs
        assert 1.0 < took < 2.0 + 0.4 + 0.6, took
        # The fence: after it resumed, nothing was started under a lease it held before.
        before = {(s, e) for begun, s, e in records_of(r, frozen_consumer)
                  if begun < frozen_wall}
        after = [(s, e) for begun, s, e in records_of(r, frozen_consumer)
                 if begun > resumed_wall]
        assert not [x for x in after if x in before], (sorted(before), after)
    finally:
        codes = [m.stop() for m in (a, b)]
    assert set(codes) == {0}


def test_a_member_cut_off_from_redis_is_fenced_then_rejoins(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """Its connections go silent and new ones are refused (a network partition): it
    stops acting on its partitions before their leases can expire, the other member takes
    them, and when the network is back it rejoins — without two members ever handling one
    key at once."""
    host, port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    config = write_config(tmp_path)
    with FaultyProxy(host, int(port)) as proxy:
        a = start(config, proxy.url, tmp_path / "a.log", workers=1)
        b: Supervisor | None = None
        try:
            until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
            b = start(config, redis_url, tmp_path / "b.log", workers=1)
            until(lambda: (a.owns(), b.owns()) == (2, 2), "two partitions each", 15)
            producer = Producer(r)
            time.sleep(1.0)
            proxy.refuse(True)
            proxy.silence()
            cut = time.monotonic()
            until(lambda: b.owns() == PARTITIONS, "the other member owns every partition", 10)
            took = time.monotonic() - cut
            until(lambda: "could not renew its leases" in a.log.read_text(),
                  "the cut-off member says so", 10)
            time.sleep(1.0)
            proxy.refuse(False)  # the network is back: it rejoins and gets its share
            until(lambda: (a.owns(), b.owns()) == (2, 2), "two partitions each again", 20)
            result = settle(r, producer, a, b)
            logs = a.log.read_text()[-3000:]
            assert result.lost == [], logs
            assert (result.violations, result.overlaps) == (0, 0), logs
            assert 1.0 < took < 2.0 + 0.4 + 0.6, took
        finally:
            codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}


def test_a_hand_over_waits_for_the_running_handlers_only(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """Slow handlers (1 s), a full hand: the giver lets only what runs finish; what it
    had not started (its queue, the read-ahead) goes pending to the taker, in order."""
    config = write_config(tmp_path)
    slow = {"TIMELINE_DELAY": "1.0"}
    a = start(config, redis_url, tmp_path / "a.log", workers=1, env=slow)
    b: Supervisor | None = None
    try:
        until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
        publish(r, 0, 240)  # 60 a partition: 7 s of work each at concurrency 8
        time.sleep(1.0)
        b = start(config, redis_url, tmp_path / "b.log", workers=1, env=slow)
        until(lambda: b is not None and b.owned() != {}, "the joiner serving its metrics")
        joined = time.monotonic()
        until(lambda: b is not None and b.owns() == 2, "the joiner owns its share", 15)
        took = time.monotonic() - joined
        until(lambda: verdict(r, 240).handled == 240, "all 240 handled", 60)
        until(lambda: pending(r) == 0, "nothing pending", 15)
        result = verdict(r, 240)
        assert result.lost == []
        assert (result.violations, result.overlaps, result.duplicates) == (0, 0, 0)
        # A heartbeat, the running handlers (1 s), a heartbeat: not the giver's whole hand
        # (a batch and its read-ahead, 40 entries, 5 s at concurrency 8).
        assert took < 3.0, took
    finally:
        codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}


def test_a_static_member_restarted_within_its_lease_takes_its_partitions_back(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """``--member-id``: stopped and started again (a pod restarted in place), its
    partitions wait for it instead of moving to the other member and back."""
    config = write_config(tmp_path)
    a = start(config, redis_url, tmp_path / "a.log", workers=1,
              env={"STREAMBOOT_MEMBERSHIP__MEMBER_ID": "pod-a"})
    b: Supervisor | None = None
    try:
        until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
        b = start(config, redis_url, tmp_path / "b.log", workers=1,
                  env={"STREAMBOOT_MEMBERSHIP__MEMBER_ID": "pod-b"})
        until(lambda: (a.owns(), b.owns()) == (2, 2), "two partitions each", 15)
        mine = {i for i in range(PARTITIONS)
                if r.hget(lease_key(partition_key("orders", i)), "owner")
                == "pod-a"}
        producer = Producer(r)
        time.sleep(0.5)
        assert a.stop() == 0  # SIGTERM: settles; a static member keeps its leases
        a = start(config, redis_url, tmp_path / "a2.log", workers=1,
                  env={"STREAMBOOT_MEMBERSHIP__MEMBER_ID": "pod-a"})
        most = 0
        deadline = time.monotonic() + 10
        while a.owns() != 2 and time.monotonic() < deadline:
            most = max(most, b.owns())
            time.sleep(0.05)
        assert a.owns() == 2, a.log.read_text()[-2000:]
        assert most == 2  # the other member never took them meanwhile
        back = {i for i in range(PARTITIONS)
                if r.hget(lease_key(partition_key("orders", i)), "owner")
                == "pod-a"}
        assert back == mine
        assert "in use by another live process" not in a.log.read_text()
        assert "member pod-a waits for its earlier leases" in a.log.read_text()
        result = settle(r, producer, a, b)
        assert result.lost == []
        assert (result.violations, result.overlaps) == (0, 0)
    finally:
        codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}


def test_status_names_members_whose_heartbeat_stopped_before_their_leases_expire(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """A member killed, and a static member stopped (it keeps its leases for a restart in
    place): within a few heartbeats ``status`` shows each with what it still holds,
    ``(no heartbeat)`` — long before those leases expire and move."""
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("lease_ttl: 2s, heartbeat: 400ms",
                                                 "lease_ttl: 8s, heartbeat: 400ms"))
    a = start(config, redis_url, tmp_path / "a.log", workers=1,
              env={"STREAMBOOT_MEMBERSHIP__MEMBER_ID": "pod-a"})
    k: Supervisor | None = None
    try:
        until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
        k = start(config, redis_url, tmp_path / "k.log", workers=1)
        until(lambda: (a.owns(), k.owns()) == (2, 2), "two partitions each", 15)
        killed = consumer_of(k)
        k.proc.kill()
        k.proc.wait(5)
        assert a.stop() == 0
        stopped = time.monotonic()
        assert re.search(r"member pod-a stopping; it keeps its leases of p\d,p\d for up "
                         r"to 8s \(lease_ttl\)", a.log.read_text()), a.log.read_text()[-2000:]
        text = ""
        while time.monotonic() < stopped + 6:
            text = subprocess.run(
                [sys.executable, "-m", "streamboot", "status", str(config), "--url",
                 redis_url], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout
            if text.count("(no heartbeat)") == 2:
                break
            time.sleep(0.2)
        assert re.search(r"members: (?=.*pod-a p\d,p\d \(no heartbeat\))"
                         rf"(?=.*{re.escape(killed)} p\d,p\d \(no heartbeat\))", text), text
        # Shown so within four heartbeats (1.6 s) and the command's own start-up.
        assert time.monotonic() - stopped < 5.0
    finally:
        a.sink.close()
        if k is not None:
            k.sink.close()


def test_two_live_processes_with_one_member_id_are_told_so(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """A member id copied to a second pod: the leases stay safe (the second process is
    never granted one) and the second process says why it stands by."""
    config = write_config(tmp_path)
    same = {"STREAMBOOT_MEMBERSHIP__MEMBER_ID": "pod-0"}
    a = start(config, redis_url, tmp_path / "a.log", workers=1, env=same)
    b: Supervisor | None = None
    try:
        until(lambda: a.owns() == PARTITIONS, "the first member owns every partition")
        b = start(config, redis_url, tmp_path / "b.log", workers=1, env=same)
        until(lambda: "member id pod-0 is in use by another live process"
              in (b.log.read_text() if b else ""), "the copy says so", 10)
        assert (a.owns(), b.owns()) == (PARTITIONS, 0)
        assert b.log.read_text().count("is in use by another live process") == 1
        # /healthz says it too (200: the copy is safe, it only stands by).
        status, body = get(f"http://127.0.0.1:{b.port}/healthz")
        partitions = json.loads(body)["partitions"]
        assert status == 200
        assert partitions["standby"] is True
        assert "member id pod-0 is in use by another live process" in partitions["warning"]
        assert a.stop() == 0  # the original goes: the copy takes over, and stops warning
        until(lambda: b is not None and b.owns() == PARTITIONS, "the copy took over", 15)
        _status, body = get(f"http://127.0.0.1:{b.port}/healthz")
        assert "warning" not in json.loads(body)["partitions"], body
    finally:
        codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}


def test_ordering_key_without_partitions_on_two_hosts_is_warned_about(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """Two processes of one file whose listener has ordering_key but one stream: they
    compete for its entries, so each key's order holds within each process only. The
    second process to start says so, naming the first one's consumer, and the first says
    it at its next monitor refresh, naming the second's — each once."""
    config = tmp_path / "plain.yaml"
    config.write_text("""\
container: {poll_timeout: 200ms}
metrics: {refresh: 500ms}
listeners:
  orders:
    stream: orders
    group: g
    handler: tests.partitions.handlers:TimelineHandler
    ordering_key: customer
""")
    a = start(config, redis_url, tmp_path / "a.log", workers=1,
              env={"STREAMBOOT_LISTENERS__ORDERS__CONSUMER": "host-a"})
    b: Supervisor | None = None
    try:
        until(lambda: "started" in a.log.read_text(), "the first process started")
        b = start(config, redis_url, tmp_path / "b.log", workers=1,
                  env={"STREAMBOOT_LISTENERS__ORDERS__CONSUMER": "host-b"})
        until(lambda: b is not None and "started" in b.log.read_text(),
              "the second process started")
        said = [line for line in b.log.read_text().splitlines()
                if "ordering_key holds within each process only" in line]
        assert len(said) == 1, said
        assert "host-a also read group g of orders" in said[0], said
        until(lambda: "host-b also read group g" in a.log.read_text(),
              "the first process says it too", 5)
        time.sleep(1.2)  # two more refreshes: said once, not at every one
        assert a.log.read_text().count("ordering_key holds within each process only") == 1
    finally:
        codes = [m.stop() for m in (a, b) if m is not None]
    assert set(codes) == {0}
