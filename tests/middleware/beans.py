"""Middlewares and handlers of the middleware tests (``tests.middleware.beans:Name``)."""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from streamboot import CallNext, Message, Middleware, StreamHandler

JOURNAL: list[str] = []
"""What ran, in order: the tests clear it."""
STARTS: list[float] = []


class Outer(Middleware):
    async def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
        JOURNAL.append(f"outer>{message.fields['n']}")
        try:
            result = await call_next(message)
        except Exception as exc:
            JOURNAL.append(f"outer saw {type(exc).__name__}")
            raise
        JOURNAL.append(f"outer<{result}")
        return result


class Tenant(Middleware):
    """The tenant of each entry in every log line of its handling."""

    async def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
        JOURNAL.append(f"tenant>{message.fields['n']}")
        with logger.contextualize(tenant=message.fields.get("tenant", "-")):
            return await call_next(message)


class Forgiving(Middleware):
    """Swallows a failure: the entry then counts as handled (acked)."""

    async def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
        try:
            return await call_next(message)
        except ValueError:
            JOURNAL.append(f"forgiven {message.fields['n']}")
            return None


class NotAsync:
    def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
        return call_next(message)


class Echo(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> str:
        if message.fields.get("fail"):
            raise ValueError(f"bad {message.fields['n']}")
        logger.info("handled {}", message.fields["n"])
        JOURNAL.append(f"handler {message.fields['n']}")
        return f"ok-{message.fields['n']}"


class SyncEcho(StreamHandler[dict[str, str]]):
    def handle(self, message: Message[dict[str, str]]) -> str:
        time.sleep(0.001)  # a blocking driver's call: in a thread
        JOURNAL.append(f"sync handler {message.fields['n']}")
        return f"ok-{message.fields['n']}"


class Stamp(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        STARTS.append(time.monotonic())


class Renamed:
    """Its next step under another name: called as call_next=…, it cannot take it."""

    async def __call__(self, msg: Message[Any], nxt: CallNext) -> Any:
        return await nxt(msg)


class NoNext:
    async def __call__(self, message: Message[Any]) -> Any:
        return None
