"""Middlewares: what every handling of a listener passes through, declared once.

Tenant context, per-handler metrics, an audit line — code that would otherwise be pasted
into every handler. As in Starlette and FastStream, a middleware is called with the
message and the next step, and decides what happens around it::

    class TenantContext(Middleware):
        async def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
            with logger.contextualize(tenant=message.fields.get("tenant", "-")):
                return await call_next(message)

``call_next(message)`` runs the rest of the chain and the handler, and returns what the
handler returned — or raises what it raised. What the middleware then does is the
outcome: re-raise (or raise its own error) and the entry fails as a handler failure does
(retried, then dead-lettered); return and it succeeded (acked). A sync handler still runs
in the listener's threads; its middlewares run on the event loop around it. The chain
runs inside ``handler_timeout``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from ..message import Message

CallNext = Callable[[Message[Any]], Awaitable[Any]]
"""The rest of the chain and the handler: ``await call_next(message)``."""


class Middleware:
    """The base class of middlewares (any object with this ``__call__`` will do; the
    base class says what is expected, and ``check`` finds a missing method)."""

    async def __call__(self, message: Message[Any], call_next: CallNext) -> Any:
        return await call_next(message)


def chained(middlewares: Sequence[Any], last: CallNext) -> CallNext:
    """One callable: the first middleware outermost, ``last`` (the handler's call)
    innermost. Built once per listener; a call costs one frame per middleware."""
    call = last
    for middleware in reversed(middlewares):
        call = partial(middleware, call_next=call)
    return call


def middleware_problem(bean: object) -> str | None:
    """Why ``bean`` cannot be a middleware, or None."""
    if isinstance(bean, type) or not callable(bean):
        return f"{type(bean).__name__} is not a middleware (no __call__(message, call_next))"
    call = type(bean).__call__
    if not inspect.iscoroutinefunction(call):
        return (f"{type(bean).__name__}.__call__ must be `async def __call__(self, message, "
                "call_next)`")
    try:
        inspect.signature(call).bind(bean, None, call_next=None)
    except TypeError:
        return (f"{type(bean).__name__}.__call__{inspect.signature(call)} cannot be called "
                "as __call__(self, message, call_next=…): the next step is passed by that "
                "name")
    except ValueError:  # no signature to read (a builtin): trusted
        pass
    return None
