"""Publisher: the producing side, resolving the stream key from the listener's own policy.

A rotated listener's producers must write to the key its consumers read; both resolve it
from the same :class:`RotationPolicy` and clock, so they always agree.
"""

from __future__ import annotations

from pydantic import BaseModel

from framework.clock import Clock, SystemClock
from framework.codecs import Codec, codec_for
from framework.config.models import ListenerSettings
from framework.lifecycle.rotation import RotationPolicy
from framework.operator import RedisOperator


class Publisher:
    def __init__(self, operator: RedisOperator, stream: str, codec: Codec,
                 rotation: RotationPolicy | None = None, clock: Clock | None = None,
                 max_len: int | None = None) -> None:
        self._operator = operator
        self._stream = stream
        self._codec = codec
        self._rotation = rotation
        self._clock = clock or SystemClock()
        self._max_len = max_len

    @classmethod
    def for_listener(cls, operator: RedisOperator, listener: ListenerSettings,
                     clock: Clock | None = None) -> Publisher:
        rotation = RotationPolicy(listener.rotation) if listener.rotation else None
        max_len = listener.retention.max_len if listener.retention else None
        return cls(operator, listener.stream, codec_for(listener.codec, listener.json_field),
                   rotation, clock, max_len)

    def key(self) -> str:
        """The stream key a message published now goes to."""
        if self._rotation is None:
            return self._stream
        return self._rotation.current(self._clock.now()).key

    async def publish(self, payload: BaseModel) -> str:
        """XADD the payload with the listener's codec (MAXLEN ~ from its retention).

        A rotated key is never created here (NOMKSTREAM): the rotation job creates each
        period's stream with its TTL, so a publish cannot leave a stream without expiry.
        """
        return await self._operator.xadd(self.key(), self._codec.encode(payload),
                                         maxlen=self._max_len,
                                         nomkstream=self._rotation is not None)
