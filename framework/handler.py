"""StreamHandler[Payload]: the base class of handler beans.

The payload type is read from the generic parameter, so a handler declares its contract
once, in its class line::

    class OrderHandler(StreamHandler[OrderPlaced]):
        def __init__(self, inventory: InventoryService) -> None:
            self.inventory = inventory

        async def handle(self, message: Message[OrderPlaced]) -> None:
            await self.inventory.reserve(message.payload.product_id, message.payload.qty)

``handle`` may be ``async def`` (awaited by a worker task) or a plain ``def`` (run in the
listener's threads, so a blocking call never stalls other listeners). The payload may be a
pydantic model, a dataclass or a ``TypedDict``; ``StreamHandler[dict[str, str]]``
receives the raw fields with no validation. :func:`handler_problems` says, before anything
runs, what in a handler class cannot work.

:class:`BatchHandler` is the bulk form: ``handle_batch(messages)`` receives up to the
listener's ``batch.max_size`` messages at once (one INSERT for a hundred rows, one HTTP
call for many) and says which of them failed (docs/batches.md).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from .codecs import payload_problem
from .message import Message

P = TypeVar("P")


class StreamHandler(Generic[P]):
    payload_type: ClassVar[Any] = None
    """The ``P`` of ``StreamHandler[P]`` (None: the raw fields)."""
    payload_model: ClassVar[type[BaseModel] | None] = None
    """``payload_type`` when it is a pydantic model."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, StreamHandler):
                (arg,) = typing.get_args(base)
                cls.payload_type = None if isinstance(arg, TypeVar) else arg
                is_model = isinstance(arg, type) and issubclass(arg, BaseModel)
                cls.payload_model = arg if is_model else None

    def handle(self, message: Message[P]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(message)")

    @classmethod
    def is_async(cls) -> bool:
        return inspect.iscoroutinefunction(cls.handle)


BatchFailures = Mapping[str, BaseException | str]
"""What ``handle_batch`` returns when some entries failed: entry id → why (an exception,
or a reason as text). Ids it does not name succeeded."""


class BatchHandler(StreamHandler[P]):
    """A handler that takes its entries in batches::

        class LedgerWriter(BatchHandler[Payment]):
            def handle_batch(self, messages: list[Message[Payment]]) -> BatchFailures | None:
                with self.db:  # one transaction for the whole batch
                    self.db.executemany("INSERT …", [(m.id, m.payload.amount) for m in messages])
                return None  # all succeeded

    The outcome is per entry: return ``None`` (every entry succeeded), or a mapping of the
    failed entries' ids to their errors (the others succeeded); raising fails every entry
    of the batch. Each failed entry is retried, then dead-lettered, on its own — a retry
    comes back in a later batch. ``handle_batch`` may be ``async def`` or a plain ``def``
    (run in the listener's threads).
    """

    def handle(self, message: Message[P]) -> Any:
        raise TypeError(f"{type(self).__name__} is a BatchHandler: it is called with "
                        "handle_batch(messages)")

    def handle_batch(self, messages: list[Message[P]]) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} must implement handle_batch(messages)")

    @classmethod
    def is_async(cls) -> bool:
        return inspect.iscoroutinefunction(cls.handle_batch)


def _call_problem(cls: type[StreamHandler[Any]], method: str, argument: str) -> str | None:
    """``cls.<method>`` missing, or not callable as ``method(self, argument)``."""
    name = cls.__name__
    function = getattr(cls, method)
    if function is getattr(StreamHandler if method == "handle" else BatchHandler, method):
        return f"{name} has no {method}(self, {argument}) method"
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(None, None)  # (self, argument)
    except TypeError:
        return f"{name}.{method}{signature} cannot be called as {method}(self, {argument})"
    return None


def handler_problems(cls: type[StreamHandler[Any]]) -> list[str]:
    """What in ``cls`` cannot work: no ``handle`` (``handle_batch`` for a
    :class:`BatchHandler`), one that cannot be called with one argument, a payload type
    the codecs do not build."""
    problems: list[str] = []
    name = cls.__name__
    batch = issubclass(cls, BatchHandler)
    if batch and cls.handle is not BatchHandler.handle:
        problems.append(f"{name} is a BatchHandler: implement handle_batch(self, messages), "
                        "not handle (or subclass StreamHandler for one entry at a time)")
    call = (_call_problem(cls, "handle_batch", "messages") if batch
            else _call_problem(cls, "handle", "message"))
    if not batch and callable(getattr(cls, "handle_batch", None)):
        call = (f"{name} has handle_batch but subclasses StreamHandler, which calls only "
                "handle(message): subclass BatchHandler to take entries in batches"
                + ("" if call is not None else ", or remove handle_batch (never called)"))
    if call is not None:
        problems.append(call)
    problem = payload_problem(cls.payload_type)
    if problem is not None:
        problems.append(f"{name}: {problem}")
    return problems


def batch_problem(cls: type[StreamHandler[Any]], declared: bool) -> str | None:
    """A listener's ``batch`` settings beside a handler that takes one entry at a time:
    they would be silently ignored, so they are refused."""
    if declared and not issubclass(cls, BatchHandler):
        return (f"batch is set, but {cls.__name__} is a StreamHandler (one entry at a time): "
                "subclass BatchHandler and implement handle_batch(self, messages), or "
                "remove batch")
    return None
