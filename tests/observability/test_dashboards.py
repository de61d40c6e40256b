"""``streamboot dashboards``: its rules checked and unit-tested by promtool, its dashboard's
every query run by a real Prometheus scraping a running application, and the lag alert
seen firing there when the lag passes the YAML's threshold."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis.asyncio import Redis
from typer.testing import CliRunner

from streamboot.cli import app
from streamboot.devserver import RedisServer
from streamboot.observability.dashboards import PANELS, RATE
from streamboot.partitions.keys import partition_key
from tests.conftest import http_get
from tests.console.browser import console_process
from tests.ops_app import OUTAGE, ops_application, ops_settings
from tests.prometheus import PrometheusServer, binary

runner = CliRunner()


def _write(tmp_path: Path, *args: str) -> tuple[Path, Path]:
    result = runner.invoke(app, ["dashboards", "--out", str(tmp_path), *args])
    assert result.exit_code == 0, result.output
    assert "12 panels" in result.output
    assert "8 alerting rules" in result.output
    return tmp_path / "streamboot-dashboard.json", tmp_path / "streamboot-rules.yml"


def _annotations(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, str]:
    """The rule's annotations as Prometheus renders them for ``labels``."""
    out = {}
    for name, text in rule["annotations"].items():
        for label, value in labels.items():
            text = text.replace(f"{{{{ $labels.{label} }}}}", value)
        out[name] = text
    return out


def test_the_rules_pass_promtool_check_and_fire_as_their_unit_tests_say(tmp_path: Path) -> None:
    _, rules_file = _write(tmp_path, "--alert-after", "1m", "--job", "shop")
    check = subprocess.run([binary("promtool"), "check", "rules", str(rules_file)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    rules = {r["alert"]: r for r in yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]}
    lag = {"listener": "orders", "stream": "{shop}:orders"}
    dead = {"listener": "payments", "dlq": "{shop}:payments:dlq"}
    down = {"listener": "orders", "stream": "{shop}:orders", "instance": "a:9464"}
    lease = {"listener": "emails", "instance": "b:9464"}
    gone = {"job": "shop", "instance": "c:9464"}

    def expect(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"exp_labels": {**labels, "severity": rules[name]["labels"]["severity"]},
                "exp_annotations": _annotations(rules[name], labels)}

    def series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
        text = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{metric}{{{text}}}", "values": values}

    tests = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            # Two processes report the same group; one has seen the lag cross (max).
            series("streamboot_alert", {"alert": "lag", **lag, "instance": "a:9464"},
                   "0 0 1 1 1 1"),
            series("streamboot_alert", {"alert": "lag", **lag, "instance": "b:9464"},
                   "0 0 0 0 0 0"),
            series("streamboot_alert", {"alert": "pending", **lag, "instance": "a:9464"},
                   "0 0 0 0 0 0"),
            series("streamboot_dead_letters",
                   {**dead, "stream": "{shop}:payments", "instance": "a:9464"},
                   "0 0 0 3 3 3"),
            series("streamboot_listener_up", down, "1 1 0 0 0 0"),
            series("streamboot_partition_renewal_failing", lease, "0 0 0 1 1 1"),
            series("up", gone, "1 1 0 0 0 0"),
            series("up", {**gone, "job": "other"}, "0 0 0 0 0 0"),  # not the app's
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "StreambootLag", "exp_alerts": []},  # for 1m
            {"eval_time": "3m", "alertname": "StreambootLag",
             "exp_alerts": [expect("StreambootLag", lag)]},
            {"eval_time": "5m", "alertname": "StreambootPendingPerConsumer", "exp_alerts": []},
            {"eval_time": "2m", "alertname": "StreambootDeadLettersGrowing", "exp_alerts": []},
            {"eval_time": "4m", "alertname": "StreambootDeadLettersGrowing",
             "exp_alerts": [expect("StreambootDeadLettersGrowing", dead)]},
            {"eval_time": "3m", "alertname": "StreambootListenerDown",
             "exp_alerts": [expect("StreambootListenerDown", down)]},
            {"eval_time": "4m", "alertname": "StreambootLeaseRenewalFailing",
             "exp_alerts": [expect("StreambootLeaseRenewalFailing", lease)]},
            {"eval_time": "3m", "alertname": "StreambootProcessDown",
             "exp_alerts": [expect("StreambootProcessDown", gone)]},
        ],
    }]}
    test_file = tmp_path / "rules.test.yml"
    test_file.write_text(yaml.safe_dump(tests))
    result = subprocess.run([binary("promtool"), "test", "rules", str(test_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _runnable(expr: str) -> str:
    """A panel's query as Prometheus runs it outside Grafana: every filter open."""
    return expr.replace(RATE, "30s").replace("$listener", ".*").replace("$stream", ".*")


@pytest.mark.fault
async def test_a_real_prometheus_scraping_the_app_has_data_for_every_panel_and_fires_lag(
        tmp_path: Path) -> None:
    board_file, rules_file = _write(tmp_path, "--alert-after", "2s")
    board = json.loads(board_file.read_text())
    assert [p["targets"][0]["expr"] for p in board["panels"]] == [p.expr for p in PANELS]
    with RedisServer() as server:
        application = ops_application(server.url)
        await application.start()
        client = Redis.from_url(server.url, decode_responses=True)
        try:
            assert application.metrics_server is not None
            target = f"127.0.0.1:{application.metrics_server.port}"
            # orders falls behind (5 entries per read, 0.05 s each; alerts.max_lag 5),
            # payments dead-letters, emails' two partitions are held by this member.
            for n in range(200):
                await client.xadd("{ops}:orders", {"n": str(n), "sleep": "0.05"})
            await client.set(OUTAGE, "1")
            await client.xadd("{ops}:payments", {"n": "p1", "fail": "card declined"})
            await client.xadd("{ops}:payments", {"n": "p2"})
            with PrometheusServer([target], [rules_file]) as prometheus:
                deadline = time.monotonic() + 45
                empty = [p.title for p in PANELS]
                while empty and time.monotonic() < deadline:
                    await asyncio.sleep(1)
                    results = [await asyncio.to_thread(prometheus.query, _runnable(p.expr))
                               for p in PANELS]
                    empty = [p.title for p, r in zip(PANELS, results, strict=True) if not r]
                assert not empty, f"panels without data: {empty}"
                firing: list[dict[str, Any]] = []
                while not firing and time.monotonic() < deadline:
                    alerts = await asyncio.to_thread(prometheus.alerts)
                    firing = [a for a in alerts if a["labels"]["alertname"] == "StreambootLag"
                              and a["state"] == "firing"]
                    await asyncio.sleep(0.5)
                assert firing, f"StreambootLag never fired: {alerts}"
                assert firing[0]["labels"]["stream"] == "{ops}:orders"
                lag = await asyncio.to_thread(
                    prometheus.query, 'streamboot_group_lag{stream="{ops}:orders"}')
                assert float(lag[0]["value"][1]) > 5
                dead = await asyncio.to_thread(prometheus.query, "streamboot_dead_letters")
                sizes = {r["metric"]["dlq"]: float(r["value"][1]) for r in dead}
                assert sizes["{ops}:payments:dlq"] == 1.0
                owners = await asyncio.to_thread(prometheus.query, "streamboot_partition_owner")
                assert sorted(r["metric"]["partition"] for r in owners) == [
                    partition_key("emails", 0), partition_key("emails", 1)]
                # The console's charts read from this Prometheus when given its URL.
                config = tmp_path / "app.yaml"
                config.write_text(yaml.safe_dump(ops_settings(server.url)))
                with console_process(config, "--prometheus", prometheus.url,
                                     "--history", "30s") as base:
                    _, page = await asyncio.to_thread(http_get, f"{base}/listeners/orders")
                assert f"from Prometheus at {prometheus.url}" in page
                points = [int(n) for n in re.findall(r'data-points="(\d+)"', page)]
                assert len(points) == 3
                assert min(points) >= 2, points  # lag, pending, throughput: each a line
        finally:
            await client.aclose()
            await application.stop()
