"""Handlers of the scale-out tests: they record what ran where, and when."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from streamboot import Message, StreamHandler


class Event(BaseModel):
    customer: str
    seq: int
    fail: bool = False
    fail_first: bool = False
    """Fails on its first delivery only (then the retry succeeds)."""


@dataclass(frozen=True)
class Ran:
    stream: str
    customer: str
    seq: int
    started: float
    ended: float
    delivery: int | None


class EventHandler(StreamHandler[Event]):
    """Records every call; ``fail`` entries raise. A small await per call lets calls of
    different entries overlap, which the ordering tests need to be meaningful."""

    delay = 0.002

    def __init__(self) -> None:
        self.ran: list[Ran] = []
        self.running = 0
        self.most_at_once = 0

    async def handle(self, message: Message[Event]) -> None:
        started = time.monotonic()
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running -= 1
        event = message.payload
        self.ran.append(Ran(message.stream, event.customer, event.seq, started,
                            time.monotonic(), message.delivery_count))
        if event.fail or (event.fail_first and message.delivery_count == 1):
            raise RuntimeError(f"{event.customer}#{event.seq} fails")


class LedgerEventHandler(StreamHandler[Event]):
    """For worker processes: records each handling in Redis (``handled:{customer}``, one
    list item ``seq consumer``) so the test process sees what every worker did."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def handle(self, message: Message[Event]) -> None:
        event = message.payload
        await asyncio.sleep(self.delay)
        await self.redis.rpush(f"handled:{{{event.customer}}}",
                               f"{event.seq} {message.consumer}")

    delay = 0.001


class TimelineHandler(StreamHandler[Event]):
    """For several processes at once: each call is recorded in Redis
    (``timeline:{orders:p1}:c7``: in the partition's hash slot, so the fenced write below
    is one script on a cluster too; one item ``seq start end epoch consumer stream``, wall-clock
    times of this machine), so the test can tell order, overlaps and duplicates of each
    key across every member. Each call takes 5–20 ms, so that calls of one key in two
    members would overlap if the fence let them.

    The record is written as docs/scaling.md tells a store to fence itself: refused when
    its ``message.epoch`` is below the highest epoch already written for the partition
    (then it goes to ``refused:{orders:p1}:c7`` instead and the call fails: not acked)."""

    FENCED_WRITE = """
    local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
    local epoch = tonumber(ARGV[1])
    if epoch < seen then
      redis.call('RPUSH', KEYS[3], ARGV[2])
      return 0
    end
    redis.call('SET', KEYS[1], epoch)
    redis.call('RPUSH', KEYS[2], ARGV[2])
    return 1
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.write = redis.register_script(self.FENCED_WRITE)
        delay = os.environ.get("TIMELINE_DELAY")
        self.delay = float(delay) if delay else None
        """Seconds per call when set (a slow handler), else 5–20 ms."""

    async def handle(self, message: Message[Event]) -> None:
        event = message.payload
        started = time.time()
        await asyncio.sleep(self.delay if self.delay is not None
                            else 0.005 + (event.seq * 7919 % 16) / 1000)
        record = (f"{event.seq} {started:.6f} {time.time():.6f} {message.epoch} "
                  f"{message.consumer} {message.stream}")
        written = await self.write(
            keys=[f"fence:{message.stream}", f"timeline:{message.stream}:{event.customer}",
                  f"refused:{message.stream}:{event.customer}"],
            args=[message.epoch or 0, record])
        if not written:
            raise RuntimeError(f"stale owner: epoch {message.epoch} of {message.stream}")
