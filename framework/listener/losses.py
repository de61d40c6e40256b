"""Entries that leave a subscription's hands without being handled: said once, counted once.

Three reasons, each with its own line and counter, whichever path met it — a renewal, a
confirmation before a start, a retry's claim, the re-read of the own pending list, the
recovery job:

- **taken over** by another consumer (this process missed its renewals: frozen, cut off):
  ``stats.lost``; none of them is started here from then on;
- **deleted or trimmed** from the stream while pending (XDEL, XTRIM, MAXLEN):
  ``stats.deleted_while_pending``; there is nothing left to handle;
- **unconfirmed**: Redis could not be asked whether they are still ours, so they are
  left pending for the recovery job rather than risk a second handling:
  ``stats.unconfirmed``.

One line per event, naming how many and the first ids, never one line per entry. An id is
counted once even when two paths meet it (the re-read of the own pending list and the
recovery job both see an entry deleted while pending after a restart).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from .stats import ListenerStats

if TYPE_CHECKING:
    from loguru import Logger

SHOWN = 10
"""Ids named in one line."""
REMEMBERED = 10_000
"""Deleted ids remembered so that a second path meeting one does not count it again."""


def _ids(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (" …" if len(ids) > SHOWN else "")


def _entries(n: int) -> str:
    return f"{n} entry" if n == 1 else f"{n} entries"


class LossReport:
    def __init__(self, stats: ListenerStats, log: Logger) -> None:
        self._stats = stats
        self._log = log
        self._deleted: OrderedDict[str, None] = OrderedDict()

    def taken_over(self, ids: list[str], why: str) -> None:
        self._stats.lost += len(ids)
        self._log.warning("{} held here were taken over by another consumer{}; none of them "
                          "is started here from now on: {}", _entries(len(ids)), why,
                          _ids(ids))

    def deleted(self, ids: list[str]) -> None:
        new = [i for i in ids if i not in self._deleted]
        if not new:
            return
        for entry_id in new:
            self._deleted[entry_id] = None
        while len(self._deleted) > REMEMBERED:
            self._deleted.popitem(last=False)
        self._stats.deleted_while_pending += len(new)
        self._log.warning("{} pending here were deleted or trimmed from the stream before "
                          "being handled; there is nothing left to handle: {}",
                          _entries(len(new)), _ids(new))

    def unconfirmed(self, ids: list[str], reason: str) -> None:
        self._stats.unconfirmed += len(ids)
        self._log.warning("could not confirm with Redis that {} held here are still this "
                          "consumer's ({}); they are left pending for the recovery job, not "
                          "started here: {}", _entries(len(ids)), reason, _ids(ids))
