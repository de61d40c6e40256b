"""``streamboot check``: everything that can be verified before ``run``, reported at once."""

from __future__ import annotations

from pathlib import Path

from framework.application import build_container
from framework.beans import provide, resolve_handler
from framework.config.errors import ConfigError, ConfigProblem
from framework.config.loader import load_settings
from framework.config.models import AppSettings
from framework.errors import HandlerResolutionError
from framework.operator import RedisOperator


async def check_application(path: str | Path) -> tuple[AppSettings | None, list[ConfigProblem]]:
    """Validate the file, import every handler, reach Redis, and check each stream's key type."""
    file = str(path)
    try:
        settings = load_settings(path)
        container = build_container(settings, file)
    except ConfigError as exc:
        return None, exc.problems
    problems: list[ConfigProblem] = []
    for name, listener in settings.listeners.items():
        try:
            await resolve_handler(listener.handler, container, name)
        except HandlerResolutionError as exc:
            problems.append(ConfigProblem(file, f"listeners.{name}.handler", str(exc)))
    problems.extend(await _check_redis(settings, container, file))
    await _close(container)
    return settings, problems


async def _check_redis(settings: AppSettings, container: object, file: str) -> list[ConfigProblem]:
    try:
        operator: RedisOperator = await provide(container.operator)  # type: ignore[attr-defined]
        await operator.ping()
    except Exception as exc:
        return [ConfigProblem(file, "redis.url", f"cannot reach Redis at "
                              f"{settings.redis.safe_url}: {type(exc).__name__}: {exc}")]
    problems = []
    for name, listener in settings.listeners.items():
        kind = await operator.key_type(listener.stream)
        if kind not in ("stream", "none"):
            problems.append(ConfigProblem(file, f"listeners.{name}.stream",
                                          f"key {listener.stream!r} holds a {kind}, not a stream"))
    return problems


async def _close(container: object) -> None:
    try:
        result = container.shutdown_resources()  # type: ignore[attr-defined]
        if result is not None:
            await result
    except Exception:  # closing a client that never connected may fail; nothing to report
        pass
