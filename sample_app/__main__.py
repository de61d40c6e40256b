"""``python -m sample_app [blackfriday] --users 100 --stock 100 --orders-per-user 3``

Without ``REDIS_URL`` a throwaway redis-server is started on a free loopback port and
removed at the end. Exits non-zero when an invariant fails.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.table import Table

from sample_app.scenario import Report, Scenario, run
from streamboot import ConfigError, RedisServer, RedisServerNotFound

console = Console()
app = typer.Typer(add_completion=False)


@app.command()
def blackfriday(
    name: Annotated[str, typer.Argument(help="The scenario (only: blackfriday).")] = (
        "blackfriday"),
    users: Annotated[int, typer.Option(help="Concurrent users.", min=1)] = 100,
    stock: Annotated[int, typer.Option(help="Units of the hot product.", min=1)] = 100,
    orders_per_user: Annotated[int, typer.Option(help="Purchases per user.", min=1)] = 3,
    double_click: Annotated[float, typer.Option(help="Share of double clicks.", min=0.0,
                                                max=1.0)] = 0.3,
    payment_failure: Annotated[float, typer.Option(help="Share of declined cards.", min=0.0,
                                                   max=1.0)] = 0.05,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 2,
    kill_worker_after: Annotated[int | None, typer.Option(
        help="SIGKILL one worker after this many orders.", min=1)] = None,
    config: Annotated[Path, typer.Option(help="Application file.")] = Scenario.config,
    forever: Annotated[bool, typer.Option("--forever", help="Keep ordering until Ctrl-C.")] = (
        False),
    minute_periods: Annotated[bool, typer.Option(
        "--minute-periods",
        help="Rotate the notification streams every minute (not hourly), and keep ordering "
             "until the run has crossed a period boundary (about a minute).")] = False,
) -> None:
    """Users race for limited stock; workers consume; the report checks every invariant."""
    if name != "blackfriday":
        raise typer.BadParameter(f"unknown scenario {name!r}: the sample has 'blackfriday'")
    scenario = Scenario(users, stock, orders_per_user, double_click, payment_failure, workers,
                        kill_worker_after, config, forever=forever,
                        minute_periods=minute_periods)
    server = None
    if not os.environ.get("REDIS_URL"):
        try:
            # Ctrl-C in --forever is the sample's to handle: its server must outlive it.
            server = RedisServer(own_session=True).start()
        except RedisServerNotFound as exc:
            console.print(f"[red]{exc}\nor set REDIS_URL to a Redis 7+ server you already "
                          "run.[/red]")
            raise typer.Exit(1) from None
        os.environ["REDIS_URL"] = server.url
        console.print(f"started a throwaway {server.server.describe()} at {server.url}")
    try:
        report = asyncio.run(run(scenario, console))
    except (RedisConnectionError, RedisTimeoutError) as exc:  # one line, not a traceback
        console.print(f"[red]cannot reach redis at {os.environ['REDIS_URL']}: {exc}[/red]",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        if server is not None:
            server.close()
    show(report, scenario)
    raise typer.Exit(0 if not report.failures else 1)


def show(report: Report, scenario: Scenario) -> None:
    table = Table(title="Black Friday: report")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in [
        ("API requests (HTTP)", f"{report.api_requests} to {report.api_url or 'none'}"),
        ("orders placed", report.placed), ("accepted", report.accepted),
        ("rejected: out of stock", report.rejected),
        ("duplicates refused (409)", report.duplicates),
        ("dead-lettered (payment kept failing)", report.dead_lettered),
        ("stock left", f"{report.stock_left} of {scenario.stock}"),
        ("analytics: orders counted", report.analytics),
        ("pending entries", ", ".join(f"{g}={n}" for g, n in report.pending.items())),
        ("notifications sent", ", ".join(f"{s}={n}" for s, n in sorted(report.notified.items()))
         or "none"),
        ("notification streams (rotated)", f"{len(report.notification_periods)}: "
         + ", ".join(k.rsplit(":", 1)[-1] for k in report.notification_periods)),
        ("orders stream length", f"{report.orders_length} (retention max_len "
         f"{report.orders_max_len})"),
        ("a worker was killed (SIGKILL)", "yes" if report.killed_worker else "no"),
    ]:
        table.add_row(name, str(value))
    console.print(table)
    if report.failures:
        for failure in report.failures:
            console.print(f"[red]invariant failed: {failure}[/red]")
    else:
        console.print("[green]all invariants hold[/green]: accepted == stock sold, no order "
                      "applied twice, every order accounted for and notified once, every "
                      "PEL empty, streams bounded")


if __name__ == "__main__":
    app()
