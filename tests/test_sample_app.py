"""The Black Friday scenario, run as a user runs it, with smaller numbers."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamboot.devserver import RedisServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """The scenario flushes its database: it gets a server of its own."""
    with RedisServer() as server:
        yield server


def sample_env(url: str, **extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    return {**env, "REDIS_URL": url, **extra}


def blackfriday(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sample_app", "blackfriday", "--users", "40",
                           "--stock", "30", "--orders-per-user", "3", *args], cwd=ROOT,
                          env=sample_env(url), capture_output=True, text=True, timeout=240)


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
    assert figure(out, "duplicates refused (409)") > 0
    # Every purchase went through the API server: one POST per click, one GET or more
    # per purchase while its order is in flight.
    requests = re.search(r"API requests \(HTTP\)\s*│\s*(\d+) to http://127\.0\.0\.1:\d+", out)
    assert requests, out
    assert int(requests[1]) >= 2 * placed + figure(out, "duplicates refused (409)")
    assert figure(out, "analytics: orders counted") == placed
    applied = accepted + figure(out, "rejected: out of stock")
    assert re.search(rf"notifications sent\s*│\s*accepted=30, rejected={applied - 30}\b", out)
    # hourly: the current period (and the next one, in the 5 minutes before the hour)
    assert figure(out, "notification streams (rotated)") in (1, 2)


def test_minute_periods_cross_a_boundary_and_every_period_is_drained(
        own_server: RedisServer) -> None:
    """The rotated stream end to end: periods of a minute, so the run (about a minute)
    crosses a boundary; the outcome of every applied order is notified exactly once,
    whichever period its notification fell in, and every period's PEL ends empty."""
    result = subprocess.run([sys.executable, "-m", "sample_app", "--users", "15", "--stock",
                             "10", "--orders-per-user", "1", "--minute-periods"], cwd=ROOT,
                            env=sample_env(own_server.url), capture_output=True, text=True,
                            timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert "all invariants hold" in out
    assert figure(out, "notification streams (rotated)") >= 2
    assert figure(out, "accepted") == 10


@pytest.mark.fault
def test_blackfriday_survives_a_worker_killed_mid_way(own_server: RedisServer) -> None:
    result = blackfriday(own_server.url, "--kill-worker-after", "30")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert re.search(r"a worker was killed \(SIGKILL\)\s*│\s*yes", out)
    assert "all invariants hold" in out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_forever_runs_until_ctrl_c_then_reports(signum: signal.Signals) -> None:
    import os
    import time

    # Its own throwaway server (no REDIS_URL), as the README's first command runs it. A
    # small retention bound, trimmed every second, so a short run must trim.
    env = {k: v for k, v in sample_env("-").items() if k != "REDIS_URL"}
    env.update(STREAMBOOT_LISTENERS__ORDERS__RETENTION__MAX_LEN="40",
               STREAMBOOT_LISTENERS__ORDERS__RETENTION__INTERVAL="1s",
               STREAMBOOT_LISTENERS__ORDERS__RETENTION__APPROXIMATE="false")
    with subprocess.Popen([sys.executable, "-m", "sample_app", "--users", "30", "--stock", "3",
                           "--forever"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        time.sleep(8)
        assert proc.poll() is None  # still running: it does not end by itself
        # Ctrl-C at a terminal: SIGINT to the whole foreground process group. Before, it
        # reached the throwaway redis-server and the workers too: the report crashed.
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signal.SIGINT)
        else:  # `kill PID`, a container's stop: the sample alone
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err[-2000:]
    assert "running until Ctrl-C" in out
    assert "all invariants hold" in out  # includes: orders is bounded by its retention
    placed = figure(out, "orders placed")
    assert placed > 40  # past the retention bound (max_len 40): it had to trim
    assert figure(out, "orders stream length") < placed  # trimmed while it ran


def test_blackfriday_on_redis_cluster_places_every_order() -> None:
    """With default settings on a cluster it once placed 0 orders (the users' connections
    ran out, unnoticed) and still printed 'all invariants hold'. The report now proves the
    work: orders placed == users x orders per user, user errors fail the run."""
    from streamboot.devserver import RedisClusterServer

    with RedisClusterServer() as cluster:
        result = subprocess.run(
            [sys.executable, "-m", "sample_app", "--users", "100", "--stock", "100"],
            cwd=ROOT, env=sample_env(cluster.url, STREAMBOOT_REDIS__CLUSTER="true"),
            capture_output=True, text=True, timeout=240)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert "all invariants hold" in out
    assert figure(out, "orders placed") == 300
    assert figure(out, "accepted") == 100


@pytest.mark.parametrize(("option", "value"), [
    ("--workers", "0"), ("--users", "-5"), ("--stock", "0"), ("--orders-per-user", "0"),
    ("--double-click", "2"), ("--payment-failure", "-1"), ("--kill-worker-after", "-1"),
])
def test_a_bad_number_is_refused_before_anything_runs(option: str, value: str) -> None:
    """A new user's trial: --workers 0 waited for ever; --stock -3 ran, then 'invariant
    failed'. Now refused at once, exit 2, naming the option."""
    from streamboot.devserver import free_port

    done = subprocess.run([sys.executable, "-m", "sample_app", option, value], cwd=ROOT,
                          env=sample_env(f"redis://127.0.0.1:{free_port()}/0"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"Invalid value for '{option}'" in done.stderr


def test_redis_unreachable_is_one_line() -> None:
    from streamboot.devserver import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    done = subprocess.run([sys.executable, "-m", "sample_app", "--users", "3", "--stock", "2"],
                          cwd=ROOT, env=sample_env(url), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert f"cannot reach redis at {url}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr  # it was 251 lines of one
