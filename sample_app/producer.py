"""Publishes orders the way the API side of seed 002 does: XADD of flat fields, pipelined."""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence

from framework import FlatCodec, RedisOperator
from sample_app.models import OrderPlaced

_codec = FlatCodec()


def make_orders(
    count: int, products: Sequence[str], users: int, seed: int = 7
) -> list[OrderPlaced]:
    rng = random.Random(seed)
    return [
        OrderPlaced(
            order_id=uuid.UUID(int=rng.getrandbits(128)).hex,
            user_id=f"user-{rng.randrange(users)}",
            product_id=rng.choice(list(products)),
            qty=rng.choice((1, 1, 1, 2)),
        )
        for _ in range(count)
    ]


async def publish(operator: RedisOperator, stream: str, orders: Sequence[OrderPlaced],
                  chunk: int = 500) -> int:
    """XADD every order, ``chunk`` per pipeline round trip."""
    client = operator.client
    for start in range(0, len(orders), chunk):
        pipe = client.pipeline(transaction=False)
        for order in orders[start:start + chunk]:
            pipe.xadd(stream, _codec.encode(order))  # type: ignore[arg-type]
        await pipe.execute()
    return len(orders)
