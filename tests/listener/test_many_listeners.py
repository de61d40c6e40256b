"""Many listeners in one process: every one of them reads, none starves.

Each listener blocks on XREADGROUP for up to poll_timeout. When those reads held pooled
connections, a pool of 100 served 100 listeners and the rest never read (and logged
"redis unavailable" for what was an exhausted pool).
"""

from __future__ import annotations

from collections import Counter

from loguru import logger
from redis.asyncio import Redis

from streamboot import Application, Message, StreamHandler
from streamboot.config import settings_from_mapping
from tests.conftest import wait_until
from tests.streams import true

LISTENERS = 200
SEEN: Counter[str] = Counter()


class CountStream(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        SEEN[message.stream] += 1


async def test_two_hundred_listeners_all_read(redis_url: str, client: Redis) -> None:
    SEEN.clear()
    streams = [f"many:{i}" for i in range(LISTENERS)]
    for stream in streams:
        await client.xadd(stream, {"n": "1"})
    settings = settings_from_mapping({
        "redis": {"url": redis_url},
        "container": {"poll_timeout": "1s"},
        "listeners": {f"l{i}": {"stream": s, "group": "g",
                                "handler": "tests.listener.test_many_listeners:CountStream"}
                      for i, s in enumerate(streams)},
    })
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    app = Application(settings)
    try:
        await app.start()
        await wait_until(lambda: true(len(SEEN) == LISTENERS), timeout=30)
    finally:
        await app.stop()
        logger.remove(sink)
    assert dict(SEEN) == dict.fromkeys(streams, 1)
    assert not [line for line in lines if "unavailable" in line or "pooled" in line]
