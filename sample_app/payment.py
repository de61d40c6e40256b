"""A simulated payment gateway that declines a fixed fraction of orders, every time.

Declines are a pure function of the order id, so a declined order keeps failing on every
retry and ends in the dead-letter stream — the path the sample is there to show.
"""

from __future__ import annotations

import hashlib


class PaymentDeclined(Exception):
    pass


class PaymentGateway:
    def __init__(self, failure_fraction: float = 0.0) -> None:
        self.failure_fraction = failure_fraction

    def declines(self, order_id: str) -> bool:
        digest = hashlib.sha256(order_id.encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.failure_fraction

    async def charge(self, order_id: str, amount: int) -> None:
        if self.declines(order_id):
            raise PaymentDeclined(f"card declined for order {order_id}")
