"""docs/batches.md's files as the page shows them: a SQLite ledger written a batch per
transaction, a payment reported failed dead-lettered with its reason, every balance exact."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from streamboot import Inbox
from streamboot.testing import run_app
from tests.conftest import wait_until
from tests.documented import documented_files as files_in
from tests.documented import forget_modules

DOC = Path(__file__).resolve().parents[2] / "docs" / "batches.md"


async def test_the_batches_page_runs_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streamboot_url: str) -> None:
    files = files_in(DOC.read_text())
    assert set(files) == {"ledger/writer.py", "app.yaml"}
    project = tmp_path / "page"
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    (project / "ledger" / "__init__.py").touch()
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.chdir(project)
    db = sqlite3.connect(project / "ledger.db")
    with db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        db.executemany("INSERT INTO accounts VALUES (?, 0)", [(i,) for i in range(20)])
        Inbox().create_table(db)
    client = aioredis.Redis.from_url(streamboot_url, decode_responses=True)
    await client.delete("payments", "{payments}:dlq")
    async with client.pipeline(transaction=False) as pipe:  # there before the listener
        for n in range(300):
            pipe.xadd("payments", {"event_id": f"e-{n}", "account": str(n % 20),
                                   "amount": "-5" if n in (7, 150) else str(n % 9 + 1)})
        await pipe.execute()
    try:
        async with run_app(project / "app.yaml", url=streamboot_url):
            async def drained() -> bool:
                (group,) = await client.xinfo_groups("payments")
                return bool(group["pending"] == 0 and group["lag"] == 0)

            await wait_until(drained, timeout=20)
            letters: Any = await client.xrange("{payments}:dlq")
    finally:
        await client.aclose()
        forget_modules("ledger")
    expected = [0] * 20
    for n in range(300):
        if n not in (7, 150):
            expected[n % 20] += n % 9 + 1
    balances = [b for _, b in db.execute("SELECT id, balance FROM accounts ORDER BY id")]
    rows = db.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone()[0]
    db.close()
    assert balances == expected
    assert rows == 298
    assert sorted(f["dlq_error"] for _, f in letters) == [
        "BatchEntryError: amount must be positive, got -5"] * 2
    assert {f["dlq_deliveries"] for _, f in letters} == {"3"}
