"""Handlers of the scale benchmark (bench/scale.py), imported by its worker processes."""

from __future__ import annotations

import os
import time

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
