"""Who should own which partition: balanced, sticky, and the same answer for every member.

Pure: each member computes the target from the same facts (the live members, who holds
each lease) and acts only on its own part of it — acquiring what is free and meant for
it, giving up what it holds beyond its share — so no coordinator is needed, and two
members that briefly see different facts can at worst both try to acquire one free lease,
which the lease script grants to one (leases.py).

Balanced: with ``P`` partitions and ``M`` live members each gets ``P // M`` or
``P // M + 1``. Sticky (Kafka's cooperative-sticky idea): the extra partitions go first to
the members that already hold the most, and a member keeps what it holds up to its share
(its lowest-numbered partitions), so a partition moves only when balance requires it.
More members than partitions: the members that hold nothing are standbys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def shares(partitions: int, members: Sequence[str],
           owners: Mapping[int, str | None]) -> dict[str, int]:
    """How many partitions each live member should own."""
    if not members:
        return {}
    base, extra = divmod(partitions, len(members))
    held = dict.fromkeys(members, 0)
    for owner in owners.values():
        if owner in held:
            held[owner] += 1
    ranked = sorted(members, key=lambda m: (-held[m], m))
    return {m: base + (1 if rank < extra else 0) for rank, m in enumerate(ranked)}


def balanced_owners(partitions: int, members: Sequence[str],
                    owners: Mapping[int, str | None]) -> dict[int, str]:
    """The target owner of every partition, given the live ``members`` and the current
    owner of each partition (``None`` or absent: free; an owner that is not a live member
    counts as free once its lease has expired — the caller passes only live leases)."""
    if not members:
        return {}
    quota = shares(partitions, members, owners)
    kept = dict.fromkeys(members, 0)
    target: dict[int, str] = {}
    free: list[int] = []
    for p in range(partitions):
        owner = owners.get(p)
        if owner in quota and kept[owner] < quota[owner]:
            target[p] = owner
            kept[owner] += 1
        else:
            free.append(p)
    for p in free:
        owner = min((m for m in members if kept[m] < quota[m]), key=lambda m: (kept[m], m))
        target[p] = owner
        kept[owner] += 1
    return target
