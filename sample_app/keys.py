"""Every key of the sample, in one place.

They all carry the ``{orders}`` hash tag, so they live in the same Redis Cluster slot as
the ``orders`` stream and one script can touch them together (stock, order, counters,
audit and the idempotency marker). A real shop would shard by product instead.
"""

ORDERS = "orders"
AUDIT = "{orders}:audit"
OUTCOMES = "{orders}:outcomes"
PER_PRODUCT = "{orders}:analytics:per-product"
DONE_PREFIX = "{orders}:done"
NOTIFICATIONS = "{orders}:notifications"
"""The rotated stream's logical name; its period keys are ``{orders}:notifications:<hour>``."""
SENT = "{orders}:notifications-sent"
"""Notifications sent, per outcome (the notifier's effect)."""


def stock(product_id: str) -> str:
    return f"{{orders}}:stock:{product_id}"


def order(order_id: str) -> str:
    return f"{{orders}}:order:{order_id}"


def lock(user_id: str, product_id: str) -> str:
    return f"{{orders}}:lock:{user_id}:{product_id}"


def request(user_id: str, request_id: str) -> str:
    """A request the API took (its id, chosen by the client, one user's: two users may
    pick the same id): a resubmission is refused."""
    return f"{{orders}}:request:{user_id}:{request_id}"
