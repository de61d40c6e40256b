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
"""

from __future__ import annotations

import inspect
import typing
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
            if typing.get_origin(base) is StreamHandler:
                (arg,) = typing.get_args(base)
                cls.payload_type = None if isinstance(arg, TypeVar) else arg
                is_model = isinstance(arg, type) and issubclass(arg, BaseModel)
                cls.payload_model = arg if is_model else None

    def handle(self, message: Message[P]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(message)")

    @classmethod
    def is_async(cls) -> bool:
        return inspect.iscoroutinefunction(cls.handle)


def handler_problems(cls: type[StreamHandler[Any]]) -> list[str]:
    """What in ``cls`` cannot work: no ``handle``, one that cannot be called as
    ``handle(message)``, a payload type the codecs do not build."""
    problems: list[str] = []
    name = cls.__name__
    if cls.handle is StreamHandler.handle:
        problems.append(f"{name} has no handle(self, message) method")
    else:
        try:
            signature = inspect.signature(cls.handle)
        except (TypeError, ValueError):
            signature = None
        if signature is not None:
            try:
                signature.bind(None, None)  # (self, message)
            except TypeError:
                problems.append(f"{name}.handle{signature} cannot be called as "
                                "handle(self, message)")
    problem = payload_problem(cls.payload_type)
    if problem is not None:
        problems.append(f"{name}: {problem}")
    return problems
