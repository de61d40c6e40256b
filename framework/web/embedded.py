"""An application file run inside a host's event loop: an ASGI app's lifespan (FastAPI,
Starlette) or any asyncio program that owns the loop and the signals.

``streamboot run`` owns its process: it takes SIGTERM, configures logging and exits with a
code. A web process has an owner already (uvicorn), so here the host's lifespan starts
and stops it, a failure to start raises into the host (which refuses to serve rather than
serving without its streams), and nothing waits for Redis for ever: ``startup_timeout``
bounds it (the file's ``redis.startup_timeout``, else :data:`DEFAULT_STARTUP_TIMEOUT`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from ..application import Application
from ..config.loader import load_settings
from ..config.models import AppSettings
from ..di import StreambootContainer, build_container, provide
from ..errors import UsageError
from ..observability.health import health
from ..observability.logs import configure_logging, install_entry_context
from ..process.gc_tuning import tune_gc
from ..process.preflight import reach_redis
from ..publisher import Publisher
from ..wire.operator import RedisOperator

DEFAULT_STARTUP_TIMEOUT = 30.0
"""Seconds an embedded start waits for Redis when the file sets no ``redis.startup_timeout``:
a web process that never finishes its startup serves nothing and says nothing."""

Logging = Literal["streamboot", "host"]


class EmbeddedApp:
    """One application file, run by its host's lifespan::

        streams = EmbeddedApp("app.yaml")                 # listeners and jobs run here too
        app = FastAPI(lifespan=streams.lifespan)

        @app.post("/orders")
        async def place(order: Order,
                        orders: Publisher = Depends(streams.publisher("orders"))) -> dict:
            entry = await orders.publish(order)
            return {"id": entry, "stream": entry.stream}

    ``listeners=False`` runs none of the file's listeners or jobs here — the web process
    only publishes (its workers are ``streamboot run`` elsewhere); its publishers follow
    the file all the same (codec, partitions, rotation, durability, backpressure).

    ``logging="streamboot"`` (the default) applies the file's ``logging`` section, as
    ``streamboot run`` does; ``"host"`` leaves loguru's sinks to the host and only adds
    the context (``listener``, ``entry_id``, … in each record's ``extra``).
    """

    def __init__(self, settings: AppSettings | str | Path, *, listeners: bool = True,
                 logging: Logging = "streamboot", startup_timeout: float | None = None,
                 container: StreambootContainer | None = None) -> None:
        if isinstance(settings, (str, Path)):
            self.source = str(settings)
            settings = load_settings(settings)  # a bad file fails here, at import, loudly
        else:
            self.source = "<settings>"
        if logging not in ("streamboot", "host"):
            raise UsageError(f"logging must be 'streamboot' or 'host', not {logging!r}")
        self.settings = settings
        self.listeners = listeners
        self.logging = logging
        configured = settings.redis.startup_timeout
        self.startup_timeout = (startup_timeout if startup_timeout is not None else
                                configured.total_seconds() if configured is not None else
                                DEFAULT_STARTUP_TIMEOUT)
        self._container = container
        self.application: Application | None = None
        """The running application (with ``listeners=True``), while started."""
        self.container: StreambootContainer | None = None
        """The DI container of the running application, while started."""
        self.operator: RedisOperator | None = None
        self._publishers: dict[str, Publisher] = {}

    # -- the lifespan ----------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[dict[str, Any]]:
        """``FastAPI(lifespan=streams.lifespan)``: started before the first request is
        served, stopped after the last. It yields the ASGI lifespan state
        ``{"streamboot": self}`` (``request.state.streamboot`` in a route). The host's own
        lifespan nests :meth:`running` instead."""
        async with self.running():
            yield {"streamboot": self}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[EmbeddedApp]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def start(self) -> None:
        """Reach Redis (within ``startup_timeout``), then start the listeners and jobs
        unless ``listeners=False``. Raises :class:`StartupError` or
        :class:`~streamboot.ConfigError` (a handler that cannot be resolved); everything
        it started is stopped again first."""
        if self.operator is not None:
            raise UsageError("this EmbeddedApp is already started")
        if self.logging == "streamboot":
            configure_logging(self.settings.logging)
        install_entry_context()
        try:
            if self.listeners:
                await self._start_application()
            else:
                await self._start_publishers_only()
        except BaseException:
            await self.stop()
            raise
        tune_gc(self.settings.application.gc)  # only when the file asks for it
        logger.info("{} embedded: {}", self.settings.application.name,
                    "listeners and jobs running" if self.listeners else "publishers only")

    async def _start_application(self) -> None:
        settings = self.settings
        if settings.redis.startup_timeout is None:  # bounded here, whatever the file says
            redis = settings.redis.model_copy(
                update={"startup_timeout": timedelta(seconds=self.startup_timeout)})
            settings = settings.model_copy(update={"redis": redis})
        self.application = Application(settings, self._container, source=self.source)
        self.container = self.application.container
        await self.application.start()
        self.operator = self.application.operator

    async def _start_publishers_only(self) -> None:
        container = self.container = self._container or build_container(self.settings,
                                                                        self.source)
        init = container.init_resources()
        if init is not None:
            await init
        operator: RedisOperator = await provide(container.operator)
        self.operator = operator
        redis = self.settings.redis
        await reach_redis(operator, asyncio.Event(),
                          tls_without_client_cert=redis.tls_without_client_cert,
                          timeout=self.startup_timeout)

    async def stop(self) -> None:
        """Stop what :meth:`start` started (listeners settle and ack first; bounded by
        ``container.shutdown_timeout``)."""
        application, self.application = self.application, None
        container, self.container = self.container, None
        self.operator = None
        self._publishers.clear()
        if application is not None:
            await application.stop()
        elif container is not None:
            shutdown = container.shutdown_resources()
            if shutdown is not None:
                await shutdown

    # -- what routes use ---------------------------------------------------------------

    async def health(self) -> dict[str, object]:
        """What ``streamboot run``'s /healthz answers (``healthy``, ``problems``), for the
        web app's own health route: with listeners, whether each makes progress; with
        publishers only, whether Redis answers."""
        if self.application is not None and self.application.operator is not None:
            return await self.application.health()
        if self.operator is None:
            return {"healthy": False, "problems": [
                f"{self.settings.application.name} is not started"]}
        return await health(self.operator, {})

    def publisher_of(self, listener: str) -> Publisher:
        """The Publisher of a listener of the file (one per listener, kept: its
        round-robin and its backpressure checks go on between requests)."""
        publisher = self._publishers.get(listener)
        if publisher is not None:
            return publisher
        settings = self.settings.listeners.get(listener)
        if settings is None:
            names = ", ".join(sorted(self.settings.listeners)) or "none"
            raise UsageError(f"no listener {listener!r} in {self.source} (listeners: "
                             f"{names})")
        if self.operator is None:
            raise UsageError(f"{self.settings.application.name} is not started: pass "
                             "EmbeddedApp.lifespan to the web app (FastAPI(lifespan=…))")
        publisher = self._publishers[listener] = Publisher.for_listener(self.operator,
                                                                        settings)
        return publisher

    def publisher(self, listener: str) -> Callable[[], Publisher]:
        """A dependency for routes: ``Depends(streams.publisher("orders"))``. The name is
        checked now, so a typo fails at import, not at the first request."""
        if listener not in self.settings.listeners:
            self.publisher_of(listener)  # raises, naming the listeners there are

        def dependency() -> Publisher:
            return self.publisher_of(listener)

        dependency.__name__ = f"publisher_of_{listener}"
        return dependency

    def bean(self, name: str) -> Callable[[], Any]:
        """A dependency for a provider of the container (the application's own beans, or
        ``redis``): ``Depends(streams.bean("inventory"))``."""

        async def dependency() -> Any:
            if self.container is None:
                raise UsageError(f"{self.settings.application.name} is not started")
            provider = getattr(self.container, name, None)
            if provider is None:
                raise UsageError(f"the container has no provider named {name!r}")
            return await provide(provider)

        dependency.__name__ = f"bean_{name}"
        return dependency
