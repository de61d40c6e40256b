"""`streamboot run` at start: it fails fast on what will not heal, retries what will, and
says which — in its first line, with the documented exit code.

Each test runs the real command against a real redis-server and asserts the exit code
and the exact first line a user sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamboot.devserver import RedisServer, free_port
from tests.conftest import http_get, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[1]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


def app_file(tmp_path: Path, url: str, listeners: int = 1, redis_extra: str = "") -> Path:
    path = tmp_path / "app.yaml"
    entries = "\n".join(
        f"  l{i}: {{stream: s{i}, group: g, handler: \"tests.handlers:LoggingHandler\"}}"
        for i in range(listeners))
    path.write_text(f"""
redis: {{url: "{url}"{redis_extra}}}
container: {{poll_timeout: 100ms}}
listeners:
{entries}
""")
    return path


def run(config: Path, timeout: float = 30) -> tuple[int, str, float]:
    began = time.monotonic()
    done = subprocess.run([STREAMBOOT, "run", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return done.returncode, done.stderr, time.monotonic() - began


def first_line(stderr: str) -> str:
    """The first line's message, without loguru's time, level and module columns."""
    line = stderr.strip().splitlines()[0]
    return line.split(" ", 3)[3] if line[:2].isdigit() else line


@pytest.fixture
def locked_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.extra_args = ["--requirepass", "right"]
    with server:
        yield server


def test_a_wrong_password_ends_run_at_once_with_one_line(
        tmp_path: Path, locked_server: RedisServer) -> None:
    config = app_file(tmp_path, locked_server.url, redis_extra=", password: wrong")
    code, stderr, took = run(config)
    assert code == 3, stderr
    assert took < 10
    assert stderr.strip().splitlines() == [
        f"streamboot: cannot start: authentication failed at redis 127.0.0.1:"
        f"{locked_server.port}: invalid username-password pair or user is disabled."]


def test_a_database_the_server_does_not_have_ends_run_at_once(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Not "not ready", retried for ever: no retry creates database 99."""
    config = app_file(tmp_path, f"redis://127.0.0.1:{redis_server.port}/99")
    code, stderr, took = run(config)
    assert code == 3, stderr
    assert took < 10
    assert stderr.strip().splitlines() == [
        f"streamboot: cannot start: the database number in redis.url does not exist at redis "
        f"127.0.0.1:{redis_server.port} (DB index is out of range; the server's `databases` "
        "setting bounds it, 16 by default)"]


def test_an_unreachable_server_is_retried_and_says_where(tmp_path: Path) -> None:
    port = free_port()
    config = app_file(tmp_path, f"redis://127.0.0.1:{port}/0")
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
                                stdout=subprocess.DEVNULL, stderr=sink)
        try:  # it tries, and tries again: it heals when Redis comes up
            wait_for(lambda: log.read_text().count("cannot reach redis") >= 2, timeout=15)
            assert proc.poll() is None
        finally:
            stop_process(proc, signal.SIGTERM)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    line = first_line(stderr)
    assert line.startswith(f"cannot reach redis at 127.0.0.1:{port} "
                           "(connection refused), retrying in "), line
    assert "listener(s)" not in stderr  # no "started: N listener(s)" claimed


def test_a_missing_permission_ends_run_naming_the_command(
        tmp_path: Path, redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", "reader", "reset", "on", ">pw", "~*", "+@all",
                          "-xreadgroup")
    try:
        config = app_file(tmp_path, redis_server.url, listeners=2,
                          redis_extra=", username: reader, password: pw")
        code, stderr, took = run(config)
    finally:
        admin.execute_command("ACL", "DELUSER", "reader")
        admin.close()
    assert code == 3, stderr
    assert took < 15
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("streamboot: cannot start: every listener stopped: permission "
                           f"denied at redis 127.0.0.1:{redis_server.port}: "), last
    assert "'xreadgroup' command" in last
    assert "Traceback" not in stderr
    assert " started: " not in stderr
    assert "listening" not in stderr


def test_wrongtype_on_every_listener_key_ends_run(
        tmp_path: Path, redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.set("s0", "not a stream")
    try:
        code, stderr, _ = run(app_file(tmp_path, redis_server.url))
    finally:
        admin.delete("s0")
        admin.close()
    assert code == 3, stderr
    assert stderr.strip().splitlines()[-1] == (
        "streamboot: cannot start: every listener stopped: key 's0' holds a value that is "
        "not a stream (WRONGTYPE)")
    assert "Traceback" not in stderr
    assert " started: " not in stderr
    assert "run on" not in stderr


def test_a_healthy_start_and_stop_say_nothing_alarming(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """No 'scheduler disabled' while it runs, no NOGROUP from a recovery run before the
    group exists, no 'listening' after 'stopping': a clean run logs no WARNING or ERROR."""
    config = app_file(tmp_path, redis_server.url, listeners=3)
    proc = subprocess.Popen([STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2)
    stderr = stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, stderr
    assert not [ln for ln in stderr.splitlines() if " WARNING " in ln or " ERROR " in ln], stderr
    lines = stderr.splitlines()
    stopping = next(i for i, ln in enumerate(lines) if "stopping gracefully" in ln)
    assert not [ln for ln in lines[stopping:] if "listening" in ln]


def test_one_refused_listener_is_named_and_the_others_run(
        tmp_path: Path, redis_server: RedisServer) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.set("s0", "not a stream")
    config = app_file(tmp_path, redis_server.url, listeners=2)
    proc = subprocess.Popen([STREAMBOOT, "run", "--config", str(config)], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not admin.exists("s1") and time.monotonic() < deadline:
            time.sleep(0.05)  # the healthy listener creates its stream with its group
        admin.xadd("s1", {"n": "1"})
        while time.monotonic() < deadline and not _acked(admin, "s1"):
            time.sleep(0.05)
        assert _acked(admin, "s1"), "the healthy listener did not handle its entry"
    finally:
        stderr = stop_process(proc, signal.SIGTERM)
        admin.delete("s0", "s1")
        admin.close()
    assert proc.returncode == 0, stderr
    started = next(ln for ln in stderr.splitlines() if " started: " in ln)
    assert started.endswith("started: 2 listeners, reading 1 stream (l0 stopped: see above)")


def _acked(client: redis.Redis, key: str) -> bool:
    groups = client.xinfo_groups(key)
    return bool(groups) and groups[0]["pending"] == 0 and groups[0]["entries-read"] == 1


def test_run_and_check_take_the_file_as_the_other_commands_do(
        tmp_path: Path, redis_server: RedisServer) -> None:
    config = app_file(tmp_path, redis_server.url)
    by_option = subprocess.run([STREAMBOOT, "check", "--config", str(config)], cwd=ROOT,
                               capture_output=True, text=True, timeout=30)
    assert by_option.returncode == 0, by_option.stderr
    by_env = subprocess.run([STREAMBOOT, "check"], cwd=ROOT, capture_output=True, text=True,
                            timeout=30, env={**os.environ,
                                             "STREAMBOOT_CONFIG": str(config)})
    assert by_env.returncode == 0, by_env.stderr
    missing = subprocess.run([STREAMBOOT, "run"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30, env={k: v for k, v in os.environ.items()
                                              if k != "STREAMBOOT_CONFIG"})
    assert missing.returncode == 2
    assert missing.stderr.strip() == ("streamboot: no application file: give it as CONFIG, "
                                      "--config or STREAMBOOT_CONFIG")


def test_health_says_run_waits_for_redis_and_startup_timeout_ends_it(
        tmp_path: Path) -> None:
    """While Redis does not answer, /healthz is 503 saying what start waits for, and turns
    200 once Redis comes up; with ``redis.startup_timeout`` the wait ends with exit 3 and
    one line."""
    port, metrics = free_port(), free_port()
    config = app_file(tmp_path, f"redis://127.0.0.1:{port}/0")
    config.write_text(config.read_text() + f"metrics: {{enabled: true, port: {metrics}}}\n")
    log = tmp_path / "run.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([STREAMBOOT, "run", str(config)], cwd=ROOT, text=True,
                                stdout=subprocess.DEVNULL, stderr=sink)
        try:
            wait_for(lambda: "cannot reach redis" in log.read_text(), timeout=15)
            status, body = http_get(f"http://127.0.0.1:{metrics}/healthz")
            assert status == 503, body
            assert json.loads(body)["problems"] == [
                f"waiting for redis at 127.0.0.1:{port} to answer (last: cannot reach redis "
                f"at 127.0.0.1:{port} (connection refused))"]
            with RedisServer(port=port):
                wait_for(lambda: http_get(f"http://127.0.0.1:{metrics}/healthz")[0] == 200,
                         timeout=20)
                stop_process(proc, signal.SIGTERM)
        finally:
            stop_process(proc, signal.SIGTERM)
    assert proc.returncode == 0, log.read_text()
    bounded = app_file(tmp_path, f"redis://127.0.0.1:{port}/0",
                       redis_extra=", startup_timeout: 1500ms")
    code, stderr, took = run(bounded)
    assert code == 3, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"streamboot: cannot start: cannot reach redis at 127.0.0.1:{port} (connection "
        "refused): gave up after 1.5s (redis.startup_timeout)"), stderr
    assert took < 1.5 + 2.5, took  # the wait, and the command's own start and stop
