"""Where a subscription reads from (listener/offsets.py): the pure rule, alone."""

from __future__ import annotations

from streamboot.listener.offsets import NEW, OWN_PENDING, ReadOffset
from streamboot.wire.records import StreamEntry


def _entries(*ids: str) -> list[StreamEntry]:
    return [StreamEntry(i, {"n": "1"}) for i in ids]


def test_the_own_pending_list_first_one_entry_at_a_time_then_new_entries() -> None:
    offset = ReadOffset()
    assert (offset.cursor, offset.replaying, offset.count(100)) == (OWN_PENDING, True, 1)
    assert offset.replay(_entries("5-0"), handled=1) is None  # on after the last id
    assert (offset.cursor, offset.count(100)) == ("5-0", 1)
    assert offset.replay(_entries("7-0"), handled=0) is None  # 7-0 was still in hand
    assert offset.replay([], handled=0) == 1  # empty: the replay is over, one handled
    assert (offset.cursor, offset.replaying, offset.count(100)) == (NEW, False, 100)


def test_an_error_starts_the_own_pending_list_over_and_a_new_group_skips_it() -> None:
    offset = ReadOffset()
    offset.replay([], handled=0)
    offset.restart()  # a Redis error: a batch whose ack was lost is still pending
    assert offset.cursor == OWN_PENDING
    offset.replay(_entries("3-0"), handled=1)
    offset.recreated()  # NOGROUP, recreated: nothing is pending in a new group
    assert (offset.cursor, offset.replayed) == (NEW, 0)
    assert offset.replay([], handled=0) == 0  # nothing to say
