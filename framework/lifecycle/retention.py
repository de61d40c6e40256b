"""Retention: how far a stream may be trimmed without losing work — a pure decision.

A group still needs every entry it has not been delivered (after its last-delivered id)
and every entry it holds pending. The safe point is the smallest, over all groups, of
"oldest pending id" and "the id right after last-delivered"; XTRIM MINID to that point
removes only entries every group is done with.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ids import after, format_id, parse_id


@dataclass(frozen=True, slots=True)
class GroupPosition:
    name: str
    last_delivered: str
    oldest_pending: str | None
    lag: int | None


@dataclass(frozen=True, slots=True)
class TrimPlan:
    minid: str | None
    """Trim everything older than this id; None: nothing to trim."""
    held_back_by: list[GroupPosition]
    """Groups whose unfinished work stopped the policy from trimming as far as it asked."""


def safe_point(group: GroupPosition) -> str:
    """The oldest id this group may still need."""
    if group.oldest_pending is not None:
        return group.oldest_pending
    return after(group.last_delivered)


def plan_trim(wanted_minid: str | None, groups: list[GroupPosition]) -> TrimPlan:
    """Trim to ``wanted_minid`` (what the policy asks), but never past a group's safe point."""
    if wanted_minid is None:
        return TrimPlan(None, [])
    wanted = parse_id(wanted_minid)
    holding = [g for g in groups if parse_id(safe_point(g)) < wanted]
    if not holding:
        return TrimPlan(wanted_minid, [])
    limit = min(parse_id(safe_point(g)) for g in holding)
    return TrimPlan(format_id(limit) if limit > (0, 0) else None, holding)


def minid_for_age(now_ms: int, max_age_ms: int) -> str:
    return f"{max(now_ms - max_age_ms, 0)}-0"


def later(a: str | None, b: str | None) -> str | None:
    """The larger of two optional ids: the policy that trims more wins."""
    if a is None or b is None:
        return a or b
    return a if parse_id(a) >= parse_id(b) else b
