"""Where a subscription's next XREADGROUP reads from: a pure rule, tested alone.

Spring's ``ReadOffsetStrategy`` as a small state: a consumer first re-reads its *own*
pending list — entries delivered to it before (it was stopped, it crashed, a reply was
lost with its connection) — from id ``0``, one entry per read, each finished before the
next read (whose pipeline carries its ack), so that an entry that kills the process is
the only one whose delivery count grows with its crashes; it goes on after the last id
each read returned, until a read comes back empty; then it reads new entries (``>``) a
batch at a time. After a Redis error it starts over from ``0``: a batch whose ack was lost
is still pending under its name. A group just recreated has nothing pending: ``>`` at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..wire.records import StreamEntry

NEW = ">"
OWN_PENDING = "0"


@dataclass
class ReadOffset:
    cursor: str = OWN_PENDING
    """The id the next read asks for: ``0`` or the last one re-read, or ``>``."""
    replayed: int = 0
    """Entries of the own pending list handled in the replay under way."""

    @property
    def replaying(self) -> bool:
        """Reading the own pending list (not new entries)."""
        return self.cursor != NEW

    def count(self, batch_size: int) -> int:
        """COUNT of the next read: one entry at a time while replaying."""
        return batch_size if self.cursor == NEW else 1

    def replay(self, entries: Sequence[StreamEntry], handled: int) -> int | None:
        """A read of the own pending list returned ``entries``, ``handled`` of which go to
        the handler: read on after the last; an empty read ends the replay, and then the
        number handled during it is returned (to say once), else None."""
        if entries:
            self.cursor = entries[-1].id
            self.replayed += handled
            return None
        self.cursor = NEW
        done, self.replayed = self.replayed, 0
        return done

    def restart(self) -> None:
        """After a Redis error (or a batch read but not handed over): the own pending list
        again, from the start."""
        self.cursor = OWN_PENDING

    def recreated(self) -> None:
        """The group was recreated: it has no pending entries, so new ones at once."""
        self.cursor = NEW
        self.replayed = 0
