"""Handlers of the scale benchmarks (bench/scale.py, bench/handover.py), imported by the
processes they start."""

from __future__ import annotations

import os
import time
from typing import Any

from streamboot import Message, StreamHandler

WORK_US = float(os.environ.get("BENCH_WORK_US", "0"))
"""CPU each call burns, in microseconds (0: a no-op handler)."""


class BusyHandler(StreamHandler[dict[str, str]]):
    """Burns ``BENCH_WORK_US`` of CPU per entry, as a handler that parses, computes or
    renders does: what more worker processes are for."""

    async def handle(self, message: Message[dict[str, str]]) -> None:
        if WORK_US:
            until = time.perf_counter() + WORK_US / 1e6
            while time.perf_counter() < until:
                pass


class StartsHandler(StreamHandler[dict[str, str]]):
    """Records when each call starts, and in which member (bench/handover.py): the gap
    in a partition's starts across a hand-over is the time nobody handled it."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def handle(self, message: Message[dict[str, str]]) -> None:
        await self.redis.rpush(f"starts:{message.stream}",
                               f"{time.time():.6f} {message.consumer}")
