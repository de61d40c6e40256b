"""The ledger of the inbox tests: payments applied to account balances in SQLite, the
"handled" record in the same transaction (``LEDGER_INBOX=1``) or only Redis's markers.

Each applied effect also writes a row to ``effects`` (no key): how many times an event's
effect was applied is then counted, not inferred. ``LEDGER_DIE_AFTER=<event_id>`` kills
the process (-9) right after that event's COMMIT, before the framework acks it: the
window the inbox exists for.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from streamboot import BatchHandler, Message, StreamHandler
from streamboot.inbox import Inbox


class Payment(BaseModel):
    event_id: str
    account: int
    amount: int


def connect(path: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def create(path: Path, accounts: int) -> None:
    db = connect(path)
    with db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute("CREATE TABLE effects (event_id TEXT NOT NULL, pid INTEGER NOT NULL)")
        db.executemany("INSERT INTO accounts VALUES (?, 0)", [(i,) for i in range(accounts)])
        Inbox().create_table(db)
    db.close()


class LedgerHandler(StreamHandler[Payment]):
    """Sync, as a DB-API driver is: run off the loop, one connection per thread."""

    def __init__(self) -> None:
        self.path = os.environ["LEDGER_DB"]
        self.use_inbox = os.environ.get("LEDGER_INBOX") == "1"
        self.die_after = os.environ.get("LEDGER_DIE_AFTER")
        self.inbox = Inbox()
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        return db

    def handle(self, message: Message[Payment]) -> None:
        payment, db = message.payload, self._db()
        with db:  # one transaction: the claim, the balance, the effect's row
            if self.use_inbox and not self.inbox.claim(db, message):
                return
            db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                       (payment.amount, payment.account))
            db.execute("INSERT INTO effects VALUES (?, ?)", (payment.event_id, os.getpid()))
        if payment.event_id == self.die_after:
            os.kill(os.getpid(), signal.SIGKILL)  # committed, not acked


class BatchLedgerHandler(BatchHandler[Payment]):
    """The same ledger, a batch per transaction: each message's claim, balance and effect
    row, one COMMIT for all (what batches are for)."""

    def __init__(self) -> None:
        self.path = os.environ["LEDGER_DB"]
        self.die_after = os.environ.get("LEDGER_DIE_AFTER")
        self.inbox = Inbox()
        self._local = threading.local()

    def handle_batch(self, messages: list[Message[Payment]]) -> None:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.path)
        with db:
            for message in messages:
                if not self.inbox.claim(db, message):
                    continue  # applied by an earlier delivery: nothing to do, acked
                payment = message.payload
                db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                           (payment.amount, payment.account))
                db.execute("INSERT INTO effects VALUES (?, ?)",
                           (payment.event_id, os.getpid()))
        if any(m.payload.event_id == self.die_after for m in messages):
            os.kill(os.getpid(), signal.SIGKILL)  # the batch committed, not acked


# -- the same ledger on PostgreSQL (LEDGER_DSN), through psycopg 3 -------------------------

def create_postgres(dsn: str, accounts: int) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:  # one transaction, committed at the end
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance BIGINT NOT NULL)")
        conn.execute("CREATE TABLE effects (event_id TEXT NOT NULL, pid INTEGER NOT NULL)")
        with conn.cursor() as cursor:
            cursor.executemany("INSERT INTO accounts VALUES (%s, 0)",
                               [(i,) for i in range(accounts)])
        Inbox().create_table(conn)


def applied_postgres(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT event_id, COUNT(*) FROM effects GROUP BY event_id")
        return {str(event): int(n) for event, n in rows}


class PostgresLedger:
    """A psycopg connection per handler thread, in autocommit mode: each
    ``conn.transaction()`` block is one BEGIN … COMMIT (the inbox accepts it: a
    transaction is open)."""

    def __init__(self) -> None:
        self.dsn = os.environ["LEDGER_DSN"]
        self.die_after = os.environ.get("LEDGER_DIE_AFTER")
        self.inbox = Inbox()
        self._local = threading.local()

    def _conn(self) -> Any:
        import psycopg

        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = psycopg.connect(self.dsn, autocommit=True)
        return conn

    def _apply(self, conn: Any, message: Message[Payment]) -> None:
        if not self.inbox.claim(conn, message):
            return  # applied by an earlier delivery: nothing to do, acked
        payment = message.payload
        conn.execute("UPDATE accounts SET balance = balance + %s WHERE id = %s",
                     (payment.amount, payment.account))
        conn.execute("INSERT INTO effects VALUES (%s, %s)", (payment.event_id, os.getpid()))

    def _die_if_asked(self, messages: list[Message[Payment]]) -> None:
        if any(m.payload.event_id == self.die_after for m in messages):
            os.kill(os.getpid(), signal.SIGKILL)  # committed, not acked


class PostgresLedgerHandler(PostgresLedger, StreamHandler[Payment]):
    def handle(self, message: Message[Payment]) -> None:
        conn = self._conn()
        with conn.transaction():  # the claim, the balance, the effect's row: one COMMIT
            self._apply(conn, message)
        self._die_if_asked([message])


class PostgresBatchLedgerHandler(PostgresLedger, BatchHandler[Payment]):
    def handle_batch(self, messages: list[Message[Payment]]) -> None:
        conn = self._conn()
        # The whole batch: one COMMIT. Its rows are locked in one order (by account):
        # batches running at once that each lock their accounts in arrival order deadlock
        # (PostgreSQL then fails one of them: retried, and dead-lettered once exhausted).
        with conn.transaction():
            for message in sorted(messages, key=lambda m: m.payload.account):
                self._apply(conn, message)
        self._die_if_asked(messages)
