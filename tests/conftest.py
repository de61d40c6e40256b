"""Fixtures: one real redis-server per test session on a free loopback port, a clean
database for every test, and helpers that wait on conditions instead of sleeping."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis


def _stale_links() -> list[str]:
    """The editable install is a tree of links to framework/'s files (see .ci/setup): a
    module added since it was made is missing from it, and importing it would fail with
    a bare ModuleNotFoundError. Name the cause instead."""
    spec = importlib.util.find_spec("streamboot")
    if spec is None or spec.origin is None:
        return ["streamboot"]
    installed = Path(spec.origin).parent
    source = Path(__file__).resolve().parents[1] / "framework"
    if installed.resolve() == source or "__editable__" not in str(installed):
        return []
    return [str(p.relative_to(source)) for p in source.rglob("*.py")
            if not (installed / p.relative_to(source)).exists()]


if missing := _stale_links():
    pytest.exit(f"streamboot's editable install does not have {', '.join(missing)}: run "
                "`bash .ci/setup test` (it reinstalls when framework/'s files change)",
                returncode=4)

from streamboot.devserver import RedisServer  # noqa: E402
from streamboot.listener.container import ListenerContainer  # noqa: E402
from streamboot.wire.operator import RedisOperator  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``-n 2`` (.ci/setup), the fault tests — kill -9, SIGSTOP, failovers, bounds
    they time — run one after another in one worker (pytest-xdist's ``loadgroup``), never
    two at once: each makes its faults and measures its bounds as it would alone, beside
    one ordinary test at a time."""
    for item in items:
        if item.get_closest_marker("fault") is not None:
            item.add_marker(pytest.mark.xdist_group("fault"))


@pytest.fixture(autouse=True)
def _leaks_fail_their_own_test() -> Iterator[None]:
    """A connection or socket left open is reported (ResourceWarning, an error here) when
    it is collected — otherwise at whatever later test the collector happens to run in.
    Collecting at every teardown puts the failure on the test that leaked it."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def redis_server(streamboot_server: RedisServer) -> RedisServer:
    """The test kit's server (streamboot.testing, the plugin users get): the project's own
    tests run on what users' tests run on. REDIS_URL is not honoured: tests flush the db."""
    return streamboot_server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    yield redis
    await redis.aclose()


@pytest.fixture
def operator(client: Redis) -> RedisOperator:
    return RedisOperator(client)


@pytest.fixture
def key() -> str:
    """A unique stream name, so tests could also share a database."""
    return f"test:{uuid.uuid4().hex[:12]}"


Condition = Callable[[], Awaitable[bool]]


async def wait_until(condition: Condition, timeout: float = 10.0, every: float = 0.02) -> None:
    """Poll ``condition`` until true; fail the test with a clear message at ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


@pytest.fixture
def project_env(redis_url: str) -> dict[str, str]:
    """Environment for CLI subprocesses: the test server, no inherited overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env["REDIS_URL"] = redis_url
    return env


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> None:
    """The synchronous twin of ``wait_until``, for tests that drive subprocesses."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGTERM,
                 timeout: float = 20) -> str:
    """Send ``sig`` and wait; kill it if it does not end. Returns its stderr."""
    try:
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return stderr or ""


@pytest.fixture
def keeper_client(redis_url: str) -> Iterator[redis.Redis]:
    """The synchronous client the ownership keeper renews entries with (a reply bounded,
    as the application's own renewal client's is: client.build_renewal_client)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=1.0)
    yield client
    client.close()


@pytest.fixture
async def container(operator: RedisOperator,
                    keeper_client: redis.Redis) -> AsyncIterator[ListenerContainer]:
    """A listener container on the test server, stopped after the test."""
    listeners = ListenerContainer(operator, keeper_client)
    yield listeners
    await listeners.stop()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    """A synchronous client (text replies) on a flushed database."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


def http_get(url: str) -> tuple[int, str]:
    """GET ``url``: (status, body), an error status included (/healthz answers 503)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
