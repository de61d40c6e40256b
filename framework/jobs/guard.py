"""Every job runs through :func:`guarded`: an exception is logged and the job simply
runs again at its next time; it never kills the scheduler or the process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from framework.errors import describe_unavailable, is_transient


def guarded(name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        with logger.contextualize(job=name):
            try:
                await job()
            except Exception as exc:
                if is_transient(exc):
                    logger.warning("job skipped: {}", describe_unavailable(exc))
                else:
                    logger.opt(exception=exc).error("job failed; it runs again next time")

    run.__name__ = name
    return run
