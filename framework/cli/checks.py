"""``streamboot check``: everything that can be verified before ``run``, reported at once.

Every problem in one run: the file's own (unknown keys, wrong types, timings that cannot
work), each handler's (not importable, no ``handle(self, message)``, a payload type the
codecs do not build) — checked from the raw file when the model itself is invalid, so a
typo does not hide a missing module — and Redis's (unreachable, authentication, a key
that is not a stream).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..config.loader import load_settings, read_yaml
from ..config.models import AppSettings, ListenerSettings
from ..di import (
    build_container,
    import_handler_class,
    provide,
    resolve_handler,
    resolve_middlewares,
)
from ..errors import ConfigError, ConfigProblem, HandlerResolutionError
from ..handler import batch_problem, handler_problems
from ..partitions.keys import partition_keys
from ..wire.operator import RedisOperator
from ..wire.redis_errors import (
    describe_permanent,
    describe_unavailable,
    is_permanent,
    no_primary_found,
)


async def check_application(path: str | Path) -> tuple[AppSettings | None, list[ConfigProblem]]:
    """Validate the file, import every handler, reach Redis, and check each stream's key type."""
    file = str(path)
    try:
        settings = load_settings(path)
    except ConfigError as exc:
        reported = {p.path for p in exc.problems}
        extra = [p for p in _handlers_in_raw_file(Path(path), file) if p.path not in reported]
        return None, [*exc.problems, *extra]
    problems: list[ConfigProblem] = []
    if not any(listener.enabled for listener in settings.listeners.values()):
        problems.append(ConfigProblem(file, "listeners", "no listener is declared (or all "
                                                         "are disabled): run would have "
                                                         "nothing to do"))
    try:
        container = build_container(settings, file)
    except ConfigError as exc:
        return settings, [*problems, *exc.problems]
    problems.extend(await _resolve_each(settings, container, file))
    problems.extend(await _check_redis(settings, container, file))
    await close_container(container)
    return settings, problems


async def handler_problems_of(settings: AppSettings, file: str) -> list[ConfigProblem]:
    """Every listener's handler resolved (imported, constructed) once, without Redis:
    what ``run --workers`` checks before it starts N processes that would each say it."""
    try:
        container = build_container(settings, file)
    except ConfigError as exc:
        return list(exc.problems)
    try:
        return await _resolve_each(settings, container, file, enabled_only=True)
    finally:
        await close_container(container)


async def _resolve_each(settings: AppSettings, container: Any, file: str,
                        enabled_only: bool = False) -> list[ConfigProblem]:
    problems = []
    for name, listener in settings.listeners.items():
        if enabled_only and not listener.enabled:
            continue
        try:
            handler = await resolve_handler(listener.handler, container, name)
        except HandlerResolutionError as exc:
            problems.append(ConfigProblem(file, f"listeners.{name}.handler", str(exc)))
            continue
        problems.extend(_fields_problems(file, name, listener, type(handler).payload_type))
        batch = batch_problem(type(handler), listener.batch is not None)
        if batch is not None:
            problems.append(ConfigProblem(file, f"listeners.{name}.batch", batch))
        try:
            await resolve_middlewares(settings, container, name)
        except HandlerResolutionError as exc:
            problems.append(ConfigProblem(
                file, exc.key or f"listeners.{name}.middleware", str(exc)))
    return problems


def _fields_problems(file: str, name: str, listener: ListenerSettings,
                     payload: Any) -> list[ConfigProblem]:
    """A partitioned listener routing by a field its payload model does not have: every
    publish of that model through the listener's Publisher would be refused, so say so
    before anything runs. (Only routing: an ordering or idempotency key may be a field
    producers add beside the model's, read from the raw entry.)"""
    key = listener.routed_by if listener.partitions > 1 else None
    if key is None or not (isinstance(payload, type) and issubclass(payload, BaseModel)):
        return []  # no routing field, or raw fields / a mapping: any field may come
    fields = set(payload.model_fields)
    if key in fields:
        return []
    where = "partition_by" if listener.partition_by else "ordering_key"
    return [ConfigProblem(file, f"listeners.{name}.{where}",
                          f"{key!r} is not a field of the handler's payload "
                          f"{payload.__name__} (its fields: {', '.join(sorted(fields))}): "
                          "publishes could not pick a partition")]


def _handlers_in_raw_file(path: Path, file: str) -> list[ConfigProblem]:
    """Handlers named by import path in a file whose model did not validate: still worth
    checking (provider names need the container, which an invalid file cannot build)."""
    try:
        tree = read_yaml(path)
    except ConfigError:
        return []  # the YAML itself is broken: that problem is already reported
    listeners = tree.get("listeners")
    if not isinstance(listeners, dict):
        return []
    problems = []
    for name, listener in listeners.items():
        ref = listener.get("handler") if isinstance(listener, dict) else None
        if not isinstance(ref, str) or ":" not in ref or "${" in ref:
            continue
        where = f"listener {name!r}, handler {ref!r}"
        try:
            cls = import_handler_class(ref, where)
        except HandlerResolutionError as exc:
            problems.append(ConfigProblem(file, f"listeners.{name}.handler", str(exc)))
            continue
        found = handler_problems(cls)
        if found:
            problems.append(ConfigProblem(file, f"listeners.{name}.handler",
                                          f"{where}: {'; '.join(found)}"))
    return problems


async def _check_redis(settings: AppSettings, container: Any, file: str) -> list[ConfigProblem]:
    operator: RedisOperator | None = None
    try:
        operator = await provide(container.operator)
        await operator.ping()
    except Exception as exc:
        address = operator.address if operator is not None else settings.redis.safe_url
        text = (describe_permanent(exc, address) if is_permanent(exc)
                else describe_unavailable(exc, address))
        if operator is not None and no_primary_found(exc):
            text = await operator.unknown_primary_name() or text
        key = "redis.sentinel" if settings.redis.sentinel is not None else "redis.url"
        return [ConfigProblem(file, key, text)]
    problems = []
    for name, listener in settings.listeners.items():
        for key in partition_keys(listener):
            kind = await operator.key_type(key)
            if kind not in ("stream", "none"):
                problems.append(ConfigProblem(file, f"listeners.{name}.stream",
                                              f"key {key!r} holds a {kind}, not a stream"))
    return problems


async def close_container(container: Any) -> None:
    try:
        result = container.shutdown_resources()
        if result is not None:
            await result
    except Exception:  # closing a client that never connected may fail; nothing to report
        pass
