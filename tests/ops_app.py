"""A small application with what an operator watches (the console's and the dashboards'
tests): a slow listener that falls behind, a listener whose bad entries are dead-lettered,
a partitioned one whose partitions have owners. Started in-process on a real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from streamboot import Application, Message, StreamHandler
from streamboot.config import settings_from_mapping

OUTAGE = "{ops}:outage"
"""While this key exists, entries with ``fail`` fail (a downstream outage); once it is
deleted (the outage over), the same entries, replayed, succeed."""


class OpsHandler(StreamHandler[dict[str, str]]):
    """``sleep``: seconds to take; ``fail``: raise with that text during the outage
    (dead-lettered at the listener's max_deliveries); the handled entries' ``n`` go to the
    Redis list ``{ops}:handled`` (a test sees a replayed dead letter handled there)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def handle(self, message: Message[dict[str, str]]) -> None:
        payload = message.payload
        await asyncio.sleep(float(payload.get("sleep", "0")))
        if payload.get("fail") and await self.redis.exists(OUTAGE):
            raise ValueError(payload["fail"])
        await self.redis.rpush("{ops}:handled", payload.get("n", message.id))


def ops_settings(url: str, **metrics: Any) -> dict[str, Any]:
    listener = {"handler": "tests.ops_app:OpsHandler", "poll_timeout": "100ms",
                "shutdown_timeout": "1s",
                "pending_scan": {"interval": "1s"}}
    return {
        "application": {"name": "ops"},
        "redis": {"url": url, "socket_timeout": "2s"},
        "metrics": {"enabled": True, "port": 0, "refresh": "200ms", **metrics},
        "membership": {"heartbeat": "200ms", "lease_ttl": "2s"},
        "listeners": {
            "orders": {**listener, "stream": "{ops}:orders", "group": "orders-group",
                       "batch_size": 5, "concurrency": 1, "alerts": {"max_lag": 5}},
            "payments": {**listener, "stream": "{ops}:payments", "group": "payments-group",
                         "retry": {"max_deliveries": 1}},
            "emails": {**listener, "stream": "emails", "group": "emails-group",
                       "partitions": 2, "partition_by": "user"},
        },
    }


def ops_application(url: str) -> Application:
    return Application(settings_from_mapping(ops_settings(url)))
