"""``python -m sample_app``: produce orders, consume them with Streamboot, print a summary.

Without ``REDIS_URL`` a throwaway redis-server is started on a free loopback port and
removed at the end. ``--forever`` keeps producing and consuming until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated

import typer
from loguru import logger
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from framework import Application, load_settings
from framework.devserver import RedisServer, RedisServerNotFound
from framework.logs import configure_logging
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook
from sample_app.producer import make_orders, publish

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "application.yaml"
PRODUCTS = ("tv-55", "console-x", "headphones")
console = Console()
app = typer.Typer(add_completion=False)


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="Orders to produce.")] = 2000,
    stock: Annotated[int, typer.Option(help="Initial units per product.")] = 500,
    users: Annotated[int, typer.Option(help="Distinct users placing orders.")] = 100,
    forever: Annotated[bool, typer.Option("--forever", help="Run until Ctrl-C.")] = False,
    config: Annotated[Path, typer.Option(help="Application file.")] = DEFAULT_CONFIG,
) -> None:
    """Produce orders, consume them, and check that every one was handled once."""
    server = None
    if not os.environ.get("REDIS_URL"):
        try:
            server = RedisServer().start()
        except RedisServerNotFound as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from None
        os.environ["REDIS_URL"] = server.url
        console.print(f"started a throwaway redis-server at {server.url}")
    try:
        ok = asyncio.run(_run(config, orders, stock, users, forever))
    finally:
        if server is not None:
            server.close()
    raise typer.Exit(0 if ok else 1)


async def _run(config: Path, count: int, stock: int, users: int, forever: bool) -> bool:
    settings = load_settings(config)
    configure_logging(settings.logging.model_copy(update={"level": "WARNING"}))
    application = Application(settings)
    await application.start()
    container = application.container
    inventory: InventoryService = await container.inventory()  # type: ignore[attr-defined]
    book: OrderBook = await container.order_book()  # type: ignore[attr-defined]
    operator = application.operator
    assert operator is not None
    stream = settings.listeners["orders"].stream
    group = settings.listeners["orders"].group
    for product in PRODUCTS:
        await inventory.set_stock(product, stock)
    started = time.monotonic()
    try:
        if forever:
            await _produce_forever(application, users)
        else:
            await publish(operator, stream, make_orders(count, PRODUCTS, users))
            await _show_progress(book, count)
    finally:
        await application.stop()
    return await _summary(application, stream, group, count, stock, time.monotonic() - started,
                          forever)


async def _show_progress(book: OrderBook, total: int) -> None:
    columns = (TextColumn("orders handled"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("orders", total=total)
        while True:
            done = sum((await book.counts()).values())
            progress.update(task, completed=done)
            if done >= total:
                return
            await asyncio.sleep(0.1)


async def _produce_forever(application: Application, users: int) -> None:
    operator = application.operator
    assert operator is not None
    console.print("producing 100 orders/s; Ctrl-C to stop")
    batch = 0
    try:
        while True:
            await publish(operator, "orders", make_orders(100, PRODUCTS, users, seed=batch))
            batch += 1
            await asyncio.sleep(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        logger.info("stopping")


async def _summary(application: Application, stream: str, group: str, placed: int,
                   stock: int, seconds: float, forever: bool) -> bool:
    # The application is stopped: read the final state with a fresh client.
    from framework import RedisOperator
    from framework.client import build_client

    client = build_client(application.settings.redis)
    operator = RedisOperator(client)
    book = OrderBook(client)  # type: ignore[arg-type]
    inventory = InventoryService(client)  # type: ignore[arg-type]
    counts = await book.counts()
    pending = (await operator.pending_summary(stream, group)).count
    groups = {g.name: g for g in await operator.info_groups(stream)}
    lag = groups[group].lag if group in groups else None
    left = {p: await inventory.stock(p) for p in PRODUCTS}
    await client.aclose()

    table = Table(title="Black Friday sample: summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    handled = sum(counts.values())
    rows = [("orders placed", placed), ("orders handled", handled),
            ("accepted", counts.get("accepted", 0)), ("rejected (out of stock)",
            counts.get("rejected", 0)), ("pending entries (PEL)", pending),
            ("group lag", lag), ("stock left", ", ".join(f"{p}={n}" for p, n in left.items())),
            ("seconds", f"{seconds:.2f}")]
    for name, value in rows:
        table.add_row(name, str(value))
    console.print(table)
    ok = pending == 0 and lag in (0, None) and (forever or handled == placed)
    console.print("[green]all invariants hold[/green]" if ok else "[red]invariant failed[/red]")
    return ok


if __name__ == "__main__":
    app()
