"""Working with a dead-letter stream: list, show, replay to the source, purge.

Replay publishes the original fields (``dlq_*`` removed) to the entry's ``dlq_stream``
first and deletes the dead letter only after that publish succeeded: a failure half-way
can leave an entry both replayed and still dead-lettered (replay it again or delete it),
never lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MalformedDeadLetter
from .operator import RedisOperator
from .records import StreamEntry
from .reliability.dead_letter import original_pairs


@dataclass(frozen=True, slots=True)
class Replayed:
    dead_letter_id: str
    stream: str
    new_id: str


async def list_dead_letters(operator: RedisOperator, dlq: str,
                            count: int = 50) -> list[StreamEntry]:
    return await operator.xrange(dlq, count=count)


async def replay(operator: RedisOperator, dlq: str, ids: list[str] | None) -> list[Replayed]:
    """Replay the given dead letters (all when ``ids`` is None), oldest first."""
    entries = await _exact(operator, dlq) if ids is None else [
        e for i in ids for e in await operator.xrange_exact(dlq, i, i, 1)]
    done = []
    for entry in entries:
        target = entry.fields.get("dlq_stream")
        if not target:
            raise MalformedDeadLetter(f"dead letter {entry.id} has no dlq_stream field")
        new_id = await operator.xadd_pairs(target, original_pairs(entry))
        await operator.xdel(dlq, [entry.id])  # only once the publish succeeded
        done.append(Replayed(entry.id, target, new_id))
    return done


async def _exact(operator: RedisOperator, dlq: str, page: int = 500) -> list[StreamEntry]:
    """Every dead letter with its exact fields, oldest first, read a page at a time."""
    out: list[StreamEntry] = []
    start = "-"
    while rows := await operator.xrange_exact(dlq, start, "+", page):
        out.extend(rows)
        start = "(" + rows[-1].id
    return out


async def purge(operator: RedisOperator, dlq: str) -> int:
    count = await operator.xlen(dlq) if await operator.exists(dlq) else 0
    await operator.client.delete(dlq)
    return count
