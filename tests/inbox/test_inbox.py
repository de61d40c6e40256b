"""The inbox's records on real databases: SQLite through sqlite3 and through SQLAlchemy
(sync and asyncio sessions); the SQL per paramstyle; what it refuses."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streamboot import Message
from streamboot.inbox import Inbox
from streamboot.inbox.dialects import check_table_name, paramstyle_of, statements
from streamboot.inbox.inbox import inbox_key


def message(entry_id: str = "1-0", marker: str | None = None) -> Message[Any]:
    return Message(id=entry_id, stream="s", group="g", consumer="c", fields={},
                   payload=None, marker=(marker, timedelta(hours=1)) if marker else None)


def test_the_key_is_the_idempotency_marker_else_the_entry() -> None:
    assert inbox_key(message(marker="{p}:done:g:{e-1}")) == "{p}:done:g:{e-1}"
    assert inbox_key(message("5-1")) == "g|s|5-1"


@pytest.mark.parametrize(("style", "claim", "parameters"), [
    ("qmark", "VALUES (?, ?)", ("k", 1.0)),
    ("format", "VALUES (%s, %s)", ("k", 1.0)),
    ("pyformat", "VALUES (%s, %s)", ("k", 1.0)),
    ("numeric", "VALUES (:1, :2)", ("k", 1.0)),
    ("named", "VALUES (:key, :at)", {"key": "k", "at": 1.0}),
])
def test_each_paramstyle_gets_its_markers(style: str, claim: str, parameters: Any) -> None:
    sql = statements("inbox", style)
    assert claim in sql.claim
    assert sql.claim.endswith("ON CONFLICT DO NOTHING")
    assert sql.claim_parameters("k", 1.0) == parameters


@pytest.mark.parametrize("table", ["inbox; DROP TABLE x", "1abc", "a b", "a.b.c", "", "inbox\n"])
def test_a_table_name_that_is_not_an_identifier_is_refused(table: str) -> None:
    with pytest.raises(ValueError, match="is not a plain SQL identifier"):
        check_table_name(table)
    assert check_table_name("app.streamboot_inbox") == "app.streamboot_inbox"


def test_an_unknown_driver_is_told_to_name_its_paramstyle() -> None:
    with pytest.raises(TypeError, match=r"give Inbox\(paramstyle=…\)"):
        paramstyle_of(object())
    assert paramstyle_of(sqlite3.connect(":memory:")) == "qmark"


def test_sqlite3_claim_commits_and_rolls_back_with_the_effect(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "a.db")
    inbox = Inbox()
    with db:
        inbox.create_table(db)
        db.execute("CREATE TABLE t (v INTEGER)")
    def failing_handler() -> None:
        with db:  # the effect failed: the record goes with it
            assert inbox.claim(db, message("1-0"))
            db.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("the handler failed after its claim")

    with pytest.raises(RuntimeError, match="failed after its claim"):
        failing_handler()
    with db:
        assert inbox.claim(db, message("1-0"))  # rolled back: claimed again, applied
        db.execute("INSERT INTO t VALUES (1)")
    with db:
        assert not inbox.claim(db, message("1-0"))  # committed: a redelivery finds it
    assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (1,)


def test_two_deliveries_at_once_claim_once(tmp_path: Path) -> None:
    """The second transaction's INSERT waits for the first's COMMIT, then finds the row."""
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as db:
        Inbox().create_table(db)
    first, second = sqlite3.connect(path, timeout=10), sqlite3.connect(path, timeout=10,
                                                                       check_same_thread=False)
    inbox = Inbox()
    assert inbox.claim(first, message("1-0"))  # first's transaction is open
    outcome: list[bool] = []
    other = threading.Thread(target=lambda: outcome.append(inbox.claim(second, message("1-0"))))
    other.start()
    other.join(0.3)
    assert other.is_alive()  # waiting on the first transaction
    first.commit()
    other.join(10)
    assert outcome == [False]
    second.rollback()


def test_an_autocommit_connection_is_refused(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)  # autocommit
    inbox = Inbox()
    inbox.create_table(db)
    with pytest.raises(ValueError, match="not in a transaction"):
        inbox.claim(db, message())
    db.execute("BEGIN")
    assert inbox.claim(db, message())  # an explicit transaction is fine
    db.execute("COMMIT")


def test_purge_removes_only_the_old_records(tmp_path: Path) -> None:
    now = [1000.0]
    inbox = Inbox(clock=lambda: now[0])
    db = sqlite3.connect(tmp_path / "a.db")
    with db:
        inbox.create_table(db)
        inbox.claim(db, message("1-0"))
        now[0] = 2000.0
        inbox.claim(db, message("2-0"))
    now[0] = 2500.0
    with db:
        assert inbox.purge(db, timedelta(seconds=1000)) == 1
    assert [k for (k,) in db.execute("SELECT key FROM streamboot_inbox")] == ["g|s|2-0"]


def test_sqlalchemy_sessions_claim_in_their_transaction(tmp_path: Path) -> None:
    import sqlalchemy
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    inbox = Inbox("orders_inbox")
    with Session(engine) as session, session.begin():
        inbox.create_table(session)
    with Session(engine) as session:
        def failing_handler() -> None:
            with session.begin():
                assert inbox.claim(session, message("1-0"))
                raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError, match="rolled back"):
            failing_handler()
        with session.begin():
            assert inbox.claim(session, message("1-0"))
        with session.begin():
            assert not inbox.claim(session, message("1-0"))
    engine.dispose()


async def test_sqlalchemy_asyncio_sessions_claim_in_their_transaction(tmp_path: Path) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    inbox = Inbox()
    async with AsyncSession(engine) as session, session.begin():
        await inbox.create_table_async(session)
    async with AsyncSession(engine) as session:
        async with session.begin():
            assert await inbox.claim_async(session, message("1-0"))
        async with session.begin():
            assert not await inbox.claim_async(session, message("1-0"))
    with pytest.raises(TypeError, match="AsyncSession"):
        await inbox.claim_async(sqlite3.connect(":memory:"), message())
    await engine.dispose()


def test_a_cursor_of_an_autocommit_connection_is_refused_too(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    Inbox().create_table(db)
    with pytest.raises(ValueError, match="not in a transaction"):
        Inbox().claim(db.cursor(), message())
    assert db.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone() == (0,)


def test_sqlalchemy_in_autocommit_is_refused_and_other_shapes_are_told_apart(
        tmp_path: Path) -> None:
    import sqlalchemy
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
    from sqlalchemy.orm import Session

    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = sqlalchemy.create_engine(url)
    inbox = Inbox("order")  # an SQL word as the table's name: quoted, so it works
    with Session(engine) as session, session.begin():
        inbox.create_table(session)
    auto = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with Session(auto) as session, pytest.raises(ValueError, match="not in a transaction"):
        inbox.claim(session, message("1-0"))
    raw = engine.raw_connection()  # the pool's proxy of a sqlite3 connection
    assert inbox.claim(raw, message("2-0"))
    raw.commit()
    raw.close()
    with pytest.raises(TypeError, match=r"use `await inbox\.claim_async"):
        inbox.claim(AsyncSession(create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/b.db")),
                    message())
    with Session(engine) as session:
        assert not inbox.claim(session, message("2-0"))
    engine.dispose()
    auto.dispose()


async def test_an_aiosqlite_connection_claims_with_claim_async(tmp_path: Path) -> None:
    import aiosqlite

    inbox = Inbox()
    async with aiosqlite.connect(tmp_path / "a.db") as db:
        await inbox.create_table_async(db)
        await db.commit()
        assert await inbox.claim_async(db, message("1-0"))
        await db.rollback()
        assert await inbox.claim_async(db, message("1-0"))  # rolled back: claimed again
        await db.commit()
        assert not await inbox.claim_async(db, message("1-0"))
    async with aiosqlite.connect(tmp_path / "a.db", isolation_level=None) as auto:
        with pytest.raises(ValueError, match="not in a transaction"):
            await inbox.claim_async(auto, message("2-0"))
