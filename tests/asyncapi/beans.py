"""The handlers of the AsyncAPI tests: their payload types are what the document shows."""

from __future__ import annotations

from pydantic import BaseModel, Field

from streamboot import BatchHandler, Message, StreamHandler


class Line(BaseModel):
    sku: str
    qty: int = Field(ge=1)


class Order(BaseModel):
    """An order placed by a customer."""

    order_id: str
    customer: str
    lines: list[Line]


class Payment(BaseModel):
    event_id: str
    amount: int


class Orders(StreamHandler[Order]):
    async def handle(self, message: Message[Order]) -> None:
        return None


class Payments(BatchHandler[Payment]):
    async def handle_batch(self, messages: list[Message[Payment]]) -> None:
        return None


class Raw(StreamHandler[dict[str, str]]):
    async def handle(self, message: Message[dict[str, str]]) -> None:
        return None
