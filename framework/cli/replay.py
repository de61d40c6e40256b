"""``streamboot replay``: move a group's last-delivered id back (XGROUP SETID) so the
entries after ``--from`` are delivered again — the seeds' replay test before a deploy.

Only ever back: a ``--from`` after the group's last-delivered id would move the group
forward, past entries it was never delivered (a mistyped id would silently skip
everything written until then), so it is refused."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NoGroupError, UsageError
from ..wire.ids import before, id_key
from ..wire.operator import RedisOperator

_COUNT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    stream: str
    group: str
    current: str
    target: str
    entries: int
    more: bool  # more than ``entries`` (counting stopped at the limit)

    def describe(self) -> str:
        count = f"{self.entries}{'+' if self.more else ''}"
        noun = "entry" if self.entries == 1 and not self.more else "entries"
        return (f"group {self.group!r} on {self.stream!r}: last-delivered {self.current} -> "
                f"{self.target}; {count} {noun} will be delivered again")


async def plan_replay(operator: RedisOperator, stream: str, group: str,
                      from_id: str) -> ReplayPlan:
    groups = {g.name: g for g in await operator.info_groups(stream)}
    if group not in groups:
        raise NoGroupError(stream, group)
    current = groups[group].last_delivered_id
    # SETID takes the id *before* the first entry to redeliver: "--from X" includes X.
    target = before(from_id)
    if id_key(target) > id_key(current):
        raise UsageError(
            f"--from {from_id} is after the last entry group {group!r} was delivered "
            f"({current}): replay only delivers entries again, and moving the group forward "
            "would skip entries it never got; nothing changed")
    again = await operator.xrange(stream, from_id, current, count=_COUNT_LIMIT + 1)
    return ReplayPlan(stream, group, current, target, min(len(again), _COUNT_LIMIT),
                      len(again) > _COUNT_LIMIT)


async def apply_replay(operator: RedisOperator, plan: ReplayPlan) -> None:
    await operator.set_group_id(plan.stream, plan.group, plan.target)
