"""An inbox in the team's own database: idempotency whose "handled" record commits or rolls
back with the handler's effect.

The framework's idempotency markers live in Redis and are set with the ack, after the
handler returned: a process killed between the handler's COMMIT and the ack has its entry
delivered again, and an effect in another database is applied twice. The inbox closes
that window the standard way: the record is a row written in the handler's transaction,
so the effect and "handled" are one commit, and a second delivery finds the row::

    def handle(self, message: Message[Payment]) -> None:      # a sync handler: off the loop
        with self.db:                                          # one transaction
            if not self.inbox.claim(self.db, message):
                return                                         # applied before: ack, no effect
            self.db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?", …)

Two deliveries of one entry at once (a takeover of a frozen process) cannot both claim:
the second INSERT waits for the first transaction, then finds its row (or, if it rolled
back, claims it itself).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from ..message import Message
from .dialects import (
    Statements,
    check_table_name,
    commits_alone,
    dbapi_under,
    kind_of,
    paramstyle_of,
    statements,
)


def inbox_key(message: Message[Any]) -> str:
    """The row's key: the listener's idempotency marker (its business key, per group) when
    it declares ``idempotency``, so a replayed dead letter or a publish made twice is
    also found; else the entry itself (group, stream, id)."""
    if message.marker is not None:
        return message.marker[0]
    return f"{message.group}|{message.stream}|{message.id}"


class Inbox:
    """The ``handled`` records of one table (``streamboot_inbox`` by default).

    ``paramstyle`` is read from the connection's driver unless given (PEP 249's
    ``qmark`` for sqlite3, ``pyformat`` for psycopg). Connections may be DB-API
    connections or cursors (sqlite3, psycopg, psycopg2, …) or SQLAlchemy sessions and
    connections; with SQLAlchemy's asyncio sessions use the ``*_async`` methods.
    """

    def __init__(self, table: str = "streamboot_inbox", paramstyle: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = check_table_name(table)
        self.paramstyle = paramstyle
        self._clock = clock
        self._statements: dict[str, Statements] = {}

    def _sql(self, connection: object) -> Statements:
        style = ("named" if kind_of(connection).startswith("sqlalchemy") else
                 self.paramstyle or paramstyle_of(connection))
        found = self._statements.get(style)
        if found is None:
            found = self._statements[style] = statements(self.table, style)
        return found

    # -- sync: DB-API and SQLAlchemy ---------------------------------------------------

    def create_table(self, connection: Any) -> None:
        """``CREATE TABLE IF NOT EXISTS`` (key, handled_at); commit it yourself (or
        create the table with your migrations: see :attr:`Statements.create`)."""
        self._execute(connection, self._sql(connection).create, None)

    def claim(self, connection: Any, message: Message[Any]) -> bool:
        """Record, in ``connection``'s current transaction, that ``message`` is handled.
        True: first time — apply the effect in the same transaction, then commit. False:
        it was handled (committed) before — do nothing and return; the entry is acked.
        Call it first in the transaction, before the effect. A connection that would
        commit the record by itself (autocommit, no transaction open) is refused."""
        kind = kind_of(connection)
        if kind.endswith("-async"):
            what = "session" if kind == "sqlalchemy-async" else "connection"
            raise TypeError(f"an asyncio {what} ({type(connection).__name__}): use `await "
                            f"inbox.claim_async({what}, message)`")
        refuse_autocommit(connection if kind == "dbapi" else dbapi_under(connection))
        sql = self._sql(connection)
        return self._execute(connection, sql.claim,
                             sql.claim_parameters(inbox_key(message), self._clock())) == 1

    def purge(self, connection: Any, older_than: timedelta) -> int:
        """Delete the records older than ``older_than`` (keep them longer than an entry
        can take to come back: the stream's retention, a dead letter's replay); returns
        how many went. Commit it yourself."""
        sql = self._sql(connection)
        before = self._clock() - older_than.total_seconds()
        return self._execute(connection, sql.purge, sql.purge_parameters(before))

    @staticmethod
    def _execute(connection: Any, statement: str, parameters: Any) -> int:
        if kind_of(connection) == "sqlalchemy":
            from sqlalchemy import text
            result = connection.execute(text(statement), parameters or {})
            return int(result.rowcount)
        cursor = connection.cursor() if hasattr(connection, "cursor") else connection
        try:
            if parameters is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, parameters)
            return int(cursor.rowcount)
        finally:
            if cursor is not connection:
                cursor.close()

    # -- asyncio: SQLAlchemy's AsyncSession, psycopg's AsyncConnection, aiosqlite ---------

    async def create_table_async(self, session: Any) -> None:
        await self._execute_async(session, self._sql(session).create, None)

    async def claim_async(self, session: Any, message: Message[Any]) -> bool:
        """:meth:`claim` on SQLAlchemy's ``AsyncSession``/``AsyncConnection``, or an asyncio
        DB-API connection or cursor (psycopg's ``AsyncConnection``, aiosqlite)."""
        if kind_of(session) == "dbapi-async":
            refuse_autocommit(session)
        sql = self._sql(session)
        return await self._execute_async(
            session, sql.claim, sql.claim_parameters(inbox_key(message), self._clock())) == 1

    async def purge_async(self, session: Any, older_than: timedelta) -> int:
        sql = self._sql(session)
        before = self._clock() - older_than.total_seconds()
        return await self._execute_async(session, sql.purge, sql.purge_parameters(before))

    @staticmethod
    async def _execute_async(session: Any, statement: str, parameters: Any) -> int:
        kind = kind_of(session)
        if kind == "dbapi-async":
            cursor = await (session.execute(statement) if parameters is None else
                            session.execute(statement, parameters))
            try:
                return int(cursor.rowcount)
            finally:
                if cursor is not session:
                    closed = cursor.close()
                    if inspect.isawaitable(closed):
                        await closed
        if kind != "sqlalchemy-async":
            raise TypeError(f"the *_async methods take SQLAlchemy's AsyncSession or "
                            f"AsyncConnection, or an asyncio DB-API connection (psycopg's "
                            f"AsyncConnection, aiosqlite), not {type(session).__name__}")
        from sqlalchemy import text
        result = await session.execute(text(statement), parameters or {})
        return int(result.rowcount)


def refuse_autocommit(connection: object | None) -> None:
    """A connection whose statements commit alone would commit the record without the
    effect: refused before anything is written."""
    if connection is not None and commits_alone(connection):
        raise ValueError("the inbox's connection is not in a transaction (autocommit): "
                         "the record would commit without the effect — open one "
                         "first (BEGIN, or a connection without autocommit)")
