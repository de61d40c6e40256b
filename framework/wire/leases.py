"""The commands of partition leases and group membership (partitions/membership.py).

Every time here is the server's (``TIME`` inside the script), never a member's clock: two
hosts whose clocks disagree still agree on whether a lease has expired. Each script
touches one key, so on a cluster each runs where its key lives — a lease beside its
partition's stream (same hash tag), the member list in its listener's slot.

A lease is a hash ``owner``, ``epoch``, ``until`` (server ms), ``since``, ``token`` (the
owning process's incarnation: random at each start). The epoch only
grows: every grant increments it, so a handler's own store can refuse a write carrying an
older one (``Message.epoch``), and the key is never deleted (a deleted key would start
the epochs again at 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis, RedisCluster

NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] members (zset: member -> expiry ms); ARGV: member, ttl ms, leave (1/0).
HEARTBEAT = NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 4 * tonumber(ARGV[2]))
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS[1] members: the live ones, read only (``status``).
MEMBERS = NOW + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

# KEYS[1] lease: {owner or '', epoch, ms left (<= 0: expired), ms since granted}.
STATE = NOW + """
local v = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'until', 'since')
return {v[1] or '', tonumber(v[2] or '0'), tonumber(v[3] or '0') - now,
        now - tonumber(v[4] or now)}
"""

# KEYS[1] lease; ARGV: member, ttl ms, token. Granted when free, expired, or held by this
# very process (same member and token: it lost trust in a lease that was still its own).
# A live lease of the same member id but another token — a restarted static member, or
# two processes given one id by mistake — is not granted before it expires: the other
# process may still be acting on it.
ACQUIRE = NOW + """
local v = redis.call('HMGET', KEYS[1], 'owner', 'epoch', 'until', 'token')
if v[1] and v[1] ~= '' and tonumber(v[3] or '0') > now
   and not (v[1] == ARGV[1] and v[4] == ARGV[3]) then
  return {0, v[1], tonumber(v[2] or '0')}
end
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', now + tonumber(ARGV[2]),
           'since', now, 'token', ARGV[3])
return {1, ARGV[1], epoch}
"""

# KEYS[1] lease; ARGV: member, epoch, ttl ms. Renewed only if still the caller's at that
# epoch (an expired lease nobody took is still the caller's: no one can have handled
# its entries meanwhile). Returns the epoch now on the lease, the caller's or not.
RENEW = NOW + """
local v = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
if v[1] == ARGV[1] and v[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'until', now + tonumber(ARGV[3]))
  return {1, tonumber(v[2])}
end
return {0, tonumber(v[2] or '0')}
"""

# KEYS[1] lease; ARGV: member, epoch. The epoch stays: the next grant is one above it.
RELEASE = """
local v = redis.call('HMGET', KEYS[1], 'owner', 'epoch')
if v[1] == ARGV[1] and v[2] == ARGV[2] then
  redis.call('HSET', KEYS[1], 'owner', '', 'until', 0)
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class LeaseState:
    owner: str
    """'' when free."""
    epoch: int
    left_ms: int
    """Until it expires (server time); ≤ 0: expired."""
    age_ms: int
    """Since it was granted."""

    @property
    def live_owner(self) -> str | None:
        return self.owner if self.owner and self.left_ms > 0 else None


@dataclass(frozen=True, slots=True)
class Grant:
    granted: bool
    owner: str
    epoch: int


class LeaseCommands:
    """The lease and membership scripts, on the application's async client."""

    def __init__(self, client: Redis | RedisCluster) -> None:
        self._heartbeat = client.register_script(HEARTBEAT)
        self._state = client.register_script(STATE)
        self._members = client.register_script(MEMBERS)
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)

    async def heartbeat(self, members: str, member: str, ttl_ms: int,
                        leave: bool = False) -> list[str]:
        """Say this member lives for ``ttl_ms`` more (or leaves); the live members,
        sorted."""
        reply: Any = await self._heartbeat(keys=[members],
                                           args=[member, ttl_ms, 1 if leave else 0])
        return sorted(_text(m) for m in reply)

    async def members(self, members: str) -> list[str]:
        """The live members, sorted, without a heartbeat (nothing written)."""
        reply: Any = await self._members(keys=[members])
        return sorted(_text(m) for m in reply)

    async def state(self, lease: str) -> LeaseState:
        owner, epoch, left, age = await self._state(keys=[lease])
        return LeaseState(_text(owner), int(epoch), int(left), int(age))

    async def acquire(self, lease: str, member: str, ttl_ms: int, token: str) -> Grant:
        granted, owner, epoch = await self._acquire(keys=[lease],
                                                    args=[member, ttl_ms, token])
        return Grant(bool(granted), _text(owner), int(epoch))

    async def renew(self, lease: str, member: str, epoch: int, ttl_ms: int) -> bool:
        renewed, _ = await self._renew(keys=[lease], args=[member, epoch, ttl_ms])
        return bool(renewed)

    async def release(self, lease: str, member: str, epoch: int) -> bool:
        return bool(await self._release(keys=[lease], args=[member, epoch]))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
