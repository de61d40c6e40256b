"""Keeps in-flight entries owned, so only entries of dead or hung consumers are reclaimed.

The rule (documented in docs/reliability.md): every ``min_idle / 3`` the owner resets the
idle time of every entry it has read and not yet acknowledged or given up — entries being
handled, waiting in the batch, or waiting for a retry — with ``XCLAIM … JUSTID`` (guarded
so it never takes back an entry another consumer already reclaimed). The recovery job
reclaims only entries idle for ``min_idle``: that is, whose owner missed three renewals.

Renewal runs in its own thread with its own synchronous connection, so an async handler
that hogs the event loop cannot starve it, and a blocked loop is exactly what it
survives; only a dead process (or one frozen whole) stops renewing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from loguru import logger
from redis import Redis as SyncRedis
from redis.cluster import RedisCluster as SyncRedisCluster

from framework.scripts import CLAIM_IF_OWNER

SyncClient = SyncRedis | SyncRedisCluster
_CHUNK = 500


class OwnershipKeeper:
    """A set of ids this consumer holds, renewed by a daemon thread."""

    def __init__(self, client: SyncClient, stream: str, group: str, consumer: str,
                 interval: float) -> None:
        self.tracked: set[str] = set()
        self.renewals = 0
        self._script = client.register_script(CLAIM_IF_OWNER)
        self._stream, self._group, self._consumer = stream, group, consumer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sb-keep-{stream}",
                                        daemon=True)
        self._log = logger.bind(stream=stream, group=group, consumer=consumer)

    def add(self, ids: Iterable[str]) -> None:
        self.tracked.update(ids)

    def discard(self, ids: Iterable[str]) -> None:
        self.tracked.difference_update(ids)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def renew_now(self) -> None:
        ids = list(self.tracked)  # a copy made under the GIL: safe against concurrent updates
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            owned = self._script(keys=[self._stream],
                                 args=[self._group, self._consumer, "1", *chunk])
            # Not owned any more: acked meanwhile (normal), or reclaimed by another consumer
            # while this one was hung; either way there is nothing left to renew.
            self.tracked.difference_update(set(chunk) - {str(i) for i in owned})
        self.renewals += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.renew_now()
            except Exception as exc:  # Redis down: the loop logs it too; try again next time
                self._log.warning("could not renew ownership of {} entries: {}",
                                  len(self.tracked), exc)
