"""The handler beans: order processing and analytics, two groups on one stream."""

from __future__ import annotations

from typing import Any

from sample_app import keys
from sample_app.api import LOCK_TTL
from sample_app.models import OrderOutcome, OrderPlaced
from sample_app.payment import PaymentGateway
from streamboot import IdempotentScript, Message, Publisher, SingleInstanceLock, StreamHandler

# Reserve stock (never below zero), record the outcome, count it and audit it: one step,
# together with the idempotency marker (IdempotentScript), so an order is applied once.
_PLACE = """
local qty = tonumber(ARGV[1])
local status = 'rejected'
if tonumber(redis.call('GET', KEYS[1]) or '0') >= qty then
  redis.call('DECRBY', KEYS[1], qty)
  status = 'accepted'
  redis.call('HINCRBY', KEYS[3], 'accepted_qty', qty)
end
redis.call('HSET', KEYS[2], 'status', status, 'user_id', ARGV[3], 'product_id', ARGV[4],
           'qty', ARGV[1])
redis.call('HINCRBY', KEYS[3], status, 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '10000', '*', 'order_id', ARGV[2], 'status', status)
return status
"""

_COUNT = "return redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])"


class OrderHandler(StreamHandler[OrderPlaced]):
    """Group ``order-processors``: charge, then reserve stock and record — exactly once."""

    def __init__(self, redis: Any, payment: PaymentGateway, notifications: Publisher) -> None:
        self.redis = redis
        self.payment = payment
        self.notifications = notifications
        self.place = IdempotentScript(redis, _PLACE)

    async def handle(self, message: Message[OrderPlaced]) -> None:
        order = message.payload
        # A decline raises: retried with backoff, then dead-lettered. No stock is touched.
        await self.payment.charge(order.order_id, order.qty)
        status = await self.place(message, keys=[keys.stock(order.product_id),
                                                 keys.order(order.order_id), keys.OUTCOMES,
                                                 keys.AUDIT],
                                  args=[order.qty, order.order_id, order.user_id,
                                        order.product_id])
        if status is None:  # applied by an earlier delivery, which may have died before this
            status = await self.redis.hget(keys.order(order.order_id), "status")
        # At least once: a redelivery publishes again; the notifier's idempotency key
        # makes it one e-mail.
        await self.notifications.publish(OrderOutcome(order_id=order.order_id,
                                                      user_id=order.user_id, status=status))
        if order.lock_token:  # the request's lock, released by its owner's token
            lock = SingleInstanceLock(self.redis, keys.lock(order.user_id, order.product_id),
                                      ttl=LOCK_TTL)
            await lock.release(order.lock_token)


class AnalyticsHandler(StreamHandler[OrderPlaced]):
    """Group ``analytics`` on the same stream (fan-out): orders per product, once each."""

    def __init__(self, redis: Any) -> None:
        self.count = IdempotentScript(redis, _COUNT)

    async def handle(self, message: Message[OrderPlaced]) -> None:
        await self.count(message, keys=[keys.PER_PRODUCT], args=[message.payload.product_id, 1])



_SEND = "return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)"


class NotificationHandler(StreamHandler[OrderOutcome]):
    """Group ``notifier`` on the hourly-rotated notification streams: "e-mails" each
    outcome once (counted per outcome, with its idempotency marker, in one step)."""

    def __init__(self, redis: Any) -> None:
        self.send = IdempotentScript(redis, _SEND)

    async def handle(self, message: Message[OrderOutcome]) -> None:
        await self.send(message, keys=[keys.SENT], args=[message.payload.status])
