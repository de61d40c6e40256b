"""``streamboot replay``: move a group's last-delivered id back (XGROUP SETID) so the
entries after ``--from`` are delivered again — the seeds' replay test before a deploy.

Only ever back: a ``--from`` after the group's last-delivered id would move the group
forward, past entries it was never delivered (a mistyped id would silently skip
everything written until then), so it is refused. A partitioned listener's stream is
replayed on each partition whose group exists: partitions are read at their own pace, so
one that was not delivered up to ``--from`` yet simply has nothing to deliver again — it
is said, and left as it is, while the others move."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NoGroupError, NotFound, UsageError
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
    ahead: bool = False
    """``--from`` is after the last entry the group was delivered: nothing to deliver again,
    the group is left as it is (only a partition's plan can be so: see plan_partitions)."""

    def describe(self) -> str:
        if self.ahead:
            return (f"group {self.group!r} on {self.stream!r}: last-delivered {self.current} "
                    f"is before --from: nothing to deliver again, left unchanged")
        count = f"{self.entries}{'+' if self.more else ''}"
        noun = "entry" if self.entries == 1 and not self.more else "entries"
        return (f"group {self.group!r} on {self.stream!r}: last-delivered {self.current} -> "
                f"{self.target}; {count} {noun} will be delivered again")


async def plan_replay(operator: RedisOperator, stream: str, group: str,
                      from_id: str, ahead_ok: bool = False) -> ReplayPlan:
    """``ahead_ok``: a ``--from`` after the last-delivered id gives a plan that changes
    nothing (``ahead``) instead of the refusal."""
    groups = {g.name: g for g in await operator.info_groups(stream)}
    if group not in groups:
        raise NoGroupError(stream, group)
    current = groups[group].last_delivered_id
    # SETID takes the id *before* the first entry to redeliver: "--from X" includes X.
    target = before(from_id)
    if id_key(target) > id_key(current) and ahead_ok:
        return ReplayPlan(stream, group, current, current, 0, False, ahead=True)
    if id_key(target) > id_key(current):
        raise UsageError(
            f"--from {from_id} is after the last entry group {group!r} was delivered "
            f"({current}): replay only delivers entries again, and moving the group forward "
            "would skip entries it never got; nothing changed")
    again = await operator.xrange(stream, from_id, current, count=_COUNT_LIMIT + 1)
    return ReplayPlan(stream, group, current, target, min(len(again), _COUNT_LIMIT),
                      len(again) > _COUNT_LIMIT)


async def plan_partitions(operator: RedisOperator, stream: str, keys: list[str], group: str,
                          from_id: str) -> list[ReplayPlan | str]:
    """Per partition key: its plan, or the key itself when its group does not exist (no
    consumer read it yet: nothing to replay there). NotFound when no partition has it."""
    plans: list[ReplayPlan | str] = []
    for key in keys:
        if not await operator.group_exists(key, group):
            plans.append(key)
            continue
        plans.append(await plan_replay(operator, key, group, from_id, ahead_ok=True))
    if all(isinstance(plan, str) for plan in plans):
        raise NotFound(f"consumer group {group!r} does not exist on any of the {len(keys)} "
                       f"partitions of {stream!r}")
    return plans


async def apply_replay(operator: RedisOperator, plan: ReplayPlan) -> None:
    if not plan.ahead:
        await operator.set_group_id(plan.stream, plan.group, plan.target)
