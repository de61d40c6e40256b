"""The garbage collector tuned for a consumer process (``application.gc: tuned``).

CPython runs a young-generation collection every 700 allocations of container objects,
and every hundredth one is a full collection that walks every object alive — the loaded
modules, pydantic's schemas, the beans. A consumer allocates a few such objects per entry
(its fields, its message, its payload), so at 150,000 entries/s the collector ran a
full walk of the heap many times a second (docs/performance.md, "The garbage
collector"). Two standard remedies, applied once the application has started:

- ``gc.freeze()`` after a collection: what start-up built is moved to a generation the
  collector never walks again (it lives as long as the process anyway);
- a young threshold of 10,000: collections come 14 times less often. Only reference
  cycles wait longer to be freed; everything else is freed by reference counting as
  before.

Opt-in (``application.gc: tuned``; ``streamboot run``, each worker, or an
``EmbeddedApp``): the gain is large with big reads (COUNT 500: +22 % with a pydantic
payload, +11 % without) and within the machine's noise at COUNT 100, where a paired A/B
could not tell it from a small loss — so the process's owner decides.
"""

from __future__ import annotations

import gc
from typing import Literal

from loguru import logger

YOUNG_THRESHOLD = 10_000


def tune_gc(mode: Literal["tuned", "default"]) -> bool:
    """Apply ``mode`` to this process; True when it tuned the collector."""
    if mode != "tuned":
        return False
    gc.collect()  # start-up's garbage goes now, and is not frozen with what lives
    gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), middle, old)
    logger.debug("garbage collector tuned: {} start-up objects frozen, young threshold {}",
                 gc.get_freeze_count(), max(young, YOUNG_THRESHOLD))
    return True
