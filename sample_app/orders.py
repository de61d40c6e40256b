"""Order outcomes: one hash per order, counters per outcome, and the audit stream."""

from __future__ import annotations

from typing import Any

from sample_app import keys


class OrderBook:
    def __init__(self, client: Any) -> None:
        self._client = client

    async def counts(self) -> dict[str, int]:
        raw = await self._client.hgetall(keys.OUTCOMES)
        return {str(k): int(v) for k, v in raw.items()}

    async def audit_length(self) -> int:
        return int(await self._client.xlen(keys.AUDIT)) if await self._client.exists(
            keys.AUDIT) else 0
