"""The DI container: wiring, handler resolution, and overrides as a user writes them."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from dependency_injector import providers

from sample_app.container import AppContainer
from sample_app.handlers import OrderHandler
from sample_app.payment import PaymentGateway
from streamboot import Application, HandlerResolutionError, RedisOperator, StreambootContainer
from streamboot.config import settings_from_mapping
from streamboot.di import provide, resolve_handler
from tests.conftest import wait_until


def settings(redis_url: str, **listener: Any) -> Any:
    return settings_from_mapping({
        "redis": {"url": redis_url},
        "application": {"container": "sample_app.container:AppContainer"},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"orders": {"stream": "orders", "group": "g", "consumer": "c",
                                 "handler": "order_handler",
                                 "retry": {"max_deliveries": 2, "backoff": "50ms"},
                                 **listener},
                      "notifications": {"stream": "{orders}:notifications", "group": "n",
                                        "handler": "notification_handler", "rotation": {
                                            "key_format": "{orders}:notifications:%H"}}},
    })


async def test_container_wires_operator_from_redis_resource(redis_url: str) -> None:
    container = StreambootContainer(settings=settings(redis_url))
    await _awaited(container.init_resources())
    operator = await provide(container.operator)
    assert isinstance(operator, RedisOperator)
    assert await operator.ping()
    assert operator is await provide(container.operator)  # a singleton
    await _awaited(container.shutdown_resources())


async def test_handler_by_provider_name(redis_url: str) -> None:
    container = AppContainer(settings=settings(redis_url))
    handler = await resolve_handler("order_handler", container, "orders")
    assert isinstance(handler, OrderHandler)
    assert isinstance(handler.payment, PaymentGateway)


async def test_handler_by_import_path_gets_constructor_args_by_name(redis_url: str) -> None:
    container = AppContainer(settings=settings(redis_url))
    handler = await resolve_handler("sample_app.handlers:OrderHandler", container, "orders")
    assert isinstance(handler, OrderHandler)
    assert handler.redis is await provide(container.redis)  # injected by parameter name


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_such_provider", "the container has no provider named 'no_such_provider'"),
        ("nowhere.at_all:Handler", "cannot import 'nowhere.at_all'"),
        ("sample_app.handlers:Missing", "module 'sample_app.handlers' has no 'Missing'"),
        ("tests.handlers:NotAHandler", "'NotAHandler' is not a StreamHandler subclass"),
        ("tests.handlers:RecordingHandler", "RecordingHandler() needs 'recorder'"),
        ("inventory", "InventoryService is not a StreamHandler subclass instance"),
    ],
)
async def test_unresolvable_handlers_say_why(redis_url: str, ref: str, message: str) -> None:
    container = AppContainer(settings=settings(redis_url))
    with pytest.raises(HandlerResolutionError) as info:
        await resolve_handler(ref, container, "orders")
    assert message in str(info.value)
    assert "listener 'orders'" in str(info.value)


async def test_tests_override_any_provider(redis_url: str, client: Any) -> None:
    """Every card declined: the order is retried, then dead-lettered, and stock untouched."""
    container = AppContainer(settings=settings(redis_url))
    container.payment.override(providers.Object(PaymentGateway(failure_fraction=1.0)))
    await client.set("{orders}:stock:ps5", 5)
    application = Application(container.settings(), container)
    await application.start()
    try:
        operator = application.operator
        assert operator is not None
        await operator.xadd("orders", {"order_id": "o1", "user_id": "u", "product_id": "ps5",
                                       "qty": "1"})
        await wait_until(lambda: _exists(client, "{orders}:dlq"))
    finally:
        await application.stop()
    (dead,) = await client.xrange("{orders}:dlq")
    assert dead[1]["dlq_error"] == "PaymentDeclined: card declined for order o1"
    assert dead[1]["dlq_deliveries"] == "2"
    assert await client.get("{orders}:stock:ps5") == "5"


async def _exists(client: Any, key: str) -> bool:
    return bool(await client.exists(key))


async def _awaited(result: Awaitable[None] | None) -> None:
    """init/shutdown_resources return an awaitable only when a Resource is async."""
    assert result is not None
    await result
