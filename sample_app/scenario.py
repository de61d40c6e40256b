"""The Black Friday run: N users race for limited stock while worker processes consume.

Workers are real processes (``python -m framework run config/application.yaml``), so a
run can kill one with SIGKILL mid-way and still has to satisfy every invariant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from framework import RedisOperator, load_settings
from framework.client import build_client
from framework.publisher import Publisher
from sample_app import keys
from sample_app.api import LOCK_TTL, DuplicateRequest, OrderApi
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook

PRODUCT = "ps5"
DLQ = "{orders}:dlq"


@dataclass
class Scenario:
    users: int = 100
    stock: int = 100
    orders_per_user: int = 3
    double_click: float = 0.3
    payment_failure: float = 0.05
    workers: int = 2
    kill_worker_after: int | None = None
    config: Path = Path(__file__).resolve().parent.parent / "config" / "application.yaml"
    seed: int = 7
    timeout: float = 120.0
    forever: bool = False


@dataclass
class Report:
    placed: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    stock_left: int = 0
    accepted_qty: int = 0
    audited: int = 0
    analytics: int = 0
    pending: dict[str, int] = field(default_factory=dict)
    killed_worker: bool = False
    failures: list[str] = field(default_factory=list)

    def check(self, stock: int | None) -> None:
        """``stock`` is the initial stock; None when it was refilled (--forever)."""
        def expect(ok: bool, what: str) -> None:
            if not ok:
                self.failures.append(what)

        expect(stock is None or self.accepted_qty == stock - self.stock_left,
               f"accepted units {self.accepted_qty} != initial stock {stock} - stock left "
               f"{self.stock_left}")
        expect(self.stock_left >= 0, f"stock below zero: {self.stock_left}")
        expect(self.audited == self.accepted + self.rejected,
               f"audit entries {self.audited} != orders applied "
               f"{self.accepted + self.rejected}: an order was applied twice or not audited")
        expect(self.accepted + self.rejected + self.dead_lettered == self.placed,
               f"accounted {self.accepted + self.rejected + self.dead_lettered} != placed "
               f"{self.placed}")
        expect(self.analytics == self.placed,
               f"analytics counted {self.analytics} != placed {self.placed}")
        for group, count in self.pending.items():
            expect(count == 0, f"group {group} still has {count} pending entries")


async def run(scenario: Scenario, console: Console) -> Report:
    settings = load_settings(scenario.config)
    client = build_client(settings.redis)
    operator = RedisOperator(client)
    await client.flushdb()  # the sample owns its database
    await InventoryService(client).set_stock(PRODUCT, scenario.stock)
    for name, listener in settings.listeners.items():
        await operator.create_group(listener.stream, listener.group, "0")
        del name
    workers = [_start_worker(scenario, i) for i in range(scenario.workers)]
    api = OrderApi(operator, Publisher.for_listener(operator, settings.listeners["orders"]))
    report = Report()
    try:
        users = asyncio.gather(*(_user(api, scenario, i) for i in range(scenario.users)))
        killer = asyncio.create_task(_kill_when(api, scenario, workers, report))
        if scenario.forever:
            await _until_interrupted(users, console)
        await _progress(api, operator, users, scenario, console)
        killer.cancel()
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    await _fill(report, api, operator)
    report.check(None if scenario.forever else scenario.stock)
    await client.aclose()
    return report


def _start_worker(scenario: Scenario, index: int) -> subprocess.Popen[bytes]:
    env = {**os.environ,
           "STREAMBOOT_LISTENERS__ORDERS__CONSUMER": f"worker-{index}",
           "STREAMBOOT_LISTENERS__ANALYTICS__CONSUMER": f"worker-{index}",
           "STREAMBOOT_LOGGING__LEVEL": "ERROR",
           "SAMPLE_PAYMENT_FAILURE": str(scenario.payment_failure)}
    return subprocess.Popen([sys.executable, "-m", "framework", "run", str(scenario.config)],
                            env=env, cwd=Path(__file__).resolve().parent.parent)


async def _until_interrupted(users: asyncio.Future[object], console: Console) -> None:
    """--forever: users keep buying until Ctrl-C; then the run settles and reports."""
    console.print("running until Ctrl-C (users keep ordering; stock is refilled)")
    try:
        await users
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # the first Ctrl-C ends the users, not the report
        users.cancel()
        await asyncio.gather(users, return_exceptions=True)


async def _user(api: OrderApi, scenario: Scenario, index: int) -> None:
    """Sequential purchases; each may be a double click (a duplicate sent at once)."""
    rng = random.Random(scenario.seed * 100_003 + index)
    user = f"user-{index}"
    purchase = 0
    while scenario.forever or purchase < scenario.orders_per_user:
        purchase += 1
        if scenario.forever:
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            if index == 0 and purchase % 20 == 0:  # restock now and then
                await api.operator.client.incrby(keys.stock(PRODUCT), scenario.stock)
        clicks = 2 if rng.random() < scenario.double_click else 1
        await asyncio.gather(*(_click(api, user) for _ in range(clicks)))
        await _wait_unlocked(api, user)


async def _click(api: OrderApi, user: str) -> None:
    with contextlib.suppress(DuplicateRequest):  # refused by the lock, and counted
        await api.create_order(user, PRODUCT, 1)


async def _wait_unlocked(api: OrderApi, user: str) -> None:
    """The user waits for the order's outcome: its lock is released by the worker (or
    expires after LOCK_TTL when the order was dead-lettered)."""
    key = keys.lock(user, PRODUCT)
    for _ in range(int(LOCK_TTL.total_seconds() * 50) + 50):
        if not await api.operator.client.exists(key):
            return
        await asyncio.sleep(0.02)


async def _kill_when(api: OrderApi, scenario: Scenario, workers: list[subprocess.Popen[bytes]],
                     report: Report) -> None:
    if scenario.kill_worker_after is None:
        return
    while len(api.placed) < scenario.kill_worker_after:  # noqa: ASYNC110 - a plain counter
        await asyncio.sleep(0.01)
    workers[0].kill()  # SIGKILL: its pending entries are stranded until reclaimed
    report.killed_worker = True


async def _accounted(operator: RedisOperator) -> int:
    counts = await OrderBook(operator.client).counts()
    done = counts.get("accepted", 0) + counts.get("rejected", 0)
    return done + (await operator.xlen(DLQ) if await operator.exists(DLQ) else 0)


async def _progress(api: OrderApi, operator: RedisOperator, users: asyncio.Future[object],
                    scenario: Scenario, console: Console) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scenario.timeout
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("orders accounted for", total=None)
        while loop.time() < deadline:
            accounted = await _accounted(operator)
            progress.update(task, completed=accounted,
                            total=len(api.placed) if users.done() else None)
            if users.done() and accounted >= len(api.placed) and await _settled(operator):
                return
            await asyncio.sleep(0.1)
    console.print("[red]timed out waiting for the workers[/red]")


async def _settled(operator: RedisOperator) -> bool:
    for group in await operator.info_groups(keys.ORDERS):
        if group.pending or group.lag:
            return False
    return True


async def _fill(report: Report, api: OrderApi, operator: RedisOperator) -> None:
    client = operator.client
    book = OrderBook(client)
    counts = await book.counts()
    report.placed = len(api.placed)
    report.duplicates = api.duplicates
    report.accepted = counts.get("accepted", 0)
    report.rejected = counts.get("rejected", 0)
    report.accepted_qty = counts.get("accepted_qty", 0)
    report.dead_lettered = await operator.xlen(DLQ) if await operator.exists(DLQ) else 0
    report.stock_left = await InventoryService(client).stock(PRODUCT)
    report.audited = await book.audit_length()
    per_product = await client.hgetall(keys.PER_PRODUCT)
    report.analytics = sum(int(v) for v in per_product.values())
    report.pending = {g.name: g.pending for g in await operator.info_groups(keys.ORDERS)}
