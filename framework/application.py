"""The running application: builds the DI container from settings, starts every listener
and the scheduler, and stops them in order."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import signal
from datetime import UTC, datetime
from typing import Any

from loguru import logger

from framework.beans import provide, resolve_handler
from framework.config.errors import ConfigError, ConfigProblem
from framework.config.models import AppSettings
from framework.di import StreambootContainer
from framework.jobs.guard import guarded
from framework.jobs.recovery import PendingRecovery
from framework.listener.container import ListenerContainer
from framework.listener.spec import resolve_listener
from framework.operator import RedisOperator


def container_class(settings: AppSettings, file: str = "<settings>") -> type[StreambootContainer]:
    ref = settings.application.container
    if ref is None:
        return StreambootContainer
    module_name, _, attr = ref.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([ConfigProblem(file, "application.container",
                                         f"cannot import {ref!r}: {exc}")]) from exc
    if not (isinstance(cls, type) and issubclass(cls, StreambootContainer)):
        raise ConfigError([ConfigProblem(file, "application.container",
                                         f"{ref!r} is not a StreambootContainer subclass")])
    return cls


def build_container(settings: AppSettings, file: str = "<settings>") -> StreambootContainer:
    return container_class(settings, file)(settings=settings)


class Application:
    """Lifecycle of one process: ``start`` → run → ``stop``."""

    def __init__(self, settings: AppSettings, container: StreambootContainer | None = None):
        self.settings = settings
        self.container = container or build_container(settings)
        self.listeners: ListenerContainer | None = None
        self.operator: RedisOperator | None = None
        self._scheduler: Any = None
        self.recoveries: dict[str, PendingRecovery] = {}

    async def start(self, wait_live: float | None = 30.0) -> None:
        await _maybe_await(self.container.init_resources())
        self.operator = await provide(self.container.operator)
        self.listeners = await provide(self.container.listener_container)
        for name, listener in self.settings.listeners.items():
            if not listener.enabled:
                logger.info("listener {} is disabled", name)
                continue
            spec = resolve_listener(name, listener, self.settings.container)
            handler = await resolve_handler(spec.handler, self.container, name)
            self.listeners.register(spec, handler)
        await self.listeners.start(timeout=wait_live)
        if self.settings.scheduler.enabled:
            self._scheduler = await provide(self.container.scheduler)
            self._schedule_recovery()
            self._scheduler.start()
        elif self.settings.listeners:
            logger.warning("scheduler disabled: entries of dead consumers are not reclaimed")
        logger.info("{} started: {} listener(s)", self.settings.application.name,
                    len(self.listeners.subscriptions))

    def _schedule_recovery(self) -> None:
        assert self.listeners is not None
        assert self.operator is not None
        for name, subscription in self.listeners.subscriptions.items():
            scan = subscription.spec.pending_scan
            if not scan.enabled:
                continue
            recovery = PendingRecovery(subscription, self.operator)
            self.recoveries[name] = recovery
            # First run right away: orphans of a consumer that died before this start.
            self._scheduler.add_job(
                guarded(f"recovery:{name}", recovery.run_once), "interval",
                seconds=scan.interval.total_seconds(), id=f"recovery:{name}",
                next_run_time=datetime.now(UTC),
            )

    async def stop(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self.listeners is not None:
            await self.listeners.stop()
        await _maybe_await(self.container.shutdown_resources())
        logger.info("{} stopped", self.settings.application.name)

    async def run_until_signalled(self) -> None:
        """Run until SIGINT/SIGTERM, then stop gracefully; a second signal forces."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                logger.warning("second {}: forcing stop", signal.Signals(signum).name)
                if current is not None:
                    current.cancel()
                return
            logger.info("{} received: stopping gracefully", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.start(wait_live=None)
            await stop.wait()
            await self.stop()  # still under our handlers: a second signal cancels this
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _maybe_await(value: Any) -> None:
    """``init_resources``/``shutdown_resources`` return an awaitable only with async Resources."""
    if inspect.isawaitable(value):
        await value
