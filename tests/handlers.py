"""Handler beans used by the tests (importable as ``tests.handlers:Name``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from loguru import logger
from pydantic import BaseModel
from typing_extensions import TypedDict

from streamboot import BatchHandler, Message, StreamHandler
from streamboot.listener.idempotency import IdempotentScript


class Order(BaseModel):
    order_id: str
    qty: int


class Recorder:
    """Counts how often each entry id was handled, to prove 'exactly once'."""

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.payloads: list[object] = []
        self.deliveries: dict[str, int | None] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, message: Message[object]) -> None:
        with self._lock:
            self.in_flight -= 1
            self.seen[message.id] += 1
            self.payloads.append(message.payload)
            self.deliveries[message.id] = message.delivery_count


class RecordingHandler(StreamHandler[Order]):
    def __init__(self, recorder: Recorder, delay: float = 0.0) -> None:
        self.recorder = recorder
        self.delay = delay

    async def handle(self, message: Message[Order]) -> None:
        self.recorder.enter()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.recorder.leave(message)  # type: ignore[arg-type]


class RawHandler(StreamHandler[dict[str, str]]):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.recorder.enter()
        self.recorder.leave(message)  # type: ignore[arg-type]


class FailingHandler(StreamHandler[dict[str, str]]):
    """Fails every entry whose ``fail`` field is set."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if message.payload.get("fail"):
            raise RuntimeError(f"boom on {message.payload['n']}")
        self.recorder.enter()
        self.recorder.leave(message)  # type: ignore[arg-type]


class BlockingSyncHandler(StreamHandler[Order]):
    """A plain ``def`` handler that blocks, as real sync code (requests, psycopg) does."""

    def __init__(self, recorder: Recorder, release: threading.Event) -> None:
        self.recorder = recorder
        self.release = release

    def handle(self, message: Message[Order]) -> None:
        self.recorder.enter()
        self.recorder.threads.add(threading.current_thread().name)
        self.release.wait(10)
        logger.info("sync handled {}", message.payload.order_id)
        self.recorder.leave(message)  # type: ignore[arg-type]


class LoggingHandler(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        logger.info("user log line for {}", message.id)


class CountingFileHandler(StreamHandler[dict[str, str]]):
    """Appends each handled id to the file named by the entry, for subprocess tests.

    A plain ``def``: file I/O blocks, so it runs in the listener's thread pool.
    """

    def handle(self, message: Message[dict[str, str]]) -> None:
        with open(message.payload["out"], "a") as out:
            out.write(message.id + "\n")


class NotAHandler:
    pass


class FlakyHandler(StreamHandler[dict[str, str]]):
    """Fails the first ``fail_times`` deliveries of every entry, then succeeds."""

    def __init__(self, recorder: Recorder, fail_times: int) -> None:
        self.recorder = recorder
        self.fail_times = fail_times
        self.attempts: Counter[str] = Counter()

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.attempts[message.id] += 1
        self.recorder.deliveries.setdefault("log:" + message.id, None)
        if self.attempts[message.id] <= self.fail_times:
            raise ConnectionError(f"payment gateway down (attempt {self.attempts[message.id]})")
        self.recorder.enter()
        self.recorder.leave(message)  # type: ignore[arg-type]


class SlowHandler(StreamHandler[dict[str, str]]):
    def __init__(self, recorder: Recorder, seconds: float) -> None:
        self.recorder = recorder
        self.seconds = seconds

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.recorder.enter()
        await asyncio.sleep(self.seconds)
        self.recorder.leave(message)  # type: ignore[arg-type]


class LedgerHandler(StreamHandler[dict[str, str]]):
    """Applies each order once in effect: its side effect and the idempotency marker are
    one script. ``sleep`` in the entry slows it down (to be killed mid-way)."""

    def __init__(self, redis: Any) -> None:
        self.apply = IdempotentScript(redis, "return redis.call('INCR', KEYS[1])")

    async def handle(self, message: Message[dict[str, str]]) -> None:
        await asyncio.sleep(float(message.payload.get("sleep", "0")))
        order_id = message.payload["order_id"]
        await self.apply(message, keys=[f"applied:{{{order_id}}}"])


class PoisonHandler(StreamHandler[dict[str, str]]):
    """Records each application (with the delivery it came with) in Redis; an entry with
    ``poison`` kills the process from inside its handler, as a segfault or OOM kill would."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if message.payload.get("poison"):
            os._exit(1)
        await self.redis.rpush(f"applied:{message.payload['n']}", str(message.delivery_count))


RELEASE_HUNG = threading.Event()
"""What a hung handler waits for (bounded at 60 s): nothing sets it in a worker process —
the tests end those by signal — and an in-process test may set it to let them go."""


class HangingHandler(StreamHandler[dict[str, str]]):
    """Writes 'started <id>' to the entry's ``out`` file, then, for ``hang`` entries, never
    returns: ``how=thread`` blocks its thread, ``how=loop`` blocks the event loop itself."""

    async def handle(self, message: Message[dict[str, str]]) -> None:
        with open(message.payload["out"], "a") as out:  # noqa: ASYNC230 - a tiny test file
            out.write(f"started {message.id}\n")
        if message.payload.get("hang") == "loop":
            RELEASE_HUNG.wait(60)  # the point: an async handler blocking the event loop
        elif message.payload.get("hang") == "await":
            await asyncio.Event().wait()
        elif message.payload.get("hang") == "deaf":  # swallows every cancellation
            while True:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()


class HangingSyncHandler(StreamHandler[dict[str, str]]):
    def handle(self, message: Message[dict[str, str]]) -> None:
        with open(message.payload["out"], "a") as out:
            out.write(f"started {message.id}\n")
        if message.payload.get("hang"):
            RELEASE_HUNG.wait(60)


@dataclass
class Shipment:
    order_id: str
    parcels: int


class ShipmentHandler(StreamHandler[Shipment]):
    """A dataclass payload: built through pydantic's TypeAdapter, validated too."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle(self, message: Message[Shipment]) -> None:
        self.recorder.enter()
        self.recorder.leave(message)  # type: ignore[arg-type]


class Refund(TypedDict):
    order_id: str
    cents: int


class RefundHandler(StreamHandler[Refund]):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def handle(self, message: Message[Refund]) -> None:
        self.recorder.enter()
        self.recorder.leave(message)  # type: ignore[arg-type]


class TextHandler(StreamHandler[str]):
    """A payload type no codec builds: refused by name, never handed a dict."""

    async def handle(self, message: Message[str]) -> None:
        return None


class NoHandleMethod(StreamHandler[dict[str, str]]):
    pass


class TwoArgumentHandle(StreamHandler[dict[str, str]]):
    # Incompatible on purpose: check must refuse it.
    async def handle(self, message: Message[dict[str, str]], extra: str) -> None:  # type: ignore[override]
        return None


class JournalHandler(StreamHandler[dict[str, str]]):
    """Writes ``start <consumer> <id> <unix time>`` to the file named by the entry's
    ``out`` field before anything else, then waits, then writes ``end …``: what a process
    started, and when, as the test sees it from outside.

    How long it waits is the process's own (``TEST_HANDLER_SLEEP``, seconds), so two
    processes of one application file can differ; an entry with ``block`` set holds the
    event loop itself for that many seconds (a sync call inside an ``async def``).
    """

    async def handle(self, message: Message[dict[str, str]]) -> None:
        journal(message, "start")
        if message.payload.get("block"):
            time.sleep(float(message.payload["block"]))  # noqa: ASYNC251 - the point
        await asyncio.sleep(float(os.environ.get("TEST_HANDLER_SLEEP", "0")))
        journal(message, "end")


class JournalBatchHandler(BatchHandler[dict[str, str]]):
    """JournalHandler's journal, a batch at a time: every entry's ``start`` line, the
    process's ``TEST_HANDLER_SLEEP``, every entry's ``end`` line."""

    async def handle_batch(self, messages: list[Message[dict[str, str]]]) -> None:
        for message in messages:
            journal(message, "start")
        await asyncio.sleep(float(os.environ.get("TEST_HANDLER_SLEEP", "0")))
        for message in messages:
            journal(message, "end")


def journal(message: Message[dict[str, str]], what: str) -> None:
    with open(message.payload["out"], "a") as out:
        out.write(f"{what} {message.consumer} {message.id} {time.time():.6f}\n")


class GcHandler(StreamHandler[dict[str, str]]):
    """Writes the process's collector settings (young threshold, frozen objects) to the
    file named by the entry's ``out`` field: what ``application.gc`` did to the process."""

    def handle(self, message: Message[dict[str, str]]) -> None:
        import gc

        with open(message.payload["out"], "w") as out:
            out.write(f"{gc.get_threshold()[0]} {gc.get_freeze_count()}\n")
