"""The inbox on a real PostgreSQL: psycopg 3 connections (sync, asyncio, a pool's),
SQLAlchemy sessions on psycopg, two deliveries at once, autocommit refused."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from streamboot import Message
from streamboot.inbox import Inbox


def message(entry_id: str = "1-0") -> Message[Any]:
    return Message(id=entry_id, stream="s", group="g", consumer="c", fields={},
                   payload=None)


def setup(dsn: str, inbox: Inbox | None = None) -> None:
    with psycopg.connect(dsn) as conn:  # commits at the end of the block
        (inbox or Inbox()).create_table(conn)
        conn.execute("CREATE TABLE effects (v INTEGER)")


def effects(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT COUNT(*) FROM effects").fetchone()
    assert row is not None
    return int(row[0])


def test_a_psycopg_claim_commits_and_rolls_back_with_the_effect(postgres: str) -> None:
    setup(postgres)
    inbox = Inbox()

    def failing_handler() -> None:
        with psycopg.connect(postgres) as conn:  # an exception: rolled back, both
            assert inbox.claim(conn, message())
            conn.execute("INSERT INTO effects VALUES (1)")
            raise RuntimeError("the handler failed after its claim")

    with pytest.raises(RuntimeError, match="failed after its claim"):
        failing_handler()
    with psycopg.connect(postgres) as conn:
        assert inbox.claim(conn, message())  # rolled back: claimed again, applied
        conn.execute("INSERT INTO effects VALUES (1)")
    with psycopg.connect(postgres) as conn:
        assert not inbox.claim(conn, message())  # committed: a redelivery finds it
        assert not inbox.claim(conn.cursor(), message())  # a cursor: the same
    assert effects(postgres) == 1


@pytest.mark.parametrize("first_commits", [True, False], ids=["commits", "rolls-back"])
def test_two_deliveries_at_once_claim_once(postgres: str, first_commits: bool) -> None:
    """The second INSERT waits for the first transaction; then finds its row — or, when
    the first rolled back, claims it itself."""
    setup(postgres)
    inbox = Inbox()
    first, second = psycopg.connect(postgres), psycopg.connect(postgres)
    try:
        assert inbox.claim(first, message())  # first's transaction is open
        outcome: list[bool] = []
        other = threading.Thread(target=lambda: outcome.append(inbox.claim(second,
                                                                           message())))
        other.start()
        other.join(0.3)
        assert other.is_alive()  # waiting on the first transaction's row lock
        if first_commits:
            first.commit()
        else:
            first.rollback()
        other.join(10)
        assert outcome == [not first_commits]
        second.commit()
    finally:
        first.close()
        second.close()


def test_an_autocommit_connection_is_refused_but_its_transaction_block_is_not(
        postgres: str) -> None:
    setup(postgres)
    inbox = Inbox()
    with psycopg.connect(postgres, autocommit=True) as conn:
        with pytest.raises(ValueError, match="not in a transaction"):
            inbox.claim(conn, message())
        with pytest.raises(ValueError, match="not in a transaction"):
            inbox.claim(conn.cursor(), message())
        row = conn.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone()
        assert row == (0,)  # nothing was written
        with conn.transaction():
            assert inbox.claim(conn, message())


def test_a_pool_connection_as_docs_database_md_shows(postgres: str) -> None:
    from psycopg_pool import ConnectionPool

    setup(postgres)
    inbox = Inbox()
    with ConnectionPool(postgres, min_size=1, max_size=2, open=True) as pool:
        for _ in range(2):
            with pool.connection() as conn:  # commits at the end of the block
                if not inbox.claim(conn, message()):
                    continue
                conn.execute("INSERT INTO effects VALUES (1)")
    assert effects(postgres) == 1


def test_purge_on_postgresql(postgres: str) -> None:
    now = [1000.0]
    inbox = Inbox("app_inbox", clock=lambda: now[0])
    setup(postgres, inbox)
    with psycopg.connect(postgres) as conn:
        inbox.claim(conn, message("1-0"))
        now[0] = 2000.0
        inbox.claim(conn, message("2-0"))
    now[0] = 2500.0
    with psycopg.connect(postgres) as conn:
        assert inbox.purge(conn, timedelta(seconds=1000)) == 1
        assert conn.execute("SELECT key FROM app_inbox").fetchall() == [("g|s|2-0",)]


def test_sqlalchemy_sessions_on_postgresql(postgres: str) -> None:
    import sqlalchemy
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(postgres.replace("postgresql://",
                                                       "postgresql+psycopg://"))
    inbox = Inbox("order")  # an SQL word: quoted
    try:
        with Session(engine) as session, session.begin():
            inbox.create_table(session)
        with Session(engine) as session:
            def failing_handler() -> None:
                with session.begin():
                    assert inbox.claim(session, message())
                    raise RuntimeError("rolled back")

            with pytest.raises(RuntimeError, match="rolled back"):
                failing_handler()
            with session.begin():
                assert inbox.claim(session, message())
            with session.begin():
                assert not inbox.claim(session, message())
        auto = engine.execution_options(isolation_level="AUTOCOMMIT")
        with Session(auto) as session, pytest.raises(ValueError, match="not in a transaction"):
            inbox.claim(session, message("2-0"))
    finally:
        engine.dispose()


async def test_sqlalchemy_asyncio_on_postgresql(postgres: str) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    inbox = Inbox()
    try:
        async with AsyncSession(engine) as session, session.begin():
            await inbox.create_table_async(session)
        async with AsyncSession(engine) as session:
            async with session.begin():
                assert await inbox.claim_async(session, message())
            async with session.begin():
                assert not await inbox.claim_async(session, message())
    finally:
        await engine.dispose()


async def test_a_psycopg_asyncio_connection_claims_with_claim_async(postgres: str) -> None:
    setup(postgres)
    inbox = Inbox()
    async with await psycopg.AsyncConnection.connect(postgres) as conn:
        with pytest.raises(TypeError, match=r"use `await inbox\.claim_async\(connection"):
            inbox.claim(conn, message())
        assert await inbox.claim_async(conn, message())
        await conn.execute("INSERT INTO effects VALUES (1)")
        await conn.rollback()  # the effect failed: the record goes with it
        assert await inbox.claim_async(conn, message())
        await conn.execute("INSERT INTO effects VALUES (1)")
        await conn.commit()
        assert not await inbox.claim_async(conn.cursor(), message())  # found, from a cursor
        await conn.rollback()
    async with await psycopg.AsyncConnection.connect(postgres, autocommit=True) as conn:
        with pytest.raises(ValueError, match="not in a transaction"):
            await inbox.claim_async(conn, message("2-0"))
        async with conn.transaction():
            assert await inbox.claim_async(conn, message("2-0"))
    assert effects(postgres) == 1
