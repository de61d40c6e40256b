"""The listener container: owns every subscription's poll task, starts and stops them.

Spring's ``StreamMessageListenerContainer`` done right: a handler error never ends a
subscription, a terminal error ends only its own, and ``stop`` drains in-flight work
within each listener's ``shutdown_timeout`` before acknowledging it.

Usage::

    container = ListenerContainer(operator, keeper_client)
    container.register(spec, OrderHandler(inventory))
    await container.start()       # returns once every group exists and polling began
    ...
    await container.stop()        # stop reading, finish and ack in-flight, close
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from loguru import logger

from ..errors import DuplicateListenerError
from ..handler import StreamHandler
from ..wire.operator import RedisOperator
from .ownership import RenewalThread, SyncClient
from .parking import ParkingLot
from .poll import Subscription
from .spec import ListenerSpec
from .stats import ListenerStats
from .tenure import Tenure

SETUPS_AT_ONCE = 8
"""Subscriptions creating their group at once. Each start's XGROUP CREATE goes through the
client's pool, which keeps every connection it ever opened: 200 listeners starting
together opened 100 pooled connections (the cap) that then sat idle for the life of the
process."""

CANCEL_GRACE = 2.0
"""After cancelling a subscription that overran its stop bound, how long its cleanup (the
last acks, closing its connection) may take before the stop goes on without it."""


class ListenerContainer:
    def __init__(self, operator: RedisOperator, keeper_client: SyncClient | None = None) -> None:
        """``keeper_client`` (a synchronous client of its own) renews ownership of
        in-flight entries from one thread; without it nothing is renewed, so slow entries
        may be reclaimed by other consumers (and nothing is fenced). Its
        ``socket_timeout`` bounds each renewal: ``client.build_renewal_client`` derives
        it from ``min_idle`` (ownership.py)."""
        self._operator = operator
        self._renewals = RenewalThread(keeper_client) if keeper_client is not None else None
        self._setups = asyncio.Semaphore(SETUPS_AT_ONCE)
        self._lots: dict[tuple[str, str, int, timedelta], ParkingLot | None] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._counters: dict[str, tuple[ListenerSpec, ListenerStats]] = {}
        """Every subscription's counters by name, kept after it is unregistered: a
        partition handed away and back counts on (Prometheus counters never go down)."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        """Between start and stop: a subscription registered then starts at once (one
        registered during or after the stop never starts)."""
        self.forced = False
        """Set when a stop had to cancel handlers still running at shutdown_timeout."""
        self.all_failed = asyncio.Event()
        """Set once every subscription has ended on an error no retry heals."""

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        return dict(self._subscriptions)

    @property
    def counters(self) -> list[tuple[ListenerSpec, ListenerStats]]:
        """The counters of every subscription registered here, live or handed away."""
        return list(self._counters.values())

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    def register(self, spec: ListenerSpec, handler: StreamHandler[Any],
                 tenure: Tenure | None = None) -> Subscription:
        """``tenure``: the lease of the partition ``spec`` reads, when leased (tenure.py)."""
        if spec.name in self._subscriptions:
            raise DuplicateListenerError(f"listener {spec.name!r} is already registered")
        kept = self._counters.get(spec.name)
        stats = kept[1] if kept is not None else ListenerStats()
        stats.last_poll = 0.0  # a new subscription has not polled yet
        self._counters[spec.name] = (spec, stats)
        subscription = Subscription(spec, self._operator, handler, self._renewals,
                                    self._setups,
                                    self._lot_for(spec) if tenure is None else None, tenure,
                                    stats)
        self._subscriptions[spec.name] = subscription
        if self._started:  # registered after start: start it now
            self._spawn(subscription)
        return subscription

    def _lot_for(self, spec: ListenerSpec) -> ParkingLot | None:
        """Idle subscriptions of one group and consumer (and batch size and poll timeout)
        share one blocking read (parking.py)."""
        key = (spec.group, spec.consumer, spec.batch_size, spec.poll_timeout)
        if key not in self._lots:
            # One XREADGROUP cannot span Cluster slots: there each reads on its own.
            self._lots[key] = (ParkingLot(self._operator, spec.group, spec.consumer,
                                          spec.batch_size, spec.poll_timeout)
                               if self._operator.standalone else None)
        return self._lots[key]

    async def unregister(self, name: str, hand_over: bool = False) -> None:
        """Stop one subscription (drain, ack) and forget it; the others run on.
        ``hand_over``: only its running handlers finish (``request_handover``)."""
        subscription = self._subscriptions.pop(name, None)
        if subscription is None:
            return
        if hand_over:
            subscription.request_handover()
        else:
            subscription.request_stop()
        task = self._tasks.pop(name, None)
        if task is not None:
            await self._drain(name, task, subscription)

    async def start(self, timeout: float | None = 30.0) -> None:
        """Start every subscription; with a timeout, wait until each has read once (or
        ended: see ``all_failed``)."""
        self._started = True
        for subscription in self._subscriptions.values():
            if subscription.spec.name not in self._tasks:
                self._spawn(subscription)
        if timeout is None:
            return
        for name, subscription in self._subscriptions.items():
            if not await subscription.wait_answered(timeout):
                logger.warning("listener {} not live after {}s (is Redis reachable?)",
                               name, timeout)

    def _spawn(self, subscription: Subscription) -> None:
        name = subscription.spec.name
        task = asyncio.create_task(subscription.run(), name=f"streamboot:{name}")
        task.add_done_callback(self._ended)
        self._tasks[name] = task

    @property
    def every_one_failed(self) -> bool:
        """Every subscription ended on an error no retry heals (each ``failure`` says
        which)."""
        subs = self._subscriptions.values()
        return bool(subs) and all(s.failure is not None for s in subs)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self.every_one_failed:
            self.all_failed.set()

    async def stop(self) -> None:
        """Stop polling, let in-flight handlers finish within ``shutdown_timeout``, ack them."""
        self._started = False
        for subscription in self._subscriptions.values():
            subscription.request_stop()
        await asyncio.gather(*(self._drain(name, task, self._subscriptions[name])
                               for name, task in self._tasks.items()))
        self._tasks.clear()
        for lot in self._lots.values():
            if lot is not None:
                await lot.close()
        self._lots.clear()
        if self._renewals is not None:
            self._renewals.stop()

    async def _drain(self, name: str, task: asyncio.Task[None],
                     subscription: Subscription) -> None:
        """Wait for the subscription to finish its entries, at most its stop bound; then
        cancel what still runs — those entries stay pending, never acked unhandled."""
        limit = subscription.stop_bound
        done, _ = await asyncio.wait({task}, timeout=limit)
        if not done:
            self.forced = True
            logger.warning("listener {} did not finish within {:g}s (shutdown_timeout); "
                           "cancelling its handlers, their entries stay pending", name, limit)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CANCEL_GRACE)
            if not done:
                logger.error("listener {} still busy {:g}s after cancel; stopping without "
                             "it", name, CANCEL_GRACE)
            return
        exc = task.exception()
        if exc is not None:
            logger.opt(exception=exc).error("listener {} ended with an error", name)
