"""What ``/healthz`` answers: whether Redis answers and every listener makes progress — and
what is wrong, in lines an admin can act on, when not."""

from __future__ import annotations

import asyncio
import time

from ..listener.poll import Subscription
from ..partitions.membership import Membership
from ..wire.operator import RedisOperator
from ..wire.redis_errors import describe_unavailable, is_transient


async def health(operator: RedisOperator, subscriptions: dict[str, Subscription],
                 membership: Membership | None = None) -> dict[str, object]:
    """Healthy: Redis answers PING within 1s, and every listener makes progress.

    Progress is judged by what the listener is doing. Handling entries, however long they
    legitimately take, is progress — unless a handler runs past ``handler_timeout`` (one
    that ignored its cancellation, or a sync handler's abandoned thread still running):
    that is what a restart would cure. Otherwise the loop must have read within
    2 × ``poll_timeout`` (+1s): one stuck in backoff or ended by an error has not. And the
    entries it holds must have been renewed lately (listener/ownership.py): renewals
    that keep failing mean they may be taken over. A member of a partitioned listener
    that cannot renew its leases is not healthy; one that owns no partition (a standby,
    more members than partitions) is, and says so.
    """
    problems: list[str] = []
    try:
        await asyncio.wait_for(operator.ping(), 1.0)
    except Exception as exc:
        reason = (describe_unavailable(exc, operator.address) if is_transient(exc)
                  else f"{type(exc).__name__}: {exc}" if str(exc) else "no answer within 1s")
        problems.append(f"redis unreachable: {reason}")
    now, clock = time.monotonic(), time.perf_counter()
    for name, sub in subscriptions.items():
        problems += subscription_problems(name, sub, now, clock)
    answer: dict[str, object] = {"healthy": not problems, "problems": problems}
    if membership is not None:
        if membership.renewal_failing:
            problems.append("partition leases could not be renewed at the last heartbeat: "
                            "this member stops handling its partitions when they lapse")
            answer["healthy"] = False
        owned = membership.owned
        partitions: dict[str, object] = {"owned": owned, "standby": owned == 0}
        if membership.copied_id is not None:  # safe, so not a 503: but never silent
            partitions["warning"] = membership.copied_id
        answer["partitions"] = partitions
    return answer


def subscription_problems(name: str, sub: Subscription, now: float,
                          clock: float) -> list[str]:
    """What keeps one subscription from being live (``now``: time.monotonic(), ``clock``:
    time.perf_counter()); empty when it is. /healthz says these lines; the
    ``streamboot_listener_up`` gauge is 0 while there are any."""
    problems: list[str] = []
    limit = 2 * sub.spec.poll_timeout.total_seconds() + 1.0
    timeout = sub.spec.handler_timeout.total_seconds()
    late = sub.overdue()
    if sub.failure is not None:
        problems.append(f"listener {name} stopped: {sub.failure}")
    elif late:
        for entry_id, seconds in late:
            what = f"entry {entry_id}" if entry_id else "an abandoned sync thread"
            problems.append(f"listener {name}: handler on {what} running for "
                            f"{seconds:.1f}s (handler_timeout {timeout:g}s)")
    elif not sub.busy and now - sub.stats.last_poll > limit:
        said = f"; last error: {sub.last_error}" if sub.last_error else ""
        problems.append(f"listener {name} has not polled for "
                        f"{now - sub.stats.last_poll:.1f}s (limit {limit:.1f}s{said})")
    keeper = sub.keeper
    unrenewed = keeper.late(clock) if keeper is not None else None
    if keeper is not None and unrenewed is not None:
        problems.append(
            f"listener {name}: ownership of {len(keeper.hand.in_hand)} entries not "
            f"renewed for {unrenewed:.1f}s (pending_scan.min_idle {keeper.min_idle:g}s"
            + (f"; last error: {keeper.last_error}" if keeper.last_error else "")
            + "): another consumer may take them over; none is started here until "
            "Redis confirms it")
    return problems
