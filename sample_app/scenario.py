"""The Black Friday run: N users race for limited stock while worker processes consume.

Seed 002's shape, each part a process of its own: the users send concurrent HTTP requests
to the API server (sample_app/web.py under uvicorn), which takes the per-user lock and
publishes; the workers are ``python -m streamboot run config/application.yaml``, so a run
can kill one with SIGKILL mid-way and still has to satisfy every invariant.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sample_app import keys
from sample_app.api import LOCK_TTL
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook
from sample_app.server import ApiServer
from streamboot import RedisClient, RedisOperator, build_client, load_settings

PRODUCT = "ps5"
DLQ = "{orders}:dlq"

MINUTE_PERIODS = {
    # --minute-periods: the notification streams rotate every minute, so a run of about a
    # minute crosses a period boundary (the hourly setting of config/application.yaml
    # would need an hour). Environment overrides, as an operator would set them.
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__PERIOD": "1m",
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__KEY_FORMAT":
        "{orders}:notifications:%Y%m%d%H%M",
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__TTL": "5m",
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__PRECREATE": "20s",
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__DRAIN_MARGIN": "1m",
    "STREAMBOOT_LISTENERS__NOTIFICATIONS__ROTATION__CHECK_INTERVAL": "5s",
}


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
    minute_periods: bool = False

    def __post_init__(self) -> None:
        self.began = datetime.now(UTC)

    def crossed_a_boundary(self) -> bool:
        """With --minute-periods: users keep ordering until the clock is a few seconds
        past the next minute, so orders (and their notifications) fall on both sides."""
        if not self.minute_periods:
            return True
        boundary = self.began.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return datetime.now(UTC) >= boundary + timedelta(seconds=3)


@dataclass
class Shoppers:
    """The users' side of the API: each request, and what it was answered."""

    http: httpx.AsyncClient
    placed: int = 0
    """Orders the API accepted for publishing (202)."""
    duplicates: int = 0
    """Double clicks the API refused while the first was in flight (409)."""
    requests: int = 0

    async def order(self, user_id: str, product_id: str, qty: int, request_id: str) -> None:
        response = await self.http.post("/orders", json={
            "user_id": user_id, "product_id": product_id, "qty": qty,
            "request_id": request_id})
        self.requests += 1
        if response.status_code == 202:
            self.placed += 1
        elif response.status_code == 409:
            self.duplicates += 1
        else:
            raise RuntimeError(f"POST /orders answered {response.status_code}: "
                               f"{response.text[:200]}")

    async def in_flight(self, user_id: str, product_id: str) -> bool:
        response = await self.http.get(f"/users/{user_id}/orders/{product_id}")
        self.requests += 1
        response.raise_for_status()
        return bool(response.json()["in_flight"])


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
    notified: dict[str, int] = field(default_factory=dict)
    notification_periods: list[str] = field(default_factory=list)
    notification_backlog: int = 0
    orders_length: int = 0
    orders_old: int = 0
    """Entries of ``orders`` older than three retention intervals at the end."""
    orders_max_len: int | None = None
    ran_for: float = 0.0
    retention_interval: float = 0.0
    killed_worker: bool = False
    api_url: str = ""
    api_requests: int = 0
    expected_orders: int | None = None
    """users × orders per user, for a run of fixed length (None: --forever, minute runs)."""
    user_errors: list[str] = field(default_factory=list)
    """What went wrong for the simulated users (an error there means orders not placed)."""
    failures: list[str] = field(default_factory=list)

    def check(self, stock: int | None) -> None:
        """``stock`` is the initial stock; None when it was refilled (--forever)."""
        def expect(ok: bool, what: str) -> None:
            if not ok:
                self.failures.append(what)

        for error in self.user_errors:
            expect(False, f"a simulated user failed: {error}")
        expect(self.expected_orders is None or self.placed == self.expected_orders,
               f"orders placed {self.placed} != users x orders per user "
               f"{self.expected_orders}")

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
        # The work happened: a run that placed nothing, or notified nobody, proves nothing.
        expect(self.placed > 0 and self.accepted > 0, "no order was placed and accepted")
        for status, applied in (("accepted", self.accepted), ("rejected", self.rejected)):
            sent = self.notified.get(status, 0)
            expect(sent == applied, f"{status} notifications sent {sent} != orders "
                   f"{status} {applied}: one was lost or sent twice")
        expect(bool(self.notification_periods), "no notification period stream was used")
        expect(self.notification_backlog == 0, f"{self.notification_backlog} notifications "
               "still unconsumed or pending across the period streams")
        if self.orders_max_len is not None and self.ran_for > 3 * self.retention_interval:
            # Trimmed within the last retention interval to about max_len (approximate
            # trimming keeps whole nodes of up to 100 entries).
            expect(self.orders_old <= self.orders_max_len + 100,
                   f"orders holds {self.orders_old} entries older than three retention "
                   f"intervals (max_len {self.orders_max_len}): it is not bounded")


async def run(scenario: Scenario, console: Console) -> Report:
    if scenario.minute_periods:
        os.environ.update(MINUTE_PERIODS)  # for the workers and for this process alike
    settings = load_settings(scenario.config)
    client = build_client(settings.redis)
    operator = RedisOperator(client)
    await client.flushdb()  # the sample owns its database
    await InventoryService(client).set_stock(PRODUCT, scenario.stock)
    for listener in settings.listeners.values():
        if listener.rotation is None:  # rotated streams are made by their rotation job
            await operator.create_group(listener.stream, listener.group, "0")
    workers = [_start_worker(scenario, i) for i in range(scenario.workers)]
    report = Report()
    server: ApiServer | None = None
    try:
        server = await ApiServer.start(scenario.config)
        report.api_url = server.url
        console.print(f"API server (uvicorn, sample_app/web.py) at {server.url}")
        connections = 2 * scenario.users + 8  # a double click is two requests at once
        limits = httpx.Limits(max_connections=connections,
                              max_keepalive_connections=connections)
        async with httpx.AsyncClient(base_url=server.url, limits=limits,
                                     timeout=httpx.Timeout(15.0)) as http:
            shoppers = Shoppers(http)
            stopping = asyncio.Event()
            users = asyncio.gather(*(_user(shoppers, client, scenario, i, stopping)
                                     for i in range(scenario.users)),
                                   return_exceptions=True)
            killer = asyncio.create_task(_kill_when(shoppers, scenario, workers, report))
            if scenario.forever:
                await _until_interrupted(users, console, stopping)
            await _progress(shoppers, operator, client, users, scenario, console)
            killer.cancel()
            report.user_errors = _user_errors(users)
            report.duplicates, report.api_requests = shoppers.duplicates, shoppers.requests
    finally:
        if server is not None:
            server.stop()  # after the users: no request of theirs is cut short
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
    retention = settings.listeners["orders"].retention
    if retention is not None:
        report.orders_max_len = retention.max_len
        report.retention_interval = retention.interval.total_seconds()
    report.ran_for = (datetime.now(UTC) - scenario.began).total_seconds()
    if not scenario.forever and not scenario.minute_periods:
        report.expected_orders = scenario.users * scenario.orders_per_user
    await _fill(report, client, operator)
    report.check(None if scenario.forever else scenario.stock)
    await client.aclose()
    return report


def _start_worker(scenario: Scenario, index: int) -> subprocess.Popen[bytes]:
    env = {**os.environ,
           "STREAMBOOT_LISTENERS__ORDERS__CONSUMER": f"worker-{index}",
           "STREAMBOOT_LISTENERS__ANALYTICS__CONSUMER": f"worker-{index}",
           "STREAMBOOT_LISTENERS__NOTIFICATIONS__CONSUMER": f"worker-{index}",
           "STREAMBOOT_LOGGING__LEVEL": "ERROR",
           "STREAMBOOT_WORKER_PARENT": str(os.getpid()),  # a killed sample takes them along
           "SAMPLE_PAYMENT_FAILURE": str(scenario.payment_failure)}
    # In a session of their own: a terminal's Ctrl-C reaches the sample alone, which
    # settles the run with the workers still reading, then stops them (SIGTERM).
    return subprocess.Popen([sys.executable, "-m", "streamboot", "run", str(scenario.config)],
                            env=env, cwd=Path(__file__).resolve().parent.parent,
                            start_new_session=True)


def _user_errors(users: asyncio.Future[list[BaseException | None]]) -> list[str]:
    """What the simulated users raised (Ctrl-C in --forever is not an error)."""
    if not users.done():
        users.cancel()
        return ["the users had not finished when the run timed out"]
    try:
        results = users.result()
    except asyncio.CancelledError:  # --forever, ended by Ctrl-C
        return []
    return sorted({f"{type(e).__name__}: {e}" for e in results
                   if isinstance(e, BaseException) and not isinstance(e, asyncio.CancelledError)})


USERS_STOP_WITHIN = 10.0
"""After Ctrl-C, how long --forever waits for the users to end before it reports anyway."""


async def _until_interrupted(users: asyncio.Future[Any], console: Console,
                             stopping: asyncio.Event) -> None:
    """--forever: users keep buying until Ctrl-C; then the run settles and reports.

    Ctrl-C sets ``stopping`` (its own handler, not asyncio.run's cancellation of the main
    task): every user checks it before each purchase, then the users are cancelled, and
    the wait for them is bounded. Relying on the cancellation alone hung one run in about
    a dozen: one user task went on buying, shown "cancelling", its CancelledError lost
    somewhere below its awaits, and the main task waited for it for ever."""
    console.print("running until Ctrl-C (users keep ordering; stock is refilled)")
    loop = asyncio.get_running_loop()
    # SIGTERM (a `kill`, a container's stop) ends it the same way: with the report (a
    # trial saw exit 143 and nothing printed).
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    waiter = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({users, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):  # a second one interrupts the report
            loop.remove_signal_handler(signum)
    stopping.set()
    users.cancel()
    done, _ = await asyncio.wait({users}, timeout=USERS_STOP_WITHIN)
    if not done:
        console.print(f"[yellow]users still running {USERS_STOP_WITHIN:g}s after Ctrl-C; "
                      "reporting without them[/yellow]")


async def _user(shoppers: Shoppers, client: RedisClient, scenario: Scenario, index: int,
                stopping: asyncio.Event) -> None:
    """Sequential purchases; each may be a double click (a duplicate sent at once)."""
    rng = random.Random(scenario.seed * 100_003 + index)
    user = f"user-{index}"
    purchase = 0
    while not stopping.is_set() and (scenario.forever or purchase < scenario.orders_per_user
                                     or not scenario.crossed_a_boundary()):
        purchase += 1
        if scenario.forever or purchase > scenario.orders_per_user:
            await asyncio.sleep(rng.uniform(0.5, 2.0))
        if scenario.forever and index == 0 and purchase % 20 == 0:  # restock now and then
            await client.incrby(keys.stock(PRODUCT), scenario.stock)  # the shop, not a user
        clicks = 2 if rng.random() < scenario.double_click else 1
        request = f"{user}-{purchase}-{rng.getrandbits(32):08x}"  # the clicks resend it
        await asyncio.gather(*(shoppers.order(user, PRODUCT, 1, request)
                               for _ in range(clicks)))
        await _wait_handled(shoppers, user)


async def _wait_handled(shoppers: Shoppers, user: str) -> None:
    """The user waits for the order's outcome, asking the API: a worker releases the lock
    once the order is applied (a dead-lettered order's expires after LOCK_TTL)."""
    for _ in range(int(LOCK_TTL.total_seconds() * 20) + 20):
        if not await shoppers.in_flight(user, PRODUCT):
            return
        await asyncio.sleep(0.05)


async def _kill_when(shoppers: Shoppers, scenario: Scenario,
                     workers: list[subprocess.Popen[bytes]], report: Report) -> None:
    if scenario.kill_worker_after is None:
        return
    while shoppers.placed < scenario.kill_worker_after:  # noqa: ASYNC110 - a plain counter
        await asyncio.sleep(0.01)
    workers[0].kill()  # SIGKILL: its pending entries are stranded until reclaimed
    report.killed_worker = True


async def _accounted(operator: RedisOperator, client: RedisClient) -> int:
    counts = await OrderBook(client).counts()
    done = counts.get("accepted", 0) + counts.get("rejected", 0)
    return done + (await operator.xlen(DLQ) if await operator.exists(DLQ) else 0)


async def _progress(shoppers: Shoppers, operator: RedisOperator, client: RedisClient,
                    users: asyncio.Future[Any], scenario: Scenario, console: Console) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scenario.timeout
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("orders accounted for", total=None)
        while loop.time() < deadline:
            accounted = await _accounted(operator, client)
            progress.update(task, completed=accounted,
                            total=shoppers.placed if users.done() else None)
            if users.done() and accounted >= shoppers.placed \
                    and await _settled(operator, client):
                return
            await asyncio.sleep(0.1)
    console.print("[red]timed out waiting for the workers[/red]")


async def _settled(operator: RedisOperator, client: RedisClient) -> bool:
    for group in await operator.info_groups(keys.ORDERS):
        if group.pending or group.lag:
            return False
    counts = await OrderBook(client).counts()
    sent = await OrderBook(client).notifications_sent()
    if sum(sent.values()) < counts.get("accepted", 0) + counts.get("rejected", 0):
        return False
    return await _notification_backlog(operator, client) == 0


async def _notification_periods(client: RedisClient) -> list[str]:
    """The period streams of the rotated notifications listener that exist now."""
    found = [str(k) async for k in client.scan_iter(match=f"{keys.NOTIFICATIONS}:*")]
    return sorted(k for k in found if not k.endswith(":dlq"))


async def _notification_backlog(operator: RedisOperator, client: RedisClient) -> int:
    backlog = 0
    for key in await _notification_periods(client):
        backlog += sum((g.lag or 0) + g.pending for g in await operator.info_groups(key))
    return backlog


async def _fill(report: Report, client: RedisClient, operator: RedisOperator) -> None:
    book = OrderBook(client)
    counts = await book.counts()
    # What reached the stream: an order whose publish was cut short by Ctrl-C (--forever)
    # may be in it without the API having heard back.
    info = await client.xinfo_stream(keys.ORDERS)
    report.placed = int(info["entries-added"])
    report.accepted = counts.get("accepted", 0)
    report.rejected = counts.get("rejected", 0)
    report.accepted_qty = counts.get("accepted_qty", 0)
    report.dead_lettered = await operator.xlen(DLQ) if await operator.exists(DLQ) else 0
    report.stock_left = await InventoryService(client).stock(PRODUCT)
    report.audited = await book.audit_added()
    report.notified = await book.notifications_sent()
    report.notification_periods = await _notification_periods(client)
    report.notification_backlog = await _notification_backlog(operator, client)
    report.orders_length = await operator.xlen(keys.ORDERS)
    cutoff_ms = int((time.time() - 3 * report.retention_interval) * 1000)
    report.orders_old = len(await operator.xrange(keys.ORDERS, "-", f"{cutoff_ms}-0",
                                                  count=1_000_000))
    per_product = await client.hgetall(keys.PER_PRODUCT)
    report.analytics = sum(int(v) for v in per_product.values())
    report.pending = {g.name: g.pending for g in await operator.info_groups(keys.ORDERS)}
