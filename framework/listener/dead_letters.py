"""Dead letters, in one place: what a dead-lettered entry's fields are, and how an admin
lists, shows, replays and purges them (the listener's decision to dead-letter is in
listener/failures.py; the atomic XADD + XACK in wire/scripts.py).

The original ``[name, value, …]`` pairs come first and unchanged — names the entry may share
with ours (``dlq_reason``…), repeated names and non-UTF-8 bytes included — so the dead letter
is the entry as it came. ``dlq_fields`` (last) says how many pairs are original, which is
what ``dlq replay`` republishes.

Replay publishes the original fields to the entry's ``dlq_stream`` first and deletes the
dead letter only after that publish succeeded: a failure half-way can leave an entry both
replayed and still dead-lettered (replay it again or delete it), never lost.
"""


from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..errors import MalformedDeadLetter, WrongTypeError
from ..wire.ids import format_id, parse_id
from ..wire.operator import RedisOperator
from ..wire.records import StreamEntry

REASON_MAX_DELIVERIES = "max_deliveries"
REASON_INVALID_PAYLOAD = "invalid_payload"
REASON_UNDECODABLE = "undecodable"
REASON_TIMEOUT = "handler_timeout"
ORIGINAL_COUNT = "dlq_fields"
DEAD_LETTER_FIELDS = {
    "dlq_reason": "why: max_deliveries (the last error in dlq_error, a handler_timeout's "
                  "too), invalid_payload or undecodable",
    "dlq_error": "the last error, `Type: message` (empty when there was none)",
    "dlq_stream": "the stream the entry was read from (where a replay publishes it)",
    "dlq_id": "the entry's id in that stream",
    "dlq_group": "the group that could not handle it",
    "dlq_deliveries": "how often it was delivered (empty when unknown)",
    "dlq_at": "when it was dead-lettered (ISO 8601, UTC)",
    ORIGINAL_COUNT: "how many of the first field pairs are the entry's own",
}
"""The fields a dead letter adds after the entry's own, and what each says (the AsyncAPI
document's ``DeadLetter`` message)."""


def describe_error(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 2000 else text[:1997] + "..."


def dead_letter_pairs(
    entry: StreamEntry,
    *,
    reason: str,
    error: BaseException | None,
    stream: str,
    group: str,
    deliveries: int | None,
    now: datetime | None = None,
) -> list[str]:
    """``[name, value, …]``: the entry's own pairs, then the ``dlq_*`` ones."""
    at = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    original = entry.pairs
    return [
        *original,
        "dlq_reason", reason,
        "dlq_error", describe_error(error),
        "dlq_stream", stream,
        "dlq_id", entry.id,
        "dlq_group", group,
        "dlq_deliveries", "" if deliveries is None else str(deliveries),
        "dlq_at", at,
        ORIGINAL_COUNT, str(len(original) // 2),
    ]


def original_pairs(entry: StreamEntry) -> list[str]:
    """A dead letter's original ``[name, value, …]``, as first published."""
    pairs = entry.pairs
    count = entry.fields.get(ORIGINAL_COUNT)
    if count is not None and count.isdigit() and 2 * int(count) <= len(pairs):
        return pairs[:2 * int(count)]
    # Written before dlq_fields existed: the originals are the non-dlq_* fields.
    return [text for name, value in original_fields(entry.fields).items()
            for text in (name, value)]


def original_fields(fields: Mapping[str, str]) -> dict[str, str]:
    """Legacy dead letters: the fields without the ``dlq_*`` ones."""
    return {k: v for k, v in fields.items() if not k.startswith("dlq_")}


def dead_letter_meta(entry: StreamEntry) -> dict[str, str]:
    """The ``dlq_*`` fields a dead letter added (after its own pairs). Read from there, not
    from ``entry.fields``: an entry may carry a field of its own named ``dlq_reason``, and
    that one must not decide what the dead letter says about itself."""
    meta = entry.pairs[len(original_pairs(entry)):]
    return {meta[i]: meta[i + 1] for i in range(0, len(meta) - 1, 2)}


def matches(entry: StreamEntry, reason: str | None = None,
            where: Sequence[tuple[str, str]] = ()) -> bool:
    """Whether a dead letter is one an operator selected: its ``dlq_reason`` is ``reason``
    (any when None) and, for every ``(field, value)`` of ``where``, one of the entry's
    ORIGINAL fields named ``field`` holds exactly ``value`` (a name given twice matches on
    either). All conditions must hold; none given matches every dead letter.

    Pure, so ``dlq replay --reason/--where`` and the console's "replay by filter" select
    the same dead letters; the original fields are the ones a replay republishes, which is
    what an operator filters on (``order_id=o-17``), never our ``dlq_*`` bookkeeping."""
    if reason is not None and dead_letter_meta(entry).get("dlq_reason") != reason:
        return False
    pairs = original_pairs(entry)
    own = set(zip(pairs[::2], pairs[1::2], strict=False))
    return all((name, value) in own for name, value in where)


def describe_match(reason: str | None, where: Sequence[tuple[str, str]]) -> str:
    """``reason max_deliveries and order_id=o-1``: a filter as an operator typed it, for
    the line that says nothing matched."""
    said = ([f"reason {reason}"] if reason is not None else []) + [
        f"{name}={value}" for name, value in where]
    return " and ".join(said) or "anything"


# -- operating a dead-letter stream ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replayed:
    dead_letter_id: str
    stream: str
    new_id: str


async def list_dead_letters(operator: RedisOperator, dlq: str,
                            count: int = 50) -> list[StreamEntry]:
    return await operator.xrange(dlq, count=count)


async def select_dead_letters(operator: RedisOperator, dlq: str,
                              match: Callable[[StreamEntry], bool]) -> list[StreamEntry]:
    """Every dead letter of ``dlq`` that ``match`` accepts (e.g. ``lambda e: matches(e,
    "max_deliveries")``), oldest first, with its exact fields: what a replay by filter
    would replay, so a caller can show it, or say that nothing matches, first."""
    return [entry for entry in await _exact(operator, dlq) if match(entry)]


async def replay(operator: RedisOperator, dlq: str, ids: list[str] | None = None,
                 match: Callable[[StreamEntry], bool] | None = None) -> list[Replayed]:
    """Replay the given dead letters (all when ``ids`` is None; of those, only the ones
    ``match`` accepts when given), oldest first."""
    # An id given twice — as written, or as `<ms>` and `<ms>-0` — is one dead letter:
    # replayed once (a second publish would be a second copy of the entry, handled twice).
    entries = await _exact(operator, dlq) if ids is None else [
        e for i in distinct_ids(ids) for e in await operator.xrange_exact(dlq, i, i, 1)]
    if match is not None:
        entries = [entry for entry in entries if match(entry)]
    done = []
    for entry in entries:
        target = entry.fields.get("dlq_stream")
        if not target:
            raise MalformedDeadLetter(f"dead letter {entry.id} has no dlq_stream field")
        new_id = await operator.xadd_pairs(target, original_pairs(entry))
        await operator.xdel(dlq, [entry.id])  # only once the publish succeeded
        done.append(Replayed(entry.id, target, new_id))
    return done


def distinct_ids(ids: Iterable[str]) -> list[str]:
    """Each entry once, in the order given, in its full form (``5`` and ``5-00`` are
    ``5-0``, the one entry Redis means by each)."""
    return list(dict.fromkeys(format_id(parse_id(i)) for i in ids))


async def _exact(operator: RedisOperator, dlq: str, page: int = 500) -> list[StreamEntry]:
    """Every dead letter with its exact fields, oldest first, read a page at a time."""
    out: list[StreamEntry] = []
    start = "-"
    while rows := await operator.xrange_exact(dlq, start, "+", page):
        out.extend(rows)
        start = "(" + rows[-1].id
    return out


async def is_dead_letter_stream(operator: RedisOperator, dlq: str) -> bool:
    """False when ``dlq`` does not exist. Raises when it is not a dead-letter stream — a
    key of another type (WrongTypeError), or a stream whose oldest or newest entry lacks
    ``dlq_stream`` (MalformedDeadLetter) — so a typo cannot list, or purge, a live stream
    as if it held dead letters."""
    kind = await operator.key_type(dlq)
    if kind == "none":
        return False
    if kind != "stream":
        raise WrongTypeError(dlq)
    ends = [*await operator.xrange(dlq, count=1), *await operator.xrevrange(dlq, count=1)]
    for entry in ends:
        if "dlq_stream" not in entry.fields:
            raise MalformedDeadLetter(
                f"{dlq} is not a dead-letter stream: entry {entry.id} has no dlq_stream "
                "field (every dead letter has one); nothing done")
    return True


async def purge(operator: RedisOperator, dlq: str) -> int:
    """Delete the dead-letter stream; how many dead letters it held."""
    if not await is_dead_letter_stream(operator, dlq):
        return 0
    count = await operator.xlen(dlq)
    await operator.delete(dlq)
    return count
