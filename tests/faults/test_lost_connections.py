"""Connections that go silent, or are reset, while a live consumer holds work (issue 21).

Consumer A (`streamboot run`) reaches Redis through a TCP proxy in the test; it holds a
full batch of slow handlers and a read-ahead. Then every connection it has open goes
silent (a lost NAT entry: new connections work, old ones never answer) — or is reset.
Consumer B (another `streamboot run`, straight to Redis) scans for idle entries all the
while, with the same ``min_idle: 3s``. The renewal must not wait on the dead socket for
``socket_timeout`` (10 s, the default): it gives up within a tenth of ``min_idle``, says
so, and renews on a new connection, so B takes nothing and nothing is handled twice.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis

from tests.faults.processes import Worker, ended, journal, started, wait, workers
from tests.faults.proxy import FaultyProxy

pytestmark = pytest.mark.fault

BATCH, CONCURRENCY = 10, 8
HANDLER = {"silence": "2.5", "reset": "1.5"}
"""Seconds a handler takes: long enough to be running when the connections are cut (the
first renewal, 1 s after the start, has opened its connection by then). After a reset, the
read-ahead's reply is lost with the connection, and those entries come back through the
re-read of the own pending list — one at a time, by design (reliability.md)."""


def config(path: Path, url: str, stream: str) -> Path:
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 500ms}}
container: {{poll_timeout: 100ms, batch_size: {BATCH}, concurrency: {CONCURRENCY},
            shutdown_timeout: 5s}}
listeners:
  orders:
    stream: {stream}
    group: g
    handler: "tests.handlers:JournalHandler"
    pending_scan: {{interval: 500ms, min_idle: 3s}}
""")
    return path


@pytest.mark.parametrize("fault", ["silence", "reset"])
def test_a_cut_connection_costs_no_live_work(
    tmp_path: Path, project_env: dict[str, str], fault: str
) -> None:
    url = project_env["REDIS_URL"]
    redis = Redis.from_url(url, decode_responses=True)
    host, port = redis.connection_pool.connection_kwargs["host"], \
        redis.connection_pool.connection_kwargs["port"]
    stream, out = f"cut-{fault}", tmp_path / "journal"
    for n in range(2 * BATCH):
        redis.xadd(stream, {"n": str(n), "out": str(out)})
    with FaultyProxy(host, port) as proxy:
        a = Worker(config(tmp_path / "a.yaml", proxy.url, stream), "A", project_env,
                   tmp_path / "a.log", TEST_HANDLER_SLEEP=HANDLER[fault])
        with workers(a):
            a.wait_for_line("listening")
            listening = time.monotonic()
            wait(lambda: len(started(journal(out), "A")) == CONCURRENCY
                 and _pending(redis, stream).get("A") == 2 * BATCH, 15,
                 lambda: f"A never held a batch and a read-ahead:\n{a.text()[-2000:]}")
            # The first renewal runs min_idle / 3 after the listener starts: only then has
            # its connection been opened, to be cut. The handlers still run.
            time.sleep(max(0.0, listening + 1.3 - time.monotonic()))
            cut = proxy.silence() if fault == "silence" else proxy.reset()
            assert cut >= 3  # the reading connection, the renewal's, the pool's
            b = Worker(config(tmp_path / "b.yaml", url, stream), "B", project_env,
                       tmp_path / "b.log", TEST_HANDLER_SLEEP="0")
            with workers(b):
                b.wait_for_line("listening")
                # A handles all 20: its own read reconnects (after socket_timeout when
                # silent), its acks get through; B scans every 0.5 s meanwhile.
                wait(lambda: len(set(ended(journal(out), "A"))) == 2 * BATCH
                     and not _pending(redis, stream), 40,
                     lambda: f"A did not finish:\n{a.text()[-3000:]}")
    redis.close()
    records = journal(out)
    handled = Counter(r.entry_id for r in records if r.what == "start")
    assert [i for i, n in handled.items() if n > 1] == [], "handled twice"
    assert started(records, "B") == []  # B never had anything to take over
    log = a.text()
    if fault == "silence":
        # The missed renewal is said once, with what happened, and its recovery: within a
        # tenth of min_idle (the renewal's reply timeout), not socket_timeout (10 s).
        assert log.count("could not renew ownership") == 1, log
        after = re.search(r"ownership renewed again after ([\d.]+)s", log)
        assert after is not None, log
        assert float(after.group(1)) < 1.0  # min_idle 3s / 10 = 0.3s, plus the reconnect
    else:
        # redis-py's pool reconnects a connection reset while idle before using it: the
        # renewal then fails only if the reset caught it mid-command, and says so once.
        assert log.count("could not renew ownership") <= 1, log
    assert " held here " not in log  # nothing taken over, acknowledged elsewhere, unconfirmed
    assert "maximum number of running instances" not in log  # a job outlasting its interval
    assert "paused" not in log


def _pending(redis: Redis, stream: str) -> dict[str, int]:
    reply = redis.xpending(stream, "g")
    return {c["name"]: int(c["pending"]) for c in reply["consumers"]}
