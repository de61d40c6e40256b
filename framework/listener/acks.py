"""Acks: what one subscription holds and what it owes Redis — the single owner of both.

*In hand* is every entry this consumer read (or reclaimed) and has not let go of: being
handled, waiting in its batch, waiting for a retry timer, handled and waiting for its
XACK. An entry leaves the hand when its XACK is confirmed, when it is dead-lettered (the
script acks it), when it is left for the recovery job, or when a renewal finds that
another consumer took it over. The own pending list lists entries still in hand, so a
re-read of it (after a connection error) skips them: never handled twice because of it.

*Owed* are the successes whose XACK (and idempotency marker) has not been confirmed. They
leave by exactly one of three paths, all here:

- **riding** the next XREADGROUP's pipeline (``ride`` → ``arrived`` or ``missed``), the
  normal one: one round trip per batch;
- a **side ack** when the loop waits on a read blocked on a drained stream: after
  ``patience`` they are sent on their own instead of waiting out ``poll_timeout``;
- **now** (``ack_now``: recovery acks each reclaimed entry before claiming the next) or
  the **flush** at stop.

An XACK that fails goes back to the front of what is owed, so the next path carries it.
Each entry in hand carries a *receipt*: until when (``perf_counter``) its delivery alone
vouches that it is still this consumer's — ``trust`` seconds after the command that
delivered (or confirmed) it was *sent*, since Redis touched the entry no earlier than that;
and the sequence number of the hold, which tells the ownership keeper's renewals which
entries they covered (ownership.py). The keeper reads ``in_hand``,
``sequence`` and ``watermark`` from its thread and changes nothing here: what its renewals
find is applied on the event loop, through :meth:`release_covered`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from itertools import repeat
from time import perf_counter
from typing import TYPE_CHECKING

from loguru import logger

from ..wire.ids import id_key
from .stats import ListenerStats

if TYPE_CHECKING:
    from loguru import Logger

    from .losses import LossReport
    from .tenure import Tenure

SendAck = Callable[[list[str], list[str]], Awaitable[int]]
"""XACK ``ids`` and SET the ``markers`` in one round trip; returns how many were acked."""

Receipt = tuple[int, float]
"""(hold sequence number, trusted until as ``perf_counter``): see the module docstring."""

PATIENCE = 0.002
"""How long handled entries' XACK waits for the read in flight to return and carry it;
past that (the read is blocked on a drained stream) they are acked on their own."""
ACK_WITHIN = 0.1
"""How long a success waits for a read to carry its XACK while no read is going out (the
loop is busy handing a batch to slow handlers): past that it is acked on its own, so the
PEL, the pending figures and a crash's redelivery do not grow with the handlers' slowness."""


class Acks:
    def __init__(self, send: SendAck, stats: ListenerStats, log: Logger = logger,
                 patience: float = PATIENCE, trust: float = math.inf,
                 losses: LossReport | None = None, tenure: Tenure | None = None) -> None:
        """``trust``: seconds a delivery vouches for ownership (a share of ``min_idle``;
        infinite without an ownership keeper, when nothing is ever checked). ``losses``
        hears of XACKs that found entries acknowledged already (handled twice).
        ``tenure``: the partition's lease, when the listener's partitions are leased."""
        self._send = send
        self._tenure = tenure
        self._stats = stats
        self._losses = losses
        self._patience = patience
        self.trust = trust
        self.in_hand: dict[str, Receipt] = {}
        self.sequence = 0
        """The number of the last hold: a renewal that copied ``in_hand`` after reading
        it covered every entry whose receipt's number is not above it."""
        self.watermark = "0-0"
        """The highest id ever in hand: Redis delivered nothing above it to this consumer
        except a read not received yet (what the keeper renews on trust)."""
        self._ids: list[str] = []
        self._markers: list[str] = []
        self._riding: tuple[list[str], list[str]] | None = None
        self._reading = False
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self._sending: list[list[str]] = []
        """Ids of acks sent on their own and not answered yet."""
        self._log = log

    # -- in hand -------------------------------------------------------------------------
    def hold(self, ids: Iterable[str], sent_at: float | None = None) -> None:
        """Entries now in hand, delivered by a command sent at ``sent_at`` (default: now),
        in stream order (as every read returns them): the last one is the highest, which
        ``watermark`` keeps — one id compared per batch, not each. One receipt is shared by
        the whole batch, and the sequence number is written after the entries, so a
        renewal that read it has them in its copy (see ``sequence``)."""
        ids = list(ids)
        sequence = self.sequence + 1
        sent = perf_counter() if sent_at is None else sent_at
        self.in_hand.update(zip(ids, repeat((sequence, sent + self.trust))))
        self.sequence = sequence
        if ids and id_key(ids[-1]) > id_key(self.watermark):
            self.watermark = ids[-1]

    def confirmed(self, ids: Iterable[str], sent_at: float) -> None:
        """Redis confirmed, by a command sent at ``sent_at``, that these entries are still
        this consumer's (a retry's claim): the ones still in hand get a fresh receipt."""
        sequence = self.sequence + 1
        receipt = (sequence, sent_at + self.trust)
        in_hand = self.in_hand
        for entry_id in ids:
            if entry_id in in_hand:
                in_hand[entry_id] = receipt
        self.sequence = sequence

    def release(self, ids: Iterable[str]) -> None:
        """Let go: acked, dead-lettered, left to recovery, or taken over by another
        consumer."""
        pop = self.in_hand.pop
        for entry_id in ids:
            pop(entry_id, None)

    def release_covered(self, ids: Iterable[str], sequence: int) -> list[str]:
        """Let go of the ``ids`` held no later than hold number ``sequence`` (what a
        renewal that copied them found gone); an id held again since — reclaimed back,
        re-read — is a new delivery the renewal knew nothing of. Returns those let go."""
        in_hand = self.in_hand
        released = []
        for entry_id in ids:
            receipt = in_hand.get(entry_id)
            if receipt is not None and receipt[0] <= sequence:
                del in_hand[entry_id]
                released.append(entry_id)
        return released

    def holds(self, entry_id: str) -> bool:
        return entry_id in self.in_hand

    def acked_here(self, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` this consumer owes or sent an XACK for (handled here, or
        settled): a renewal that finds them no longer pending found this consumer's own
        ack. Not the hot path: only what a renewal found gone is looked up."""
        mine = set(self._ids)
        if self._riding is not None:
            mine.update(self._riding[0])
        for sending in self._sending:
            mine.update(sending)
        return mine.intersection(ids)

    # -- owed ----------------------------------------------------------------------------
    def succeeded(self, entry_id: str, marker: str | None) -> None:
        """A success: its XACK (and marker) is owed. Acked on its own shortly if the loop
        is waiting on a read that may block."""
        self._ids.append(entry_id)
        if marker is not None:  # with its entry: the marker's value names it (commands.py)
            self._markers.append(f"{marker}\n{entry_id}")
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self._patience if self._reading else ACK_WITHIN, self._side_ack)

    def settled(self, ids: Iterable[str]) -> None:
        """Entries with nothing left to do (already handled by key, deleted while
        pending): owed an XACK without a handler having run."""
        self._ids.extend(ids)

    @property
    def owed(self) -> bool:
        return bool(self._ids or self._markers)

    def fence(self, ids: list[str], why: str, handled: bool = False) -> None:
        """Entries of a partition whose lease was lost leave the hand, never acked here:
        they stay pending for the partition's new owner (said, counted). ``handled``:
        their handlers succeeded here, only the XACK is withheld."""
        self.release(ids)
        if self._losses is not None:
            self._losses.fenced(ids, why, handled)

    def take(self) -> tuple[list[str], list[str]]:
        """Everything owed, handed to the caller, who sends it or gives it back. Nothing
        while the partition's lease is not trusted (listener/tenure.py): an XACK from a
        member that may have lost the partition could ack an entry its new owner has not
        finished. Once the lease is lost, what was owed is given up (said, counted)."""
        tenure = self._tenure
        if tenure is not None and not tenure.trusted():
            if tenure.lost and self._ids:
                self.fence(self._ids, "", handled=True)
                self._ids, self._markers = [], []
            return [], []
        ids, markers = self._ids, self._markers
        self._ids, self._markers = [], []
        return ids, markers

    def give_back(self, ids: list[str], markers: list[str]) -> None:
        """An XACK that was not sent or not confirmed: first in line for the next one."""
        self._ids[:0] = ids
        self._markers[:0] = markers

    def unconfirmed_markers(self) -> set[str]:
        """Idempotency markers set by successes whose SET has not been confirmed: for the
        dedup check, they count as already set."""
        riding = self._riding[1] if self._riding is not None else []
        return {item.rpartition("\n")[0] or item for item in (*self._markers, *riding)}

    # -- riding with the read ------------------------------------------------------------
    def ride(self) -> tuple[list[str], list[str]]:
        """What the next read's pipeline carries (XACK, SET markers)."""
        assert self._riding is None, "one read in flight at a time"
        self._riding = self.take()
        return self._riding

    def arrived(self, acked: int) -> None:
        """The read came back with its XACK accepted: those entries leave the hand."""
        riding, self._riding = self._riding, None
        if riding is not None:
            self.release(riding[0])
            self._count(riding[0], acked)
        self._stats.acked += acked

    def _count(self, ids: list[str], acked: int) -> None:
        """XACK says how many of ``ids`` it found pending: fewer means another consumer
        acknowledged some first (or they were deleted meanwhile)."""
        if acked < len(ids) and self._losses is not None:
            missing = len(set(ids)) - acked
            if missing > 0:
                self._losses.already_acked(missing)

    def missed(self) -> None:
        """The read was not sent, failed, or its XACK part was refused: its acks ride
        with the next one."""
        riding, self._riding = self._riding, None
        if riding is not None:
            self.give_back(*riding)

    def dropped(self) -> None:
        """The group was recreated: the acks riding are moot (it has no PEL)."""
        riding, self._riding = self._riding, None
        if riding is not None:
            self.release(riding[0])

    # -- side acks, now, at stop ---------------------------------------------------------
    def reading(self, waiting: bool) -> None:
        """The loop starts (True) or stops (False) waiting on a read. Successes owed when
        it starts are side-acked after ``patience`` unless the read comes back first."""
        self._reading = waiting
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.owed:  # waiting: the read may block, so soon; else within ACK_WITHIN
            self._timer = asyncio.get_running_loop().call_later(
                self._patience if waiting else ACK_WITHIN, self._side_ack)

    def _side_ack(self) -> None:
        self._timer = None
        ids, markers = self.take()
        if ids or markers:
            task = asyncio.get_running_loop().create_task(self._ack(ids, markers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _ack(self, ids: list[str], markers: list[str]) -> bool:
        self._sending.append(ids)
        try:
            acked = await self._send(ids, markers)
        except Exception as exc:
            self.give_back(ids, markers)  # they ride with the next read instead
            self._log.debug("acknowledgement not sent ({}); it rides with the next read", exc)
            return False
        finally:
            self._sending.remove(ids)
        # Not "+= await": another increment made during the await would be lost.
        self._stats.acked += acked
        self.release(ids)
        self._count(ids, acked)
        return True

    async def ack_now(self) -> bool:
        """Send everything owed and wait for the reply. False when it failed (then it is
        owed again)."""
        ids, markers = self.take()
        if not ids and not markers:
            return True
        return await self._ack(ids, markers)

    async def close(self) -> None:
        """At stop: side acks finish, then what is still owed is flushed once. What cannot
        be sent stays pending and is delivered again (at-least-once)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.missed()  # acks riding on a read cut off by the stop: XACK is idempotent
        ids, markers = self.take()
        if not ids and not markers:
            return
        try:
            acked = await self._send(ids, markers)
            self._stats.acked += acked
            self._count(ids, acked)
        except Exception as exc:
            self._log.warning("could not ack {} at stop ({}); they stay pending and are "
                              "delivered again", _entries(len(ids)), exc)


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"
