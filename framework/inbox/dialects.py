"""The inbox's SQL for each kind of connection it is handed: pure decisions, no I/O.

A DB-API module declares how it wants parameters (``paramstyle``, PEP 249): sqlite3 takes
``?``, psycopg ``%s``; SQLAlchemy's ``text()`` takes ``:name``. The statements are
otherwise the same wherever they run: ``INSERT … ON CONFLICT DO NOTHING`` (SQLite 3.24+,
PostgreSQL 9.5+) reports through ``rowcount`` whether the row is new — and, inside a
transaction, makes a second transaction inserting the same key wait for the first to end,
then find the row (or not, if the first rolled back).
"""

from __future__ import annotations

import inspect
import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["dbapi", "dbapi-async", "sqlalchemy", "sqlalchemy-async"]
ASYNC_DRIVERS = ("aiosqlite",)
"""Asyncio drivers whose ``execute`` returns an awaitable without being ``async def``."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class Statements:
    paramstyle: str
    create: str
    claim: str
    purge: str

    def claim_parameters(self, key: str, at: float) -> Any:
        return {"key": key, "at": at} if self.paramstyle == "named" else (key, at)

    def purge_parameters(self, before: float) -> Any:
        return {"at": before} if self.paramstyle == "named" else (before,)


def check_table_name(table: str) -> str:
    """A table name goes into the SQL as it is: only a plain (optionally schema-qualified)
    identifier is accepted, so no name can inject anything."""
    if not _IDENTIFIER.fullmatch(table):
        raise ValueError(f"inbox table {table!r} is not a plain SQL identifier "
                         "(letters, digits, _; optionally schema.table)")
    return table


def quoted(table: str) -> str:
    """``"schema"."table"``: a name that is also an SQL word (``order``) still works."""
    return ".".join(f'"{part}"' for part in table.split("."))


def markers(paramstyle: str) -> tuple[str, str]:
    """The markers of a statement's first and second parameters in a paramstyle."""
    if paramstyle == "qmark":
        return "?", "?"
    if paramstyle in ("format", "pyformat"):
        return "%s", "%s"
    if paramstyle == "numeric":
        return ":1", ":2"
    if paramstyle == "named":
        return ":key", ":at"
    raise ValueError(f"unsupported DB-API paramstyle {paramstyle!r} (qmark, format, "
                     "pyformat, numeric or named)")


def statements(table: str, paramstyle: str) -> Statements:
    first, second = markers(paramstyle)
    only = ":at" if paramstyle == "named" else first  # purge's one parameter
    table = quoted(table)
    return Statements(
        paramstyle=paramstyle,
        create=(f"CREATE TABLE IF NOT EXISTS {table} (key VARCHAR(512) PRIMARY KEY, "
                "handled_at DOUBLE PRECISION NOT NULL)"),
        claim=(f"INSERT INTO {table} (key, handled_at) VALUES ({first}, {second}) "
               "ON CONFLICT DO NOTHING"),
        purge=f"DELETE FROM {table} WHERE handled_at < {only}",
    )


def dbapi_under(connection: object) -> object | None:
    """The DB-API connection under a SQLAlchemy ``Session`` or ``Connection`` (to ask
    whether it would commit alone), or None when it cannot be reached."""
    made = getattr(connection, "connection", None)
    if callable(made) and not hasattr(made, "dbapi_connection"):
        made = made()  # Session.connection(): begins the session's transaction
        made = getattr(made, "connection", None)  # its Connection's pool proxy
    return getattr(made, "dbapi_connection", None)


def kind_of(connection: object) -> Kind:
    """A SQLAlchemy ``Session``/``Connection`` (sync or asyncio), or a DB-API connection
    or cursor — sync, or asyncio (psycopg's ``AsyncConnection``/``AsyncCursor``,
    aiosqlite: their ``execute`` is awaited)."""
    module = type(connection).__module__
    if module.split(".")[0] != "sqlalchemy" or hasattr(connection, "dbapi_connection"):
        execute = getattr(type(connection), "execute", None)
        if module.split(".")[0] in ASYNC_DRIVERS or inspect.iscoroutinefunction(execute):
            return "dbapi-async"
        return "dbapi"  # a pool's proxy of a DB-API connection (engine.raw_connection())
    return "sqlalchemy-async" if module.startswith("sqlalchemy.ext.asyncio") else "sqlalchemy"


def paramstyle_of(connection: object) -> str:
    """The paramstyle its driver's module declares (PEP 249): the connection's class's
    module, or a package above it (psycopg's classes live in submodules)."""
    module = type(getattr(connection, "dbapi_connection", connection)).__module__
    while module:
        found = getattr(sys.modules.get(module), "paramstyle", None)
        if isinstance(found, str):
            return found
        module = module.rpartition(".")[0]
    raise TypeError(f"cannot tell the paramstyle of a {type(connection).__name__}: give "
                    "Inbox(paramstyle=…) ('qmark' for sqlite3, 'format' for psycopg)")


def commits_alone(connection: object) -> bool:
    """True when a statement on this DB-API connection would commit by itself (autocommit,
    no transaction open): the inbox's record would then commit without the effect.

    sqlite3: ``autocommit`` True (3.12+), or the legacy ``isolation_level=None``, with no
    BEGIN issued (``in_transaction``). psycopg/psycopg2: ``autocommit`` True, with no
    ``transaction()`` block open (psycopg 3's ``info.transaction_status``). A driver that
    says none of this is trusted to open a transaction, as PEP 249 requires."""
    connection = getattr(connection, "dbapi_connection", connection)  # a pool's proxy
    if not hasattr(connection, "cursor") and hasattr(connection, "connection"):
        connection = connection.connection  # a cursor: its connection decides
    if getattr(connection, "in_transaction", False) is True:
        return False
    autocommit = getattr(connection, "autocommit", None)
    if hasattr(connection, "in_transaction") and hasattr(connection, "isolation_level"):
        if autocommit is True:  # sqlite3 3.12+; False and LEGACY (-1) open transactions
            return True
        return autocommit not in (False,) and connection.isolation_level is None
    if autocommit is True:
        status = getattr(getattr(connection, "info", None), "transaction_status", None)
        return status is None or int(status) == 0  # psycopg's IDLE: no transaction open
    return False
