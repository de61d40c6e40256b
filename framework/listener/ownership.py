"""Entry ownership: a live consumer keeps what it holds, and never starts what it lost.

**Keeping.** Every ``min_idle / 3`` the owner resets the idle time (``XCLAIM … JUSTID``,
guarded so it never takes back an entry another consumer already reclaimed) of

- every entry it has in hand — being handled, waiting in its batch, waiting for a retry,
  handled and waiting for its ack: ``Acks.in_hand`` (listener/acks.py); and
- every entry Redis has delivered to it that it has not received yet: the reply of a
  read-ahead still on the wire or not parsed. It cannot name those, but they are exactly
  its pending entries with an id above the highest id it ever had in hand (``watermark``):
  an XREADGROUP ``>`` only delivers ids above the group's last-delivered id.

The recovery job reclaims only entries idle for ``min_idle``: whose owner missed three
renewals. All keepers of a listener container share one :class:`RenewalThread` with its
own synchronous connection, so neither a busy event loop nor a blocked handler can starve
the renewals, and two hundred listeners cost one thread and one connection. That
connection's timeouts are derived from ``min_idle`` (client.py), and a renewal that fails
is tried once more at once on a new connection, so a silent socket costs a fraction of
``min_idle``, never ``socket_timeout``.

**Fencing.** Keeping can fail — the process froze (SIGSTOP, a VM pause), its connections
went silent, its threads starved — and then another consumer rightly takes the entries
over. The rule that keeps the old owner from handling them too: *an entry is started only
while a command that touched it, and whose reply said so, was sent less than*
``TRUST × min_idle`` *ago*. Redis touched the entry no earlier than the command was sent,
so until then no other consumer can have claimed it. The evidence is either

- the entry's own receipt (``Acks``): the read, claim or confirmation that delivered it; or
- the keeper's ``cover``: a renewal that copied the hand (holds up to ``cover[0]``) and
  found those entries still owned, sent at ``cover[1] - trust``.

Neither moves forward without Redis having answered for the entries concerned: a renewal
that succeeds after a freeze covers only what it copied, so the read-ahead reply parsed
after it — sent before the freeze — is not covered, and its entries are confirmed first.
When neither vouches for an entry, the listener asks Redis (:meth:`OwnershipKeeper.confirm`:
one round trip for everything in hand, shared by every worker that asks meanwhile), and
what it lost leaves its hands unhandled. What a renewal finds is applied on the event loop
(the loop is the only writer of the hand), so a renewal result can never race a start.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol

from loguru import logger
from redis import Redis as SyncRedis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as SyncRedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry as SyncRetry

from ..wire.records import Renewal
from ..wire.scripts import RENEW_OWNED

SyncClient = SyncRedis | SyncRedisCluster
Receipt = tuple[int, float]
Cover = tuple[int, float]
"""(hold sequence number, trusted until): every entry held no later than that number and
still in hand is this consumer's until then (``perf_counter``)."""

CHUNK = 500
"""Ids per renewal script call: bounds the time one call holds the server."""
TRUST = 0.8
"""A touch vouches for ownership this share of ``min_idle`` after its command was sent: the
rest covers the next renewal's flight and a start that is already under way."""
PAUSE = 1.5
"""A keeper's renewal later than this many intervals after the previous one, with no
failure between them, means the process (or its renewal thread) was paused."""
CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


def trusted(receipt: Receipt, cover: Cover, now: float) -> bool:
    """Whether an entry held with ``receipt`` may start at ``now`` (see the module doc)."""
    return now < receipt[1] or (receipt[0] <= cover[0] and now < cover[1])


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one renewal of a hand found, to apply on the event loop."""

    sequence: int
    """The hold number read before the hand was copied: what the renewal covered."""
    until: float
    """Until when the entries it found owned are surely still owned."""
    taken: list[str]
    deleted: list[str]
    gone: list[str]
    """Acknowledged meanwhile: by this consumer (nothing to say), or by another one that
    had taken the entry over (said as taken over)."""
    why: str
    """Why ownership may have lapsed, for the line about entries taken over."""


def verdict_of(sequence: int, sent_at: float, trust: float, ids: Sequence[str],
               renewals: Sequence[Renewal], why: str = "") -> Verdict:
    """Sort the ids a renewal was given by what it found."""
    touched: set[str] = set()
    taken: list[str] = []
    deleted: list[str] = []
    for renewal in renewals:
        touched.update(renewal.touched)
        taken += renewal.taken
        deleted += renewal.deleted
    known = touched.union(taken, deleted)
    return Verdict(sequence, sent_at + trust, taken, deleted,
                   [i for i in ids if i not in known], why)


class Hand(Protocol):
    """What the keeper reads of a subscription's ``Acks`` (listener/acks.py)."""

    @property
    def in_hand(self) -> Mapping[str, Receipt]: ...

    @property
    def sequence(self) -> int: ...

    @property
    def watermark(self) -> str: ...

    def release_covered(self, ids: Sequence[str], sequence: int) -> list[str]: ...

    def acked_here(self, ids: Sequence[str]) -> set[str]: ...


class Losses(Protocol):
    """Where entries that leave the hand unhandled are said and counted
    (listener/losses.py)."""

    def taken_over(self, ids: list[str], why: str) -> None: ...

    def acked_elsewhere(self, ids: list[str], why: str) -> None: ...

    def deleted(self, ids: list[str]) -> None: ...

    def unconfirmed(self, ids: list[str], reason: str) -> None: ...


Renew = Callable[[list[str], str, int], Awaitable[Renewal]]
"""The operator's async renewal (ids, after, ahead): for confirmations on the loop."""


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)] or [[]]


class OwnershipKeeper:
    """Keeps what one subscription holds owned, and says when that is certain.

    Two sides: the renewal thread calls :meth:`renew_with` (and the bookkeeping of
    failures it reads for health); the event loop calls :meth:`trusts`, :meth:`confirm`
    and applies verdicts. Each attribute has one writer, named in its comment.
    """

    def __init__(self, stream: str, group: str, consumer: str, min_idle: float,
                 read_ahead: int, hand: Hand, losses: Losses, renew: Renew) -> None:
        self.stream, self.group, self.consumer = stream, group, consumer
        self.hand = hand
        self.min_idle = min_idle
        self.interval = min_idle / 3
        self.trust = min_idle * TRUST
        self._read_ahead = read_ahead
        self._losses = losses
        self._renew = renew
        self.cover: Cover = (0, -math.inf)  # the loop's
        self._confirming: asyncio.Task[None] | None = None  # the loop's
        self._asking: set[str] = set()  # the loop's: entries whose start waits on it
        self._loop: asyncio.AbstractEventLoop | None = None
        # The renewal thread's:
        self.next_due = time.monotonic() + self.interval
        self.renewals = 0
        self.failed_attempts = 0
        self.pauses = 0
        self.last_renewed = perf_counter()
        """When (``perf_counter``) the last successful renewal was sent."""
        self._last_attempt = perf_counter()
        self._calls_at_last = 0.0
        """The renewal thread's time in calls (``in_calls``) at this keeper's last attempt."""
        self._failing_since: float | None = None
        self._warned = False
        """The current run of failed renewals was said at warning level (entries in hand)."""
        self._last_error = ""
        self.parked = False
        """Set by the subscription while it waits on the shared read (parking.py)."""
        self._log = logger.bind(stream=stream, group=group, consumer=consumer)

    # -- the event loop's side ------------------------------------------------------------
    def started(self) -> None:
        """Called on the event loop as the subscription starts: verdicts go to this loop."""
        self._loop = asyncio.get_running_loop()
        self.last_renewed = self._last_attempt = perf_counter()

    def trusts(self, receipt: Receipt, now: float) -> bool:
        return trusted(receipt, self.cover, now)

    def apply(self, verdict: Verdict) -> None:
        """On the loop: let go of what the renewal found gone, then extend the cover."""
        hand = self.hand
        taken = hand.release_covered(verdict.taken, verdict.sequence)
        deleted = hand.release_covered(verdict.deleted, verdict.sequence)
        gone = hand.release_covered(verdict.gone, verdict.sequence)
        mine = hand.acked_here(gone) if gone else set()
        elsewhere = [i for i in gone if i not in mine]  # acknowledged, not by this consumer
        if verdict.until > self.cover[1]:
            self.cover = (verdict.sequence, verdict.until)
        if taken:
            self._losses.taken_over(taken, verdict.why)
        if elsewhere:
            self._losses.acked_elsewhere(elsewhere, verdict.why)
        if deleted:
            self._losses.deleted(deleted)

    async def confirm(self, entry_id: str) -> None:
        """Ask Redis now whether everything in hand (and the read not received) is still
        this consumer's, and renew it: one round trip per chunk, shared by every caller
        that asks while it is on its way. Bounded by one renewal interval; on failure
        the entries asked about (about to start: never one that runs or ran) are left
        pending for recovery."""
        self._asking.add(entry_id)
        task = self._confirming
        if task is None or task.done():
            task = self._confirming = asyncio.ensure_future(self._confirm_now())
        await asyncio.shield(task)

    async def _confirm_now(self) -> None:
        await asyncio.sleep(0)  # the workers woken together ask together: one round trip
        sent_at = perf_counter()
        sequence, ids, watermark = self.snapshot()
        try:
            async with asyncio.timeout(self.interval):
                renewals = [await self._renew(chunk, watermark if index == 0 else "",
                                              self._read_ahead)
                            for index, chunk in enumerate(_chunks(ids))]
        except Exception as exc:
            now = perf_counter()
            asked, self._asking = self._asking, set()
            doubtful = [i for i in asked if (r := self.hand.in_hand.get(i)) is not None
                        and not self.trusts(r, now)]
            released = self.hand.release_covered(doubtful, sequence)
            if released:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if isinstance(exc, TimeoutError):
                    reason = f"no answer within {self.interval:g}s"
                self._losses.unconfirmed(released, reason)
            return
        self._asking.clear()
        self.apply(verdict_of(sequence, sent_at, self.trust, ids, renewals,
                              " (while this consumer could not vouch for them: a pause, or "
                              "renewals that failed)"))

    def abandon(self, ids: list[str], reason: str) -> None:
        """Leave ``ids`` pending for the recovery job: ownership could not be confirmed."""
        released = self.hand.release_covered(ids, self.hand.sequence)
        if released:
            self._losses.unconfirmed(released, reason)

    def late(self, now: float) -> float | None:
        """Seconds since the last renewal, when entries are in hand and that is longer
        than a renewal vouches for (for health); else None."""
        since = now - self.last_renewed
        return since if self.hand.in_hand and since > self.trust else None

    # -- the renewal thread's side ----------------------------------------------------------
    def snapshot(self) -> tuple[int, list[str], str]:
        """The hold number, then a copy of the hand (in that order: see Acks.sequence), and
        the watermark. A copy under the GIL: safe against the loop's updates."""
        sequence = self.hand.sequence
        return sequence, list(self.hand.in_hand), self.hand.watermark

    def renew_with(self, script: Callable[..., object],
                   in_calls: float = 0.0) -> Verdict | None:
        """One renewal of the hand and the reads not received yet: one round trip per
        chunk. None when there was nothing to renew (parked with nothing in hand: its only
        read is the shared one, whose entries reach it at once).

        ``in_calls``: the thread's seconds spent inside Redis calls so far. A gap since
        the last attempt that those calls explain (a slow or silent connection holding the
        thread) is not a pause; the rest of the gap — the thread not running — is."""
        sent_at = perf_counter()
        waited_on_calls = in_calls - self._calls_at_last
        gap = sent_at - self._last_attempt - waited_on_calls
        self._last_attempt, self._calls_at_last = sent_at, in_calls
        sequence, ids, watermark = self.snapshot()
        if self.parked and not ids:
            self.last_renewed = sent_at
            return None
        why = ""
        if ids and self._failing_since is None and gap > PAUSE * self.interval + 0.1:
            self.pauses += 1
            why = f" (this process was paused for {gap:.1f}s)"
            self._log.warning(
                "renewals did not run for {:.1f}s: this process was paused (SIGSTOP, a VM "
                "pause, a starved CPU?); the {} in hand are confirmed with Redis before any "
                "of them starts", gap, entries(len(ids)))
        renewals = []
        for index, chunk in enumerate(_chunks(ids)):
            after = watermark if index == 0 else ""
            reply = script(keys=[self.stream],
                           args=[self.group, self.consumer, after, self._read_ahead, *chunk])
            renewals.append(Renewal.from_reply(reply))
        if self._failing_since is not None:
            why = f" (its renewals failed for {sent_at - self._failing_since:.1f}s)"
            self._log.log("INFO" if self._warned else "DEBUG",
                          "ownership renewed again after {:.1f}s of failed renewals",
                          sent_at - self._failing_since)
            self._failing_since = None
        self.renewals += 1
        self.last_renewed = sent_at
        return verdict_of(sequence, sent_at, self.trust, ids, renewals, why)

    def attempt_failed(self, exc: BaseException) -> None:
        self.failed_attempts += 1
        self._last_error = describe(exc)
        if self._failing_since is None:
            self._failing_since = self._last_attempt
            # Nothing in hand, nothing at risk: the poll loop says the outage itself.
            self._warned = bool(self.hand.in_hand)
            self._log.log("WARNING" if self._warned else "DEBUG",
                "could not renew ownership of {} ({}); trying again on a new connection. "
                "Entries not renewed for {:g}s (pending_scan.min_idle) can be taken over by "
                "another consumer; none is started here until Redis confirms it is still "
                "this consumer's", entries(len(self.hand.in_hand)), self._last_error,
                self.min_idle)

    def deliver(self, verdict: Verdict) -> None:
        """From the thread: apply ``verdict`` on the subscription's event loop."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to apply
                loop.call_soon_threadsafe(self.apply, verdict)

    @property
    def last_error(self) -> str:
        return self._last_error


def entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def describe(exc: BaseException) -> str:
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "no answer in time (timeout)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


AGAIN_AFTER_FAILURE = 0.5
"""Seconds until a keeper whose renewal round failed is tried again (at most its
interval): waiting a whole interval (min_idle / 3: 10 s by default) after a failover
would leave its entries unrenewed, and unstarted, far longer than the outage."""


class RenewalThread:
    """One daemon thread renewing every registered keeper when it falls due.

    ``client`` is the thread's own: its ``socket_timeout`` bounds each attempt, so keep it
    well under ``min_idle`` (``client.build_renewal_client`` derives it), and its retries
    are turned off here — the thread retries itself, at once, on a new connection, where
    redis-py's default (three retries, backing off up to 10 s) would hold a renewal past
    ``min_idle``.
    """

    def __init__(self, client: SyncClient) -> None:
        client.set_retry(SyncRetry(NoBackoff(), 0))
        self._script = client.register_script(RENEW_OWNED)
        self._keepers: dict[int, OwnershipKeeper] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_calls = 0.0
        """Seconds this thread has spent inside Redis calls (the keepers' pause test)."""
        self._said_slow = False

    def register(self, keeper: OwnershipKeeper) -> None:
        """From the subscription's event loop, as it starts."""
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
            reachable = True
            for keeper in keepers:
                if keeper.next_due <= now and not self._stop.is_set():
                    keeper.next_due = now + keeper.interval
                    if reachable:
                        reachable = self._renew(keeper)
                    else:  # two attempts just failed on a new connection: not a third here
                        keeper.attempt_failed(RedisConnectionError(
                            "redis unreachable from the renewal connection"))
                    if not reachable:
                        keeper.next_due = now + min(keeper.interval, AGAIN_AFTER_FAILURE)
            with self._lock:
                due = min((k.next_due for k in self._keepers.values()), default=now + 1.0)
            self._wake.clear()
            self._wake.wait(max(0.01, due - time.monotonic()))

    def _renew(self, keeper: OwnershipKeeper) -> bool:
        """Two attempts, the second on a new connection (redis-py drops the one an attempt
        failed on); each bounded by the connection's timeouts, derived from min_idle. False
        when Redis could not be reached at all."""
        for _ in range(2):
            began = perf_counter()
            try:
                verdict = keeper.renew_with(self._script, self.in_calls)
            except CONNECTION_ERRORS as exc:
                keeper.attempt_failed(exc)
                continue
            except Exception as exc:  # refused (NOGROUP, NOPERM): the loop meets it too
                keeper.attempt_failed(exc)
                return True
            finally:
                self._took(keeper, perf_counter() - began)
            if verdict is not None:
                keeper.deliver(verdict)
            return True
        return False

    def _took(self, keeper: OwnershipKeeper, seconds: float) -> None:
        """Count a call's time; one line when a call holds the thread past a renewal
        interval (a slow or silent connection, not a pause), one when calls are quick
        again."""
        self.in_calls += seconds
        if seconds > keeper.interval and not self._said_slow:
            self._said_slow = True
            logger.warning("a renewal call to redis took {:.1f}s (a slow or silent "
                           "connection: each call waits at most the renewal connection's "
                           "socket_timeout); renewals of every listener wait meanwhile",
                           seconds)
        elif seconds < keeper.interval / 2 and self._said_slow:
            self._said_slow = False
            logger.info("renewal calls to redis are quick again ({:.3f}s)", seconds)
