"""What the inbox costs per entry on SQLite: one transaction per entry, with and without
the inbox's record in it.

    python bench/inbox.py [--entries 5000] [--rounds 5] [--save]

A file database in WAL mode (synchronous=NORMAL, as a service would run SQLite), the
handler's shape of docs/database.md: one transaction per entry that updates a balance —
(a) alone, (b) after ``Inbox.claim``. No Redis: this is the database's share only, what
the inbox adds to each handling. Alternating rounds; prints one JSON line (median µs per
entry of each, the difference, the ratio); appended to bench/results/inbox.jsonl with
--save.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from streamboot import Inbox, Message

RESULTS = Path(__file__).resolve().parent / "results" / "inbox.jsonl"


def _database(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    with db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        db.executemany("INSERT INTO accounts VALUES (?, 0)", [(i,) for i in range(200)])
        Inbox().create_table(db)
    return db


def _round(db: sqlite3.Connection, inbox: Inbox | None, start: int, entries: int) -> float:
    messages = [Message(id=f"{start + i}-0", stream="s", group="g", consumer="c", fields={},
                        payload=None, marker=(f"p:g:{{e-{start + i}}}", timedelta(hours=1)))
                for i in range(entries)]
    began = time.perf_counter()
    for n, message in enumerate(messages):
        with db:
            if inbox is not None and not inbox.claim(db, message):
                continue
            db.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?", (n % 200,))
    return (time.perf_counter() - began) / entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    plain: list[float] = []
    claimed: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        db = _database(Path(folder) / "ledger.db")
        inbox = Inbox()
        for r in range(args.rounds):
            plain.append(_round(db, None, 0, args.entries))
            claimed.append(_round(db, inbox, (r + 1) * args.entries, args.entries))
        rows = db.execute("SELECT COUNT(*) FROM streamboot_inbox").fetchone()[0]
        db.close()
    assert rows == args.rounds * args.entries, rows  # every claim wrote its row
    a, b = statistics.median(plain), statistics.median(claimed)
    line = {"bench": "inbox", "entries": args.entries, "rounds": args.rounds,
            "without_us": round(a * 1e6, 1), "with_inbox_us": round(b * 1e6, 1),
            "added_us": round((b - a) * 1e6, 1), "ratio": round(b / a, 2),
            "inbox_rows": rows}
    print(json.dumps(line))
    if args.save:
        with RESULTS.open("a") as out:
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
