"""``ordering_key`` on an unpartitioned listener holds within one process only: every
process reading its one stream competes for the same entries. A supervisor warns about its
own ``--workers`` (cli/run.py); this says it when another process — another pod or host
with the same file — reads the same group now: as the second one starts, and in the first
one at its next monitor refresh (``metrics.refresh``), once per process."""

from __future__ import annotations

import re
from collections.abc import Sequence

from loguru import logger

from ..listener.spec import ListenerSpec
from ..wire.operator import RedisOperator
from ..wire.records import ConsumerInfo

ACTIVE_MS = 10_000
"""A consumer that read within this long is reading now (a listener's read blocks at most
``poll_timeout``, far less; a consumer of a stopped process idles on)."""

_WORKER = re.compile(r"-w\d+$")


def other_readers(consumers: Sequence[ConsumerInfo], me: str, worker: bool) -> list[str]:
    """The consumers of the group other than ``me`` that read lately, leaving out a
    worker's siblings (same name but the ``-w<i>`` index: its supervisor warned of
    them)."""
    siblings = _WORKER.sub("", me) if worker else None
    found = []
    for consumer in consumers:
        if consumer.name == me or consumer.idle_ms > ACTIVE_MS:
            continue
        if siblings is not None and _WORKER.sub("", consumer.name) == siblings:
            continue
        found.append(consumer.name)
    return sorted(found)


async def say_if_shared(operator: RedisOperator, spec: ListenerSpec, worker: bool) -> bool:
    """One warning when other processes read ``spec``'s group now; whether it was said.
    Advisory: a failure to look is not worth more than a debug line."""
    try:
        consumers = await operator.info_consumers(spec.stream, spec.group)
    except Exception as exc:
        logger.debug("listeners.{}: could not list the group's consumers: {}", spec.name, exc)
        return False
    others = other_readers(consumers, spec.consumer, worker)
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5
                                        else "")
        logger.warning("listeners.{}: ordering_key holds within each process only: {} also "
                       "read group {} of {} now (another pod or host with this file?); "
                       "set partitions to keep each key's order across processes "
                       "(docs/scaling.md)", spec.name, shown, spec.group, spec.stream)
    return bool(others)
