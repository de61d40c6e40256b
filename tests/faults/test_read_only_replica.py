"""A primary demoted under a fixed address (issue 24): ``redis.url`` points at node A;
a failover makes B the primary and A its replica (REPLICAOF). Every write A gets now is
refused with READONLY. The listener must say so by name — not a traceback per retry —
tell once what to configure, report it in /healthz, back off, and resume by itself when
the address serves a primary again (here: A promoted back). Nothing is lost: what was
written to B meanwhile is on A once it is promoted, and handled then."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from streamboot.devserver import RedisServer
from tests.conftest import http_get
from tests.faults.processes import Worker, journal, started, wait, workers
from tests.process.test_supervisor import free_port

pytestmark = pytest.mark.fault


def config(path: Path, url: str, port: int) -> Path:
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 500ms}}
container: {{poll_timeout: 200ms, batch_size: 50}}
metrics: {{enabled: true, port: {port}}}
listeners:
  orders:
    stream: orders
    group: g
    handler: "tests.handlers:JournalHandler"
    pending_scan: {{interval: 1s, min_idle: 3s}}
""")
    return path


def healthz(port: int) -> tuple[int, dict[str, object]]:
    status, text = http_get(f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(text)


def replicate(node: Redis, primary: RedisServer | None) -> None:
    """REPLICAOF the primary (None: NO ONE), and wait until it is in sync."""
    if primary is None:
        node.execute_command("REPLICAOF", "NO", "ONE")
        return
    node.execute_command("REPLICAOF", "127.0.0.1", primary.port)
    wait(lambda: node.info("replication").get("master_link_status") == "up", 10,
         "the replica never synced")


def test_a_demoted_primary_is_said_by_name_reported_and_left_once_promoted(
        tmp_path: Path, project_env: dict[str, str]) -> None:
    out = tmp_path / "journal"
    port = free_port()
    with RedisServer() as a_server, RedisServer() as b_server:
        a = Redis.from_url(a_server.url, decode_responses=True)
        b = Redis.from_url(b_server.url, decode_responses=True)
        replicate(b, a_server)  # B replicates A, as in any primary-replica pair
        before = [a.xadd("orders", {"n": str(n), "out": str(out)}) for n in range(100)]
        worker = Worker(config(tmp_path / "app.yaml", a_server.url, port), "c1",
                        project_env, tmp_path / "w.log")
        with workers(worker):
            wait(lambda: len(set(started(journal(out), "c1"))) == 100, 20,
                 lambda: worker.text()[-2000:])
            # The failover: B promoted, A demoted to B's replica (same address in the file).
            replicate(b, None)
            replicate(a, b_server)
            during = [b.xadd("orders", {"n": str(n), "out": str(out)})
                      for n in range(100, 600)]
            worker.wait_for_line("is a read-only replica now (a failover?)", 10)
            wait(lambda: healthz(port)[0] == 503, 10, "health stayed 200")
            _status, report = healthz(port)
            assert any("read-only replica" in str(p) for p in report["problems"]), report  # type: ignore[attr-defined]
            time.sleep(1.0)  # a few retries with backoff
            # The address serves a primary again: A promoted (it has B's entries).
            replicate(a, None)
            wait(lambda: set(started(journal(out), "c1")) >= set(before + during), 30,
                 lambda: worker.text()[-3000:])
            wait(lambda: healthz(port)[0] == 200, 15, "health never came back")
            wait(lambda: a.xpending("orders", "g")["pending"] == 0, 10, "left pending")
        log = worker.text()
        a.close()
        b.close()
    handled = Counter(started(journal(out), "c1"))
    assert set(handled) == set(before + during)
    assert "Traceback" not in log, log[-3000:]
    assert "poll loop error" not in log, log[-3000:]
    assert "job failed" not in log, log[-3000:]
    assert "does not exist" not in log, log[-3000:]  # a demotion is not a deleted group
    assert log.count("Configure redis.sentinel") == 1, log[-3000:]
