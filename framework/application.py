"""The running application: builds the DI container from settings, starts every listener
and the scheduler, and stops them in order."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import signal
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from .config.models import AppSettings, ListenerSettings
from .di import StreambootContainer, build_container, provide, resolve_handler, resolve_middlewares
from .errors import ConfigError, ConfigProblem, HandlerResolutionError, StartupError
from .handler import StreamHandler, batch_problem
from .jobs.clock import Clock, SystemClock
from .jobs.contract import DeclaredListener, Listeners
from .jobs.registry import declare
from .jobs.schedule import Every, note_skipped, schedule, stop_scheduler
from .listener.container import CANCEL_GRACE, ListenerContainer
from .listener.spec import ListenerSpec, resolve_listener
from .middleware.rate_limit import limiter_for
from .observability.alerts import AlertState
from .observability.health import health
from .observability.http import MetricsServer, serve_or_refuse
from .observability.metrics import StreambootCollector, build_registry
from .observability.stream_views import GroupView, StreamView, stream_view
from .partitions.assignment import Assigned, assigned_listeners
from .partitions.keys import partition_key
from .partitions.membership import LeasedListener, LeaseScope, Membership
from .partitions.repartition import check_partitions
from .partitions.shared_order import say_if_shared
from .process.gc_tuning import tune_gc
from .process.preflight import reach_redis
from .process.shutdown import (
    EXIT_CANNOT_START,
    EXIT_FORCED,
    EXIT_OK,
    STOP_MARGIN,
    StopDeadline,
    take_signals,
)
from .process.supervisor import PARENT_VARIABLE, PORT_FILE_VARIABLE
from .process.worker_identity import current_worker
from .wire.hash_slots import colocated
from .wire.operator import RedisOperator

START_WAIT = 5.0
"""How long ``run`` waits for every listener's first read before saying it started (the
read never blocks; only a failing Redis makes it take this long)."""


class Application:
    """Lifecycle of one process: ``start`` → run → ``stop``."""

    def __init__(self, settings: AppSettings, container: StreambootContainer | None = None,
                 clock: Clock | None = None, source: str = "<settings>"):
        self.settings = settings
        self.source = source
        """Where the settings came from (the file), for the problems this reports."""
        self.container = container or build_container(settings, source)
        self.clock = clock or SystemClock()
        self.declared: dict[str, DeclaredListener] = {}
        """Each enabled listener with its features' jobs (see jobs/registry.py)."""
        self._shared_unsaid: list[ListenerSpec] = []
        self.waiting_for_redis: str | None = None
        """While start waits for Redis: what the last attempt met (/healthz says it)."""
        self.alerts = AlertState()
        self.stream_views: dict[str, StreamView] = {}
        self.dead_letters: dict[tuple[str, str, str], int] = {}
        """(listener, stream, dead-letter stream) → its length, at the last monitor run
        (a gauge: the dead-letter counters restart from zero with each process)."""
        self.metrics_server: MetricsServer | None = None
        self.listeners: ListenerContainer | None = None
        self.operator: RedisOperator | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self.membership: Membership | None = None
        """This process's partition leases, when it reads a partitioned listener."""
        self.failure: StartupError | None = None
        self._announced = False
        """Why the run ended by itself (every listener failed), for the command line."""
        self.worker = current_worker()
        """Set when a supervisor started this process (``streamboot run --workers``)."""
        self.stopping = asyncio.Event()
        """Set by a signal (or ``request_stop``): a start still waiting for Redis gives up."""

    @property
    def announced(self) -> bool:
        """It said it started (so an end now is a stop, not a failure to start)."""
        return self._announced

    def request_stop(self) -> None:
        self.stopping.set()

    async def start(self, wait_live: float | None = 30.0) -> None:
        """Resolve every handler, reach Redis (see process/preflight.py), then start every
        listener and job, waiting up to ``wait_live`` seconds for each listener's first
        read. Raises :class:`ConfigError` naming every handler that cannot be resolved,
        :class:`StartupError` for what no retry heals (then call :meth:`stop`, as after any
        start); returns early, starting nothing, when a stop is requested while Redis is
        still out of reach."""
        await _maybe_await(self.container.init_resources())
        self.operator = await provide(self.container.operator)
        declared = await self._resolve_handlers()
        if self.settings.metrics.enabled:  # first: a port in use is refused before any read,
            await self._serve_metrics()   # and /healthz answers while Redis is awaited
        startup = self.settings.redis.startup_timeout
        if not await reach_redis(self.operator, self.stopping,
                                 tls_without_client_cert=self.settings.redis.tls_without_client_cert,
                                 timeout=startup.total_seconds() if startup else None,
                                 waiting=self._waiting):
            logger.info("stopped before Redis could be reached; nothing was started")
            return
        for name, settings in self.settings.listeners.items():
            if settings.enabled:
                await check_partitions(self.operator, name, settings)
        self.listeners = await provide(self.container.listener_container)
        leased: dict[str, LeasedListener] = {}
        for assigned, spec, handler in declared:
            scope: Listeners = self.listeners
            if assigned.partition is not None:  # read only while its lease is held here
                scope = self._scope_of(leased, assigned, spec)
            listener = DeclaredListener(assigned.name, assigned.settings, spec, handler,
                                        self.operator, scope, self.clock)
            await declare(listener)
            self.declared[assigned.name] = listener
        if leased:  # first round now: the partitions free for this member start below
            self.membership = Membership(self.operator, self.settings.membership,
                                         list(leased.values()),
                                         static=self.settings.membership.member_id is not None)
            await self.membership.start()
        await self.listeners.start(timeout=wait_live)
        if self.listeners.every_one_failed:
            # Every listener was refused on its first command (a permission, a key that is
            # not a stream): say so once, and never claim to have started.
            raise StartupError(self._all_failed_reason())
        if self.settings.scheduler.enabled:
            scheduler = self._scheduler = await provide(self.container.scheduler)
            monitor = Every("monitor", self.settings.metrics.refresh, self.monitor,
                            at_start=True)
            jobs = [job.every() for listener in self.declared.values()
                    for job in listener.jobs.values()]
            for job in (*jobs, monitor):
                schedule(scheduler, job)
            scheduler.add_listener(_log_missed, EVENT_JOB_MISSED)
            scheduler.add_listener(note_skipped, EVENT_JOB_MAX_INSTANCES)
            scheduler.start()
        elif self.settings.listeners:
            logger.warning("scheduler disabled: entries of dead consumers are not reclaimed")
        for assigned, spec, _ in declared:
            if assigned.partition is None and spec.ordering_key:
                self._shared_unsaid.append(spec)
        await self._say_shared_order()
        listeners = len({assigned.listener for assigned, _, _ in declared})
        subs = self.listeners.subscriptions.values()
        streams = sum(1 for sub in subs if sub.failure is None)
        failed = sorted({sub.spec.name for sub in subs if sub.failure is not None})
        self._announced = True
        logger.info("{} started: {} listener{}, reading {} stream{}{}",
                    self.settings.application.name, listeners, "" if listeners == 1 else "s",
                    streams, "" if streams == 1 else "s",
                    f" ({', '.join(failed)} stopped: see above)" if failed else "")

    def _scope_of(self, leased: dict[str, LeasedListener], assigned: Assigned,
                  spec: ListenerSpec) -> LeaseScope:
        assert self.listeners is not None
        assert assigned.partition is not None
        listener = leased.get(assigned.listener)
        if listener is None:
            in_file = self.settings.listeners[assigned.listener]
            listener = leased[assigned.listener] = LeasedListener(
                assigned.listener, in_file.stream, in_file.group, spec.consumer, [])
            logger.info("listener {}: {} partitions shared by lease; member {}",
                        assigned.listener, in_file.partitions, spec.consumer)
        scope = LeaseScope(self.listeners, assigned.partition,
                           partition_key(listener.stream, assigned.partition))
        listener.scopes.append(scope)
        return scope

    async def _resolve_handlers(self) -> list[tuple[Assigned, ListenerSpec,
                                                    StreamHandler[Any]]]:
        """Every enabled listener's handler (one for all its partitions), before anything
        connects: all the problems at once, as ``check`` reports them."""
        for name, listener in self.settings.listeners.items():
            if not listener.enabled:
                logger.info("listener {} is disabled", name)
        handlers: dict[str, StreamHandler[Any]] = {}
        chains: dict[str, dict[str, Any]] = {}  # listener -> its middleware and limiter
        problems = []
        unresolved: set[str] = set()
        declared = []
        for assigned in assigned_listeners(self.settings, self.worker):
            spec = resolve_listener(assigned.name, assigned.settings, self.settings.container,
                                    assigned.listener, assigned.consumer)
            handler = handlers.get(assigned.listener)
            if handler is None and assigned.listener not in unresolved:
                try:
                    handler = handlers[assigned.listener] = await resolve_handler(
                        spec.handler, self.container, assigned.listener)
                except HandlerResolutionError as exc:
                    unresolved.add(assigned.listener)
                    problems.append(ConfigProblem(
                        self.source, f"listeners.{assigned.listener}.handler", str(exc)))
                else:
                    wrong = batch_problem(type(handler), assigned.settings.batch is not None)
                    if wrong is not None:
                        unresolved.add(assigned.listener)
                        problems.append(ConfigProblem(
                            self.source, f"listeners.{assigned.listener}.batch", wrong))
            chain = chains.get(assigned.listener)
            if chain is None and assigned.listener not in unresolved:
                try:
                    chain = chains[assigned.listener] = await self._chain_of(assigned)
                except HandlerResolutionError as exc:
                    unresolved.add(assigned.listener)
                    problems.append(ConfigProblem(
                        self.source, exc.key or f"listeners.{assigned.listener}.middleware",
                        str(exc)))
            if handler is not None and chain is not None:
                declared.append((assigned, dataclasses.replace(spec, **chain), handler))
        if problems:
            raise ConfigError(problems)
        return declared

    async def _chain_of(self, assigned: Assigned) -> dict[str, Any]:
        """What a listener's subscriptions share: its middleware beans and rate limiter."""
        assert self.operator is not None
        in_file = self.settings.listeners[assigned.listener]
        return {"middleware": await resolve_middlewares(self.settings, self.container,
                                                        assigned.listener),
                "rate_limiter": limiter_for(in_file, self.operator, in_file.stream,
                                            in_file.group)}

    async def _say_shared_order(self) -> None:
        """Warn once per listener when another process reads an unpartitioned listener
        with ``ordering_key`` (partitions/shared_order.py): at start, then at each monitor
        refresh until said — the first process to start learns of the second this way."""
        assert self.operator is not None
        # Taken before the first await: the monitor's first run may overlap start's call.
        looking, self._shared_unsaid = self._shared_unsaid, []
        for spec in looking:
            if not await say_if_shared(self.operator, spec, self.worker is not None):
                self._shared_unsaid.append(spec)

    async def monitor(self) -> None:
        """Refresh the stream gauges and check the alert thresholds of every listener."""
        assert self.operator is not None
        if self._shared_unsaid:
            await self._say_shared_order()
        views: dict[str, StreamView] = {}
        dead: dict[tuple[str, str, str], int] = {}
        for declared in self.declared.values():
            listener, spec = declared.settings, declared.spec
            for key in declared.streams():
                view = views.get(key) or await stream_view(self.operator, key)
                views[key] = view
                for group in view.groups:
                    if group.name == listener.group:
                        self.alerts.update(spec.listener_name, key, group, listener.alerts,
                                           await self._idle_past(key, group, listener))
                dlq = (spec.dead_letter_stream if key == spec.stream
                       else colocated(key, ":dlq") if spec.dead_letter_stream else None)
                if dlq is not None:
                    dead[(spec.listener_name, key, dlq)] = await self.operator.xlen(dlq)
        self.stream_views, self.dead_letters = views, dead

    async def _idle_past(self, key: str, group: GroupView,
                         listener: ListenerSettings) -> bool | None:
        """Whether any pending entry idles past the idle alert's threshold: XPENDING IDLE
        finds one wherever it is in the PEL (recovery reclaiming the oldest resets its
        idle, not that of those behind it)."""
        idle = listener.alerts.max_oldest_pending_idle
        if idle is None or not group.pending:
            return None if idle is None else False
        assert self.operator is not None
        return bool(await self.operator.pending_range(key, group.name, min_idle=idle, count=1))

    def _waiting(self, said: str | None) -> None:
        self.waiting_for_redis = said

    async def health(self) -> dict[str, object]:
        """What /healthz answers: ``healthy`` and the ``problems`` an admin can act on."""
        assert self.operator is not None
        if self.waiting_for_redis is not None or self.listeners is None:
            return {"healthy": False,
                    "problems": [self.waiting_for_redis or "starting: Redis answered, the "
                                 "listeners are not started yet"]}
        return await health(self.operator, self.listeners.subscriptions, self.membership)

    async def _serve_metrics(self) -> None:
        """Served from before Redis is reached: until the listeners exist, their metrics
        are empty and /healthz is 503 saying what start waits for."""
        registry = build_registry(StreambootCollector(
            lambda: self.listeners.subscriptions if self.listeners is not None else {},
            lambda: self.stream_views, self.alerts, lambda: self.membership,
            lambda: self.listeners.counters if self.listeners is not None else [],
            lambda: self.dead_letters))
        self.metrics_server = MetricsServer(registry, self.health)
        cfg = self.settings.metrics
        await serve_or_refuse(self.metrics_server, cfg.host, cfg.port)
        logger.info("metrics and /healthz on http://{}:{}/", cfg.host, self.metrics_server.port)
        port_file = os.environ.get(PORT_FILE_VARIABLE) if self.worker is not None else None
        if port_file:  # a supervisor serves every worker's metrics from its own port
            await asyncio.to_thread(Path(port_file).write_text, str(self.metrics_server.port))

    async def stop(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        if self._scheduler is not None and self._scheduler.running:
            await stop_scheduler(self._scheduler, CANCEL_GRACE)
        if self.membership is not None:  # partitions settle, then their leases go
            await self.membership.leave()
        if self.listeners is not None:
            await self.listeners.stop()
        await _maybe_await(self.container.shutdown_resources())
        if self._announced:  # it said it started: say it stopped (else silence)
            logger.info("{} stopped", self.settings.application.name)

    def stop_bound(self) -> float:
        """Seconds within which a stop ends, whatever handlers do (see process/shutdown.py)."""
        subs = self.listeners.subscriptions.values() if self.listeners is not None else ()
        listeners = max((sub.stop_bound for sub in subs), default=0.0)
        return listeners + CANCEL_GRACE + STOP_MARGIN

    async def run_until_signalled(self, deadline: StopDeadline | None = None) -> int:
        """Run until SIGINT/SIGTERM, then stop gracefully; a second signal forces.

        Returns the exit code: :data:`EXIT_OK`, or :data:`EXIT_FORCED` when handlers were
        still running at the end of the stop (their entries stay pending). A ``deadline``
        passed in is armed at the signal and left armed for the caller, who cancels it once
        the loop is torn down (``streamboot run`` does).
        """
        stop = self.stopping
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        own_deadline = deadline is None
        deadline = deadline or StopDeadline()
        code = EXIT_OK

        def on_signal(signum: int) -> None:
            if stop.is_set():
                logger.warning("second {}: forcing stop", signal.Signals(signum).name)
                if current is not None:
                    current.cancel()
                return
            logger.info("{} received: stopping gracefully", signal.Signals(signum).name)
            stop.set()

        release = take_signals(loop, on_signal, lambda: deadline.arm(self.stop_bound()))
        orphaned = asyncio.ensure_future(self._until_orphaned())
        try:
            try:
                # Bounded: the first read of each listener (its own pending list) never
                # blocks, so this is about one round trip unless Redis is failing.
                await self.start(wait_live=START_WAIT)
                tune_gc(self.settings.application.gc)  # this process is ours to tune
                if await self._until_stop_or_all_failed():
                    code = EXIT_CANNOT_START
            finally:
                await self.stop()  # still under our handlers: a second signal cancels this
        finally:
            orphaned.cancel()
            release()
            if own_deadline:
                deadline.cancel()
        if code == EXIT_OK and self.listeners is not None and self.listeners.forced:
            code = EXIT_FORCED
        return code

    async def _until_orphaned(self) -> None:
        """A worker whose supervisor is gone (killed outright) stops by itself: nobody would
        ever stop it otherwise. Any parent may ask for this by setting
        ``STREAMBOOT_WORKER_PARENT`` to its pid (the sample app does, for its workers)."""
        parent = os.environ.get(PARENT_VARIABLE)
        if not parent or not parent.isdigit():
            return
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            if os.getppid() != int(parent):
                logger.warning("the supervisor (pid {}) is gone: stopping", parent)
                self.stopping.set()

    async def _until_stop_or_all_failed(self) -> bool:
        """Wait for the stop; True when, before it, every listener ended on an error no
        retry heals (each has said why): then the process has nothing left to do."""
        if self.listeners is None or self.stopping.is_set():
            return False
        stop = asyncio.ensure_future(self.stopping.wait())
        failed = asyncio.ensure_future(self.listeners.all_failed.wait())
        try:
            await asyncio.wait({stop, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            failed.cancel()
        if self.stopping.is_set():
            return False
        self.failure = StartupError(self._all_failed_reason())
        logger.error("{}; exiting", self.failure)
        return True

    def _all_failed_reason(self) -> str:
        assert self.listeners is not None
        reasons = sorted({str(s.failure) for s in self.listeners.subscriptions.values()})
        return f"every listener stopped: {'; '.join(reasons)}"


def _log_missed(event: Any) -> None:
    """A job that could not run on time (the loop was busy or the process paused)."""
    logger.bind(job=event.job_id).warning("job run missed (scheduled {}); it runs again at "
                                          "its next time", event.scheduled_run_time)


async def _maybe_await(value: Any) -> None:
    """``init_resources``/``shutdown_resources`` return an awaitable only with async Resources."""
    if inspect.isawaitable(value):
        await value
