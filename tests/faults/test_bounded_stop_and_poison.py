"""`streamboot run` as a process: a stop is bounded whatever handlers do, and an entry that
kills its process is the only one dead-lettered for it.

Marked ``fault``: real worker processes, signals and crashes; run in CI.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import stop_process, wait_for
from tests.streams import entries_of

pytestmark = pytest.mark.fault
ROOT = Path(__file__).resolve().parents[2]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


def write_config(tmp_path: Path, url: str, stream: str, handler: str, extra: str = "") -> Path:
    path = tmp_path / f"{stream}.yaml"
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 250ms}}
container: {{poll_timeout: 100ms, batch_size: 10, concurrency: 1, shutdown_timeout: 1s}}
listeners:
  main:
    stream: {stream}
    group: g
    handler: "{handler}"
    retry: {{max_deliveries: 3, backoff: 100ms}}
    pending_scan: {{interval: 200ms, min_idle: 1s}}
{extra}""")
    return path


def run_worker(config: Path, env: dict[str, str], consumer: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
        env={**env, "STREAMBOOT_LISTENERS__MAIN__CONSUMER": consumer},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize(("handler", "hang", "bound"), [
    # A thread stuck in a sync handler: cancelled at shutdown_timeout, thread not waited for.
    ("tests.handlers:HangingSyncHandler", "thread", 1 + 2 + 1.5),
    # An async handler awaiting forever: cancelled at shutdown_timeout.
    ("tests.handlers:HangingHandler", "await", 1 + 2 + 1.5),
    # One that swallows every cancellation: left behind after the teardown's grace (2s).
    ("tests.handlers:HangingHandler", "deaf", 1 + 2 + 2 + 1.5),
    # An async handler blocking the event loop itself: the stop deadline exits the process
    # (shutdown_timeout 1s + cancel grace 2s + margin 5s).
    ("tests.handlers:HangingHandler", "loop", 1 + 2 + 5 + 1.5),
])
def test_sigterm_ends_the_process_within_its_bound_whatever_the_handler_does(
    tmp_path: Path, project_env: dict[str, str], handler: str, hang: str, bound: float
) -> None:
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    stream = f"hang-{hang}"
    out = tmp_path / "out.txt"
    out.touch()
    redis.delete(stream)
    hung = str(redis.xadd(stream, {"out": str(out), "hang": hang}))
    worker = run_worker(write_config(tmp_path, url, stream, handler), project_env, "w1")
    try:
        wait_for(lambda: f"started {hung}" in out.read_text())  # the handler has begun
        began = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=bound + 10)
        took = time.monotonic() - began
    finally:
        if worker.poll() is None:
            worker.kill()
    assert took < bound, (took, stderr)
    assert worker.returncode == 1, stderr  # forced: a handler did not finish (docs/cli)
    pending = redis.xpending_range(stream, "g", "-", "+", 10)
    assert [row["message_id"] for row in pending] == [hung]  # left pending, never acked
    redis.close()


@pytest.mark.parametrize("restart_as", ["same consumer", "new consumer"])
def test_an_entry_that_kills_its_process_is_dead_lettered_alone(
    tmp_path: Path, project_env: dict[str, str], restart_as: str
) -> None:
    """Entry 4 of 10 calls os._exit(1) from its handler; the test restarts the worker each
    time it dies. Restarted under the same name the worker re-reads its own pending list;
    under a new name its recovery job reclaims the dead one's entries. Either way they are
    handled one at a time, so only entry 4 reaches max_deliveries (3): once, its batch
    mates went to the dead-letter stream with it, applied already and applied again."""
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    stream = f"poison-{restart_as.split()[0]}"
    redis.delete(stream, f"{{{stream}}}:dlq", *(f"applied:{n}" for n in range(10)))
    ids = [redis.xadd(stream, {"n": str(n), **({"poison": "1"} if n == 4 else {})})
           for n in range(10)]
    config = write_config(tmp_path, url, stream, "tests.handlers:PoisonHandler")

    def settled() -> bool:
        groups = redis.xinfo_groups(stream)
        return bool(groups) and groups[0]["pending"] == 0 and groups[0]["lag"] == 0

    crashes, restarts = 0, 0
    deadline = time.monotonic() + 60
    while not settled() and time.monotonic() < deadline:
        consumer = "w1" if restart_as == "same consumer" else f"w{restarts}"
        worker = run_worker(config, project_env, consumer)
        restarts += 1
        try:
            wait_for(lambda: worker.poll() is not None or settled(), timeout=30)  # noqa: B023
        finally:
            logs = stop_process(worker) if worker.poll() is None else worker.communicate()[1]
        crashes += worker.returncode == 1
        (tmp_path / f"worker-{restarts}.log").write_text(logs)
    assert settled()
    dead = entries_of(redis, f"{{{stream}}}:dlq")
    assert [(d["dlq_id"], d["dlq_reason"], d["dlq_deliveries"]) for _, d in dead] == [
        (ids[4], "max_deliveries", "4")]
    assert crashes == 3  # deliveries 1, 2 and 3 each killed a worker
    applied = {n: [int(d) for d in redis.lrange(f"applied:{n}", 0, -1)] for n in range(10)}
    assert applied.pop(4) == []
    for n, deliveries in applied.items():
        # Applied at least once, at most once per delivery it came with (its first,
        # whose ack died with the process, and the one after) — never dragged along.
        assert 1 <= len(deliveries) <= 2, (n, deliveries)
        assert len(set(deliveries)) == len(deliveries), (n, deliveries)
    redis.close()
