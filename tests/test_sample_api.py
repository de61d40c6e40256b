"""The sample's API server (sample_app/web.py under a real uvicorn, started as the sample
starts it), driven with real HTTP requests: what a user's browser would send, bad input
included, and what happens to it when the sample that started it is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from redis import Redis

from sample_app.server import ApiServer
from streamboot.devserver import RedisServer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "application.yaml"


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[httpx.Client, Redis]]:
    with RedisServer() as server:
        for name in [k for k in os.environ if k.startswith("STREAMBOOT_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("REDIS_URL", server.url)
        started = asyncio.run(ApiServer.start(CONFIG))
        r = Redis.from_url(server.url, decode_responses=True)
        try:
            with httpx.Client(base_url=started.url, timeout=10) as client:
                yield client, r
        finally:
            # SIGTERM: uvicorn ends its lifespan, then re-raises the signal (its exit
            # status says so); a server that had to be killed would be -9.
            assert started.stop() in (0, -signal.SIGTERM)
            r.close()


def order(request_id: str, user: str = "alice", **extra: object) -> dict[str, object]:
    return {"user_id": user, "product_id": "ps5", "qty": 1, "request_id": request_id,
            **extra}


def test_an_order_is_published_once_and_a_resubmission_is_refused(
        api: tuple[httpx.Client, Redis]) -> None:
    client, r = api
    placed = client.post("/orders", json=order("r-1"))
    assert placed.status_code == 202, placed.text
    body = placed.json()
    assert body["stream"] == "orders"
    (entry,) = cast(list[Any], r.xrange("orders"))
    assert entry[0] == body["entry_id"]
    assert body["order_id"] in str(entry[1])
    assert client.get("/users/alice/orders/ps5").json() == {"in_flight": True}
    # The same request again (a double click, a retry): refused, nothing published.
    again = client.post("/orders", json=order("r-1"))
    assert again.status_code == 409
    assert "r-1 was already made" in again.text
    # Another request while the first is in flight (its lock held): refused as well.
    other = client.post("/orders", json=order("r-2"))
    assert other.status_code == 409
    assert "in flight" in other.text
    assert r.xlen("orders") == 1
    # Once a worker released the lock, the user orders again.
    r.delete("{orders}:lock:alice:ps5")
    assert client.get("/users/alice/orders/ps5").json() == {"in_flight": False}
    assert client.post("/orders", json=order("r-3")).status_code == 202
    assert r.xlen("orders") == 2
    assert client.get("/healthz").json()["healthy"] is True


@pytest.mark.parametrize(("body", "field"), [
    (order("r-9", user="a}b{"), "user_id"),       # would be a key with braces
    (order("r-9", qty=0), "qty"),
    (order("r-9", qty="many"), "qty"),
    ({"user_id": "bob", "product_id": "ps5"}, "request_id"),
    (order("r" * 65), "request_id"),
    (order("r-9", qty=True), "qty"),              # lax mode took it as 1
])
def test_bad_input_is_refused_naming_the_field(api: tuple[httpx.Client, Redis],
                                               body: dict[str, object], field: str) -> None:
    client, r = api
    answer = client.post("/orders", json=body)
    assert answer.status_code == 422, answer.text
    assert [e["loc"][-1] for e in answer.json()["detail"]] == [field]
    assert not r.exists("orders")  # nothing published
    assert client.post("/orders", content=b"{not json",
                       headers={"content-type": "application/json"}).status_code == 422


def test_two_users_may_choose_the_same_request_id(api: tuple[httpx.Client, Redis]) -> None:
    """A request id is one user's (a trial saw bob's r1 refused as alice's)."""
    client, r = api
    assert client.post("/orders", json=order("r1", user="alice")).status_code == 202
    assert client.post("/orders", json=order("r1", user="bob")).status_code == 202
    assert client.post("/orders", json=order("r1", user="bob")).status_code == 409
    assert r.xlen("orders") == 2


def test_redis_away_is_a_503_on_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new user's trial: POST /orders and GET answered 500 while Redis was down (the
    request id's SET came before the publish, and only a publish failure was a 503)."""
    for name in [k for k in os.environ if k.startswith("STREAMBOOT_")]:
        monkeypatch.delenv(name)
    with RedisServer() as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        started = asyncio.run(ApiServer.start(CONFIG))
        try:
            with httpx.Client(base_url=started.url, timeout=20) as client:
                assert client.post("/orders", json=order("r-1")).status_code == 202
                server.stop()
                placed = client.post("/orders", json=order("r-2"))
                assert placed.status_code == 503, placed.text
                assert "redis unavailable" in placed.text
                looked = client.get("/users/alice/orders/ps5")
                assert looked.status_code == 503, looked.text
        finally:
            assert started.stop() in (0, -signal.SIGTERM)


def test_the_api_server_stops_when_the_sample_that_started_it_is_killed(
        tmp_path: Path) -> None:
    with RedisServer() as server:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")},
               "REDIS_URL": server.url}
        script = ("import asyncio\nfrom pathlib import Path\n"
                  "from sample_app.server import ApiServer\n"
                  f"s = asyncio.run(ApiServer.start(Path({str(CONFIG)!r})))\n"
                  "print(s.process.pid, flush=True)\nimport signal\nsignal.pause()\n")
        with subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True) as sample:
            assert sample.stdout is not None
            uvicorn = int(sample.stdout.readline())
            sample.kill()  # SIGKILL: no finally of its runs
            sample.wait()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                try:
                    os.kill(uvicorn, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(uvicorn, signal.SIGKILL)
                pytest.fail("the API server outlived the sample by 5 s")
