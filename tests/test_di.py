"""The DI container: wiring, handler resolution, and overrides as a user writes them."""

from __future__ import annotations

from typing import Any

import pytest
from dependency_injector import providers

from framework import Application, HandlerResolutionError, RedisOperator, StreambootContainer
from framework.beans import provide, resolve_handler
from framework.config import settings_from_mapping
from sample_app.container import AppContainer
from sample_app.handlers import OrderHandler
from sample_app.inventory import InventoryService
from tests.conftest import wait_until


def settings(redis_url: str, **listener: Any) -> Any:
    return settings_from_mapping({
        "redis": {"url": redis_url},
        "application": {"container": "sample_app.container:AppContainer"},
        "container": {"poll_timeout": "50ms"},
        "listeners": {"orders": {"stream": "orders", "group": "g", "consumer": "c",
                                 "handler": "order_handler", **listener}},
    })


async def test_container_wires_operator_from_redis_resource(redis_url: str) -> None:
    container = StreambootContainer(settings=settings(redis_url))
    await container.init_resources()
    operator = await provide(container.operator)
    assert isinstance(operator, RedisOperator)
    assert await operator.ping()
    assert operator is await provide(container.operator)  # a singleton
    await container.shutdown_resources()


async def test_handler_by_provider_name(redis_url: str) -> None:
    container = AppContainer(settings=settings(redis_url))
    handler = await resolve_handler("order_handler", container, "orders")
    assert isinstance(handler, OrderHandler)
    assert isinstance(handler.inventory, InventoryService)


async def test_handler_by_import_path_gets_constructor_args_by_name(redis_url: str) -> None:
    container = AppContainer(settings=settings(redis_url))
    handler = await resolve_handler("sample_app.handlers:OrderHandler", container, "orders")
    assert isinstance(handler, OrderHandler)
    assert isinstance(handler.order_book, object)


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


class StockEverywhere(InventoryService):
    """A real InventoryService subclass that never runs out: overriding, not faking Redis."""

    async def reserve(self, product_id: str, qty: int) -> bool:
        return True


async def test_tests_override_any_provider(redis_url: str, client: Any) -> None:
    container = AppContainer(settings=settings(redis_url))
    container.inventory.override(providers.Singleton(StockEverywhere, client=container.redis))
    application = Application(container.settings(), container)
    await application.start()
    try:
        operator = application.operator
        assert operator is not None
        await operator.xadd("orders", {"order_id": "o1", "user_id": "u", "product_id": "p",
                                       "qty": "5"})
        await wait_until(lambda: _status(client, "o1", "accepted"))
    finally:
        await application.stop()


async def _status(client: Any, order_id: str, expected: str) -> bool:
    return bool(await client.hget(f"{{orders}}:order:{order_id}", "status") == expected)
