"""The sample's DI container: the framework's, plus the beans its handlers need."""

from __future__ import annotations

import os

from dependency_injector import providers

from sample_app.handlers import AnalyticsHandler, NotificationHandler, OrderHandler
from sample_app.inventory import InventoryService
from sample_app.orders import OrderBook
from sample_app.payment import PaymentGateway
from streamboot import AppSettings, Publisher, RedisOperator, StreambootContainer


def payment_failure_fraction() -> float:
    """Injected failures for the demo: SAMPLE_PAYMENT_FAILURE=0.05 declines 5% of orders."""
    return float(os.environ.get("SAMPLE_PAYMENT_FAILURE", "0"))


def notification_publisher(operator: RedisOperator, settings: AppSettings) -> Publisher:
    """Publishes to the ``notifications`` listener's stream, rotated like its consumer."""
    listener = settings.listeners.get("notifications")
    if listener is None:
        raise LookupError("the order handler publishes each outcome to the 'notifications' "
                          "listener's stream: declare that listener (see "
                          "config/application.yaml)")
    return Publisher.for_listener(operator, listener)


class AppContainer(StreambootContainer):
    inventory = providers.Singleton(InventoryService, client=StreambootContainer.redis)
    order_book = providers.Singleton(OrderBook, client=StreambootContainer.redis)
    payment = providers.Singleton(PaymentGateway, providers.Callable(payment_failure_fraction))
    notifications = providers.Singleton(notification_publisher,
                                        operator=StreambootContainer.operator,
                                        settings=StreambootContainer.settings)
    order_handler = providers.Factory(OrderHandler, redis=StreambootContainer.redis,
                                      payment=payment, notifications=notifications)
    analytics_handler = providers.Factory(AnalyticsHandler, redis=StreambootContainer.redis)
    notification_handler = providers.Factory(NotificationHandler,
                                             redis=StreambootContainer.redis)
