"""StreamHandler[Payload]: the base class of handler beans.

The payload model is read from the generic parameter, so a handler declares its
contract once, in its class line::

    class OrderHandler(StreamHandler[OrderPlaced]):
        def __init__(self, inventory: InventoryService) -> None:
            self.inventory = inventory

        async def handle(self, message: Message[OrderPlaced]) -> None:
            await self.inventory.reserve(message.payload.product_id, message.payload.qty)

``handle`` may be ``async def`` (awaited on the loop) or a plain ``def`` (run in the
listener's bounded thread pool, so a blocking call never stalls other listeners).
``StreamHandler[dict[str, str]]`` receives the raw fields with no validation.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from framework.message import Message

P = TypeVar("P")


class StreamHandler(Generic[P]):
    payload_model: ClassVar[type[BaseModel] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is StreamHandler:
                (arg,) = typing.get_args(base)
                is_model = isinstance(arg, type) and issubclass(arg, BaseModel)
                cls.payload_model = arg if is_model else None

    def handle(self, message: Message[P]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement handle(message)")

    @classmethod
    def is_async(cls) -> bool:
        return inspect.iscoroutinefunction(cls.handle)
