"""Sorting a batch by its idempotency markers (listener/idempotency.py), alone."""

from __future__ import annotations

from streamboot.listener.idempotency import sort_batch
from streamboot.wire.records import StreamEntry


def test_a_batch_is_sorted_by_what_its_markers_say_in_stream_order() -> None:
    entries = [StreamEntry(f"{n}-0", {}) for n in range(6)]
    markers = ["m:a", None, "m:b", "m:a", "m:c", "m:d"]
    found = [False, True, False, False, False]  # EXISTS of each marker that is not None
    batch = sort_batch(entries, markers, found, unconfirmed={"m:d"})
    assert [e.id for e in batch.todo] == ["0-0", "1-0", "4-0"]  # no key, or first of key
    assert batch.done == ["2-0", "5-0"]  # handled already (in Redis, or SET on its way)
    assert [e.id for e in batch.later] == ["3-0"]  # waits for its twin's outcome


def test_an_entry_of_a_key_in_hand_waits_but_the_one_in_hand_does_not() -> None:
    entries = [StreamEntry(f"{n}-0", {}) for n in range(4)]
    markers = ["m:a", "m:b", "m:a", "m:c"]
    # m:a's entry 0-0 is in hand (its retry comes back through here: not held back);
    # m:c's entry 9-0 is in hand: 3-0 waits for its outcome.
    batch = sort_batch(entries, markers, [False] * 4, unconfirmed=set(),
                       in_hand={"m:a": "0-0", "m:c": "9-0"})
    assert [e.id for e in batch.todo] == ["0-0", "1-0"]
    assert [e.id for e in batch.later] == ["2-0", "3-0"]
