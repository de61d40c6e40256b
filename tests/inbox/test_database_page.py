"""docs/database.md's files as the page shows them, run with the test kit: payments
applied once each, a redelivery and a payment published twice applied once."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from streamboot import Inbox
from streamboot.listener.idempotency import marker_key
from streamboot.testing import message_of, run_app
from tests.documented import documented_files as files_in

DOC = Path(__file__).resolve().parents[2] / "docs" / "database.md"


def documented_files() -> dict[str, str]:
    return files_in(DOC.read_text())


async def test_the_database_page_runs_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamboot_url: str) -> None:
    files = documented_files()
    assert set(files) == {"payments/handlers.py", "app.yaml"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "payments" / "__init__.py").touch()
    monkeypatch.chdir(tmp_path)  # the page's handler opens ledger.db where it runs
    monkeypatch.syspath_prepend(str(tmp_path))

    sql = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)[0]
    with sqlite3.connect("ledger.db") as db:
        db.execute(sql)
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        db.executemany("INSERT INTO accounts VALUES (?, 0)", [(1,), (2,)])
    async with run_app(tmp_path / "app.yaml", url=streamboot_url) as app:
        ids = [await app.publish("payments", {"event_id": f"e-{i}", "account": 1 + i % 2,
                                              "amount": 10 * (i + 1)}) for i in range(4)]
        again = await app.publish("payments", {"event_id": "e-0", "account": 1,
                                               "amount": 10})  # published twice
        await app.handled(*ids, again)
        # A redelivery after a crash between COMMIT and ack (no Redis marker yet): the
        # handler runs again, its claim finds the row, the balance stays.
        handler: Any = app.handler("payments")
        assert isinstance(handler.inbox, Inbox)
        redelivered = message_of(handler.payload_type(event_id="e-1", account=2, amount=20),
                                 marker=marker_key("{ledger}:done", "ledger", "e-1"))
        handler.handle(redelivered)
    with sqlite3.connect("ledger.db") as db:
        assert dict(db.execute("SELECT id, balance FROM accounts")) == {1: 10 + 30, 2: 20 + 40}
        assert db.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone() == (4,)
