"""Batch handlers of the batch tests (``tests.batches.beans:Name``)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from pydantic import BaseModel

from streamboot import BatchFailures, BatchHandler, CallNext, Message, Middleware, StreamHandler

CALLS: list[list[str]] = []
"""Each handle_batch call's entry ids, in order: the tests clear it."""
VALUES: list[list[str]] = []
"""Each call's ``n`` fields."""
DELIVERIES: dict[str, list[int]] = {}
"""Entry id → the delivery counts it was handed over with."""
JOURNAL: list[str] = []
_lock = threading.Lock()


def clear() -> None:
    for kept in (CALLS, VALUES, JOURNAL):
        kept.clear()
    DELIVERIES.clear()


def _record(messages: list[Message[Any]]) -> None:
    with _lock:
        CALLS.append([m.id for m in messages])
        VALUES.append([str(m.fields.get("n")) for m in messages])
        for m in messages:
            DELIVERIES.setdefault(m.id, []).append(m.delivery_count or 0)


class Collect(BatchHandler[dict[str, str]]):
    """Succeeds on all, except entries with ``fail`` (failed by id, with a reason) and
    batches holding ``boom`` on their first delivery (an exception: all fail)."""

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> BatchFailures | None:
        _record(messages)
        if any(m.fields.get("boom") and m.delivery_count == 1 for m in messages):
            raise RuntimeError("the bulk call failed")
        failed: dict[str, BaseException | str] = {}
        for m in messages:
            if m.fields.get("fail") == "text":
                failed[m.id] = f"row {m.fields['n']} rejected"
            elif m.fields.get("fail"):
                failed[m.id] = ValueError(f"bad {m.fields['n']}")
        return failed or None


class SyncCollect(BatchHandler[dict[str, str]]):
    def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        assert threading.current_thread() is not threading.main_thread()
        _record(messages)


class Order(BaseModel):
    n: int
    item: str


class Orders(BatchHandler[Order]):
    async def handle_batch(self, messages: list[Message[Order]]) -> None:
        assert all(isinstance(m.payload, Order) for m in messages)
        _record(messages)


class Slow(BatchHandler[dict[str, str]]):
    """Sleeps past handler_timeout on its first delivery."""

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        _record(messages)
        if messages[0].delivery_count == 1:
            await asyncio.sleep(30)


class Stubborn(BatchHandler[dict[str, str]]):
    """Ignores its cancellation on the first delivery (a sync-looking await loop)."""

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        _record(messages)
        if messages[0].delivery_count == 1:
            until = time.monotonic() + 4
            while time.monotonic() < until:
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    continue


class ReturnsList(BatchHandler[dict[str, str]]):
    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> Any:
        _record(messages)
        return [m.id for m in messages]


class Strangers(BatchHandler[dict[str, str]]):
    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> Any:
        _record(messages)
        return {"0-1": "not one of mine"}


class OneAtATime(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        JOURNAL.append(message.id)


class Misplaced(StreamHandler[dict[str, str]]):
    """handle_batch on a StreamHandler: never called, so refused."""

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        pass


class WithHandle(BatchHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        pass


class Counting(Middleware):
    """Around each batch: sees the list, and the outcome after."""

    async def __call__(self, message: Any, call_next: CallNext) -> Any:
        JOURNAL.append(f"before {len(message)}")
        result = await call_next(message)
        JOURNAL.append(f"after {result!r}")
        return result


class BothKinds(StreamHandler[dict[str, str]]):
    """handle and handle_batch on a StreamHandler: the latter would never be called."""

    async def handle(self, message: Message[dict[str, str]]) -> None:
        pass

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        pass
