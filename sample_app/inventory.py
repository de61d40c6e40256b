"""Stock kept in Redis and decremented by one Lua script, so it never goes below zero."""

from __future__ import annotations

from redis.asyncio import Redis

# Reserve atomically: two workers racing for the last unit cannot both get it.
_RESERVE = """
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local qty = tonumber(ARGV[1])
if stock < qty then return -1 end
return redis.call('DECRBY', KEYS[1], qty)
"""


class InventoryService:
    def __init__(self, client: Redis) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)

    @staticmethod
    def stock_key(product_id: str) -> str:
        return f"stock:{product_id}"

    async def set_stock(self, product_id: str, units: int) -> None:
        await self._client.set(self.stock_key(product_id), units)

    async def stock(self, product_id: str) -> int:
        return int(await self._client.get(self.stock_key(product_id)) or 0)

    async def reserve(self, product_id: str, qty: int) -> bool:
        """True when ``qty`` units were taken; False when there were not enough."""
        left = await self._reserve(keys=[self.stock_key(product_id)], args=[qty])
        return int(left) >= 0
