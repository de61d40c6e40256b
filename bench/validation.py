"""What validating a read costs, per entry, outside the consumer: pydantic-core's floor
against the framework's share around it (docs/performance.md, issue 25).

    python bench/validation.py [--count 500]

Prints µs per entry, best of 5 rounds: the list call the listener makes
(``TypeAdapter(list[Model])``), ``model_validate`` entry by entry, a model of strings
only, and the listener's plain-text check of a read (dispatch.py's ``_plain_text``).
The collector is set as ``application.gc: tuned`` sets it.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from streamboot.listener.dispatch import _plain_text
from streamboot.wire.records import StreamEntry


class OrderPlaced(BaseModel):  # the benchmark's payload (bench/consumers.py)
    order_id: str
    user_id: str
    product_id: str
    qty: int
    ts: int


class Texts(BaseModel):
    order_id: str
    user_id: str
    product_id: str
    qty: str
    ts: str


def per_entry(count: int, call: Callable[[], Any], rounds: int = 5, reps: int = 400) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(reps):
            call()
        best = min(best, (time.perf_counter() - start) / reps / count * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    count = parser.parse_args().count
    rows = [{"order_id": f"o{i}", "user_id": "user-42", "product_id": "tv-55", "qty": "1",
             "ts": str(time.time_ns())} for i in range(count)]
    entries = [StreamEntry(f"{i}-0", row, [x for pair in row.items() for x in pair])
               for i, row in enumerate(rows)]
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    many = TypeAdapter(list[OrderPlaced]).validate_python
    texts = TypeAdapter(list[Texts]).validate_python
    for name, call in [
        ("TypeAdapter(list[OrderPlaced]), one call", lambda: many(rows)),
        ("OrderPlaced.model_validate, entry by entry",
         lambda: [OrderPlaced.model_validate(row) for row in rows]),
        ("a model of 5 str fields, one call", lambda: texts(rows)),
        ("the plain-text check of the read", lambda: _plain_text(entries)),
    ]:
        print(f"{name:48} {per_entry(count, call):.3f} µs per entry")


if __name__ == "__main__":
    main()
