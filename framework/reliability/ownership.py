"""Keeps the entries a live consumer holds owned, so only dead or hung consumers lose work.

The rule (documented in docs/reliability.md): every ``min_idle / 3`` the owner resets the
idle time (``XCLAIM … JUSTID``, guarded so it never takes back an entry another consumer
already reclaimed) of

- every entry it has in hand — being handled, waiting in its batch, waiting for a retry,
  handled and waiting for its ack: ``Acks.in_hand`` (listener/acks.py), which the keeper
  only reads; and
- every entry Redis has delivered to it that it has not received yet: the reply of a
  read-ahead still on the wire or not parsed. It cannot name those, but they are exactly
  its pending entries with an id above the highest id it ever had in hand (``watermark``):
  an XREADGROUP ``>`` only delivers ids above the group's last-delivered id.

The recovery job reclaims only entries idle for ``min_idle``: whose owner missed three
renewals. A renewal that finds an entry taken over releases it from the hand, and the
listener never starts a handler on an entry it no longer holds; when renewals have failed
for long enough that ownership is uncertain (``safe``), it checks with Redis first.

All keepers of a listener container share one :class:`RenewalThread` with its own
synchronous connection, so neither a busy event loop nor a blocked handler can starve the
renewals, and two hundred listeners cost one thread and one connection, not two hundred.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from loguru import logger
from redis import Redis as SyncRedis
from redis.cluster import RedisCluster as SyncRedisCluster

from ..scripts import RENEW_OWNED

SyncClient = SyncRedis | SyncRedisCluster
_CHUNK = 500
_SAFETY = 0.8
"""Ownership is taken as certain until this share of ``min_idle`` after a renewal began:
the margin covers the renewal's own duration and the time a tracked id waits to be seen."""


class Hand(Protocol):
    """What the keeper reads of a subscription's ``Acks`` (listener/acks.py)."""

    in_hand: set[str]
    watermark: str

    def release(self, ids: set[str]) -> None: ...


class OwnershipKeeper:
    """Renews what one subscription holds; knows when that ownership is certain."""

    def __init__(self, stream: str, group: str, consumer: str, min_idle: float,
                 read_ahead: int, hand: Hand) -> None:
        self.stream, self.group, self.consumer = stream, group, consumer
        self.hand = hand
        self.min_idle = min_idle
        self.interval = min_idle / 3
        self.renewals = 0
        self._read_ahead = read_ahead
        self.safe_until = time.perf_counter() + min_idle * _SAFETY
        """Until when (``perf_counter``) every entry in hand is surely still owned."""
        self.next_due = time.monotonic() + self.interval
        self.parked = False
        """Set by the subscription while it waits on the shared read (parking.py)."""
        self._log = logger.bind(stream=stream, group=group, consumer=consumer)

    def started(self) -> None:
        """Nothing was in hand before: ownership is certain from now until a renewal."""
        self.safe_until = time.perf_counter() + self.min_idle * _SAFETY

    @property
    def safe(self) -> bool:
        """Whether every entry in hand is surely still owned (renewals are on time)."""
        return time.perf_counter() < self.safe_until

    def renew_now(self, script: object) -> None:
        """One renewal round trip per chunk of ids, plus the reads not received yet —
        none while the subscription is parked with nothing in hand (parking.py): its only
        read is the shared one, whose entries reach it at once."""
        started = time.perf_counter()
        ids = list(self.hand.in_hand)  # a copy made under the GIL: safe against updates
        if self.parked and not ids:
            self.safe_until = started + self.min_idle * _SAFETY
            return
        watermark = self.hand.watermark
        chunks = [ids[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)] or [[]]
        for index, chunk in enumerate(chunks):
            ahead = watermark if index == 0 else ""
            owned, _ = script(keys=[self.stream],  # type: ignore[operator]
                              args=[self.group, self.consumer, ahead, self._read_ahead, *chunk])
            # Not owned any more: acked meanwhile (normal), or reclaimed by another consumer
            # while this one was frozen; either way there is nothing left to renew.
            self.hand.release(set(chunk) - {str(i) for i in owned})
        self.renewals += 1
        self.safe_until = started + self.min_idle * _SAFETY


class RenewalThread:
    """One daemon thread renewing every registered keeper when it falls due."""

    def __init__(self, client: SyncClient) -> None:
        self._script = client.register_script(RENEW_OWNED)
        self._keepers: dict[int, OwnershipKeeper] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, keeper: OwnershipKeeper) -> None:
        keeper.started()
        with self._lock:
            self._keepers[id(keeper)] = keeper
            keeper.next_due = time.monotonic() + keeper.interval
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sb-renewals", daemon=True)
            self._thread.start()
        self._wake.set()

    def unregister(self, keeper: OwnershipKeeper) -> None:
        with self._lock:
            self._keepers.pop(id(keeper), None)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        self._thread = None
        self._stop.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                keepers = list(self._keepers.values())
            now = time.monotonic()
            for keeper in keepers:
                if keeper.next_due <= now and not self._stop.is_set():
                    keeper.next_due = now + keeper.interval
                    self._renew(keeper)
            with self._lock:
                due = min((k.next_due for k in self._keepers.values()), default=now + 1.0)
            self._wake.clear()
            self._wake.wait(max(0.01, due - time.monotonic()))

    def _renew(self, keeper: OwnershipKeeper) -> None:
        try:
            keeper.renew_now(self._script)
        except Exception as exc:  # Redis down: the loop logs it too; try again next time
            keeper._log.warning("could not renew ownership of {} entries: {}",
                                len(keeper.hand.in_hand), exc)
