"""A whole read validated in one call into pydantic-core (dispatch.py's ``_payloads``): each
message gets its own entry's payload, and an invalid or undecodable entry among valid ones
is dead-lettered alone, naming its own problem."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from streamboot import Message, StreamHandler
from streamboot.config import settings_from_mapping
from streamboot.testing import run_app
from tests.conftest import wait_until

SEEN: dict[str, tuple[int, str]] = {}


class Item(BaseModel):
    n: int
    tag: str
    tags: list[str] = []


class Items(StreamHandler[Item]):
    async def handle(self, message: Message[Item]) -> None:
        SEEN[message.id] = (message.payload.n, message.payload.tag)


@pytest.mark.parametrize("bad", ["none", "invalid", "undecodable", "nested"])
async def test_each_message_gets_its_own_payload_and_a_bad_entry_fails_alone(
        key: str, client: Redis, redis_url: str, bad: str) -> None:
    SEEN.clear()
    raw = Redis.from_url(redis_url)  # bytes, for the undecodable entry
    ids = []
    for n in range(60):
        fields: dict[Any, Any] = {"n": str(n), "tag": f"t{n}"}
        if n == 17 and bad == "invalid":
            fields["n"] = "seventeen"
        elif n == 17 and bad == "undecodable":
            fields["tag"] = b"\xff\xfe"
        elif bad == "nested":
            fields["tags"] = '["a", "b"]' if n != 17 else "not json ["
        added: Any = await raw.xadd(key, fields)
        ids.append(added.decode())
    await raw.aclose()
    config = settings_from_mapping({
        "container": {"poll_timeout": "50ms", "batch_size": 100},
        "listeners": {"items": {"stream": key, "group": "g",
                                "handler": "tests.listener.test_read_validation:Items"}}})
    async with run_app(config, url=redis_url):
        async def drained() -> bool:
            (group,) = await client.xinfo_groups(key)
            return bool(group["pending"] == 0 and group["lag"] == 0)

        await wait_until(drained)
    raw = Redis.from_url(redis_url)  # a dead letter keeps the entry's bytes as they were
    letters: Any = await raw.xrange(f"{{{key}}}:dlq")
    await raw.aclose()
    failing = set() if bad == "none" else {ids[17]}
    assert {i: SEEN[i] for i in SEEN} == {
        i: (n, f"t{n}") for n, i in enumerate(ids) if i not in failing}
    if bad == "none":
        assert letters == []
    else:
        (letter,) = [fields for _, fields in letters]
        assert letter[b"dlq_id"].decode() == ids[17]
        assert letter[b"dlq_reason"] == (b"undecodable" if bad == "undecodable"
                                         else b"invalid_payload")
