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

    async def audit_added(self) -> int:
        """Entries ever added to the audit stream (XINFO ``entries-added``): the audit is
        capped (MAXLEN ~), so its length is not the count of applications."""
        if not await self._client.exists(keys.AUDIT):
            return 0
        return int((await self._client.xinfo_stream(keys.AUDIT))["entries-added"])

    async def notifications_sent(self) -> dict[str, int]:
        raw = await self._client.hgetall(keys.SENT)
        return {str(k): int(v) for k, v in raw.items()}
