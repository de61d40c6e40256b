"""The admin commands, run as a user runs them, against a real redis-server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import redis
from typer.testing import CliRunner

from streamboot.cli import app
from tests.streams import entries_of

runner = CliRunner()


def cli(url: str, *args: str) -> str:
    result = runner.invoke(app, [*args, "--url", url], catch_exceptions=False,
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_publish_then_status_as_json(redis_url: str, r: redis.Redis) -> None:
    for i in range(3):
        cli(redis_url, "publish", "ops", f"n={i}", "kind=test")
    r.xgroup_create("ops", "g", "0")
    r.xreadgroup("g", "worker-1", {"ops": ">"}, count=2)
    (view,) = json.loads(cli(redis_url, "status", "--stream", "ops", "--json"))
    assert (view["key"], view["length"], view["exists"]) == ("ops", 3, True)
    assert view["memory_bytes"] > 0
    (group,) = view["groups"]
    assert (group["name"], group["lag"], group["pending"]) == ("g", 1, 2)
    assert group["oldest_pending_idle_ms"] is not None
    assert [(c["name"], c["pending"]) for c in group["consumers"]] == [("worker-1", 2)]
    assert entries_of(r, "ops")[0][1] == {"n": "0", "kind": "test"}


def test_status_table_from_the_application_file(redis_url: str, r: redis.Redis) -> None:
    r.xgroup_create("orders", "order-processors", "0", mkstream=True)
    text = cli(redis_url, "status", "config/application.yaml")
    assert "orders: 0 entries" in text
    assert "order-processors" in text
    assert "{orders}:dlq: no such stream" in text


def test_pending_lists_owner_idle_and_deliveries(redis_url: str, r: redis.Redis) -> None:
    ids = [str(r.xadd("pend", {"n": str(i)})) for i in range(3)]
    r.xgroup_create("pend", "g", "0")
    r.xreadgroup("g", "dead", {"pend": ">"}, count=3)
    text = cli(redis_url, "pending", "pend", "g")
    assert all(i in text for i in ids)
    assert "dead" in text
    assert "pend / g: 3 pending entries shown" in text
    assert "0 pending entries shown" in cli(redis_url, "pending", "pend", "g", "--min-idle", "1h")


def test_dlq_list_show_replay_and_purge(redis_url: str, r: redis.Redis) -> None:
    dead = [str(r.xadd("{src}:dlq", {"order_id": f"o{i}", "dlq_reason": "max_deliveries",
                                 "dlq_error": "ValueError: boom", "dlq_stream": "src",
                                 "dlq_id": f"{i + 1}-0", "dlq_group": "g",
                                 "dlq_deliveries": "5", "dlq_at": "2026-11-23T00:00:00"}))
            for i in range(3)]
    listed = cli(redis_url, "dlq", "list", "{src}:dlq")
    assert "{src}:dlq: 3 dead letters shown" in listed
    assert "ValueError: boom" in listed
    shown = json.loads(cli(redis_url, "dlq", "show", "{src}:dlq", dead[0]))
    assert shown["fields"] == [["order_id", "o0"]]
    assert shown["dlq_reason"] == "max_deliveries"
    cli(redis_url, "dlq", "replay", "{src}:dlq", dead[0])
    assert [f for _, f in entries_of(r, "src")] == [{"order_id": "o0"}]  # dlq_* removed
    assert r.xlen("{src}:dlq") == 2
    assert "replayed 2 dead letters" in cli(redis_url, "dlq", "replay", "{src}:dlq", "--all")
    assert r.xlen("src") == 3
    r.xadd("{src}:dlq", {"a": "b", "dlq_stream": "src"})
    assert "add --yes" in cli(redis_url, "dlq", "purge", "{src}:dlq")
    assert r.exists("{src}:dlq")
    assert "deleted {src}:dlq: 1 dead letter" in cli(redis_url, "dlq", "purge", "{src}:dlq",
                                                      "--yes")
    assert not r.exists("{src}:dlq")


def test_dlq_replay_writes_back_the_exact_bytes(redis_url: str, r: redis.Redis) -> None:
    """A dead letter of an entry that is not UTF-8, with a name given twice, goes back to
    its stream byte for byte (what the listener dead-letters, see wire/decoding.py)."""
    original = [b"currency", b"\xe9UR", b"tag", b"a", b"tag", b"b", b"dlq_reason", b"mine"]
    r.execute_command("XADD", "{bin}:dlq", "*", *original, "dlq_reason", "undecodable",
                      "dlq_stream", "bin", "dlq_id", "1-0", "dlq_group", "g", "dlq_fields", "4")
    assert "replayed 1 dead letter" in cli(redis_url, "dlq", "replay", "{bin}:dlq", "--all")
    raw = redis.Redis.from_url(redis_url)
    ((_, flat),) = raw.execute_command("EVAL", "return redis.call('XRANGE', KEYS[1], '-', '+')",
                                       1, "bin")
    raw.close()
    assert flat == original
    assert r.xlen("{bin}:dlq") == 0


def test_status_shows_each_partitions_lease_owner_epoch_and_age(
        redis_url: str, r: redis.Redis) -> None:
    """Who reads which partition (partitions/membership.py), as an admin sees it."""
    r.xgroup_create("{orders:p0}", "g", "0", mkstream=True)
    r.xgroup_create("{orders:p1}", "g", "0", mkstream=True)
    seconds, micros = r.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    r.hset("{orders:p0}:lease", mapping={"owner": "pod-a", "epoch": 3,
                                         "until": now_ms + 5_000, "since": now_ms - 2_000})
    r.hset("{orders:p1}:lease", mapping={"owner": "", "epoch": 7, "until": 0,
                                         "since": now_ms})
    text = cli(redis_url, "status", "--stream", "{orders:p0}", "--stream", "{orders:p1}")
    assert re.search(r"lease: pod-a, epoch 3, held 2\.\ds, expires in (4\.\d|5\.0)s", text), text
    assert "lease: free (epoch 7)" in text
    views = json.loads(cli(redis_url, "status", "--stream", "{orders:p0}", "--json"))
    assert views[0]["lease"]["owner"] == "pod-a"
    assert views[0]["lease"]["epoch"] == 3
    plain = json.loads(cli(redis_url, "status", "--stream", "{orders:p0}:dlq", "--json"))
    assert plain[0]["lease"] is None  # only a partition's key has a lease


def test_status_lists_each_live_member_with_its_partitions_or_standby(
        tmp_path: Path, redis_url: str, r: redis.Redis) -> None:
    """With the application file: every member whose heartbeat is live, the partitions it
    owns, and the standbys (more members than partitions); a lease whose owner stopped
    its heartbeat is named as such."""
    config = tmp_path / "app.yaml"
    config.write_text("listeners:\n  orders: {stream: orders, group: g, handler: x:Y, "
                      "partitions: 3}\n")
    seconds, micros = r.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    for index, owner in enumerate(["pod-a", "pod-b", "pod-gone"]):
        r.xgroup_create(f"{{orders:p{index}}}", "g", "0", mkstream=True)
        r.hset(f"{{orders:p{index}}}:lease", mapping={
            "owner": owner, "epoch": 1, "until": now_ms + 5_000, "since": now_ms})
    r.zadd("streamboot:members:{orders}:g", {"pod-a": now_ms + 5_000,
                                             "pod-b": now_ms + 5_000,
                                             "pod-c": now_ms + 5_000,
                                             "pod-old": now_ms - 1_000})
    text = cli(redis_url, "status", str(config))
    assert ("members: pod-a p0; pod-b p1; pod-c standby; pod-gone p2 (no heartbeat)"
            in text), text
    assert "pod-old" not in text
