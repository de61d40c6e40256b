"""The jobs' schedule: each feature says what it runs and how often (:class:`Every`); the
application only hands those to APScheduler. Every job runs through :func:`guarded`: an
exception is logged and the job simply runs again at its next time; it never kills the
scheduler or the process."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

from loguru import logger

from ..wire.redis_errors import describe_permanent, describe_unavailable, is_permanent, is_transient


class _CancelledAtStop(logging.Filter):
    """The scheduler's shutdown cancels a job run that had not begun yet, before
    :func:`guarded` can see it, and APScheduler logs that as "Error running job" with a
    CancelledError: a stop, not an error. Those records are dropped; no other."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, asyncio.CancelledError)


_CANCELLED_AT_STOP = _CancelledAtStop()


class _SkippedWhileRunning(logging.Filter):
    """A job run that outlasts its interval (a recovery run handling many entries, a
    command waiting on a silent socket for ``socket_timeout``) makes APScheduler warn at
    every interval it skips: twenty lines for one slow run. Those records are dropped;
    :func:`note_skipped` counts them and :func:`guarded` says it once, when the run ends."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str)
                    and record.msg.startswith('Execution of job "%s" skipped: maximum'))


_SKIPPED_WHILE_RUNNING = _SkippedWhileRunning()
_skipped: dict[str, int] = {}
"""Runs skipped, per job id, while its current run goes on."""


def quiet_cancellations_at_stop() -> None:
    """Install the filters on APScheduler's loggers (once; idempotent)."""
    logging.getLogger("apscheduler.executors.default").addFilter(_CANCELLED_AT_STOP)
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_WHILE_RUNNING)


def note_skipped(event: Any) -> None:
    """APScheduler's ``EVENT_JOB_MAX_INSTANCES``: a run was due while the last still runs."""
    _skipped[event.job_id] = _skipped.get(event.job_id, 0) + 1


JOBS_AT_ONCE = 8
"""Job runs in progress at once in one process. Every listener has its own recovery and
cleanup jobs, all due together at start and then on the same beat: 200 listeners'
recoveries at once took 200 pooled connections (the pool grew to its cap of 100 and the
rest waited). Eight at a time keeps the pool small; each run takes milliseconds, so 1,000
listeners' runs still finish within a second of their time."""

@dataclass(slots=True)
class _LoopJobs:
    """One event loop's job runs (tests run several loops in one process)."""

    turns: asyncio.Semaphore
    running: set[asyncio.Task[Any]]


_loops: dict[asyncio.AbstractEventLoop, _LoopJobs] = {}


def _loop_jobs() -> _LoopJobs:
    loop = asyncio.get_running_loop()
    jobs = _loops.get(loop)
    if jobs is None:
        for old in [old for old in _loops if old.is_closed()]:
            del _loops[old]
        jobs = _loops[loop] = _LoopJobs(asyncio.Semaphore(JOBS_AT_ONCE), set())
    return jobs


async def stop_scheduler(scheduler: AsyncIOScheduler, grace: float) -> None:
    """Stop the scheduler and wait, at most ``grace`` seconds, for the runs it cancelled.

    Why not ``shutdown(wait=False)`` alone: it only asks the runs in progress to stop. A
    cancelled run goes on for a few turns of the loop (redis-py, cancelled while it
    connects, awaits the pool's lock to give its connection back), and meanwhile the
    application closed the client: the connection made after the close stayed open (a
    ResourceWarning in a CI run). Waiting here means no job code runs once this returns."""
    jobs = _loop_jobs()
    scheduler.shutdown(wait=False)  # cancels the runs in progress
    running = set(jobs.running)
    if running:
        _, late = await asyncio.wait(running, timeout=grace)
        if late:
            logger.warning("{} job run{} still running {:g}s after the stop", len(late),
                           "" if len(late) == 1 else "s", grace)


def guarded(name: str, job: Callable[[], Awaitable[Any]],
            interval: timedelta | None = None) -> Callable[[], Awaitable[None]]:
    """``job`` with its failures logged, never raised; a run that outlasted ``interval``
    (so that runs were skipped) says so once when it ends."""

    async def run() -> None:
        with logger.contextualize(job=name):
            started = time.monotonic()
            jobs = _loop_jobs()
            task = asyncio.current_task()
            if task is not None:
                jobs.running.add(task)
            try:
                async with jobs.turns:
                    await job()
            except asyncio.CancelledError:
                # The scheduler's shutdown cancels a run in progress (a recovery run may be
                # handling an entry): the job's task ends here, quietly; the entry it was
                # handling stays with the listener, which finishes or leaves it pending.
                logger.debug("job run cancelled at stop")
            except Exception as exc:
                if is_transient(exc):
                    logger.warning("job skipped: {}", describe_unavailable(exc))
                elif is_permanent(exc):
                    logger.error("job failed: {}; it runs again next time", describe_permanent(exc))
                else:
                    logger.opt(exception=exc).error("job failed; it runs again next time")
            finally:
                if task is not None:
                    jobs.running.discard(task)
                skipped = _skipped.pop(name, 0)
                took = time.monotonic() - started
                if skipped and interval is not None and took > interval.total_seconds():
                    logger.info("job run took {:.1f}s, longer than its interval ({:g}s): {} "
                                "{} skipped meanwhile", took, interval.total_seconds(),
                                skipped, "run was" if skipped == 1 else "runs were")

    run.__name__ = name
    return run


@dataclass(frozen=True, slots=True)
class Every:
    """A job and when it runs: every ``interval``; the first time at once (``at_start``:
    orphans of a consumer that died before this start, a stream to trim now) or after one
    interval."""

    id: str
    interval: timedelta
    run: Callable[[], Awaitable[Any]]
    at_start: bool = False


def schedule(scheduler: AsyncIOScheduler, job: Every) -> None:
    options = {"next_run_time": datetime.now(UTC)} if job.at_start else {}
    scheduler.add_job(guarded(job.id, job.run, job.interval), "interval",
                      seconds=job.interval.total_seconds(), id=job.id, **options)
