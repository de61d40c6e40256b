"""The sample's DI container: the framework's, plus the beans its handlers need."""

from __future__ import annotations

import os

from dependency_injector import providers

from framework import StreambootContainer
from sample_app.handlers import AnalyticsHandler, OrderHandler
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook
from sample_app.payment import PaymentGateway


def payment_failure_fraction() -> float:
    """Injected failures for the demo: SAMPLE_PAYMENT_FAILURE=0.05 declines 5% of orders."""
    return float(os.environ.get("SAMPLE_PAYMENT_FAILURE", "0"))


class AppContainer(StreambootContainer):
    inventory = providers.Singleton(InventoryService, client=StreambootContainer.redis)
    order_book = providers.Singleton(OrderBook, client=StreambootContainer.redis)
    payment = providers.Singleton(PaymentGateway, providers.Callable(payment_failure_fraction))
    order_handler = providers.Factory(OrderHandler, redis=StreambootContainer.redis,
                                      payment=payment)
    analytics_handler = providers.Factory(AnalyticsHandler, redis=StreambootContainer.redis)
