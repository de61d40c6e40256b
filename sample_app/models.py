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
