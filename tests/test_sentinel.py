"""Redis behind Sentinel, configured as ``redis.sentinel`` (issue 24): every operator
command and ``check`` find the primary through real Sentinels; a wrong Sentinel address
or master name is one line and exit 3; the settings refuse what cannot work. The
failover itself: tests/faults/test_sentinel_failover.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from streamboot.config import ConfigError, settings_from_mapping
from streamboot.devserver import RedisSentinelGroup, find_server, free_port
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
APP = """\
redis:
  socket_connect_timeout: 300ms
  sentinel: {master: "${MASTER}", nodes: "${SENTINELS}"}
listeners:
  orders: {stream: orders, group: g, handler: "tests.handlers:JournalHandler"}
"""


@pytest.fixture(scope="module")
def sentinels() -> Iterator[RedisSentinelGroup]:
    with RedisSentinelGroup(replicas=1) as group:
        yield group


def streamboot(tmp_path: Path, group: RedisSentinelGroup, *args: str,
               master: str = "mymaster", nodes: str | None = None
               ) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "app.yaml"
    config.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env |= {"MASTER": master, "SENTINELS": nodes or ",".join(group.nodes)}
    return subprocess.run([sys.executable, "-m", "streamboot", *args, "--config", str(config)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_operator_commands_reach_the_primary_through_sentinel(
        tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    port = sentinels.primary_port()
    assert port is not None
    primary = redis.Redis(port=port, decode_responses=True)
    primary.delete("orders", "{orders}:dlq")
    published = streamboot(tmp_path, sentinels, "publish", "orders", "n=1")
    assert published.returncode == 0, published.stderr
    (entry_id,) = published.stdout.split()
    assert [i for i, _ in primary.xrange("orders") or []] == [entry_id]
    primary.xgroup_create("orders", "g", "0")
    status = streamboot(tmp_path, sentinels, "status", "--json")
    assert status.returncode == 0, status.stderr
    (view, _dlq) = json.loads(status.stdout)
    assert (view["key"], view["length"]) == ("orders", 1)
    pending = streamboot(tmp_path, sentinels, "pending", "orders", "g")
    assert pending.returncode == 0, pending.stderr
    primary.close()


def test_check_goes_through_sentinel(tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    done = streamboot(tmp_path, sentinels, "check")
    assert done.returncode == 0, done.stderr
    assert "sentinel mymaster at 127.0.0.1:" in done.stdout + done.stderr


def test_a_wrong_master_name_is_one_line_naming_the_known_ones(
        tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    done = streamboot(tmp_path, sentinels, "status", master="mymastr")
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    assert "monitor no primary named 'mymastr' (they monitor: mymaster)" in line
    checked = streamboot(tmp_path, sentinels, "check", master="mymastr")
    assert checked.returncode == 2
    assert "redis.sentinel: the Sentinels at" in checked.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_sentinels_that_do_not_answer_are_one_line(
        tmp_path: Path, sentinels: RedisSentinelGroup, host: str) -> None:
    dead = [f"{host}:{free_port()}", f"{host}:{free_port()}"]
    done = streamboot(tmp_path, sentinels, "status", nodes=",".join(dead))
    assert done.returncode == 3
    (line,) = done.stderr.strip().splitlines()
    said = (f"streamboot: cannot reach any of the Sentinels at {', '.join(dead)} "
            "of primary 'mymaster'")
    # redis-py 8.2 names each Sentinel's error in its MasterNotFoundError (the reason is
    # then said); releases that name none leave "none answered".
    assert line in (f"{said} (connection refused)", f"{said} (none answered)")


@pytest.mark.parametrize(("redis_section", "says"), [
    ({"sentinel": {"master": "m", "nodes": ["s1:26379"]}, "url": "redis://h:6379"},
     "url and sentinel are both set"),
    ({"sentinel": {"master": "m", "nodes": ["s1:26379"]}, "cluster": True},
     "cluster and sentinel are both set"),
    ({"sentinel": {"master": "m", "nodes": ["s1"]}}, "'s1' is not host:port"),
    ({"sentinel": {"master": "m", "nodes": []}}, "at least 1"),
    ({"url": "redis+sentinel://s1:26379/m"}, "set redis.sentinel (master, nodes) instead"),
])
def test_what_cannot_work_is_refused(redis_section: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"redis": redis_section, "listeners": {
            "orders": {"stream": "orders", "group": "g", "handler": "x:Y"}}})
    assert says in str(raised.value)


def test_nodes_may_be_one_comma_separated_string() -> None:
    settings = settings_from_mapping({"redis": {"sentinel": {
        "master": "m", "nodes": "s1:26379, s2:26379"}}, "listeners": {
        "orders": {"stream": "orders", "group": "g", "handler": "x:Y"}}})
    assert settings.redis.sentinel is not None
    assert settings.redis.sentinel.addresses() == [("s1", 26379), ("s2", 26379)]
    assert settings.redis.safe_url == "sentinel m at s1:26379,s2:26379"


def test_run_with_a_wrong_master_name_ends_at_once_with_exit_3(
        tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env |= {"MASTER": "nope", "SENTINELS": ",".join(sentinels.nodes)}
    done = subprocess.run([sys.executable, "-m", "streamboot", "run", str(config)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if "monitor no primary named" in line]
    assert len(said) == 1, done.stderr[-2000:]
    assert "'nope' (they monitor: mymaster)" in said[0]


@pytest.mark.parametrize(("redis_section", "says"), [
    ({"sentinel": {"master": "m", "nodes": ["s1:99999"]}}, "'s1:99999' (port out of range"),
    ({"socket_timeout": "1s"}, "publish.durability.timeout (1s) must be shorter than "
                               "redis.socket_timeout (1s)"),
])
def test_what_cannot_work_is_refused_with_its_reason(redis_section: dict[str, object],
                                                      says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"redis": redis_section, "listeners": {"orders": {
            "stream": "orders", "group": "g", "handler": "x:Y", "poll_timeout": "100ms",
            "publish": {"durability": {"replicas": 1, "timeout": "1s"}}}}})
    assert says in str(raised.value)


def test_publish_with_a_wrong_master_name_says_so_at_once(
        tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    began = time.monotonic()
    done = streamboot(tmp_path, sentinels, "publish", "orders", "n=1", master="mymastr")
    assert done.returncode == 3
    assert time.monotonic() - began < 4  # not after publish.retry_for (5 s)
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("streamboot: cannot publish to 'orders': the Sentinels at ")
    assert "monitor no primary named 'mymastr' (they monitor: mymaster)" in line


def test_url_is_refused_beside_a_sentinel_file(
        tmp_path: Path, sentinels: RedisSentinelGroup) -> None:
    done = streamboot(tmp_path, sentinels, "status", "--url", "redis://127.0.0.1:1/0")
    assert done.returncode == 2
    assert "--url cannot be used with redis.sentinel" in done.stderr


@pytest.fixture(scope="module")
def guarded_sentinel(sentinels: RedisSentinelGroup) -> Iterator[str]:
    """One more Sentinel of the group's primary, this one with ``requirepass``."""
    port, folder = free_port(), tempfile.TemporaryDirectory(prefix="streamboot-guarded-")
    conf = Path(folder.name) / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder.name}\nrequirepass s3cret\n"
                    f"sentinel monitor mymaster 127.0.0.1 {sentinels.primary_port()} 2\n")
    binary = find_server()
    sentinel = subprocess.Popen([binary.path, str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password="s3cret", socket_timeout=1)
        wait_for(lambda: _answers(client), timeout=10)
        client.close()
        yield f"127.0.0.1:{port}"
    finally:
        sentinel.kill()
        sentinel.wait(timeout=5)
        folder.cleanup()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize(("password", "says"), [
    (None, "require a password (set redis.sentinel.password; redis.password is the data "
           "nodes')"),
    ("wrong", "refused the credentials of redis.sentinel (username, password)"),
])
@pytest.mark.parametrize("command", ["status", "run"])
def test_a_sentinel_that_requires_a_password_says_so_and_exit_3(
        tmp_path: Path, guarded_sentinel: str, password: str | None, says: str,
        command: str) -> None:
    config = tmp_path / "app.yaml"
    secret = f", password: {password}" if password else ""
    config.write_text(APP.replace('nodes: "${SENTINELS}"}', f'nodes: "{guarded_sentinel}"'
                                  f'{secret}}}'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    env["MASTER"] = "mymaster"
    args = ["run", str(config)] if command == "run" else ["status", "--config", str(config)]
    done = subprocess.run([sys.executable, "-m", "streamboot", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if says in line]
    assert len(said) == 1, done.stderr[-2000:]
    assert f"the Sentinels at {guarded_sentinel} " in said[0]
