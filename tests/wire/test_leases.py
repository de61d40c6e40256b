"""The lease and membership scripts (wire/leases.py) on a real server: server time, an
epoch that only grows, and a lease that only its holder at that epoch renews or releases."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from streamboot.wire.leases import LeaseCommands


async def test_a_free_lease_is_granted_once_and_its_epoch_only_grows(
        client: Redis, key: str) -> None:
    leases = LeaseCommands(client)
    lease = f"{{{key}}}:lease"
    first = await leases.acquire(lease, "a", 5_000, "t1")
    assert (first.granted, first.owner, first.epoch) == (True, "a", 1)
    refused = await leases.acquire(lease, "b", 5_000, "t2")
    assert (refused.granted, refused.owner, refused.epoch) == (False, "a", 1)
    assert await leases.release(lease, "a", 1)
    state = await leases.state(lease)
    assert state.live_owner is None
    assert state.epoch == 1
    second = await leases.acquire(lease, "b", 5_000, "t2")
    assert (second.granted, second.epoch) == (True, 2)


async def test_only_the_holder_at_its_epoch_renews_or_releases(client: Redis, key: str) -> None:
    leases = LeaseCommands(client)
    lease = f"{{{key}}}:lease"
    await leases.acquire(lease, "a", 5_000, "t1")
    assert not await leases.renew(lease, "b", 1, 5_000)
    assert not await leases.renew(lease, "a", 7, 5_000)
    assert not await leases.release(lease, "b", 1)
    assert await leases.renew(lease, "a", 1, 5_000)
    # The same process takes its own live lease again, one epoch up: the old epoch no
    # longer renews.
    again = await leases.acquire(lease, "a", 5_000, "t1")
    assert (again.granted, again.epoch) == (True, 2)
    assert not await leases.renew(lease, "a", 1, 5_000)
    # Another process with the same member id (a restarted static member, or an id given
    # twice) waits for the lease to expire: the first may still be acting on it.
    other = await leases.acquire(lease, "a", 5_000, "t9")
    assert (other.granted, other.epoch) == (False, 2)


async def test_an_expired_lease_is_free_to_others_by_the_servers_clock(
        client: Redis, key: str) -> None:
    leases = LeaseCommands(client)
    lease = f"{{{key}}}:lease"
    await leases.acquire(lease, "a", 150, "t1")
    assert (await leases.state(lease)).live_owner == "a"
    assert not (await leases.acquire(lease, "b", 5_000, "t2")).granted
    await asyncio.sleep(0.25)
    state = await leases.state(lease)
    assert state.left_ms <= 0
    assert state.live_owner is None
    taken = await leases.acquire(lease, "b", 5_000, "t2")
    assert (taken.granted, taken.epoch) == (True, 2)
    assert not await leases.renew(lease, "a", 1, 5_000)


async def test_members_live_for_their_ttl_and_leave_at_once(client: Redis, key: str) -> None:
    leases = LeaseCommands(client)
    members = f"streamboot:members:{{{key}}}"
    assert await leases.heartbeat(members, "a", 5_000) == ["a"]
    assert await leases.heartbeat(members, "b", 150) == ["a", "b"]
    await asyncio.sleep(0.25)
    assert await leases.heartbeat(members, "a", 5_000) == ["a"]
    assert await leases.heartbeat(members, "a", 5_000, leave=True) == []
    assert not await client.exists(members)  # the last one out leaves no key behind


async def test_a_new_owner_claims_every_pending_entry_of_the_group(
        client: Redis, key: str) -> None:
    from streamboot.wire.operator import RedisOperator

    operator = RedisOperator(client)
    await client.xgroup_create(key, "g", id="0", mkstream=True)
    for i in range(2_500):
        await client.xadd(key, {"n": str(i)})
    await client.xreadgroup("g", "old-a", {key: ">"}, count=1_200)
    await client.xreadgroup("g", "old-b", {key: ">"}, count=1_300)
    assert await operator.claim_all_pending(key, "g", "new") == 2_500
    consumers = {c["name"]: c["pending"] for c in await client.xinfo_consumers(key, "g")}
    assert consumers["new"] == 2_500
    assert consumers.get("old-a", 0) == consumers.get("old-b", 0) == 0
