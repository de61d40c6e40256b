"""Resolve a listener's ``handler`` to a bean: a container provider or an import path."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from dependency_injector import containers, providers

from .errors import HandlerResolutionError
from .handler import StreamHandler, handler_problems


async def provide(provider: Any) -> Any:
    """Call a provider; await it when it depends on an async Resource."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def resolve_handler(
    ref: str, container: containers.DeclarativeContainer, listener: str
) -> StreamHandler[Any]:
    where = f"listener {listener!r}, handler {ref!r}"
    if ":" in ref:
        cls = import_handler_class(ref, where)
        bean = await _construct(cls, container, where)
    else:
        provider = getattr(container, ref, None)
        if not isinstance(provider, providers.Provider):
            raise HandlerResolutionError(
                f"{where}: the container has no provider named {ref!r} "
                "(use a provider name or an import path 'package.module:Class')"
            )
        bean = await provide(provider)
    if not isinstance(bean, StreamHandler):
        raise HandlerResolutionError(
            f"{where}: {type(bean).__name__} is not a StreamHandler subclass instance"
        )
    problems = handler_problems(type(bean))
    if problems:
        raise HandlerResolutionError(f"{where}: {'; '.join(problems)}")
    return bean


def import_handler_class(ref: str, where: str) -> type[StreamHandler[Any]]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerResolutionError(f"{where}: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise HandlerResolutionError(f"{where}: module {module_name!r} has no {attr!r}")
    if not (isinstance(cls, type) and issubclass(cls, StreamHandler)):
        raise HandlerResolutionError(f"{where}: {attr!r} is not a StreamHandler subclass")
    return cls


async def _construct(
    cls: type[StreamHandler[Any]], container: containers.DeclarativeContainer, where: str
) -> StreamHandler[Any]:
    """Inject each constructor parameter from the container's provider of the same name."""
    kwargs: dict[str, Any] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        provider = getattr(container, name, None)
        if isinstance(provider, providers.Provider):
            kwargs[name] = await provide(provider)
        elif param.default is param.empty:
            raise HandlerResolutionError(
                f"{where}: {cls.__name__}() needs {name!r}, but the container has no "
                f"provider named {name!r}"
            )
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise HandlerResolutionError(f"{where}: {cls.__name__}() failed: {exc}") from exc
