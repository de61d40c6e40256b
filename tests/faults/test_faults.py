"""Fault injection: workers killed with SIGKILL, redis-server restarted, signals.

Marked ``fault``: slower than the rest, but run in CI (``pytest -m fault`` selects them).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis

from streamboot import Application, StreamHandler
from streamboot.config import settings_from_mapping
from streamboot.devserver import RedisServer
from streamboot.message import Message
from tests.conftest import stop_process, wait_for

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


def worker_config(tmp_path: Path, url: str, stream: str, handler: str, **scan: str) -> Path:
    path = tmp_path / "worker.yaml"
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 250ms}}
container: {{poll_timeout: 100ms, batch_size: 10, concurrency: 4, shutdown_timeout: 5s}}
listeners:
  orders:
    stream: {stream}
    group: g
    handler: "{handler}"
    idempotency: {{key: order_id, ttl: 1h}}
    pending_scan: {{interval: 200ms, min_idle: {scan.get("min_idle", "1s")}}}
""")
    return path


def start_worker(config: Path, consumer: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
        env={**env, "STREAMBOOT_LISTENERS__ORDERS__CONSUMER": consumer},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def pending(redis: Redis, stream: str, group: str = "g") -> int:
    return int(redis.xpending(stream, group)["pending"])


def test_kill_9_worker_entries_reclaimed_and_applied_once(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    stream = "orders-killed"
    orders = [f"o{i}" for i in range(120)]
    for order_id in orders:
        redis.xadd(stream, {"order_id": order_id, "sleep": "0.02"})
    config = worker_config(tmp_path, url, stream, "tests.handlers:LedgerHandler")

    first = start_worker(config, "w1", project_env)

    def applied() -> int:
        return sum(1 for o in orders if redis.exists(f"applied:{{{o}}}"))

    wait_for(lambda: applied() >= 20 and pending(redis, stream) > 0)
    first.kill()  # SIGKILL: no shutdown, its pending entries are stranded under w1
    first.communicate(timeout=10)
    stranded = redis.xpending(stream, "g")["consumers"]
    assert any(c["name"] == "w1" and int(c["pending"]) > 0 for c in stranded)

    second = start_worker(config, "w2", project_env)
    try:
        wait_for(lambda: applied() == len(orders) and pending(redis, stream) == 0, timeout=60)
    finally:
        stderr = stop_process(second)
    assert second.returncode == 0, stderr
    assert "reclaimed" in stderr
    assert [redis.get(f"applied:{{{o}}}") for o in orders] == ["1"] * len(orders)
    assert pending(redis, stream) == 0
    assert redis.xlen(f"{{{stream}}}:dlq") == 0
    redis.close()


class Collect(StreamHandler[dict[str, str]]):
    def __init__(self, seen: set[str]) -> None:
        self.seen = seen

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.seen.add(message.payload["n"])


async def test_redis_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    with RedisServer(appendonly=True) as server:
        settings = settings_from_mapping({
            "redis": {"url": server.url, "socket_timeout": "2s"},
            "container": {"poll_timeout": "100ms", "batch_size": 50},
            "listeners": {"orders": {"stream": "orders-restart", "group": "g",
                                     "consumer": "c", "handler": "collector"}},
        })
        seen: set[str] = set()
        from dependency_injector import providers

        from streamboot.di import build_container

        container = build_container(settings)
        container.collector = providers.Object(Collect(seen))
        application = Application(settings, container)
        await application.start()
        producer = Redis.from_url(server.url, decode_responses=True)
        published: list[str] = []

        def publish(upto: int) -> None:
            while len(published) < upto:
                n = str(len(published))
                try:
                    producer.xadd("orders-restart", {"n": n})
                except Exception:  # the server is down for a moment: the producer retries
                    time.sleep(0.05)
                    continue
                published.append(n)

        try:
            await asyncio.to_thread(publish, 1500)
            await asyncio.to_thread(server.stop)  # SIGTERM flushes the AOF
            sub = application.listeners.subscriptions["orders"]  # type: ignore[union-attr]
            deadline = time.monotonic() + 10
            while not sub.stats.redis_errors:  # down until the loop noticed and backed off
                assert time.monotonic() < deadline, "the loop never noticed Redis was down"
                await asyncio.sleep(0.05)
            await asyncio.to_thread(server.start)  # same port, same AOF
            await asyncio.to_thread(publish, 3000)
            deadline = time.monotonic() + 30
            while not (set(published) <= seen and pending(producer, "orders-restart") == 0):
                assert time.monotonic() < deadline, f"missing {len(set(published) - seen)}"
                await asyncio.sleep(0.1)
        finally:
            await application.stop()
            producer.close()
        sub = application.listeners.subscriptions["orders"]  # type: ignore[union-attr]
        assert sub.stats.redis_errors >= 1  # it did see the outage, and came back
        assert set(published) == seen


def test_sigterm_waits_for_in_flight_then_exits_0(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    stream = "orders-sigterm"
    for i in range(4):
        redis.xadd(stream, {"order_id": f"s{i}", "sleep": "1.5"})
    config = worker_config(tmp_path, url, stream, "tests.handlers:LedgerHandler")
    worker = start_worker(config, "w", project_env)
    try:
        wait_for(lambda: redis.exists(stream) and bool(redis.xinfo_groups(stream))
                 and pending(redis, stream) == 4)
    finally:
        stderr = stop_process(worker)  # SIGTERM while all four are mid-handler
    assert worker.returncode == 0, stderr
    assert pending(redis, stream) == 0
    assert [redis.get(f"applied:{{s{i}}}") for i in range(4)] == ["1"] * 4
    redis.close()


def test_second_signal_forces_the_stop(tmp_path: Path, project_env: dict[str, str]) -> None:
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    stream = "orders-force"
    redis.xadd(stream, {"order_id": "f1", "sleep": "30"})
    config = worker_config(tmp_path, url, stream, "tests.handlers:LedgerHandler")
    log = tmp_path / "worker.log"
    with log.open("w") as sink:
        worker = subprocess.Popen(
            [STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
            env={**project_env, "STREAMBOOT_LISTENERS__ORDERS__CONSUMER": "w"},
            stdout=subprocess.DEVNULL, stderr=sink)
    try:
        wait_for(lambda: redis.exists(stream) and bool(redis.xinfo_groups(stream))
                 and pending(redis, stream) == 1)
        worker.send_signal(signal.SIGINT)
        # The second signal only after the first is handled (the graceful stop began).
        wait_for(lambda: "stopping gracefully" in log.read_text(), timeout=10)
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    stderr = log.read_text()
    assert worker.returncode == 1
    assert "forcing stop" in stderr
    assert pending(redis, stream) == 1  # not acked: it will be reclaimed, not lost
    redis.close()
