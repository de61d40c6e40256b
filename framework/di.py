"""The dependency-injector container: settings → redis client → operator → listener
container and scheduler. Applications subclass it to add their own providers::

    class AppContainer(StreambootContainer):
        inventory = providers.Singleton(InventoryService, client=StreambootContainer.redis)

A listener's ``handler`` names one of these providers, or an import path whose class
gets its constructor arguments from the providers of the same names: resolving it, and
the application's own container class, is here too.
"""

from __future__ import annotations

import importlib
import inspect
import traceback
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from dependency_injector import containers, providers

from .client import redis_client_resource, renewal_client_resource
from .config.models import AppSettings, SchedulerSettings
from .errors import ConfigError, ConfigProblem, HandlerResolutionError
from .handler import StreamHandler, handler_problems
from .jobs.schedule import quiet_cancellations_at_stop
from .listener.container import ListenerContainer
from .middleware.chain import middleware_problem
from .wire.operator import RedisOperator


def build_scheduler(settings: SchedulerSettings) -> AsyncIOScheduler:
    """Every job: one instance at a time, missed runs coalesced, misfires tolerated."""
    quiet_cancellations_at_stop()
    return AsyncIOScheduler(
        timezone=settings.timezone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(settings.misfire_grace_time.total_seconds()) or 1,
        },
    )


class StreambootContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=AppSettings)
    redis = providers.Resource(redis_client_resource, settings=settings.provided.redis)
    renewal_redis = providers.Resource(renewal_client_resource, settings=settings)
    operator = providers.Singleton(RedisOperator, client=redis)
    listener_container = providers.Singleton(ListenerContainer, operator=operator,
                                             keeper_client=renewal_redis)
    scheduler = providers.Singleton(build_scheduler, settings=settings.provided.scheduler)


def container_class(settings: AppSettings, file: str = "<settings>") -> type[StreambootContainer]:
    """The application's container (``application.container``), or the framework's."""
    ref = settings.application.container
    if ref is None:
        return StreambootContainer
    try:
        cls = import_ref(ref)
    except LookupError as exc:
        raise ConfigError([ConfigProblem(file, "application.container", str(exc))]) from exc
    if not (isinstance(cls, type) and issubclass(cls, StreambootContainer)):
        raise ConfigError([ConfigProblem(file, "application.container",
                                         f"{ref!r} is not a StreambootContainer subclass")])
    return cls


def build_container(settings: AppSettings, file: str = "<settings>") -> StreambootContainer:
    return container_class(settings, file)(settings=settings)



async def provide(provider: Any) -> Any:
    """Call a provider; await it when it depends on an async Resource."""
    value = provider()
    return await value if inspect.isawaitable(value) else value


async def _provided(ref: str, container: containers.DeclarativeContainer, where: str) -> Any:
    """The bean of the container's provider named ``ref`` (a handler's, a middleware's)."""
    provider = getattr(container, ref, None)
    if not isinstance(provider, providers.Provider):
        raise HandlerResolutionError(
            f"{where}: the container has no provider named {ref!r} "
            "(use a provider name or an import path 'package.module:Class')")
    return await provide(provider)


async def resolve_handler(
    ref: str, container: containers.DeclarativeContainer, listener: str
) -> StreamHandler[Any]:
    where = f"listener {listener!r}, handler {ref!r}"
    if ":" in ref:
        cls = import_handler_class(ref, where)
        bean = await _construct(cls, container, where)
    else:
        bean = await _provided(ref, container, where)
    if not isinstance(bean, StreamHandler):
        raise HandlerResolutionError(
            f"{where}: {type(bean).__name__} is not a StreamHandler subclass instance"
        )
    problems = handler_problems(type(bean))
    if problems:
        raise HandlerResolutionError(f"{where}: {'; '.join(problems)}")
    return bean


async def resolve_middleware(ref: str, container: containers.DeclarativeContainer,
                             listener: str) -> Any:
    """A middleware bean (middleware/chain.py), named as a handler is: a provider of the
    container, or ``package.module:Class`` with its constructor arguments injected."""
    where = f"listener {listener!r}, middleware {ref!r}"
    if ":" in ref:
        try:
            cls = import_ref(ref)
        except LookupError as exc:
            raise HandlerResolutionError(f"{where}: {exc}") from exc
        if not isinstance(cls, type):
            raise HandlerResolutionError(f"{where}: {ref.partition(':')[2]!r} is not a class")
        bean = await _construct(cls, container, where)
    else:
        bean = await _provided(ref, container, where)
    problem = middleware_problem(bean)
    if problem is not None:
        raise HandlerResolutionError(f"{where}: {problem}")
    return bean


async def resolve_middlewares(settings: AppSettings, container: containers.DeclarativeContainer,
                              listener: str) -> tuple[Any, ...]:
    """The listener's chain, outermost first: ``container.middleware``, then its own."""
    refs = [*(("container.middleware", ref) for ref in settings.container.middleware),
            *((f"listeners.{listener}.middleware", ref)
              for ref in settings.listeners[listener].middleware)]
    chain = []
    for key, ref in refs:
        try:
            chain.append(await resolve_middleware(ref, container, listener))
        except HandlerResolutionError as exc:
            exc.key = key
            raise
    return tuple(chain)


def import_ref(ref: str) -> object:
    """What ``package.module:Attr`` names (handlers, application containers). Raises
    ``LookupError`` with the reason: not of that form, the module cannot be imported (or
    fails while it is imported: the user's own code, so where it failed is named), or it
    lacks the name."""
    module_name, colon, attr = ref.partition(":")
    if not colon or not all(part.isidentifier() for part in module_name.split(".")) \
            or not attr.isidentifier():
        raise LookupError(f"{ref!r} is not an import path of the form package.module:Name")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = ""
        if exc.name == module_name.split(".")[0]:  # the top package itself is not found
            hint = (" (modules are imported from the current directory and PYTHONPATH: "
                    "run from your project's root)")
        raise LookupError(f"cannot import {module_name!r}: {exc}{hint}") from exc
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name!r}: {exc}") from exc
    except Exception as exc:  # the module's own code failed: say where, not a traceback
        raise LookupError(f"importing {module_name!r} failed: {_where_it_failed(exc)}") from exc
    found = getattr(module, attr, None)
    if found is None:
        raise LookupError(f"module {module_name!r} has no {attr!r}")
    return found


def _where_it_failed(exc: Exception) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} ({exc.filename}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    at = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{at}"


def import_handler_class(ref: str, where: str) -> type[StreamHandler[Any]]:
    try:
        cls = import_ref(ref)
    except LookupError as exc:
        raise HandlerResolutionError(f"{where}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, StreamHandler)):
        name = ref.partition(":")[2]
        raise HandlerResolutionError(f"{where}: {name!r} is not a StreamHandler subclass")
    return cls


async def _construct(
    cls: type[Any], container: containers.DeclarativeContainer, where: str
) -> Any:
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
