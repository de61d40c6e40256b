"""Writes that survive a failover (issue 24): ``publish.durability``. One primary, two
replicas, three Sentinels. The replicas are paused (SIGSTOP: replication lags, as under
load or a slow link), entries are published, the primary is killed (-9) and the replicas
resumed (their replication links cut as they paused); Sentinel promotes one that never
received those entries. Without durability
every publish returned an id — and those entries are gone. With durability no publish
returned while the replicas lagged: each raised ``NotDurableError`` naming its entries,
and every publish that did return is on the new primary."""

from __future__ import annotations

import time

import pytest
import redis

from streamboot import NotDurableError, Publisher, RedisOperator, build_client, close_client
from streamboot.config import settings_from_mapping
from streamboot.devserver import RedisSentinelGroup
from tests.faults.processes import replicas_cut_off, wait

pytestmark = pytest.mark.fault


def publishers() -> tuple[dict[str, object], dict[str, object]]:
    listener = {"group": "g", "handler": "tests.handlers:LoggingHandler"}
    return ({"stream": "plain", **listener},
            {"stream": "durable", **listener,
             "publish": {"durability": {"replicas": 1, "timeout": "200ms"}}})


async def test_durable_publishes_survive_a_failover_that_loses_plain_ones() -> None:
    with RedisSentinelGroup(down_after_ms=1000) as group:
        plain_cfg, durable_cfg = publishers()
        settings = settings_from_mapping({
            "redis": {"sentinel": {"master": group.master, "nodes": group.nodes},
                      "socket_timeout": "5s", "socket_connect_timeout": "300ms"},
            "listeners": {"plain": plain_cfg, "durable": durable_cfg},
        })
        client = build_client(settings.redis)
        operator = RedisOperator(client)
        plain = Publisher.for_listener(operator, settings.listeners["plain"])
        durable = Publisher.for_listener(operator, settings.listeners["durable"])
        returned: dict[str, list[str]] = {"plain": [], "durable": []}
        refused: list[NotDurableError] = []
        try:
            # Replicas in step: durable publishes return, confirmed by a replica.
            for n in range(50):
                returned["plain"].append(await plain.publish({"n": str(n)}))
                returned["durable"].append(await durable.publish({"n": str(n)}))
            returned["durable"] += await durable.publish_many(
                [{"n": str(n)} for n in range(50, 100)])
            old = group.primary_port()
            assert old is not None
            with replicas_cut_off(group):
                began = time.monotonic()
                for n in range(100, 150):
                    returned["plain"].append(await plain.publish({"n": str(n)}))
                plain_took = time.monotonic() - began
                began = time.monotonic()
                for n in range(100, 105):  # one at a time, then a batch of 45
                    with pytest.raises(NotDurableError) as single:
                        await durable.publish({"n": str(n)})
                    refused.append(single.value)
                with pytest.raises(NotDurableError) as batch:
                    await durable.publish_many([{"n": str(n)} for n in range(105, 150)])
                refused.append(batch.value)
                durable_took = time.monotonic() - began
                group.server_on(old).stop(kill=True)  # kill -9: the lagging entries die
            wait(lambda: group.primary_port() not in (None, old), 30, "no failover")
            new = group.primary_port()
            assert new is not None
            primary = redis.Redis(port=new, decode_responses=True)
            on_new = {s: {str(i) for i, _ in primary.xrange(s) or []} for s in returned}
            primary.close()
        finally:
            await close_client(client)
    lost = {s: [i for i in ids if i not in on_new[s]] for s, ids in returned.items()}
    # Plain: the 50 published while the replicas lagged returned ids, and are gone.
    assert len(returned["plain"]) == 100
    assert len(lost["plain"]) == 50, lost["plain"]
    # Durable: no publish returned while nothing replicated; each said so by name.
    assert len(returned["durable"]) == 100
    assert lost["durable"] == []
    assert [len(e.ids) for e in refused] == [1, 1, 1, 1, 1, 45]
    assert all((e.acknowledged, e.required) == (0, 1) for e in refused)
    assert "acknowledged by 0 of the 1 replica required within 200ms" in str(refused[0])
    assert refused[0].ids[0] in str(refused[0])
    # Each refused write waited its timeout once (a batch one WAIT, not one per entry).
    assert 6 * 0.2 <= durable_took < 6 * 0.2 + 1.0, durable_took
    assert plain_took < 1.0, plain_took
