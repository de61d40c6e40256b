"""Whatever bytes producers write, every entry ends handled once or dead-lettered intact.

Entries are written as raw bytes (not through redis-py's str encoding, which is how every
other test writes them): random names and values, empty values, repeated names, missing
fields, invalid JSON, bytes that are not UTF-8 and 1 MB values, mixed with valid entries.
Batches are small against the number of entries, so reads come back full and the
read-ahead is on — the real shape of the hot path.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from streamboot import Message, RedisOperator, StreamHandler
from streamboot.client import build_client
from streamboot.config.models import RedisSettings
from streamboot.devserver import RedisServer
from streamboot.listener.container import ListenerContainer
from streamboot.wire.decoding import to_wire
from tests.conftest import wait_until
from tests.handlers import Order
from tests.streams import make_spec, true

Pairs = list[tuple[bytes, bytes]]

names = st.binary(max_size=10) | st.sampled_from([b"order_id", b"qty", b"payload", b"\xff"])
values = st.binary(max_size=30) | st.sampled_from(
    [b"", b"\xe9UR", b"not json", b'{"order_id": "o1", "qty": 2}', b'{"order_id": 1}', b"7"])
noise: st.SearchStrategy[Pairs] = st.lists(st.tuples(names, values), min_size=1, max_size=4)
valid_flat = st.integers(0, 10**9).map(lambda i: [(b"order_id", b"o%d" % i), (b"qty", b"1")])
valid_json = st.integers(0, 10**9).map(
    lambda i: [(b"payload", json.dumps({"order_id": f"o{i}", "qty": i % 5}).encode())])
batches = st.tuples(st.lists(st.one_of(noise, valid_flat, valid_json), min_size=1, max_size=40),
                    st.sampled_from([None, b"x" * 1_000_000, b"\xfe" + b"y" * 1_000_000]))


class Seen:
    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.fields: dict[str, dict[str, str]] = {}


class RawRecorder(StreamHandler[dict[str, str]]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, message: Message[dict[str, str]]) -> None:
        self.seen.ids[message.id] += 1
        self.seen.fields[message.id] = message.payload


class OrderRecorder(StreamHandler[Order]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, message: Message[Order]) -> None:
        self.seen.ids[message.id] += 1


def is_plain_text(pairs: Pairs) -> bool:
    """What the raw handler can receive faithfully: UTF-8 everywhere, no repeated name."""
    try:
        for name, value in pairs:
            name.decode()
            value.decode()
    except UnicodeDecodeError:
        return False
    return len({n for n, _ in pairs}) == len(pairs)


async def dead_letters(client: Redis, dlq: str) -> dict[tuple[str, str], list[bytes]]:
    """(group, source id) -> the dead letter's original pairs, read back as bytes with a
    plain server-side XRANGE (no client-side parsing that could hide a difference)."""
    rows = await client.execute_command(
        "EVAL", "return redis.call('XRANGE', KEYS[1], '-', '+')", 1, dlq,
        **{NEVER_DECODE: True})
    out: dict[tuple[str, str], list[bytes]] = {}
    for _, flat in rows:
        meta = dict(zip(flat[-16::2], flat[-15::2], strict=True))
        count = int(meta[b"dlq_fields"])
        key = (meta[b"dlq_group"].decode(), meta[b"dlq_id"].decode())
        assert key not in out, f"dead-lettered twice: {key}"
        out[key] = flat[:2 * count]
    return out


async def scenario(url: str, entries: list[Pairs], huge: bytes | None) -> None:
    if huge is not None:
        entries = [*entries, [(b"order_id", b"big"), (b"blob", huge)]]
    stream = f"fuzz:{uuid.uuid4().hex[:10]}"
    dlq = f"{{{stream}}}:dlq"
    client = build_client(RedisSettings(url=url))
    plain = Redis.from_url(url)
    keeper = redis.Redis.from_url(url, decode_responses=True)
    operator = RedisOperator(client)
    written: dict[str, Pairs] = {}
    for pairs in entries:
        flat = [part for pair in pairs for part in pair]
        entry_id = await plain.execute_command("XADD", stream, "*", *flat)
        written[entry_id.decode()] = pairs
    container = ListenerContainer(operator, keeper)
    raw_seen, order_seen = Seen(), Seen()
    container.register(make_spec(stream, name="raw", group="raw", batch_size=8, concurrency=4),
                       RawRecorder(raw_seen))
    container.register(make_spec(stream, name="json", group="json", batch_size=5, concurrency=2,
                                 codec="json"), OrderRecorder(order_seen))
    try:
        await container.start(timeout=5)

        async def settled() -> bool:
            groups = await operator.info_groups(stream)
            return all(g.pending == 0 and g.lag == 0 for g in groups) and len(groups) == 2

        await wait_until(settled, timeout=60)
        dead = await dead_letters(plain, dlq)
        for group, seen in (("raw", raw_seen), ("json", order_seen)):
            for entry_id, pairs in written.items():
                handled = seen.ids[entry_id]
                lettered = (group, entry_id) in dead
                assert handled + lettered == 1, (group, entry_id, pairs, handled, lettered)
                if lettered:  # the entry as it came, byte for byte, repeated names included
                    assert dead[(group, entry_id)] == [p for pair in pairs for p in pair]
        for entry_id, pairs in written.items():
            assert (raw_seen.ids[entry_id] == 1) == is_plain_text(pairs), pairs
            if raw_seen.ids[entry_id]:
                got = raw_seen.fields[entry_id]
                assert {to_wire(k): to_wire(v) for k, v in got.items()} == dict(pairs)
        # Still alive: a valid entry written after all of that is handled by both groups.
        last = await operator.xadd(stream, {"payload": '{"order_id": "z", "qty": 1}'})
        await wait_until(lambda: true(raw_seen.ids[last] == 1 and order_seen.ids[last] == 1))
        assert all(sub.failure is None for sub in container.subscriptions.values())
    finally:
        await container.stop()
        await plain.delete(stream, dlq)
        await plain.aclose()
        await client.aclose()
        keeper.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(batch=batches)
def test_every_entry_is_handled_once_or_dead_lettered_with_its_bytes(
        redis_server: RedisServer, batch: tuple[list[Pairs], bytes | None]) -> None:
    entries, huge = batch
    asyncio.run(scenario(redis_server.url, entries, huge))
