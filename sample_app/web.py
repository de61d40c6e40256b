"""The API server of seed 002: users → HTTP → the per-user lock → XADD → the workers.

``uvicorn sample_app.web:app`` — the sample starts it as a process of its own, on a
socket it binds (``--fd``), and its simulated users send it concurrent HTTP requests. It
only publishes: the workers are ``streamboot run`` processes of the same file, so the
publisher here follows the file's listener exactly as theirs reads it. The file is
``SAMPLE_CONFIG`` (default ``config/application.yaml``); Redis is its ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sample_app.api import DuplicateRequest, OrderApi
from streamboot import Backpressure, EmbeddedApp, Publisher, PublishUnavailable

CONFIG = Path(__file__).resolve().parent.parent / "config" / "application.yaml"
NAME = r"^[A-Za-z0-9_.-]{1,64}$"
"""User and product ids go into Redis keys (the lock's): plain names only."""

streams = EmbeddedApp(os.environ.get("SAMPLE_CONFIG", str(CONFIG)), listeners=False)


async def _orphaned(parent: int) -> None:
    """The sample that started this server is gone (killed): stop, as its workers do,
    rather than serve for ever on a port nobody reads."""
    while os.getppid() == parent:  # noqa: ASYNC110 - the parent's pid, no event to wait on
        await asyncio.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    parent = os.environ.get("SAMPLE_PARENT")
    watch = asyncio.create_task(_orphaned(int(parent))) if parent else None
    try:
        async with streams.running():
            yield
    finally:
        if watch is not None:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch


app = FastAPI(title="Black Friday orders", lifespan=lifespan)


@app.exception_handler(RedisConnectionError)
@app.exception_handler(RedisTimeoutError)
async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Redis away (a request id, a lock, a lookup): 503, which a client retries — not
    500, as a new user's trial saw for every route but /healthz while Redis was down."""
    return JSONResponse({"detail": f"redis unavailable: {exc}"}, status_code=503)


class OrderRequest(BaseModel):
    user_id: Annotated[str, Field(pattern=NAME)]
    product_id: Annotated[str, Field(pattern=NAME)]
    qty: Annotated[int, Field(ge=1, le=10, strict=True)] = 1
    request_id: Annotated[str, Field(pattern=NAME)]
    """Chosen by the client, one per purchase: a double click or a retry sends it again."""


class OrderPlaced(BaseModel):
    order_id: str
    entry_id: str
    stream: str


class InFlight(BaseModel):
    in_flight: bool
    """The user's order of this product is still being handled (its lock is held)."""


Orders = Annotated[Publisher, Depends(streams.publisher("orders"))]
Redis = Annotated[Any, Depends(streams.bean("redis"))]


@app.post("/orders", status_code=202, responses={
    409: {"description": "the user already has an order of this product in flight"},
    503: {"description": "Redis unreachable, or the orders stream full (backpressure)"}})
async def place_order(order: OrderRequest, orders: Orders, redis: Redis) -> OrderPlaced:
    """Take the request id and the user's lock for the product, publish the order; a
    double click (the same request id) or a second order while the first is in flight is
    refused (409), never published twice."""
    try:
        placed = await OrderApi(orders, redis).create_order(
            order.user_id, order.product_id, order.qty, order.request_id)
    except DuplicateRequest as exc:
        raise HTTPException(409, str(exc)) from exc
    except (PublishUnavailable, Backpressure) as exc:
        raise HTTPException(503, str(exc)) from exc
    return OrderPlaced(order_id=placed.order_id, entry_id=str(placed.entry),
                       stream=placed.entry.stream)


@app.get("/users/{user_id}/orders/{product_id}")
async def in_flight(user_id: Annotated[str, Field(pattern=NAME)],
                    product_id: Annotated[str, Field(pattern=NAME)],
                    redis: Redis) -> InFlight:
    """Whether the user's order is still being handled: the workers release its lock once
    it is accepted or rejected (a dead-lettered one's lock expires after LOCK_TTL)."""
    return InFlight(in_flight=await OrderApi.holds_lock(redis, user_id, product_id))


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    health = await streams.health()
    if not health["healthy"]:
        raise HTTPException(503, health["problems"])
    return health
