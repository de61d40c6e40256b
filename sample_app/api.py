"""What the API server does per request (seed 002): take the per-user lock, publish the
order. The HTTP routes around it are sample_app/web.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sample_app import keys
from sample_app.models import OrderPlaced
from streamboot import EntryId, Publisher, RedisClient, SingleInstanceLock

LOCK_TTL = timedelta(seconds=2)
"""How long a user's order for one product blocks a duplicate, at most (if no worker
releases it, e.g. the order was dead-lettered)."""
REQUEST_TTL = timedelta(minutes=10)
"""How long a request id is remembered: a resubmission within it is refused."""


class DuplicateRequest(Exception):
    """The request was already made (its request id), or the same user already has an
    order for this product in flight (the lock)."""


@dataclass(frozen=True)
class Placed:
    order_id: str
    entry: EntryId
    """The stream entry it was published as (``entry.stream``: the stream's key)."""


@dataclass
class OrderApi:
    publisher: Publisher
    client: RedisClient

    async def create_order(self, user_id: str, product_id: str, qty: int,
                           request_id: str) -> Placed:
        """Publish an order, or raise DuplicateRequest.

        Two guards, for two kinds of duplicate: the request id (a double click or a retry
        resends the same request: refused however late it comes, for REQUEST_TTL — the
        lock alone let a second click through once a worker had released it), and the
        user's lock per product (two different requests at once: one wins)."""
        request = keys.request(user_id, request_id)
        if not await self.client.set(request, user_id, nx=True,
                                     ex=int(REQUEST_TTL.total_seconds())):
            raise DuplicateRequest(f"request {request_id} was already made")
        lock = SingleInstanceLock(self.client, keys.lock(user_id, product_id), LOCK_TTL)
        token = await lock.acquire()
        if token is None:
            await self.client.delete(request)
            raise DuplicateRequest(f"{user_id} already has an order of {product_id} in "
                                   "flight")
        order = OrderPlaced(order_id=uuid.uuid4().hex, user_id=user_id, product_id=product_id,
                            qty=qty, lock_token=token)
        try:
            entry = await self.publisher.publish(order)
        except BaseException:
            await lock.release(token)  # not published: let the user retry at once
            await self.client.delete(request)
            raise
        return Placed(order.order_id, entry)

    @staticmethod
    async def holds_lock(client: RedisClient, user_id: str, product_id: str) -> bool:
        """The user's order of the product is in flight (a worker releases the lock once
        the order is accepted or rejected; a dead-lettered one's expires)."""
        return bool(await client.exists(keys.lock(user_id, product_id)))
