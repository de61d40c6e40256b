"""The Black Friday scenario, run as a user runs it, with smaller numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.devserver import RedisServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """The scenario flushes its database: it gets a server of its own."""
    with RedisServer() as server:
        yield server


def blackfriday(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env["REDIS_URL"] = url
    return subprocess.run([sys.executable, "-m", "sample_app", "blackfriday", "--users", "40",
                           "--stock", "30", "--orders-per-user", "3", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)


def figure(output: str, name: str) -> int:
    match = re.search(rf"{re.escape(name)}\s*│\s*(\d+)", output)
    assert match, f"{name!r} not in the report:\n{output}"
    return int(match.group(1))


def test_blackfriday_invariants_hold(own_server: RedisServer) -> None:
    result = blackfriday(own_server.url, "--payment-failure", "0.1")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert "all invariants hold" in out
    placed = figure(out, "orders placed")
    accepted = figure(out, "accepted")
    assert accepted == 30  # 40 users x 3 purchases compete for 30 units
    assert placed == accepted + figure(out, "rejected: out of stock") + figure(
        out, "dead-lettered (payment kept failing)")
    assert figure(out, "duplicates refused by the lock") > 0
    assert figure(out, "analytics: orders counted") == placed


@pytest.mark.fault
def test_blackfriday_survives_a_worker_killed_mid_way(own_server: RedisServer) -> None:
    result = blackfriday(own_server.url, "--kill-worker-after", "30")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert re.search(r"a worker was killed \(SIGKILL\)\s*│\s*yes", out)
    assert "all invariants hold" in out


def test_forever_runs_until_ctrl_c_then_reports(own_server: RedisServer) -> None:
    import os
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env["REDIS_URL"] = own_server.url
    with subprocess.Popen([sys.executable, "-m", "sample_app", "--users", "5", "--stock", "3",
                           "--forever"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        time.sleep(4)
        assert proc.poll() is None  # still running: it does not end by itself
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err[-2000:]
    assert "running until Ctrl-C" in out
    assert "all invariants hold" in out
