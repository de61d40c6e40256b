"""Logging through loguru, with stdlib loggers (redis, apscheduler) routed into it.

``diagnose`` is off everywhere: loguru's variable dumps in tracebacks would print
connection URLs and passwords.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING

from loguru import logger

from ..config.models import LoggingSettings

if TYPE_CHECKING:
    from loguru import Record

_CONTEXT_KEYS = ("listener", "stream", "group", "consumer", "entry_id", "job")

ENTRY_ID: ContextVar[str | None] = ContextVar("streamboot_entry_id", default=None)
"""The id of the entry being handled in this task or thread.

Set per entry on the hot path: a ContextVar set/reset costs well under a microsecond,
where ``logger.contextualize`` per entry cost several. A loguru patcher copies it into
``record["extra"]["entry_id"]``, so every line logged while an entry is handled — by the
framework or by the handler, sync or async — carries it.
"""
_patched = False
_tracebacks = False


def handler_traceback(exc: BaseException) -> BaseException | None:
    """What ``logger.opt(exception=…)`` gets for a handler failure: the exception when
    tracebacks are asked for (``logging.tracebacks``, or level DEBUG), else None — an
    expected business failure (a declined card) is one line, not thirty."""
    return exc if _tracebacks else None


def _add_entry_id(record: Record) -> None:
    entry_id = ENTRY_ID.get()
    if entry_id is not None and "entry_id" not in record["extra"]:
        record["extra"]["entry_id"] = entry_id


def install_entry_context() -> None:
    """Install the patcher once per process (loguru keeps one global patcher)."""
    global _patched
    if not _patched:
        logger.configure(patcher=_add_entry_id)
        _patched = True


def _format(record: Record) -> str:
    extra = record["extra"]
    context = " ".join(f"{k}={extra[k]}" for k in _CONTEXT_KEYS if k in extra)
    tail = f" <dim>[{context}]</dim>" if context else ""
    return (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
        "<cyan>{name}</cyan> {message}" + tail.replace("{", "{{").replace("}", "}}")
        + "\n{exception}"
    )


class _InterceptHandler(logging.Handler):
    """loguru's documented recipe for taking over the stdlib logging module."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(settings: LoggingSettings) -> None:
    global _tracebacks
    _tracebacks = settings.tracebacks or settings.level in ("TRACE", "DEBUG")
    logger.remove()
    if settings.json_lines:
        logger.add(sys.stderr, level=settings.level, serialize=True, diagnose=False,
                   backtrace=False)
    else:
        logger.add(sys.stderr, level=settings.level, format=_format, diagnose=False,
                   backtrace=False, colorize=None)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
