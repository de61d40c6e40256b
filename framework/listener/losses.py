"""Entries that leave a subscription's hands without being handled here, or were handled
here and elsewhere too: said once, counted once.

The reasons, each with its own line and counter, whichever path met it — a renewal, a
confirmation before a start, a retry's claim, the re-read of the own pending list, the
recovery job, an acknowledgement:

- **taken over** by another consumer, which has them pending now (this process missed its
  renewals: frozen, cut off): ``stats.lost``;
- **acknowledged elsewhere**: no longer pending, and not by this consumer's XACK — another
  consumer took them over and finished, or the one that had them before finished late (a
  process that was frozen): ``stats.acked_elsewhere``;
- **deleted or trimmed** from the stream while pending (XDEL, XTRIM, MAXLEN): there is
  nothing left to handle: ``stats.deleted_while_pending``;
- **unconfirmed**: Redis could not be asked whether they are still ours, so they are left
  pending for the recovery job rather than risk a second handling: ``stats.unconfirmed``;
- **fenced**: of a partition whose lease this member lost (partitions/membership.py):
  left unstarted, or handled but not acked, for the partition's new owner:
  ``stats.fenced``;
- **already acknowledged**: handled here, and the XACK found some acknowledged already —
  another consumer took them over while their handlers ran here (at-least-once handled
  them twice), or they were deleted meanwhile: ``stats.already_acked``.

None of the first four is started here once it is known. Each is said in one line per
event — the reports of one wake (a renewal, then the confirmation of the read that was on
the wire) are gathered for half a second — naming how many and the first ids; an id
deleted while pending is counted once even when two paths meet it (the re-read of the own
pending list and the recovery job, after a restart).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

from .stats import ListenerStats

if TYPE_CHECKING:
    from loguru import Logger

SHOWN = 10
"""Ids named in one line."""
REMEMBERED = 10_000
"""Deleted ids remembered so that a second path meeting one does not count it again."""
GATHER = 0.5
"""Seconds the reports of one event are gathered into one line per reason."""

_LINES = {
    "taken": "{n} held here {was} taken over by another consumer{why}; none of them is "
             "started here from now on: {ids}",
    "acked": "{n} held here {was} acknowledged meanwhile by another consumer, which took "
             "them over or had them before{why}; none of them is started here from now on: "
             "{ids}",
    "deleted": "{n} pending here {was} deleted or trimmed from the stream; there is nothing "
               "left to handle, and none of them is started here from now on: {ids}",
    "unconfirmed": "could not confirm with Redis that {n} held here {is_} still this "
                   "consumer's{why}; they are left pending for the recovery job, not "
                   "started here: {ids}",
    "fenced": "{n} of this partition {was} left to its new owner: this member lost the "
              "partition's lease{why}; {they} not started or acknowledged here: {ids}",
    "fenced_handled": "{n} handled here {was} not acknowledged: this member lost the "
                      "partition's lease before the XACK; {they} pending for the "
                      "partition's new owner, which handles {them} again (at-least-once): "
                      "{ids}",
    "already": "{n} handled here {was} no longer pending when this consumer's XACK "
               "arrived, for one of three reasons: a failover's new primary never had the "
               "delivery (replication lags: nothing was handled twice); another consumer "
               "took it over while the handler ran here (a pause, a lost connection: then "
               "handled twice, as at-least-once allows); or it was deleted meanwhile{ids}",
}


def entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (" …" if len(ids) > SHOWN else "")


class LossReport:
    def __init__(self, stats: ListenerStats, log: Logger) -> None:
        self._stats = stats
        self._log = log
        self._deleted: OrderedDict[str, None] = OrderedDict()
        self._held: dict[str, tuple[list[str], int, str]] = {}
        self._timer: asyncio.TimerHandle | None = None

    def taken_over(self, ids: list[str], why: str) -> None:
        self._stats.lost += len(ids)
        self._say("taken", ids, why)

    def acked_elsewhere(self, ids: list[str], why: str) -> None:
        self._stats.acked_elsewhere += len(ids)
        self._say("acked", ids, why)

    def deleted(self, ids: list[str]) -> None:
        new = [i for i in ids if i not in self._deleted]
        if not new:
            return
        for entry_id in new:
            self._deleted[entry_id] = None
        while len(self._deleted) > REMEMBERED:
            self._deleted.popitem(last=False)
        self._stats.deleted_while_pending += len(new)
        self._say("deleted", new)

    def unconfirmed(self, ids: list[str], reason: str) -> None:
        self._stats.unconfirmed += len(ids)
        self._say("unconfirmed", ids, f" ({reason})")

    def fenced(self, ids: list[str], why: str, handled: bool = False) -> None:
        """``handled``: their handlers succeeded, only the XACK is fenced."""
        self._stats.fenced += len(ids)
        self._say("fenced_handled" if handled else "fenced", ids, why)

    def already_acked(self, count: int) -> None:
        """An XACK acknowledged ``count`` fewer entries than it was sent for."""
        self._stats.already_acked += count
        self._say("already", [], count=count)

    # -- one line per reason per event ------------------------------------------------
    def _say(self, reason: str, ids: list[str], why: str = "", count: int = 0) -> None:
        held, held_count, held_why = self._held.get(reason, ([], 0, why))
        self._held[reason] = (held + ids, held_count + (count or len(ids)), held_why or why)
        if self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(GATHER, self.flush)
            except RuntimeError:  # no loop (a unit test): say it now
                self.flush()

    def flush(self) -> None:
        """Say what was gathered (at the end of the window, and when the listener stops)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, {}
        for reason, (ids, count, why) in held.items():
            self._log.warning(_LINES[reason].format(
                n=entries(count), was="was" if count == 1 else "were",
                is_="is" if count == 1 else "are", they="it is" if count == 1 else "they are",
                them="it" if count == 1 else "them", why=why,
                ids=_ids(ids) if reason != "already" else ""))
