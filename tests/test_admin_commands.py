"""The admin commands are one family: the same application file as `run`, one line and
a documented exit code for every routine error, --json everywhere, ids in full, bytes that
are not UTF-8 shown escaped.

Each test runs the real `streamboot` command against a real redis-server (and a real
three-master cluster) and asserts the exit code and the exact first line of its output.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from streamboot.devserver import RedisClusterServer, RedisServer, free_port
from tests.streams import entries_of

ROOT = Path(__file__).resolve().parents[1]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


def sb(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STREAMBOOT_") and k != "REDIS_URL"}
    env["COLUMNS"] = str(columns)
    return subprocess.run([STREAMBOOT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def first(text: str) -> str:
    return text.strip().splitlines()[0]


@pytest.fixture(scope="module")
def locked() -> Iterator[RedisServer]:
    """A server with a password: the commands must take it from the application file."""
    server = RedisServer()
    server.extra_args = ["--requirepass", "s3cret"]
    with server:
        yield server


@pytest.fixture
def app_file(tmp_path: Path, locked: RedisServer) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(f"""
redis: {{url: "redis://127.0.0.1:{locked.port}/2", password: s3cret}}
listeners:
  orders: {{stream: ops, group: g, handler: "tests.handlers:RawHandler"}}
""")
    return path


@pytest.fixture
def r(locked: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=locked.port, db=2, password="s3cret", decode_responses=True,
                         encoding_errors="surrogateescape")
    client.flushdb()
    yield client
    client.close()


def test_every_command_reads_url_password_and_db_from_the_file(
        app_file: Path, r: redis.Redis) -> None:
    published = sb("publish", "ops", "n=1", "--config", str(app_file), "--json")
    assert published.returncode == 0, published.stderr
    entry = json.loads(published.stdout)["id"]
    r.xgroup_create("ops", "g", "0")
    r.xreadgroup("g", "w1", {"ops": ">"})
    views = {v["key"]: v for v in json.loads(sb("status", str(app_file), "--json").stdout)}
    assert views["ops"]["length"] == 1
    rows = json.loads(sb("pending", "ops", "g", "--config", str(app_file), "--json").stdout)
    assert [(row["id"], row["consumer"]) for row in rows] == [(entry, "w1")]
    plan = json.loads(sb("replay", "ops", "g", "--from", entry, "--config", str(app_file),
                         "--json").stdout)
    assert (plan["entries"], plan["done"]) == (1, False)
    r.xadd("{ops}:dlq", {"n": "1", "dlq_stream": "ops", "dlq_fields": "1"})
    assert json.loads(sb("dlq", "list", "{ops}:dlq", "-c", str(app_file), "--json").stdout)
    # Without the file, the same server refuses: the password came from the file.
    refused = sb("status", "--stream", "ops", "--url", f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/2")
    assert refused.returncode == 3
    assert first(refused.stderr).startswith("streamboot: redis at 127.0.0.1:")
    assert "requires a password (set redis.password" in first(refused.stderr)


@pytest.mark.parametrize(("args", "code", "line"), [
    (["pending", "nostream", "g"], 1, "streamboot: stream 'nostream' has no group 'g'"),
    (["replay", "ops", "nogroup", "--from", "1-0"], 1,
     "streamboot: consumer group 'nogroup' on stream 'ops' does not exist"),
    (["dlq", "show", "{ops}:dlq", "1-1"], 1, "streamboot: no dead letter 1-1 in {ops}:dlq"),
    (["dlq", "replay", "{ops}:dlq", "1-1"], 1,
     "streamboot: no dead letter 1-1 in {ops}:dlq: nothing replayed"),
    (["dlq", "show", "{ops}:dlq", "garbage"], 2,
     "streamboot: 'garbage' is not a stream entry id (expected <ms>-<seq>, such as "
     "1700000000000-0)"),
    (["replay", "ops", "g", "--from", "garbage"], 2,
     "streamboot: 'garbage' is not a stream entry id (expected <ms>-<seq>, such as "
     "1700000000000-0)"),
    (["dlq", "replay", "ops", "--all"], 2, None),
    (["status", "--stream", "clash"], 3, None),
])
def test_routine_errors_are_one_line_with_their_exit_code(
        app_file: Path, r: redis.Redis, args: list[str], code: int, line: str | None) -> None:
    r.xadd("ops", {"n": "1"})
    r.xgroup_create("ops", "g", "0")
    r.set("clash", "a string")
    if args[0] == "status":  # a key of the wrong type where a stream is read
        r.xadd("{ops}:dlq", {"x": "1"})
        args = ["pending", "clash", "g"]
    result = sb(*args, "--config", str(app_file))
    assert result.returncode == code, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # never a traceback
    if line is not None:
        assert first(result.stderr) == line


def test_redis_unreachable_and_a_bad_file_are_one_line(tmp_path: Path) -> None:
    port = free_port()
    down = sb("status", "--stream", "s", "--url", f"redis://127.0.0.1:{port}/0")
    assert down.returncode == 3
    assert down.stderr.strip() == (f"streamboot: cannot reach redis at 127.0.0.1:{port} "
                                   "(connection refused)")
    bad = tmp_path / "bad.yaml"
    bad.write_text("redis: {urll: x}\n")
    broken = sb("dlq", "list", "d", "--config", str(bad))
    assert broken.returncode == 2
    assert broken.stderr.strip().splitlines() == [
        "1 problem:", f"  {bad}: redis.urll: unknown key; expected one of: url, username, "
        "password, db, cluster, socket_timeout, socket_connect_timeout, client_name, "
        "max_connections, tls, sentinel, startup_timeout"]
    duration = sb("pending", "s", "g", "--min-idle", "soon", "--url", "redis://127.0.0.1:1")
    assert duration.returncode == 2
    assert "--min-idle" in duration.stderr


def test_a_server_that_requires_a_password_says_so_when_none_is_given() -> None:
    """The defect: the server's raw HELLO text ("HELLO must be called with the client
    already authenticated, otherwise …") was all a user saw."""
    from streamboot.devserver import RedisServer

    server = RedisServer()
    server.extra_args = ["--requirepass", "sekret"]
    with server:
        none = sb("status", "--stream", "s", "--url", server.url)
        wrong = sb("status", "--stream", "s", "--url",
                   f"redis://:nope@127.0.0.1:{server.port}/0")
        right = sb("status", "--stream", "s", "--url",
                   f"redis://:sekret@127.0.0.1:{server.port}/0")
    assert none.returncode == 3
    assert none.stderr.strip() == (
        f"streamboot: redis at 127.0.0.1:{server.port} requires a password (set "
        "redis.password, or give it in the URL: redis://:PASSWORD@HOST:PORT — REDIS_URL or "
        "--url for the commands)")
    assert wrong.returncode == 3
    assert "authentication failed" in wrong.stderr
    assert right.returncode == 0, right.stderr


def test_ids_are_never_truncated_and_bytes_are_shown_escaped(
        app_file: Path, r: redis.Redis) -> None:
    r.execute_command("XADD", "{ops}:dlq", "*", "currency", b"\xe9UR", "tag", "a", "tag", "b",
                      "dlq_reason", "undecodable", "dlq_stream", "ops", "dlq_id", "1-0",
                      "dlq_error", "PayloadError: " + "x" * 300, "dlq_fields", "3")
    (dead_id,) = [e for e, _ in entries_of(r, "{ops}:dlq")]
    listed = sb("dlq", "list", "{ops}:dlq", "--config", str(app_file), columns=60)
    assert listed.returncode == 0, listed.stderr
    assert dead_id in listed.stdout  # whole, even at 60 columns
    shown = sb("dlq", "show", "{ops}:dlq", dead_id, "--config", str(app_file))
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["fields"] == [["currency", "\\xe9UR"], ["tag", "a"], ["tag", "b"]]
    assert view["dlq_reason"] == "undecodable"


def test_version_and_plain_help() -> None:
    version = sb("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("streamboot 0.")
    helped = sb("dlq", "--help")
    assert helped.returncode == 0
    assert "<bool>" not in helped.stdout
    assert "[/" not in helped.stdout


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisClusterServer]:
    with RedisClusterServer() as servers:
        yield servers


def test_the_commands_work_on_redis_cluster(cluster: RedisClusterServer,
                                            tmp_path: Path) -> None:
    """They once always built a single-node client and failed with MovedError."""
    path = tmp_path / "cluster.yaml"
    path.write_text(f"""
redis: {{url: "{cluster.url}", cluster: true}}
listeners:
  orders: {{stream: c-ops, group: g, handler: "tests.handlers:RawHandler"}}
""")
    ids = [json.loads(sb("publish", key, "n=1", *extra, "-c", str(path), "--json").stdout)["id"]
           for key, extra in (("c-ops", ()), ("other-key", ()),
                              ("{c-ops}:dlq", ("dlq_stream=c-ops",)))]
    assert all(ids)
    views = {v["key"]: v for v in json.loads(sb("status", str(path), "--json").stdout)}
    assert views["c-ops"]["length"] == 1
    listed = sb("dlq", "list", "{c-ops}:dlq", "-c", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    purged = sb("dlq", "purge", "{c-ops}:dlq", "--yes", "-c", str(path), "--json")
    assert json.loads(purged.stdout) == {"stream": "{c-ops}:dlq", "dead_letters": 1,
                                         "deleted": True}
    missing = sb("pending", "other-key", "g", "-c", str(path))
    assert (missing.returncode, first(missing.stderr)) == (
        1, "streamboot: stream 'other-key' has no group 'g'")


def test_replay_refuses_to_move_a_group_forward(app_file: Path, r: redis.Redis) -> None:
    """A mistyped --from in the future would silently skip everything written until then."""
    last = str(r.xadd("ops", {"n": "1"}))
    r.xgroup_create("ops", "g", "$")
    moved = sb("replay", "ops", "g", "--from", "9999999999999-0", "--yes",
               "--config", str(app_file))
    assert moved.returncode == 2
    assert first(moved.stderr) == (
        f"streamboot: --from 9999999999999-0 is after the last entry group 'g' was delivered "
        f"({last}): replay only delivers entries again, and moving the group forward would "
        "skip entries it never got; nothing changed")
    assert r.xinfo_groups("ops")[0]["last-delivered-id"] == last
    back = sb("replay", "ops", "g", "--from", last, "--config", str(app_file))
    assert back.returncode == 0, back.stderr
    assert "1 entry will be delivered again" in back.stdout


def test_dlq_commands_refuse_a_stream_that_is_not_a_dead_letter_stream(
        app_file: Path, r: redis.Redis) -> None:
    live = str(r.xadd("ops", {"order_id": "o-1"}))
    for command in (["list"], ["purge", "--yes"], ["show", live]):
        refused = sb("dlq", command[0], "ops", *command[1:], "--config", str(app_file))
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert first(refused.stderr) == (
            f"streamboot: ops is not a dead-letter stream: entry {live} has no dlq_stream "
            "field (every dead letter has one); nothing done")
    assert r.xlen("ops") == 1  # not purged
    r.set("plain", "x")
    wrong = sb("dlq", "purge", "plain", "--yes", "--config", str(app_file))
    assert wrong.returncode == 3
    assert first(wrong.stderr) == ("streamboot: key 'plain' holds a value that is not a "
                                   "stream (WRONGTYPE)")


def test_status_of_a_key_of_another_type_and_bad_counts_are_errors(
        app_file: Path, r: redis.Redis) -> None:
    r.set("plain", "x")
    status = sb("status", "--stream", "plain", "--config", str(app_file))
    assert status.returncode == 3
    assert first(status.stderr) == ("streamboot: key 'plain' holds a value that is not a "
                                    "stream (WRONGTYPE)")
    negative = sb("pending", "ops", "g", "--count", "-1", "--config", str(app_file))
    assert negative.returncode == 2
    assert "Invalid value for '--count'" in negative.stderr
    both = sb("status", "--watch", "--json", "--config", str(app_file))
    assert both.returncode == 2
    assert first(both.stderr) == ("streamboot: --watch shows tables; --json prints one "
                                  "snapshot (drop one of them)")


def test_names_that_are_not_utf8_are_shown_escaped_and_json_stays_valid(
        app_file: Path, locked: RedisServer) -> None:
    raw = redis.Redis(port=locked.port, db=2, password="s3cret")  # bytes in, bytes out
    raw.xadd(b"s\xff", {b"n": b"1"})
    raw.xgroup_create(b"s\xff", b"g\xfe", b"0")
    raw.execute_command("XREADGROUP", "GROUP", b"g\xfe", b"c\xfd", "STREAMS", b"s\xff", ">")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    base = [STREAMBOOT.encode()]

    def listing(*args: bytes) -> Any:
        done = subprocess.run([*base, *args, b"--json", b"--config", str(app_file).encode()],
                              cwd=ROOT, env=env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.decode("utf-8"))  # strict: valid UTF-8, valid JSON

    try:
        (view,) = listing(b"status", b"--stream", b"s\xff")
        assert view["key"] == "s\\xff"
        (group,) = view["groups"]
        assert group["name"] == "g\\xfe"
        assert [c["name"] for c in group["consumers"]] == ["c\\xfd"]
        (row,) = listing(b"pending", b"s\xff", b"g\xfe")
        assert row["consumer"] == "c\\xfd"
        table = subprocess.run([*base, b"status", b"--stream", b"s\xff",
                                b"--config", str(app_file).encode()],
                               cwd=ROOT, env=env, capture_output=True, timeout=60)
        shown = table.stdout.decode("utf-8")
        assert "s\\xff" in shown
        assert "g\\xfe" in shown
        assert "c\\xfd" in shown
    finally:
        raw.delete(b"s\xff")
        raw.close()


def test_publish_to_a_rotated_listener_goes_to_its_current_period(
        tmp_path: Path, locked: RedisServer, r: redis.Redis) -> None:
    """A rotated listener reads `rot:<period>` keys; an entry published to the plain name
    `rot` would sit in a stream nobody reads."""
    path = tmp_path / "rotated.yaml"
    path.write_text(f"""
redis: {{url: "redis://127.0.0.1:{locked.port}/2", password: s3cret}}
listeners:
  rot: {{stream: rot, group: g, handler: "tests.handlers:RawHandler",
         rotation: {{period: 1h, key_format: "rot:%Y%m%d%H", ttl: 3h}}}}
""")
    published = sb("publish", "rot", "order_id=o-1", "--config", str(path), "--json")
    assert published.returncode == 0, published.stderr
    shown = json.loads(published.stdout)
    assert shown["stream"].startswith("rot:")
    assert not r.exists("rot")
    assert [f for _, f in entries_of(r, shown["stream"])] == [{"order_id": "o-1"}]
    assert r.xinfo_groups(shown["stream"])[0]["name"] == "g"  # created with its group
    assert 0 < r.ttl(shown["stream"]) <= 3 * 3600


def test_publish_honours_the_listeners_durability(
        tmp_path: Path, locked: RedisServer, r: redis.Redis) -> None:
    """`publish` to a listener with `publish.durability` waits for its replicas like the
    listener's Publisher: this server has none, so it says so (exit 3), the entry
    written."""
    path = tmp_path / "durable.yaml"
    path.write_text(f"""
redis: {{url: "redis://127.0.0.1:{locked.port}/2", password: s3cret}}
listeners:
  d: {{stream: dur, group: g, handler: "tests.handlers:RawHandler",
       publish: {{durability: {{replicas: 1, timeout: 50ms}}}}}}
""")
    published = sb("publish", "dur", "order_id=o-1", "--config", str(path))
    assert published.returncode == 3, published.stderr
    (written,) = entries_of(r, "dur")
    assert published.stderr.strip() == (
        f"streamboot: 1 entry written to 'dur' ({written[0]}) was acknowledged by 0 of the 1 "
        "replica required within 50ms (publish.durability): a failover now could lose it")


def test_status_watch_refreshes_until_ctrl_c_then_exits_0(app_file: Path, r: redis.Redis) -> None:
    """In a terminal (a pty), with a real SIGINT as Ctrl-C sends it (a new user's trial saw
    exit 130)."""
    r.xadd("ops", {"n": "1"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMBOOT_")}
    master, slave = pty.openpty()
    # As a terminal starts it: SIGINT at its default, even when the suite itself runs with
    # SIGINT ignored (a shell's background job, `.ci/run &`), which children inherit.
    proc = subprocess.Popen([STREAMBOOT, "status", "--watch", "--config", str(app_file)],
                            cwd=ROOT, env=env, stdout=slave, stderr=slave,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(slave)
    try:
        seen, deadline = b"", time.monotonic() + 30
        while b"ops" not in seen:  # the first refresh drew the table
            assert time.monotonic() < deadline, seen
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        rest = b""
        while select.select([master], [], [], 0.2)[0]:
            try:
                rest += os.read(master, 65536)
            except OSError:  # the pty closed with the process
                break
        assert b"Traceback" not in seen + rest
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
