"""The sample's DI container: the framework's, plus the beans its handler needs."""

from __future__ import annotations

from dependency_injector import providers

from framework import StreambootContainer
from sample_app.handlers import OrderHandler
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook


class AppContainer(StreambootContainer):
    inventory = providers.Singleton(InventoryService, client=StreambootContainer.redis)
    order_book = providers.Singleton(OrderBook, client=StreambootContainer.redis)
    order_handler = providers.Factory(OrderHandler, inventory=inventory, order_book=order_book)
