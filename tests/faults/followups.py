"""Handlers for the failover tests whose effect is seen from outside Redis."""

from __future__ import annotations

from typing import Any

from streamboot import IdempotentScript, Message, StreamHandler


class FollowUpLedger(StreamHandler[dict[str, str]]):
    """Applies each order once in Redis (an IdempotentScript: effect and marker in one
    script), then sends its follow-up outside Redis — a line ``order entry-id`` in the file
    named by the entry's ``out`` field, as an email or a webhook would be — only when the
    effect ran now (the script returns None for an order already applied). A follow-up
    written twice is an effect applied twice as the outside world sees it."""

    def __init__(self, redis: Any) -> None:
        self.apply = IdempotentScript(redis, "return redis.call('INCR', KEYS[1])")

    async def handle(self, message: Message[dict[str, str]]) -> None:
        order = message.payload["order_id"]
        if await self.apply(message, keys=[f"applied:{{{order}}}"]) is None:
            return  # applied before (its follow-up went then, or its WAIT failed)
        send(message.payload["out"], f"{order} {message.id}")


def send(path: str, line: str) -> None:
    with open(path, "a") as out:
        out.write(line + "\n")
