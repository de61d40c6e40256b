"""Stock per product, kept in Redis."""

from __future__ import annotations

from typing import Any

from sample_app import keys


class InventoryService:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def set_stock(self, product_id: str, units: int) -> None:
        await self._client.set(keys.stock(product_id), units)

    async def stock(self, product_id: str) -> int:
        return int(await self._client.get(keys.stock(product_id)) or 0)
