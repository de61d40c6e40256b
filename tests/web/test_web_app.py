"""docs/web-app.md's shop, as a reader builds it: the page's files exactly as shown, in a
directory outside the repository, served by a real uvicorn on a free port and driven
with real HTTP requests, against the suite's redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from redis import Redis

from streamboot.devserver import RedisServer, free_port
from tests.conftest import http_get, stop_process, wait_for
from tests.documented import documented_files as files_in

DOC = Path(__file__).resolve().parents[2] / "docs" / "web-app.md"


def documented_files() -> dict[str, str]:
    """The shop section's files."""
    section = DOC.read_text().split("## A shop, from an empty directory", 1)[1]
    return files_in(section.split("\n## ", 1)[0])


def post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def serving(url: str) -> bool:
    try:
        return http_get(url)[0] == 200
    except urllib.error.URLError:  # not listening yet
        return False


class Shop:
    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project, self.env = project, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "shop.api:app", "--host", "127.0.0.1",
             "--port", str(self.port)], cwd=self.project, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return self.proc


@pytest.fixture
def shop(tmp_path: Path, redis_server: RedisServer) -> Iterator[Shop]:
    files = documented_files()
    assert set(files) == {"shop/orders.py", "app.yaml", "shop/api.py"}
    project = tmp_path / "shop-app"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "shop" / "__init__.py").touch()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMBOOT_") and k != "PYTHONPATH"}
    env["REDIS_URL"] = redis_server.url
    with Redis.from_url(redis_server.url) as redis:
        redis.delete("{shop}:orders", "{shop}:revenue")
    made = Shop(project, env)
    yield made
    if made.proc is not None and made.proc.poll() is None:
        made.proc.kill()
        made.proc.communicate()


def test_the_shop_publishes_and_handles_over_http_and_stops_cleanly(
        shop: Shop, redis_server: RedisServer) -> None:
    proc = shop.start()
    wait_for(lambda: proc.poll() is not None or serving(f"{shop.url}/healthz"), timeout=20)
    assert proc.poll() is None, proc.communicate()[1]
    orders = [{"order_id": f"o-{i}", "amount": i} for i in range(1, 61)]
    with ThreadPoolExecutor(8) as pool:  # concurrent requests, as a web tier gets them
        answers = list(pool.map(lambda o: post(f"{shop.url}/orders", o), orders))
    assert {status for status, _ in answers} == {202}
    assert {body["stream"] for _, body in answers} == {"{shop}:orders"}
    assert len({body["id"] for _, body in answers}) == 60
    with Redis.from_url(redis_server.url, decode_responses=True) as redis:
        ids = {entry_id for entry_id, _ in redis.xrange("{shop}:orders")}
        assert {body["id"] for _, body in answers} == ids  # each id is the entry's own

        def revenue() -> int:
            return int(json.loads(http_get(f"{shop.url}/revenue")[1])["total"])

        wait_for(lambda: revenue() == sum(range(1, 61)), timeout=15)
        status, _ = post(f"{shop.url}/orders", {"order_id": "o-1", "amount": 1})
        assert status == 202  # a double submit: published, and its effect applied once

        def drained() -> bool:
            (group,) = redis.xinfo_groups("{shop}:orders")
            return bool(group["lag"] == 0 and group["pending"] == 0)

        wait_for(drained, timeout=15)
        assert revenue() == sum(range(1, 61))
    status, _ = post(f"{shop.url}/orders", {"order_id": "o-x", "amount": "lots"})
    assert status == 422  # FastAPI's own validation, before any publish
    started = time.monotonic()
    err = stop_process(proc, signal.SIGTERM, timeout=20)
    # uvicorn re-raises the SIGTERM once shut down (0.29 exited 0): either way, clean.
    assert proc.returncode in (0, -signal.SIGTERM), err[-3000:]
    assert "Application shutdown complete." in err
    assert time.monotonic() - started < 12  # container.shutdown_timeout (10 s) bounds it
    assert "shop embedded: listeners and jobs running" in err
    booked = [line for line in err.splitlines() if "order o-1 booked" in line]
    assert booked
    assert "[listener=orders stream={shop}:orders group=bookkeeping" in booked[0]
    assert "entry_id=" in booked[0]
    assert "shop stopped" in err


def test_the_shop_refuses_to_start_without_redis_and_says_why(shop: Shop) -> None:
    shop.env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    shop.env["STREAMBOOT_REDIS__STARTUP_TIMEOUT"] = "1s"
    proc = shop.start()
    started = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert time.monotonic() - started < 10
    assert "gave up after 1s (redis.startup_timeout)" in err
    assert "Application startup failed" in err
