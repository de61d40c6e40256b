"""The events of the order pipeline."""

from __future__ import annotations

from pydantic import BaseModel, Field


class OrderPlaced(BaseModel):
    """Published by the API side when a user places an order (flat fields on ``orders``)."""

    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    product_id: str = Field(min_length=1)
    qty: int = Field(ge=1)
    schema_version: int = 1
    lock_token: str = ""


class OrderOutcome(BaseModel):
    """Published by the order handler once an order is decided, on the rotated
    ``{orders}:notifications:<hour>`` streams: what the notifier e-mails the user."""

    order_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    status: str = Field(pattern="^(accepted|rejected)$")
