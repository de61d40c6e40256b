"""``streamboot run --workers N``: a supervisor and its worker processes, run as users run
them. Marked fault (processes, signals, restarts); they run in CI."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from streamboot.partitions.keys import partition_key, partition_of
from tests.conftest import http_get as get

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.fault


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp_path: Path, port: int, partitions: int = 4) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(f"""\
redis: {{socket_connect_timeout: 500ms}}
container: {{poll_timeout: 200ms, shutdown_timeout: 5s}}
metrics: {{enabled: true, port: {port}}}
membership: {{lease_ttl: 2s, heartbeat: 400ms}}
listeners:
  orders:
    stream: orders
    group: g
    handler: tests.partitions.handlers:LedgerEventHandler
    partitions: {partitions}
    partition_by: customer
    pending_scan: {{interval: 1s, min_idle: 2s}}
""")
    return path


class Group:
    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines


def start(config: Path, url: str, workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "STREAMBOOT_REDIS__URL": url, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "streamboot", "run", str(config),
                             "--workers", str(workers)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.05)


def publish(r: redis.Redis, start_seq: int, n: int, customers: int = 12,
            partitions: int = 4) -> None:
    pipe = r.pipeline(transaction=False)
    for seq in range(start_seq, start_seq + n):
        customer = f"c{seq % customers}"
        pipe.xadd(partition_key("orders", partition_of(customer, partitions)),
                  {"customer": customer, "seq": str(seq)})
    pipe.execute()


def handled(r: redis.Redis, customers: int = 12) -> dict[int, list[str]]:
    seen: dict[int, list[str]] = {}
    for c in range(customers):
        for item in r.lrange(f"handled:{{c{c}}}", 0, -1):
            seq, consumer = str(item).split()
            seen.setdefault(int(seq), []).append(consumer)
    return seen


def test_two_workers_share_the_partitions_ride_out_a_kill_and_stop_cleanly(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    port = free_port()
    proc = start(write_config(tmp_path, port), redis_url, workers=2)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(proc.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()

    def read() -> str:
        return "".join(output)

    try:
        until(lambda: "supervising 2 workers" in read() and read().count("started: 1 "
                                                                         "listener") >= 2,
              "both workers started")
        pids = [int(p) for p in re.search(r"supervising 2 workers \(pids ([\d, ]+)\)",
                                          read())[1].split(", ")]  # type: ignore[index]
        until(lambda: owned(port) == {"0": 2, "1": 2}, "two partitions leased to each")
        publish(r, 0, 400)
        until(lambda: len(handled(r)) == 400, "the first 400 handled")
        consumers = {c for cs in handled(r).values() for c in cs}
        assert len(consumers) == 2
        assert all(c.endswith(("-w0", "-w1")) for c in consumers)
        # Each partition is read by one worker only: 2 partitions each.
        by_partition: dict[int, set[str]] = {}
        for seq, cs in handled(r).items():
            by_partition.setdefault(partition_of(f"c{seq % 12}", 4), set()).update(cs)
        assert all(len(cs) == 1 for cs in by_partition.values()), by_partition

        status, text = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'streamboot_worker_up{worker="0"} 1.0' in text
        assert 'streamboot_worker_up{worker="1"} 1.0' in text
        totals = [float(m[1]) for m in re.finditer(
            r'streamboot_entries_handled_total\{.*,worker="\d"\} ([\d.]+)', text)]
        assert sum(totals) == 400
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200

        os.kill(pids[0], signal.SIGKILL)  # a crash: no chance to ack or stop
        publish(r, 400, 400)
        until(lambda: "restarting it in" in read(), "the restart")
        until(lambda: len(handled(r)) == 800, "all 800 handled after the restart", 60)
        assert "worker 0 was killed by SIGKILL" in read()
        until(lambda: get(f"http://127.0.0.1:{port}/healthz")[0] == 200, "healthy again")
        status, text = get(f"http://127.0.0.1:{port}/metrics")
        assert 'streamboot_worker_restarts{worker="0"} 1.0' in text
        for i in range(4):
            pending = r.xpending(partition_key("orders", i), "g")["pending"]
            assert pending == 0, (i, pending)

        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        reader.join(5)
        text = read()
        assert code == 0, text[-3000:]
        assert "stopping 2 workers gracefully" in text
        assert text.count("streamboot stopped") >= 2
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
    for pid in pids:  # no worker outlives its supervisor
        until(functools.partial(_gone, pid), f"worker {pid} gone", 10)


def _gone(pid: int) -> bool:
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of an exited child counts as gone
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def test_a_worker_that_cannot_start_stops_the_group_with_its_code_no_crash_loop(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    for i in range(4):
        r.set(partition_key("orders", i), "not a stream")
    proc = start(write_config(tmp_path, free_port()), redis_url, workers=2)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out[-3000:]
    assert "a restart cannot help" in out
    assert "restarting it in" not in out


def owned(port: int) -> dict[str, int]:
    """Partitions leased to each worker, from the supervisor's /metrics."""
    try:
        status, text = get(f"http://127.0.0.1:{port}/metrics")
    except OSError:  # not serving yet
        return {}
    if status != 200:
        return {}
    return {m[1]: int(float(m[2])) for m in re.finditer(
        r'streamboot_partitions_owned\{listener="orders",worker="(\d+)"\} ([\d.]+)', text)}


def test_more_workers_than_partitions_makes_a_healthy_standby(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    port = free_port()
    proc = start(write_config(tmp_path, port, partitions=2), redis_url, workers=3)
    try:
        until(lambda: sorted(owned(port).values()) == [0, 1, 1], "one standby, one each")
        publish(r, 0, 120, partitions=2)
        until(lambda: len(handled(r)) == 120, "all 120 handled")
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200  # a standby is healthy, and says it is one
        leased = json.loads(body)["partitions"]
        assert sorted(w["owned"] for w in leased.values()) == [0, 1, 1]
        assert [w["standby"] for w in leased.values()].count(True) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-3000:]


def test_a_handler_that_cannot_be_imported_is_said_once_not_once_per_worker(
        tmp_path: Path, redis_url: str) -> None:
    config = write_config(tmp_path, free_port())
    config.write_text(config.read_text().replace("tests.partitions.handlers:LedgerEventHandler",
                                                 "tests.partitions.nowhere:Handler"))
    proc = start(config, redis_url, workers=2)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, out
    assert out.count("listeners.orders.handler") == 1, out
    assert "supervising" not in out  # refused before any worker started


def test_a_metrics_port_in_use_is_one_line_and_exit_3(tmp_path: Path, redis_url: str) -> None:
    """A new user's trial: a ~120-line traceback (and, without --workers, listeners already
    reading) when metrics.port was taken."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        for workers in (1, 2):
            proc = start(write_config(tmp_path, port), redis_url, workers=workers)
            out, _ = proc.communicate(timeout=30)
            assert proc.returncode == 3, out
            assert f"cannot start: metrics cannot listen on 127.0.0.1:{port}" in out, out
            assert "Traceback" not in out
            assert "listening (batch" not in out  # refused before any listener read
