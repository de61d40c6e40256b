"""The inbox against a real crash: ``streamboot run`` processes applying payments to a
ledger — SQLite, and PostgreSQL through psycopg — one killed with -9: between its COMMIT
and its ack, and mid-run."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
import redis

from tests.faults.processes import Worker, wait, workers
from tests.inbox.ledger import applied_postgres, create, create_postgres
from tests.postgres import PostgresServer

STREAM = "{ledger}:payments"
pytestmark = pytest.mark.fault


def app_file(tmp_path: Path, url: str, handler: str = "LedgerHandler",
             batch: str = "") -> Path:
    config = tmp_path / f"ledger-{handler}.yaml"
    config.write_text(f"""
application: {{name: ledger}}
redis: {{url: "{url}", socket_connect_timeout: 250ms}}
container: {{poll_timeout: 100ms, concurrency: 8, shutdown_timeout: 5s}}
listeners:
  orders:
    stream: "{STREAM}"
    group: ledger
    handler: tests.inbox.ledger:{handler}
    idempotency: {{key: event_id, ttl: 1h, prefix: "{{ledger}}:done"}}
    pending_scan: {{interval: 500ms, min_idle: 1s}}
    {batch}
""")
    return config


@pytest.fixture
def ledger(tmp_path: Path, redis_url: str) -> tuple[Path, Path, redis.Redis]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.delete(STREAM)
    for marker in r.scan_iter("{ledger}:done:*", count=1000):
        r.delete(marker)
    db = tmp_path / "ledger.db"
    create(db, 200)
    return app_file(tmp_path, redis_url), db, r


def publish(r: redis.Redis, payments: list[tuple[str, int, int]]) -> None:
    pipe = r.pipeline(transaction=False)
    for event_id, account, amount in payments:
        pipe.xadd(STREAM, {"event_id": event_id, "account": str(account),
                           "amount": str(amount)})
    pipe.execute()


def drained(r: redis.Redis) -> bool:
    groups = r.xinfo_groups(STREAM)
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def applied(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT event_id, COUNT(*) FROM effects GROUP BY event_id"))


def test_the_postgresql_ledger_stays_exact_through_kills(
        ledger: tuple[Path, Path, redis.Redis], project_env: dict[str, str], tmp_path: Path,
        redis_url: str, postgres_server: PostgresServer) -> None:
    """The issue's ledger on PostgreSQL (psycopg 3, a connection per handler thread, one
    transaction per entry, then per batch): 5,000 payments to 200 accounts, a worker
    killed -9 right after a COMMIT (before its ack), another killed mid-run; every balance
    exact, each effect applied once."""
    _, _, r = ledger
    rng = random.Random(26)
    payments = [(f"e-{i}", rng.randrange(200), rng.randrange(1, 100)) for i in range(5000)]
    expected = [0] * 200
    for _, account, amount in payments:
        expected[account] += amount
    dsn = postgres_server.database()
    create_postgres(dsn, 200)
    per_entry = app_file(tmp_path, redis_url, "PostgresLedgerHandler")
    batches = app_file(tmp_path, redis_url, "PostgresBatchLedgerHandler",
                       "batch: {max_size: 200, max_wait: 50ms}")
    env = {**project_env, "LEDGER_DSN": dsn}
    publish(r, payments[:20])
    doomed = Worker(per_entry, "w0", env, tmp_path / "w0.log", LEDGER_DIE_AFTER="e-7")
    wait(lambda: doomed.process.poll() is not None, 20, "the worker did not die at e-7")
    assert doomed.stop() == -9  # e-7 committed, not acked: redelivered below
    first = Worker(per_entry, "w1", env, tmp_path / "w1.log")
    second = Worker(batches, "w2", env, tmp_path / "w2.log")  # one file per kind, one group
    with workers(first, second):
        first.wait_for_line("started: 1 listener")
        second.wait_for_line("started: 1 listener")
        for start in range(20, 5000, 500):
            publish(r, payments[start:start + 500])
        wait(lambda: len(applied_postgres(dsn)) >= 1500, 60, "1,500 payments not applied")
        first.process.kill()  # -9 mid-run: its entries in flight are taken over
        first.process.wait(timeout=5)
        assert len(applied_postgres(dsn)) < 5000
        # It died holding entries: the others must take them over.
        assert r.xpending_range(STREAM, "ledger", "-", "+", 5000, consumername="w1")
        with workers(Worker(per_entry, "w1b", env, tmp_path / "w1b.log")):
            wait(lambda: drained(r), 90, lambda: f"not drained: {r.xinfo_groups(STREAM)}")
    effects = applied_postgres(dsn)
    import psycopg

    with psycopg.connect(dsn) as conn:
        balances = [int(b) for _, b in conn.execute(
            "SELECT id, balance FROM accounts ORDER BY id")]
        rows = conn.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone()
    assert len(effects) == 5000  # nothing lost
    assert effects["e-7"] == 1  # the redelivery after the kill found its row
    assert [e for e, n in effects.items() if n > 1] == []  # 0 effects applied twice
    assert balances == expected
    assert rows == (5000,)


@pytest.mark.parametrize("inbox", [False, True, "batch"],
                         ids=["redis-markers", "inbox", "inbox-batches"])
def test_a_kill_between_commit_and_ack_applies_the_effect_once_only_with_the_inbox(
        ledger: tuple[Path, Path, redis.Redis], project_env: dict[str, str], tmp_path: Path,
        redis_url: str, inbox: bool | str) -> None:
    config, db, r = ledger
    if inbox == "batch":  # the whole batch committed, then the kill: none applied twice
        config = app_file(tmp_path, redis_url, "BatchLedgerHandler")
    env = {**project_env, "LEDGER_DB": str(db), "LEDGER_INBOX": "1" if inbox else "0"}
    publish(r, [(f"e-{i}", i % 200, 10) for i in range(20)])
    doomed = Worker(config, "w1", env, tmp_path / "w1.log", LEDGER_DIE_AFTER="e-7")
    wait(lambda: doomed.process.poll() is not None, 20, "the worker did not die at e-7")
    assert doomed.stop() == -9
    with workers(Worker(config, "w2", env, tmp_path / "w2.log")):
        wait(lambda: drained(r), 20, "the ledger did not drain")
    effects = applied(db)
    assert set(effects) == {f"e-{i}" for i in range(20)}  # nothing lost either way
    if inbox:
        assert effects["e-7"] == 1  # the redelivery found its row: skipped, acked
        assert max(effects.values()) == 1
    else:
        assert effects["e-7"] == 2  # the marker was to be set with the ack: applied twice


@pytest.mark.parametrize("batches", [False, True], ids=["per-entry", "batches"])
def test_the_ledger_stays_exact_through_a_kill_mid_run(
        ledger: tuple[Path, Path, redis.Redis], project_env: dict[str, str],
        tmp_path: Path, redis_url: str, batches: bool) -> None:
    """The issue's ledger: 5,000 payments to 200 accounts, two workers, one killed -9 while
    it handles, started again; every balance exact, each effect applied once — one
    transaction per entry, or per batch (``BatchHandler``, batches of up to 200 gathered
    for 50 ms)."""
    config, db, r = ledger
    if batches:
        config = app_file(tmp_path, redis_url, "BatchLedgerHandler",
                          "batch: {max_size: 200, max_wait: 50ms}")
    env = {**project_env, "LEDGER_DB": str(db), "LEDGER_INBOX": "1"}
    rng = random.Random(25)
    payments = [(f"e-{i}", rng.randrange(200), rng.randrange(1, 100)) for i in range(5000)]
    expected = [0] * 200
    for _, account, amount in payments:
        expected[account] += amount
    first = Worker(config, "w1", env, tmp_path / "w1.log")
    second = Worker(config, "w2", env, tmp_path / "w2.log")
    with workers(first, second):
        first.wait_for_line("started: 1 listener")
        second.wait_for_line("started: 1 listener")
        for start in range(0, 5000, 500):
            publish(r, payments[start:start + 500])
        wait(lambda: len(applied(db)) >= 1500, 60, "1,500 payments not applied")
        first.process.kill()  # -9 mid-run: its entries in flight are taken over
        first.process.wait(timeout=5)
        at_kill = len(applied(db))
        orphans = r.xpending_range(STREAM, "ledger", "-", "+", 5000, consumername="w1")
        assert at_kill < 5000
        assert orphans  # it died holding entries: the others must take them over
        with workers(Worker(config, "w1b", env, tmp_path / "w1b.log")):
            wait(lambda: drained(r), 90, lambda: f"not drained: {r.xinfo_groups(STREAM)}")
    with sqlite3.connect(db) as conn:
        balances = [b for _, b in conn.execute("SELECT id, balance FROM accounts ORDER BY id")]
        rows = conn.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone()[0]
    effects = applied(db)
    assert len(effects) == 5000
    assert [e for e, n in effects.items() if n > 1] == []  # 0 effects applied twice
    assert balances == expected
    assert rows == 5000
