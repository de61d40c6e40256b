"""Where order outcomes are recorded: one hash per order plus per-outcome counters.

The keys share the ``{orders}`` hash tag so the record-and-count script touches a single
Redis Cluster slot.
"""

from __future__ import annotations

from redis.asyncio import Redis

_RECORD = """
if redis.call('HSETNX', KEYS[1], 'status', ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
return 1
"""


class OrderBook:
    COUNTS = "{orders}:outcomes"

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._record = client.register_script(_RECORD)

    @staticmethod
    def order_key(order_id: str) -> str:
        return f"{{orders}}:order:{order_id}"

    async def record(self, order_id: str, status: str) -> bool:
        """Record the outcome once; False if this order already had one."""
        keys = [self.order_key(order_id), self.COUNTS]
        return bool(await self._record(keys=keys, args=[status]))

    async def outcome(self, order_id: str) -> str | None:
        value = await self._client.hget(self.order_key(order_id), "status")
        return None if value is None else str(value)

    async def counts(self) -> dict[str, int]:
        raw = await self._client.hgetall(self.COUNTS)
        return {str(k): int(v) for k, v in raw.items()}
