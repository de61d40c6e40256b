"""The scheduler's stop: once it returns, no job code runs, and it returns in bounded time.

A job still running while the application closes its Redis client made a connection after
the close and left it open (seen as a ResourceWarning in a CI run). These run APScheduler
itself; the jobs are plain coroutines, since what is tested is the stop, not Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from streamboot.jobs.schedule import Every, schedule, stop_scheduler


async def test_the_stop_returns_after_a_cancelled_run_has_cleaned_up() -> None:
    started = asyncio.Event()
    cleaned: list[str] = []

    async def job() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # a command waiting on Redis
        finally:
            await asyncio.sleep(0.05)  # its cleanup awaits too (a connection released)
            cleaned.append("cleaned")

    scheduler = AsyncIOScheduler()
    schedule(scheduler, Every("slow", timedelta(seconds=60), job, at_start=True))
    scheduler.start()
    await asyncio.wait_for(started.wait(), 5)
    await stop_scheduler(scheduler, grace=1.0)
    assert cleaned == ["cleaned"]


async def test_a_run_that_ignores_its_cancel_bounds_the_stop() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def job() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # a job that swallows its cancel must not hang the stop

    scheduler = AsyncIOScheduler()
    schedule(scheduler, Every("stubborn", timedelta(seconds=60), job, at_start=True))
    scheduler.start()
    await asyncio.wait_for(started.wait(), 5)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await stop_scheduler(scheduler, grace=0.3)
    took = loop.time() - began
    release.set()
    assert 0.3 <= took < 1.0
