"""The order handler bean: reserve stock, record the outcome."""

from __future__ import annotations

from loguru import logger

from framework import Message, StreamHandler
from sample_app.inventory import InventoryService
from sample_app.models import OrderPlaced
from sample_app.orders import OrderBook


class OrderHandler(StreamHandler[OrderPlaced]):
    """Its constructor arguments are injected from the container by name."""

    def __init__(self, inventory: InventoryService, order_book: OrderBook) -> None:
        self.inventory = inventory
        self.order_book = order_book

    async def handle(self, message: Message[OrderPlaced]) -> None:
        order = message.payload
        if await self.order_book.outcome(order.order_id) is not None:
            logger.debug("order {} already handled; skipping redelivery", order.order_id)
            return
        accepted = await self.inventory.reserve(order.product_id, order.qty)
        await self.order_book.record(order.order_id, "accepted" if accepted else "rejected")
