"""The sample app's handlers, tested as a user tests their own: with the test kit
(`streamboot.testing`, loaded by its pytest plugin), the shipped application file, and
provider overrides — no conftest of the project's own needed."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis

from sample_app import keys
from sample_app.handlers import NotificationHandler
from sample_app.models import OrderOutcome, OrderPlaced
from sample_app.payment import PaymentGateway
from streamboot.testing import message_of, run_app

CONFIG = Path(__file__).resolve().parents[1] / "config" / "application.yaml"


def order(order_id: str, qty: int = 1) -> OrderPlaced:
    return OrderPlaced(order_id=order_id, user_id="u1", product_id="ps5", qty=qty)


async def test_an_order_is_applied_once_and_its_outcome_notified(streamboot_url: str) -> None:
    r = aioredis.Redis.from_url(streamboot_url, decode_responses=True)
    await r.set(keys.stock("ps5"), 1)
    async with run_app(CONFIG, url=streamboot_url) as app:
        # One after the other: two orders in one batch run side by side (concurrency 16),
        # and which of them takes the last unit is then up to the scheduler.
        first = await app.publish("orders", order("o1"))
        await app.handled(first)
        second = await app.publish("orders", order("o2"))
        await app.handled(second)
        assert await r.hget(keys.order("o1"), "status") == "accepted"
        assert await r.hget(keys.order("o2"), "status") == "rejected"  # the stock was gone
        assert await r.get(keys.stock("ps5")) == "0"
        # The notifier (another listener, on the rotated stream) sends each outcome once.
        again = await app.publish("orders", order("o1"))  # a double click: same order id
        await app.handled(again)
        assert await r.hgetall(keys.SENT) == {"accepted": "1", "rejected": "1"}
    await r.aclose()


async def test_a_declined_card_is_retried_then_dead_lettered_and_stock_kept(
        streamboot_url: str) -> None:
    r = aioredis.Redis.from_url(streamboot_url, decode_responses=True)
    await r.set(keys.stock("ps5"), 5)
    async with run_app(CONFIG, url=streamboot_url,
                       overrides={"payment": PaymentGateway(failure_fraction=1.0)}) as app:
        entry = await app.publish("orders", order("o1"))
        (dead,) = await app.dead_lettered(entry)
    assert dead.reason == "max_deliveries"
    assert dead.deliveries == 3  # the file's retry.max_deliveries
    assert dead.error == "PaymentDeclined: card declined for order o1"
    assert dead.fields["order_id"] == "o1"
    assert await r.get(keys.stock("ps5")) == "5"
    await r.aclose()


async def test_a_payload_that_fails_validation_is_dead_lettered_at_once(
        streamboot_url: str) -> None:
    async with run_app(CONFIG, url=streamboot_url) as app:
        entry = await app.publish_fields("orders", {"order_id": "o1", "qty": "lots"})
        (dead,) = await app.dead_lettered(entry)
    assert dead.reason == "invalid_payload"
    assert dead.deliveries == 1
    assert "qty" in dead.error


async def test_the_notifier_alone_without_a_listener(streamboot_url: str) -> None:
    """A handler's unit test: a Message from a payload in one call, no stream, no app (the
    handler's script still needs a Redis for its effect: the fixture's server)."""
    r = aioredis.Redis.from_url(streamboot_url, decode_responses=True)
    handler = NotificationHandler(r)
    outcome = OrderOutcome(order_id="o1", user_id="u1", status="accepted")
    message = message_of(outcome, marker="{orders}:done:o1")
    await handler.handle(message)
    await handler.handle(message)  # a redelivery: the marker makes it one e-mail
    assert await r.hgetall(keys.SENT) == {"accepted": "1"}
    await r.aclose()
