"""The admin commands on a partitioned listener: per partition and in total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from streamboot.cli import app
from streamboot.partitions.keys import partition_key, partition_of

runner = CliRunner()
FILE = """\
listeners:
  orders:
    stream: orders
    group: g
    handler: tests.partitions.handlers:EventHandler
    partitions: 3
    partition_by: customer
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "app.yaml"
    path.write_text(FILE)
    return str(path)


def cli(url: str, config: str, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--config", config, "--url", url],
                           catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == code, result.output
    return result.output


def test_publish_routes_status_totals_and_pending_covers_every_partition(
        redis_url: str, r: redis.Redis, config: str) -> None:
    for i in range(6):
        said = cli(redis_url, config, "publish", "orders", f"customer=c{i}", f"seq={i}")
        assert f"(in {partition_key('orders', partition_of(f'c{i}', 3))}, a partition of " \
               "orders)" in said
    for i in range(3):
        key = partition_key("orders", i)
        r.xgroup_create(key, "g", "0", mkstream=True)
        r.xreadgroup("g", "worker-1", {key: ">"}, count=1)
    lengths = [r.xlen(partition_key("orders", i)) for i in range(3)]
    assert sum(lengths) == 6
    text = cli(redis_url, config, "status")
    for i in range(3):
        assert f"{{orders:p{i}}}: {lengths[i]} entr" in text
    read = sum(1 for n in lengths if n)
    assert (f"orders (orders, 3 partitions): 6 entries; group g: lag {6 - read}, pending "
            f"{read}") in text
    rows = json.loads(cli(redis_url, config, "pending", "orders", "g", "--json"))
    assert sorted(row["stream"] for row in rows) == sorted(
        partition_key("orders", i) for i in range(3) if lengths[i])
    assert "partition" in cli(redis_url, config, "pending", "orders", "g")


def test_dlq_list_shows_every_partitions_stream_and_changes_name_one(
        redis_url: str, r: redis.Redis, config: str) -> None:
    for i in range(3):
        r.xadd(f"{{orders:p{i}}}:dlq", {"customer": f"c{i}", "dlq_stream": f"{{orders:p{i}}}",
                                        "dlq_id": "1-0", "dlq_reason": "max_deliveries"})
    text = cli(redis_url, config, "dlq", "list", "orders")
    assert all(f"{{orders:p{i}}}:dlq: 1 dead letter shown" in text for i in range(3))
    assert len(json.loads(cli(redis_url, config, "dlq", "list", "{orders}:dlq", "--json"))) == 3
    refused = cli(redis_url, config, "dlq", "replay", "orders", "--all", code=2)
    assert "orders has a dead-letter stream per partition or period ({orders:p0}:dlq, " \
           "{orders:p1}:dlq, {orders:p2}:dlq): name one" in refused
    assert "replayed 1" in cli(redis_url, config, "dlq", "replay", "{orders:p1}:dlq", "--all")


ROTATED = """\
listeners:
  rot:
    stream: rot
    group: g
    handler: tests.partitions.handlers:EventHandler
    partitions: 2
    rotation: {key_format: "rot:%Y%m%d%H"}
  rou:
    stream: rou
    group: g
    handler: tests.partitions.handlers:EventHandler
    rotation: {key_format: "rou:%Y%m%d%H"}
"""


def test_a_rotated_listeners_dead_letters_are_found_in_their_periods(
        redis_url: str, r: redis.Redis, tmp_path: Path) -> None:
    """A new user's trial: `dlq list` and `status` looked at `{rot:p0}:dlq`, while a rotated
    listener's dead letters are in each period's own `{rot:<period>:p1}:dlq`."""
    from datetime import UTC, datetime

    config = tmp_path / "rot.yaml"
    config.write_text(ROTATED)
    hour = f"{datetime.now(UTC):%Y%m%d%H}"
    for dlq in (f"{{rot:{hour}:p1}}:dlq", f"{{rou:{hour}}}:dlq"):
        r.xadd(dlq, {"customer": "a", "dlq_stream": dlq[:-4], "dlq_id": "1-0",
                     "dlq_reason": "max_deliveries"})
    listed = cli(redis_url, str(config), "dlq", "list", "rot")
    assert f"{{rot:{hour}:p1}}:dlq: 1 dead letter shown" in listed
    assert f"{{rou:{hour}}}:dlq: 1 dead letter shown" in cli(redis_url, str(config), "dlq",
                                                            "list", "rou")
    refused = cli(redis_url, str(config), "dlq", "replay", "rot", "--all", code=2)
    assert f"per partition or period ({{rot:{hour}:p1}}:dlq): name one" in refused
    status = cli(redis_url, str(config), "status")
    assert f"{{rot:{hour}:p1}}:dlq: 1 entry" in status
    assert f"{{rou:{hour}}}:dlq: 1 entry" in status


def test_check_refuses_routing_by_a_field_the_payload_does_not_have(
        redis_url: str, tmp_path: Path) -> None:
    config = tmp_path / "app.yaml"
    config.write_text(FILE.replace("partition_by: customer", "partition_by: no_such_field"))
    result = runner.invoke(app, ["check", str(config)], catch_exceptions=False,
                           env={"COLUMNS": "200", "STREAMBOOT_REDIS__URL": redis_url})
    assert result.exit_code == 2, result.output
    assert "listeners.orders.partition_by" in result.output
    assert "'no_such_field' is not a field of the handler's payload Event" in result.output
