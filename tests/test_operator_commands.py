"""Operator paper cuts, each as the operator met it: the real `streamboot` command (a
subprocess: its stdout a pipe, as in a script or `| cat`) against a real redis-server,
asserting what is printed and the exit code. Plus the pure dead-letter filter that
`dlq replay --reason/--where` and the console share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from streamboot.config.models import RedisSettings
from streamboot.listener.dead_letters import describe_match, distinct_ids, matches
from streamboot.wire.records import StreamEntry
from tests.conftest import stop_process, wait_for
from tests.streams import entries_of

ROOT = Path(__file__).resolve().parents[1]
STREAMBOOT = str(Path(sys.executable).with_name("streamboot"))


def _env() -> dict[str, str]:
    """No inherited Redis, file or width: COLUMNS unset, as in a cron job or a pipe."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("STREAMBOOT_") and k not in ("REDIS_URL", "COLUMNS")}


def sb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STREAMBOOT, *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


@pytest.fixture
def app_file(tmp_path: Path, redis_url: str) -> str:
    path = tmp_path / "app.yaml"
    path.write_text(f"""
redis: {{url: "{redis_url}"}}
listeners:
  orders: {{stream: orders, group: og, handler: "tests.handlers:RawHandler", partitions: 3}}
  plain: {{stream: plain, group: pg, handler: "tests.handlers:RawHandler"}}
""")
    return str(path)


def _partitions(r: redis.Redis) -> None:
    """p0 read to its end (4-0), p1 read by nobody yet (0-0), p2 never written."""
    for i in range(1, 5):
        r.xadd("{orders:p0}", {"n": str(i)}, id=f"{i}-0")
        r.xadd("{orders:p1}", {"n": str(i)}, id=f"{i}-0")
    r.xgroup_create("{orders:p0}", "og", "$")
    r.xgroup_create("{orders:p1}", "og", "0")


# -- 1. replay a partitioned listener ---------------------------------------------------


def test_replay_of_a_partitioned_stream_moves_each_partition_whose_group_exists(
        app_file: str, r: redis.Redis) -> None:
    """Before: `consumer group 'og' on stream 'orders' does not exist`, exit 1."""
    _partitions(r)
    plan = sb("replay", "orders", "og", "--from", "2-0", "--config", app_file)
    assert plan.returncode == 0, plan.stderr
    assert lines(plan.stdout) == [
        "would move group 'og' on '{orders:p0}': last-delivered 4-0 -> "
        "1-18446744073709551615; 3 entries will be delivered again",
        "group 'og' on '{orders:p1}': last-delivered 0-0 is before --from: nothing to "
        "deliver again, left unchanged",
        "{orders:p2}: no group 'og' yet (no consumer read it): skipped",
        "orders (3 partitions): would move 1 of 3; 3 entries would be delivered again",
        "nothing changed: add --yes to do it"]
    assert r.xinfo_groups("{orders:p0}")[0]["last-delivered-id"] == "4-0"
    done = sb("replay", "orders", "og", "--from", "2-0", "--yes", "--json", "--config",
              app_file)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(row["stream"], row["done"], row["skipped"]) for row in rows] == [
        ("{orders:p0}", True, None), ("{orders:p1}", False, "ahead"),
        ("{orders:p2}", False, "no group")]
    assert r.xinfo_groups("{orders:p0}")[0]["last-delivered-id"] == "1-18446744073709551615"
    assert r.xinfo_groups("{orders:p1}")[0]["last-delivered-id"] == "0-0"
    missing = sb("replay", "orders", "nosuch", "--from", "2-0", "--config", app_file)
    assert missing.returncode == 1
    assert lines(missing.stderr) == [
        "streamboot: consumer group 'nosuch' does not exist on any of the 3 partitions of "
        "'orders'"]


# -- 2. pending with a group no partition has --------------------------------------------


def test_pending_of_a_partitioned_stream_names_a_group_no_partition_has(
        app_file: str, r: redis.Redis) -> None:
    """Before: `orders (3 partitions) / nosuch: 0 pending entries shown`, exit 0."""
    _partitions(r)
    missing = sb("pending", "orders", "nosuch", "--config", app_file)
    assert missing.returncode == 1
    assert lines(missing.stderr) == [
        "streamboot: consumer group 'nosuch' does not exist on any of the 3 partitions of "
        "'orders'"]
    found = sb("pending", "orders", "og", "--config", app_file)
    assert found.returncode == 0, found.stderr
    assert "orders (3 partitions) / og: 0 pending entries shown" in found.stdout


# -- 3. dlq list into a pipe --------------------------------------------------------------


def test_dlq_list_into_a_pipe_keeps_every_column(redis_url: str, r: redis.Redis) -> None:
    """Before: at rich's 80 columns for a pipe, `from` and `deliveries` were 0 wide and
    `reason` was `ma…`."""
    error = "ValueError: " + "boom " * 40
    dead = r.xadd("{src}:dlq", {"order_id": "o1", "dlq_reason": "max_deliveries",
                                "dlq_error": error.strip(), "dlq_stream": "src",
                                "dlq_id": "17-0", "dlq_deliveries": "5", "dlq_fields": "1"})
    listed = sb("dlq", "list", "{src}:dlq", "--url", redis_url)
    assert listed.returncode == 0, listed.stderr
    header = next(line for line in lines(listed.stdout) if "reason" in line)
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "id", "from", "reason", "deliveries", "error"]
    row = next(line for line in lines(listed.stdout) if str(dead) in line)
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        str(dead), "src 17-0", "max_deliveries", "5", error.strip()]


# -- 4. dlq replay by filter --------------------------------------------------------------


def _dead(pairs: list[str], reason: str, count: int | None = None) -> StreamEntry:
    own = len(pairs) // 2 if count is None else count
    raw = [*pairs, "dlq_reason", reason, "dlq_stream", "src",
           *(["dlq_fields", str(own)] if count != -1 else [])]
    return StreamEntry("1-0", dict(zip(raw[::2], raw[1::2], strict=True)), raw)


def test_matches_selects_by_reason_and_original_fields_only() -> None:
    entry = _dead(["order_id", "o1", "tag", "a", "tag", "b"], "max_deliveries")
    assert matches(entry)
    assert matches(entry, "max_deliveries")
    assert not matches(entry, "invalid_payload")
    assert matches(entry, None, [("order_id", "o1"), ("tag", "b")])  # either of a name twice
    assert matches(entry, "max_deliveries", [("tag", "a")])
    assert not matches(entry, "max_deliveries", [("order_id", "o2")])
    assert not matches(entry, None, [("order_id", "o1"), ("missing", "")])
    assert not matches(entry, None, [("dlq_stream", "src")])  # ours, not the entry's


def test_matches_reads_the_reason_we_wrote_not_a_field_of_the_entry() -> None:
    """An entry of its own with a `dlq_reason` field: the dead letter's reason is ours."""
    entry = _dead(["dlq_reason", "mine", "n", "1"], "undecodable")
    assert matches(entry, "undecodable")
    assert not matches(entry, "mine")
    assert matches(entry, None, [("dlq_reason", "mine")])  # it is an original field
    legacy = _dead(["n", "1"], "max_deliveries", count=-1)  # before dlq_fields existed
    assert matches(legacy, "max_deliveries", [("n", "1")])
    assert describe_match("a", [("n", "1")]) == "reason a and n=1"


def test_dlq_replay_by_reason_and_where(redis_url: str, r: redis.Redis) -> None:
    """Before: `--reason` was `No such option`, exit 2."""
    for order, kind, reason in (("o1", "a", "max_deliveries"), ("o2", "b", "invalid_payload"),
                                ("o3", "a", "invalid_payload")):
        r.xadd("{src}:dlq", {"order_id": order, "kind": kind, "dlq_reason": reason,
                             "dlq_stream": "src", "dlq_fields": "2"})
    url = ["--url", redis_url]
    none = sb("dlq", "replay", "{src}:dlq", "--reason", "invalid_payload", "--where",
              "kind=z", *url)
    assert none.returncode == 1
    assert lines(none.stderr) == ["streamboot: no dead letter matches reason invalid_payload "
                                  "and kind=z in {src}:dlq: nothing replayed"]
    done = sb("dlq", "replay", "{src}:dlq", "--reason", "invalid_payload", "--where",
              "kind=a", *url)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[-1] == "replayed 1 dead letter"
    assert [f for _, f in entries_of(r, "src")] == [{"order_id": "o3", "kind": "a"}]
    assert r.xlen("{src}:dlq") == 2
    by_field = sb("dlq", "replay", "{src}:dlq", "--where", "kind=a", "--json", *url)
    assert [row["stream"] for row in json.loads(by_field.stdout)] == ["src"]
    mixed = sb("dlq", "replay", "{src}:dlq", "--all", "--reason", "x", *url)
    assert mixed.returncode == 2
    assert lines(mixed.stderr) == ["streamboot: --reason/--where select the dead letters "
                                   "themselves: give them without ids or --all"]
    bad = sb("dlq", "replay", "{src}:dlq", "--where", "kind", *url)
    assert (bad.returncode, lines(bad.stderr)) == (
        2, ["streamboot: --where: expected FIELD=VALUE, got 'kind'"])
    assert r.xlen("{src}:dlq") == 1


# -- 5. wait --drained --------------------------------------------------------------------


def test_wait_drained_names_unknown_listeners_and_what_is_left(
        app_file: str, r: redis.Redis) -> None:
    """Before: `No such command 'wait'`, exit 2."""
    unknown = sb("wait", "--drained", "nosuch", "--config", app_file)
    assert unknown.returncode == 2
    assert lines(unknown.stderr) == [
        f"streamboot: no listener 'nosuch' in {app_file} (its listeners: orders, plain)"]
    nothing = sb("wait", "--drained", "orders", "--config", app_file, "--timeout", "1s")
    assert (nothing.returncode, lines(nothing.stdout)) == (
        0, ["orders drained: none of its streams exists yet"])
    _partitions(r)  # p0 at its end; p1 4 entries behind
    r.xadd("{orders:p2}", {"n": "1"})  # a group not created yet over an entry
    started = time.monotonic()
    left = sb("wait", "--drained", "orders", "--config", app_file, "--timeout", "1s")
    assert 1 <= time.monotonic() - started < 20
    assert left.returncode == 1
    assert lines(left.stderr) == [
        "streamboot: orders not drained after 1s: lag 4, pending 0, 1 entry unread "
        "(p1: lag 4, pending 0; p2: group not created yet, 1 entry unread)"]


def test_wait_drained_returns_as_soon_as_the_group_is_drained(
        app_file: str, r: redis.Redis) -> None:
    r.xadd("plain", {"n": "1"}, id="1-0")
    r.xgroup_create("plain", "pg", "0")
    r.xreadgroup("pg", "w1", {"plain": ">"})
    proc = subprocess.Popen([STREAMBOOT, "wait", "--drained", "plain", "--config", app_file,
                             "--timeout", "30s"], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert proc.poll() is None  # one pending entry: still waiting
        r.xack("plain", "pg", "1-0")
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # its pipes closed: no leak reported on the next test
    assert proc.returncode == 0, err
    assert lines(out) == ["plain drained: lag 0, pending 0 on 1 stream"]


# -- 6. status --watch into a pipe, ended by SIGTERM ------------------------------------


def test_status_watch_into_a_pipe_prints_snapshots_and_ends_0_on_sigterm(
        app_file: str, r: redis.Redis, tmp_path: Path) -> None:
    """Before: nothing written (rich Live writes to a non-terminal only at exit), and
    SIGTERM ended it with exit -15."""
    r.xadd("plain", {"n": "1"})
    log = tmp_path / "watch.out"
    with log.open("w") as sink:
        proc = subprocess.Popen([STREAMBOOT, "status", "--watch", "--config", app_file],
                                cwd=ROOT, env=_env(), stdout=sink, stderr=subprocess.PIPE,
                                text=True)
    try:
        wait_for(lambda: "{plain}:dlq: no such stream" in log.read_text(), timeout=20)
        stderr = stop_process(proc, signal.SIGTERM, timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # its pipe closed: no leak reported on the next test
    assert proc.returncode == 0, stderr
    text = log.read_text()
    assert text.startswith("-- ")
    assert "plain: 1 entry" in text
    assert "group pg: not created yet" in text
    assert "Traceback" not in stderr


# -- 7. status before any listener ran ---------------------------------------------------


def test_status_says_a_group_was_not_created_yet(app_file: str, r: redis.Redis) -> None:
    """Before: `orders (orders, 3 partitions): 0 entries; group og: lag 0, pending 0`, and
    a table without rows for `plain`."""
    r.xadd("plain", {"n": "1"})
    shown = sb("status", "--config", app_file)
    assert shown.returncode == 0, shown.stderr
    said = lines(shown.stdout)
    assert ("orders (orders, 3 partitions): 0 entries; group og: not created yet (no "
            "consumer has started)") in said
    assert "group pg: not created yet (no consumer has started)" in said
    r.xgroup_create("plain", "pg", "0")
    assert "group pg: not created" not in sb("status", "--config", app_file).stdout


# -- 8. a database other than 0 on Redis Cluster ----------------------------------------


@pytest.mark.parametrize("url", ["redis://127.0.0.1:7000/2", "redis://127.0.0.1:7000?db=3"])
def test_a_cluster_url_with_a_database_is_a_config_problem(url: str) -> None:
    with pytest.raises(ValidationError, match="a Redis Cluster has only database 0"):
        RedisSettings(url=url, cluster=True)
    assert RedisSettings(url="redis://127.0.0.1:7000/0", cluster=True).cluster
    assert RedisSettings(url=url).url == url  # a standalone server has databases


def test_status_check_and_run_report_a_cluster_database_the_same_way(
        tmp_path: Path, redis_url: str) -> None:
    """Before: `status` ended in a traceback (`RedisClusterException: Argument 'db' must be
    0 or None in cluster mode`), exit 1."""
    path = tmp_path / "cl.yaml"
    path.write_text(f"""
redis: {{url: "{redis_url.rsplit('/', 1)[0]}/2", cluster: true}}
listeners:
  plain: {{stream: plain, group: pg, handler: "tests.handlers:RawHandler"}}
""")
    problem = (f"  {path}: redis: a Redis Cluster has only database 0, and url selects "
               "database 2: drop it from the url (or end it with /0)")
    for args in (["status", "--config", str(path)], ["check", str(path)],
                 ["run", str(path)]):
        result = sb(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert problem in lines(result.stderr), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_dlq_replay_of_an_id_given_twice_replays_it_once(r: redis.Redis, redis_url: str) -> None:
    """Before: "replayed 2 dead letters", two copies published (handled twice)."""
    dead = r.xadd("{src}:dlq", {"n": "1", "dlq_reason": "max_deliveries", "dlq_stream": "src",
                                "dlq_id": "1-0", "dlq_fields": "1"})
    done = sb("dlq", "replay", "{src}:dlq", str(dead), str(dead), "--url", redis_url)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)[-1] == "replayed 1 dead letter"
    assert r.xlen("src") == 1
    # Written two ways, `<ms>` and `<ms>-00`, it is still one entry.
    again = r.xadd("{src}:dlq", {"n": "2", "dlq_reason": "max_deliveries", "dlq_stream": "src",
                                 "dlq_id": "2-0", "dlq_fields": "1"})
    ms = str(again).split("-")[0]
    done = sb("dlq", "replay", "{src}:dlq", ms, f"{ms}-00", "--url", redis_url)
    assert lines(done.stdout)[-1] == "replayed 1 dead letter", done.stdout + done.stderr
    assert r.xlen("src") == 2
    assert distinct_ids(["5", "5-00", "5-0", "6-1"]) == ["5-0", "6-1"]


def test_dlq_list_of_a_stream_that_does_not_exist_says_so(redis_url: str) -> None:
    """Before: an empty table, as if the stream existed with no dead letter in it."""
    listed = sb("dlq", "list", "{nope}:dlq", "--url", redis_url)
    assert listed.returncode == 0
    assert lines(listed.stdout) == [
        "{nope}:dlq: no such stream (no dead letter was written there yet, or it was purged)"]
    assert sb("dlq", "list", "{nope}:dlq", "--url", redis_url, "--json").stdout.strip() == "[]"
