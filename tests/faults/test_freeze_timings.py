"""Hypothesis over the timings of a freeze: a real `streamboot run` is stopped (SIGSTOP)
at a drawn point of its read/handle cycle, for a drawn share of ``min_idle``, while a rival
takes over (XAUTOCLAIM, then XACK: it "handles" at once) whatever went idle. After
SIGCONT the process must never start an entry the rival had claimed; a handler already
running when it froze may finish (the duplicate at-least-once allows, reliability.md).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from redis import Redis

from tests.faults.processes import Worker, ended, journal, started, wait, workers

pytestmark = pytest.mark.fault


class Rival:
    """Another consumer, as fast as can be: claims what is idle for ``min_idle``, acks it."""

    def __init__(self, url: str, stream: str, min_idle: float) -> None:
        self._redis = Redis.from_url(url, decode_responses=True)
        self._stream, self._min_idle = stream, int(min_idle * 1000)
        self.claimed: dict[str, float] = {}
        """Entry id -> when the claim had surely happened (the reply was back)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Rival:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._redis.close()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            ids = self._redis.xautoclaim(self._stream, "g", "rival", self._min_idle, "0-0",
                                         count=1000, justid=True)  # redis-py: the ids only
            now = time.time()
            for entry_id in ids:
                self.claimed.setdefault(str(entry_id), now)
            if ids:
                self._redis.xack(self._stream, "g", *ids)


def config(path: Path, url: str, stream: str, min_idle: float, batch: int,
           concurrency: int) -> Path:
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 100ms}}
container: {{poll_timeout: 100ms, batch_size: {batch}, concurrency: {concurrency},
            shutdown_timeout: 5s}}
listeners:
  orders:
    stream: {stream}
    group: g
    handler: "tests.handlers:JournalHandler"
    pending_scan: {{interval: {min_idle}s, min_idle: {min_idle}s}}
""")
    return path


@pytest.mark.timeout(420)
@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
@given(min_idle=st.sampled_from([0.6, 1.0, 1.5]), batch=st.sampled_from([1, 4, 10]),
       concurrency=st.sampled_from([1, 4]), handler=st.floats(0.05, 0.6),
       phase=st.floats(0.0, 1.0), freeze=st.floats(0.3, 2.5))
def test_no_entry_a_rival_claimed_is_started_after_a_freeze(
    tmp_path_factory: pytest.TempPathFactory, project_env: dict[str, str], min_idle: float,
    batch: int, concurrency: int, handler: float, phase: float, freeze: float
) -> None:
    url = project_env["REDIS_URL"]
    tmp = tmp_path_factory.mktemp("freeze")
    stream, out = f"timings-{uuid.uuid4().hex[:8]}", tmp / "journal"
    redis = Redis.from_url(url, decode_responses=True)
    entries = [str(redis.xadd(stream, {"n": str(n), "out": str(out)}))
               for n in range(2 * batch + 2)]
    a = Worker(config(tmp / "a.yaml", url, stream, min_idle, batch, concurrency), "A",
               project_env, tmp / "a.log", TEST_HANDLER_SLEEP=f"{handler:.3f}")
    with workers(a):
        wait(lambda: bool(started(journal(out), "A")), 15, a.text)
        cycle = handler * math.ceil(batch / concurrency)  # one batch's handling
        time.sleep(min(2.0, phase * cycle))  # where in the cycle the freeze falls
        with Rival(url, stream, min_idle) as rival:
            a.freeze()
            time.sleep(freeze * min_idle)
            a.resume()
        assert a.resumed_at is not None
        resumed = a.resumed_at

        def settled() -> bool:
            done = set(ended(journal(out), "A")) | set(rival.claimed)
            return done >= set(entries) and not int(redis.xpending(stream, "g")["pending"])

        wait(settled, 30, lambda: f"not settled:\n{a.text()[-2000:]}")
    redis.close()
    records = journal(out)
    late = [r.entry_id for r in records if r.what == "start" and r.consumer == "A"
            and r.entry_id in rival.claimed and r.at > rival.claimed[r.entry_id]]
    assert late == [], (f"started after the rival claimed them (resumed at {resumed:.3f}): "
                        f"{late}\n{a.text()[-2000:]}")
