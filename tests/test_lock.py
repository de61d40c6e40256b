from datetime import timedelta

import pytest
from redis.asyncio import Redis

from streamboot.errors import LockNotAcquired
from streamboot.lock import SingleInstanceLock


async def test_only_one_holder_and_only_the_owner_releases(client: Redis) -> None:
    lock = SingleInstanceLock(client, "lock:u1:ps5", timedelta(seconds=5))
    token = await lock.acquire()
    assert token is not None
    assert await lock.acquire() is None  # a duplicate request
    assert not await lock.release("not-the-token")
    assert await client.exists("lock:u1:ps5")
    assert await lock.release(token)
    assert await lock.acquire() is not None


async def test_lock_expires_so_a_crashed_holder_cannot_block_for_ever(client: Redis) -> None:
    lock = SingleInstanceLock(client, "lock:u2:ps5", timedelta(milliseconds=50))
    old = await lock.acquire_or_raise()
    assert 0 < await client.pttl("lock:u2:ps5") <= 50
    import asyncio

    await asyncio.sleep(0.08)
    new = await lock.acquire_or_raise()
    assert not await lock.release(old)  # the expired holder cannot free the new one
    assert await client.get("lock:u2:ps5") == new
    with pytest.raises(LockNotAcquired, match="lock:u2:ps5"):
        await lock.acquire_or_raise()
