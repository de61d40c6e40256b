"""Publisher: the producing side, resolving the stream key from the listener's own policy.

A rotated listener's producers must write to the key its consumers read; both resolve it
from the same :class:`RotationPolicy` and clock, so they always agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pydantic import BaseModel

from framework.clock import Clock, SystemClock
from framework.codecs import Codec, codec_for
from framework.config.models import BackpressureSettings, ListenerSettings
from framework.errors import StreambootError
from framework.lifecycle.rotation import RotationPolicy
from framework.operator import RedisOperator


class Backpressure(StreambootError):
    """The stream is over its declared length or lag limit: the publish was refused, not
    dropped. Retry later, or shed load upstream."""


class Publisher:
    def __init__(self, operator: RedisOperator, stream: str, codec: Codec,
                 rotation: RotationPolicy | None = None, clock: Clock | None = None,
                 max_len: int | None = None, schema_version: int | None = None,
                 backpressure: BackpressureSettings | None = None,
                 group: str | None = None) -> None:
        self._operator = operator
        self._stream = stream
        self._codec = codec
        self._rotation = rotation
        self._clock = clock or SystemClock()
        self._max_len = max_len
        self._schema_version = schema_version
        self._backpressure = backpressure
        self._group = group
        self._checked_at = -1.0
        self._full = False

    @classmethod
    def for_listener(cls, operator: RedisOperator, listener: ListenerSettings,
                     clock: Clock | None = None) -> Publisher:
        rotation = RotationPolicy(listener.rotation) if listener.rotation else None
        max_len = listener.retention.max_len if listener.retention else None
        return cls(operator, listener.stream, codec_for(listener.codec, listener.json_field),
                   rotation, clock, max_len, listener.publish.schema_version,
                   listener.publish.backpressure, listener.group)

    def key(self) -> str:
        """The stream key a message published now goes to."""
        if self._rotation is None:
            return self._stream
        return self._rotation.current(self._clock.now()).key

    def fields(self, payload: BaseModel) -> dict[str, str]:
        fields = self._codec.encode(payload)
        if self._schema_version is not None:
            fields.setdefault("schema_version", str(self._schema_version))
        return fields

    async def publish(self, payload: BaseModel) -> str:
        """XADD the payload with the listener's codec (MAXLEN ~ from its retention).

        A rotated key is never created here (NOMKSTREAM): the rotation job creates each
        period's stream with its TTL, so a publish cannot leave a stream without expiry.
        """
        key = self.key()
        await self._admit(key)
        return await self._operator.xadd(key, self.fields(payload), maxlen=self._max_len,
                                         nomkstream=self._rotation is not None)

    async def publish_many(self, payloads: Sequence[BaseModel], chunk: int = 500) -> list[str]:
        """XADD many payloads, ``chunk`` per pipelined round trip."""
        key = self.key()
        ids: list[str] = []
        for start in range(0, len(payloads), chunk):
            await self._admit(key)
            pipe = self._operator.client.pipeline(transaction=False)
            for payload in payloads[start:start + chunk]:
                pipe.xadd(key, self.fields(payload),  # type: ignore[arg-type]
                          maxlen=self._max_len, approximate=True,
                          nomkstream=self._rotation is not None)
            ids.extend(str(i) for i in await pipe.execute())
        return ids

    async def _admit(self, key: str) -> None:
        """Refuse (or wait) while the stream is over its limits; checked at most every
        ``check_every``, so a burst of publishes costs one XLEN/XINFO, not one each — and
        may overshoot a limit by what it publishes within one ``check_every``."""
        policy = self._backpressure
        if policy is None:
            return
        deadline = time.monotonic() + policy.wait_timeout.total_seconds()
        while await self._over_limit(key, policy):
            if policy.mode == "raise" or time.monotonic() >= deadline:
                raise Backpressure(f"stream {key!r} is over its limit (max_length "
                                   f"{policy.max_length}, max_lag {policy.max_lag})")
            await asyncio.sleep(policy.check_every.total_seconds())

    async def _over_limit(self, key: str, policy: BackpressureSettings) -> bool:
        now = time.monotonic()
        if now - self._checked_at < policy.check_every.total_seconds():
            return self._full
        self._checked_at = now
        full = False
        if policy.max_length is not None:
            full = await self._operator.xlen(key) >= policy.max_length
        if not full and policy.max_lag is not None and self._group is not None:
            groups = {g.name: g for g in await self._operator.info_groups(key)}
            lag = groups[self._group].lag if self._group in groups else None
            full = lag is not None and lag >= policy.max_lag
        self._full = full
        return full
