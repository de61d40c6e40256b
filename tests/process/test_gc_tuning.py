"""``application.gc``: what a ``streamboot run`` process's garbage collector is set to once
it has started, read from inside the process by its own handler."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.faults.processes import Worker, wait, workers


@pytest.mark.parametrize(("gc", "young", "frozen"), [
    ("tuned", 10_000, True), ("default", 700, False), (None, 700, False)])
def test_the_collector_is_tuned_only_when_the_file_asks(
        tmp_path: Path, project_env: dict[str, str], gc: str | None, young: int,
        frozen: bool) -> None:
    stream = f"gc-{gc}"
    config = tmp_path / "app.yaml"
    config.write_text(f"""
application: {{name: gc{f", gc: {gc}" if gc else ""}}}
redis: {{url: "{project_env['REDIS_URL']}"}}
container: {{poll_timeout: 100ms}}
listeners:
  orders: {{stream: {stream}, group: g, handler: "tests.handlers:GcHandler"}}
""")
    out = tmp_path / "gc.txt"
    r = redis.Redis.from_url(project_env["REDIS_URL"], decode_responses=True)
    r.delete(stream)
    try:
        with workers(Worker(config, "gc", project_env, tmp_path / "gc.log")) as (worker,):
            worker.wait_for_line("started: 1 listener")
            r.xadd(stream, {"out": str(out)})
            wait(lambda: out.exists() and out.read_text().endswith("\n"), 15, worker.text)
    finally:
        r.close()
    threshold, count = map(int, out.read_text().split())
    assert threshold == young
    assert (count > 1000) is frozen  # start-up's objects, frozen out of the walks
