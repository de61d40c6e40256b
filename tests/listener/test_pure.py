"""Pure decisions of the reliability layer, without Redis."""

from datetime import UTC, datetime, timedelta

from streamboot.config.models import RetrySettings
from streamboot.listener.dead_letters import dead_letter_pairs, original_pairs
from streamboot.listener.idempotency import business_key, marker_key
from streamboot.listener.retry import Next, after_failure, exhausted
from streamboot.wire.hash_slots import colocated, hash_tag, same_slot, slot
from streamboot.wire.records import StreamEntry

RETRY = RetrySettings(max_deliveries=4, backoff=timedelta(seconds=1),
                      backoff_max=timedelta(seconds=3))


def test_retry_backs_off_then_dead_letters() -> None:
    decisions = [after_failure(n, RETRY, can_dead_letter=True) for n in (1, 2, 3, 4)]
    assert [(d.next, d.delay) for d in decisions] == [
        (Next.RETRY_LATER, 1.0), (Next.RETRY_LATER, 2.0), (Next.RETRY_LATER, 3.0),
        (Next.DEAD_LETTER, 0.0)]


def test_without_backoff_failures_wait_for_recovery() -> None:
    retry = RetrySettings(max_deliveries=3, backoff=timedelta(0))
    assert after_failure(1, retry, True).next is Next.LEAVE_PENDING
    assert after_failure(3, retry, True).next is Next.DEAD_LETTER


def test_without_dead_letter_stream_it_never_dead_letters() -> None:
    assert after_failure(9, RETRY, can_dead_letter=False).next is Next.RETRY_LATER


def test_exhausted_only_past_the_limit() -> None:
    assert not exhausted(4, RETRY)
    assert exhausted(5, RETRY)


def test_dead_letter_pairs_keep_the_entry_as_it_came() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    # A name of ours (dlq_reason), a repeated name and escaped raw bytes: all kept, in order.
    stored = ["order_id", "o1", "dlq_reason", "old", "a", "1", "a", "\udce9UR"]
    entry = StreamEntry("1-0", {"order_id": "o1", "dlq_reason": "old", "a": "\udce9UR"}, stored)
    pairs = dead_letter_pairs(entry, reason="max_deliveries", error=ValueError("no stock"),
                              stream="orders", group="g", deliveries=5, now=now)
    assert pairs == [*stored,
                     "dlq_reason", "max_deliveries", "dlq_error", "ValueError: no stock",
                     "dlq_stream", "orders", "dlq_id", "1-0", "dlq_group", "g",
                     "dlq_deliveries", "5", "dlq_at", "2026-11-23T12:00:00.000+00:00",
                     "dlq_fields", "4"]
    fields = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    assert original_pairs(StreamEntry("9-0", fields, pairs)) == stored


def test_original_pairs_of_a_legacy_dead_letter() -> None:
    legacy = {"order_id": "o1", "dlq_reason": "max_deliveries", "dlq_stream": "orders"}
    assert original_pairs(StreamEntry("9-0", legacy)) == ["order_id", "o1"]


def test_hash_tags_and_slots() -> None:
    assert hash_tag("{orders}:dlq") == "orders"
    assert hash_tag("a{}b") is None
    assert hash_tag("plain") is None
    assert colocated("orders", ":dlq") == "{orders}:dlq"
    assert colocated("{shop}:orders", ":dlq") == "{shop}:orders:dlq"
    assert same_slot("orders", "{orders}:dlq")
    assert not same_slot("orders", "orders:dlq")
    assert slot("{orders}:x") == slot("orders")


def test_marker_keys_are_per_group_and_tagged_by_business_key() -> None:
    assert marker_key("streamboot:done", "billing", "o-7") == "streamboot:done:billing:{o-7}"
    assert same_slot(marker_key("p", "g", "o-7"), "ledger:{o-7}")


def test_business_key_from_flat_or_json_fields() -> None:
    assert business_key({"order_id": "o1"}, "order_id", None) == "o1"
    assert business_key({"payload": '{"order_id": 7}'}, "order_id", "payload") == "7"
    assert business_key({"payload": "[1]"}, "order_id", "payload") is None
    assert business_key({}, "order_id", None) is None


def test_a_hand_over_drops_the_waiting_but_a_running_key_stays_held() -> None:
    """The hand-over drops what waits behind a running entry; an entry of that key that
    still arrives (a read on its way) must wait for the running one, not run beside it."""
    from streamboot.listener.ordering import KeyOrder

    order: KeyOrder[str] = KeyOrder("customer", None, limit=10)

    def entry(n: int) -> StreamEntry:
        return StreamEntry(f"{n}-0", {"customer": "c4"})

    assert order.admit(entry(1), "job 1")  # runs
    assert not order.admit(entry(2), "job 2")  # waits behind 1
    assert order.drop() == ["job 2"]  # left pending for the next owner
    assert not order.admit(entry(3), "job 3")  # 1 still runs: 3 waits
    assert order.settled("1-0") == "job 3"
    assert order.settled("3-0") is None
    assert order.admit(entry(4), "job 4")  # the key is free again
