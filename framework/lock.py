"""A single-instance lock (seed 002's per-user ``SET NX EX``), token-based.

Not Redlock: it lives on one Redis node (or one cluster slot) and is as available as that
node. It prevents duplicate requests, not split-brain double processing — the stream's
idempotency does that. The token proves ownership: only the holder (or whoever it hands
the token to) can release it, and the TTL bounds how long a crashed holder blocks others.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from .config.durations import to_ms
from .errors import LockNotAcquired
from .wire.operator import RedisClient
from .wire.scripts import RELEASE_LOCK


class SingleInstanceLock:
    def __init__(self, client: RedisClient, key: str, ttl: timedelta) -> None:
        self._client = client
        self.key = key
        self.ttl = ttl
        self._release = client.register_script(RELEASE_LOCK)

    async def acquire(self) -> str | None:
        """A token if acquired (SET NX PX), None if someone holds it."""
        token = secrets.token_hex(16)
        ok = await self._client.set(self.key, token, nx=True, px=to_ms(self.ttl))
        return token if ok else None

    async def acquire_or_raise(self) -> str:
        token = await self.acquire()
        if token is None:
            raise LockNotAcquired(f"lock {self.key!r} is held")
        return token

    async def release(self, token: str) -> bool:
        """Release if ``token`` still owns it; False if it expired or another holds it."""
        return bool(await self._release(keys=[self.key], args=[token]))
