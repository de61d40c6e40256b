"""A batch handler against a per-entry handler, both writing a ledger to SQLite.

    python bench/batches.py [--entries 3000] [--rounds 3] [--synchronous FULL] [--save]

End to end on a real Redis (the embedded server, or ``--url``): ``--entries`` payments in
a stream, one Streamboot listener (COUNT 100, ``concurrency: 1`` — SQLite has one writer)
drains it into a file database in WAL mode, its handler's shape as docs/batches.md shows
it: (a) a ``StreamHandler``, one transaction per entry — the balance update, the effect's
row and the inbox's claim; (b) a ``BatchHandler``, the same statements for a whole batch
(up to 100) in one transaction. ``--synchronous FULL`` (the default) is what a ledger
runs: each COMMIT reaches the disk; ``NORMAL`` shows the gap without the fsync.
Alternating rounds; prints one JSON line (entries/s of each, median, and the ratio);
appended to bench/results/batches.jsonl with --save.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pydantic import BaseModel

from streamboot import BatchHandler, Inbox, Message, RedisOperator, StreamHandler, build_client
from streamboot.config import ContainerSettings, ListenerSettings, RedisSettings
from streamboot.listener.container import ListenerContainer
from streamboot.listener.spec import resolve_listener

RESULTS = Path(__file__).resolve().parent / "results" / "batches.jsonl"


class Payment(BaseModel):
    event_id: str
    account: int
    amount: int


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    return db


def _create(path: Path) -> None:
    db = sqlite3.connect(path)
    with db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
        db.execute("CREATE TABLE effects (event_id TEXT NOT NULL)")
        db.executemany("INSERT INTO accounts VALUES (?, 0)", [(i,) for i in range(200)])
        Inbox().create_table(db)
    db.close()


class Ledger:
    def __init__(self, db: sqlite3.Connection, total: int) -> None:
        self.db = db
        self.inbox = Inbox()
        self.total = total
        self.applied = 0
        self.done = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def apply(self, message: Message[Payment]) -> None:
        if not self.inbox.claim(self.db, message):
            return
        payment = message.payload
        self.db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                        (payment.amount, payment.account))
        self.db.execute("INSERT INTO effects VALUES (?)", (payment.event_id,))

    def count(self, n: int) -> None:
        self.applied += n
        if self.applied >= self.total:
            self._loop.call_soon_threadsafe(self.done.set)


class PerEntry(StreamHandler[Payment]):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def handle(self, message: Message[Payment]) -> None:
        with self.ledger.db:
            self.ledger.apply(message)
        self.ledger.count(1)


class Batched(BatchHandler[Payment]):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def handle_batch(self, messages: list[Message[Payment]]) -> None:
        with self.ledger.db:
            for message in messages:
                self.ledger.apply(message)
        self.ledger.count(len(messages))


async def _round(url: str, folder: Path, kind: str, entries: int, synchronous: str,
                 index: int) -> float:
    import redis

    path = folder / f"{kind}-{index}.db"
    _create(path)
    stream = f"bench:batches:{kind}:{index}"
    client = build_client(RedisSettings(url=url))
    operator = RedisOperator(client)
    async with client.pipeline(transaction=False) as pipe:
        for i in range(entries):
            pipe.xadd(stream, {"event_id": f"e-{i}", "account": str(i % 200),
                               "amount": str(i % 97 + 1)})
        await pipe.execute()
    db = _connect(path, synchronous)
    ledger = Ledger(db, entries)
    listener = ListenerSettings(stream=stream, group="ledger", handler="-",
                                consumer=f"bench-{os.getpid()}", batch_size=100,
                                concurrency=1, poll_timeout="100ms")  # type: ignore[arg-type]
    spec = resolve_listener("ledger", listener, ContainerSettings())
    keeper = redis.Redis.from_url(url, decode_responses=True)
    container = ListenerContainer(operator, keeper)
    container.register(spec, Batched(ledger) if kind == "batch" else PerEntry(ledger))
    began = time.perf_counter()
    await container.start(timeout=10)
    await asyncio.wait_for(ledger.done.wait(), 600)
    await container.stop()
    elapsed = time.perf_counter() - began
    rows = db.execute("SELECT COUNT(*) FROM effects").fetchone()[0]
    db.close()
    await client.delete(stream)
    await client.aclose()
    keeper.close()
    assert rows == entries, (kind, rows)  # every payment applied, once
    return entries / elapsed


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    server = None
    url = args.url
    if url is None:
        from streamboot import RedisServer

        server = RedisServer()
        server.start()
        url = server.url
    try:
        per_entry: list[float] = []
        batched: list[float] = []
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            for r in range(args.rounds):
                per_entry.append(await _round(url, Path(folder), "entry", args.entries,
                                              args.synchronous, r))
                batched.append(await _round(url, Path(folder), "batch", args.entries,
                                            args.synchronous, r))
    finally:
        if server is not None:
            server.stop()
    a, b = statistics.median(per_entry), statistics.median(batched)
    return {"bench": "batches", "entries": args.entries, "rounds": args.rounds,
            "synchronous": args.synchronous, "per_entry_per_s": round(a),
            "batch_per_s": round(b), "ratio": round(b / a, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--url", default=None)
    parser.add_argument("--dir", default=None, help="where the databases go (a real disk)")
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    from loguru import logger

    if not os.environ.get("BENCH_LOG"):
        logger.remove()
    line = asyncio.run(_main(args))
    print(json.dumps(line))
    if args.save:
        with RESULTS.open("a") as out:
            out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
