"""A process frozen past ``min_idle`` resumes and starts nothing it lost (issue 21).

Real processes: consumer A (`streamboot run`) holds a full batch, its handlers running
and two entries waiting for a worker, and a read-ahead whose reply is still on the wire;
A is stopped with SIGSTOP; consumer B (another `streamboot run` of the same file)
reclaims and handles every entry; then SIGCONT. A may finish the handlers that were
running when it froze; it must start none of the others.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis import Redis

from tests.faults.processes import Worker, ended, journal, started, wait, workers

pytestmark = pytest.mark.fault

TRIALS = 5
BATCH, CONCURRENCY = 10, 8
LOST = re.compile(r"(\d+) entr(?:y|ies) held here (?:was|were) (?:taken over|acknowledged "
                  r"meanwhile) by another consumer")


def config(tmp_path: Path, url: str, stream: str,
           handler: str = "tests.handlers:JournalHandler", extra: str = "") -> Path:
    path = tmp_path / f"{stream}.yaml"
    path.write_text(f"""
redis: {{url: "{url}", socket_connect_timeout: 500ms}}
container: {{poll_timeout: 100ms, batch_size: {BATCH}, concurrency: {CONCURRENCY},
            shutdown_timeout: 5s}}
listeners:
  orders:
    stream: {stream}
    group: g
    handler: "{handler}"
    pending_scan: {{interval: 500ms, min_idle: 2s}}
    {extra}
""")
    return path


def pending_of(redis: Redis, stream: str) -> dict[str, int]:
    reply = redis.xpending(stream, "g")
    return {c["name"]: int(c["pending"]) for c in reply["consumers"]}


def trial(tmp_path: Path, env: dict[str, str], redis: Redis, index: int) -> dict[str, object]:
    stream = f"frozen-{index}"
    out = tmp_path / f"journal-{index}"
    for n in range(2 * BATCH):  # a batch in hand and a read-ahead's worth
        redis.xadd(stream, {"n": str(n), "out": str(out)})
    path = config(tmp_path, env["REDIS_URL"], stream)
    a = Worker(path, "A", env, tmp_path / f"a-{index}.log", TEST_HANDLER_SLEEP="3")
    with workers(a):
        # A runs 8 handlers, 2 entries wait for a worker, the read-ahead was delivered.
        wait(lambda: len(started(journal(out), "A")) == CONCURRENCY
             and pending_of(redis, stream).get("A") == 2 * BATCH, 15,
             lambda: f"A never held a batch and a read-ahead:\n{a.text()[-2000:]}")
        running = set(started(journal(out), "A"))
        a.freeze()
        b = Worker(path, "B", env, tmp_path / f"b-{index}.log", TEST_HANDLER_SLEEP="0")
        with workers(b):
            wait(lambda: len(set(ended(journal(out), "B"))) == 2 * BATCH
                 and not pending_of(redis, stream), 30,
                 lambda: f"B did not take everything over:\n{b.text()[-2000:]}")
            a.resume()
            # The handlers running at the freeze finish (their sleep is over); by then A's
            # loop has run, and the reply that was on the wire has reached it.
            wait(lambda: len(ended(journal(out), "A")) == CONCURRENCY, 10,
                 lambda: f"A did not resume:\n{a.text()[-2000:]}")
            wait(lambda: LOST.search(a.text()) is not None, 5, lambda: a.text()[-2000:])
    records = journal(out)
    assert a.resumed_at is not None
    return {"late": started(records, "A", after=a.resumed_at),
            "running": running, "log": a.text(), "b": set(ended(records, "B"))}


def test_a_resumed_process_starts_nothing_it_lost(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    redis = Redis.from_url(project_env["REDIS_URL"], decode_responses=True)
    try:
        results = [trial(tmp_path, project_env, redis, i) for i in range(TRIALS)]
    finally:
        redis.close()
    late = [r["late"] for r in results]
    assert late == [[]] * TRIALS, "A started entries B had handled, after resuming"
    for result in results:
        assert len(result["b"]) == 2 * BATCH  # type: ignore[arg-type]  # B did the work
        log = str(result["log"])
        # Said in lines naming how many (never one per entry): all 20, the batch in hand and
        # the read that was on the wire, taken over or acknowledged by B meanwhile.
        assert "not handled here: another consumer took the entry over" not in log
        assert sum(int(n) for n in LOST.findall(log)) == 2 * BATCH, log


def test_a_blocked_event_loop_keeps_its_work(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    """The same shape, but only A's event loop stops: its first handler calls a blocking
    function inside ``async def`` for twice ``min_idle``. The renewal thread keeps every
    entry A holds or has on the wire renewed, so B, scanning all the while, takes none;
    when the loop runs again, the entries whose receipts aged meanwhile are confirmed,
    not dropped, and each is handled once."""
    redis = Redis.from_url(project_env["REDIS_URL"], decode_responses=True)
    stream, out = "blocked-loop", tmp_path / "journal"
    for n in range(2 * BATCH):
        redis.xadd(stream, {"n": str(n), "out": str(out), **({"block": "4"} if n == 0 else {})})
    path = config(tmp_path, project_env["REDIS_URL"], stream)
    a = Worker(path, "A", project_env, tmp_path / "a.log", TEST_HANDLER_SLEEP="0.5")
    with workers(a):
        # The first handler blocks the loop at once; the read-ahead goes out before it.
        wait(lambda: len(started(journal(out), "A")) == 1
             and pending_of(redis, stream).get("A") == 2 * BATCH, 15, a.text)
        b = Worker(path, "B", project_env, tmp_path / "b.log", TEST_HANDLER_SLEEP="0")
        with workers(b):
            wait(lambda: len(set(ended(journal(out), "A"))) == 2 * BATCH
                 and not pending_of(redis, stream), 30, a.text)
            log_b = b.text()
    redis.close()
    records = journal(out)
    starts = [r.entry_id for r in records if r.what == "start"]
    assert sorted(starts) == sorted(set(starts))  # none twice
    assert started(records, "B") == []
    assert "reclaimed" not in log_b
    assert LOST.search(a.text()) is None


def test_a_resumed_process_starts_no_batch_it_lost(
    tmp_path: Path, project_env: dict[str, str]
) -> None:
    """The same freeze with a BatchHandler: A runs two batches of 4 (the listener's
    ``concurrency: 2``), two more wait for a worker, and a read-ahead was delivered;
    frozen past ``min_idle``, B takes all 20 over; resumed, A finishes the two batches
    that ran and starts none of the others."""
    redis = Redis.from_url(project_env["REDIS_URL"], decode_responses=True)
    stream, out = "frozen-batches", tmp_path / "journal"
    for n in range(2 * BATCH):
        redis.xadd(stream, {"n": str(n), "out": str(out)})
    path = config(tmp_path, project_env["REDIS_URL"], stream,
                  "tests.handlers:JournalBatchHandler",
                  "concurrency: 2\n    batch: {max_size: 4}")
    a = Worker(path, "A", project_env, tmp_path / "a.log", TEST_HANDLER_SLEEP="3")
    try:
        with workers(a):
            wait(lambda: len(started(journal(out), "A")) == 8
                 and pending_of(redis, stream).get("A") == 2 * BATCH, 15,
                 lambda: f"A never ran two batches:\n{a.text()[-2000:]}")
            running = set(started(journal(out), "A"))
            a.freeze()
            b = Worker(path, "B", project_env, tmp_path / "b.log", TEST_HANDLER_SLEEP="0")
            with workers(b):
                wait(lambda: len(set(ended(journal(out), "B"))) == 2 * BATCH
                     and not pending_of(redis, stream), 30,
                     lambda: f"B did not take everything over:\n{b.text()[-2000:]}")
                a.resume()
                wait(lambda: len(ended(journal(out), "A")) == 8, 10,
                     lambda: f"A did not resume:\n{a.text()[-2000:]}")
                wait(lambda: LOST.search(a.text()) is not None, 5, lambda: a.text()[-2000:])
    finally:
        redis.close()
    records = journal(out)
    assert a.resumed_at is not None
    assert started(records, "A", after=a.resumed_at) == []  # no batch started after
    assert set(started(records, "A")) == running
    assert len(set(ended(records, "B"))) == 2 * BATCH
    assert sum(int(n) for n in LOST.findall(a.text())) == 2 * BATCH, a.text()
