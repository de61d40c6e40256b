"""``streamboot replay``: move a group's last-delivered id back (XGROUP SETID) so the
entries after ``--from`` are delivered again — the seeds' replay test before a deploy."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NoGroupError
from .ids import before
from .operator import RedisOperator

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
        return (f"group {self.group!r} on {self.stream!r}: last-delivered {self.current} -> "
                f"{self.target}; {count} entries will be delivered again")


async def plan_replay(operator: RedisOperator, stream: str, group: str,
                      from_id: str) -> ReplayPlan:
    groups = {g.name: g for g in await operator.info_groups(stream)}
    if group not in groups:
        raise NoGroupError(stream, group)
    current = groups[group].last_delivered_id
    # SETID takes the id *before* the first entry to redeliver: "--from X" includes X.
    target = before(from_id)
    again = await operator.xrange(stream, from_id, current, count=_COUNT_LIMIT + 1)
    return ReplayPlan(stream, group, current, target, min(len(again), _COUNT_LIMIT),
                      len(again) > _COUNT_LIMIT)


async def apply_replay(operator: RedisOperator, plan: ReplayPlan) -> None:
    await operator.set_group_id(plan.stream, plan.group, plan.target)
