"""The API side of seed 002: take the per-user lock, publish the order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sample_app import keys
from sample_app.models import OrderPlaced
from streamboot import Publisher, RedisClient, RedisOperator, SingleInstanceLock

LOCK_TTL = timedelta(seconds=2)
"""How long a user's order for one product blocks a duplicate, at most (if no worker
releases it, e.g. the order was dead-lettered)."""


class DuplicateRequest(Exception):
    """The same user already has an order for this product in flight."""


@dataclass
class OrderApi:
    operator: RedisOperator
    publisher: Publisher
    client: RedisClient
    placed: list[str] = field(default_factory=list)
    duplicates: int = 0

    async def create_order(self, user_id: str, product_id: str, qty: int) -> str:
        """Publish an order, or raise DuplicateRequest while the user's lock is held."""
        lock = SingleInstanceLock(self.client, keys.lock(user_id, product_id), LOCK_TTL)
        token = await lock.acquire()
        if token is None:
            self.duplicates += 1
            raise DuplicateRequest(f"{user_id} already ordering {product_id}")
        order = OrderPlaced(order_id=uuid.uuid4().hex, user_id=user_id, product_id=product_id,
                            qty=qty, lock_token=token)
        try:
            await self.publisher.publish(order)
        except BaseException:
            await lock.release(token)  # not published: let the user retry at once
            raise
        self.placed.append(order.order_id)
        return order.order_id
