"""Rotation and retention decisions, without Redis."""

from datetime import UTC, datetime, timedelta

import pytest

from streamboot.config import ConfigError, settings_from_mapping
from streamboot.config.models import RotationSettings
from streamboot.jobs.retention import GroupPosition, minid_for_age, plan_trim
from streamboot.jobs.rotation import RotationPolicy
from streamboot.wire.ids import after

HOURLY = RotationSettings(period=timedelta(hours=1), key_format="orders:%Y%m%d%H",
                          ttl=timedelta(hours=3), precreate=timedelta(minutes=5))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_current_period_key_and_bounds() -> None:
    period = RotationPolicy(HOURLY).current(at("2026-11-23T05:59:59"))
    assert (period.key, period.start, period.end) == (
        "orders:2026112305", at("2026-11-23T05:00:00"), at("2026-11-23T06:00:00"))


def test_next_period_appears_precreate_before_its_start() -> None:
    policy = RotationPolicy(HOURLY)
    assert policy.upcoming(at("2026-11-23T05:54:59")) is None
    upcoming = policy.upcoming(at("2026-11-23T05:55:00"))
    assert upcoming is not None
    assert upcoming.key == "orders:2026112306"


def test_live_periods_cover_the_ttl() -> None:
    keys = [p.key for p in RotationPolicy(HOURLY).live_periods(at("2026-11-23T05:10:00"))]
    assert keys == ["orders:2026112301", "orders:2026112302", "orders:2026112303",
                    "orders:2026112304", "orders:2026112305"]


def test_minute_periods_and_time_zones() -> None:
    policy = RotationPolicy(RotationSettings(period=timedelta(minutes=15),
                                             key_format="o:%H%M", ttl=timedelta(hours=1),
                                             precreate=timedelta(minutes=1),
                                             drain_margin=timedelta(minutes=5),
                                             timezone="Asia/Seoul"))
    assert policy.current(at("2026-11-23T05:40:00")).key == "o:1430"  # 14:40 in Seoul


def test_unsafe_rotation_is_rejected_at_load() -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"listeners": {"orders": {
            "stream": "orders", "group": "g", "handler": "a:b",
            "rotation": {"period": "1h", "key_format": "orders:%Y%m%d%H", "ttl": "1h"}}}})
    (problem,) = info.value.problems
    assert problem.path == "listeners.orders.rotation"
    assert "rotation.ttl (1h) is shorter than period + precreate + drain_margin (80m)" \
        in problem.message


@pytest.mark.parametrize(("rotation", "message"), [
    ({"period": "30s", "key_format": "o:%M"}, "at least 1m"),
    ({"key_format": "orders"}, "needs strftime fields"),
    ({"key_format": "o:%H", "timezone": "Mars/Base"}, "unknown timezone"),
])
def test_other_rotation_mistakes(rotation: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_mapping({"listeners": {"orders": {
            "stream": "orders", "group": "g", "handler": "a:b", "rotation": rotation}}})


def test_trim_never_passes_a_group_that_still_needs_entries() -> None:
    done = GroupPosition("fast", "100-0", None, 0)
    slow = GroupPosition("slow", "40-0", None, 60)
    plan = plan_trim("90-0", [done, slow])
    assert plan.minid == "40-1"
    assert plan.held_back_by == [slow]
    assert plan_trim("90-0", [done]).minid == "90-0"
    assert plan_trim(None, [done]).minid is None


def test_pending_entries_hold_the_trim_point() -> None:
    holder = GroupPosition("g", "100-0", "20-3", 0)
    assert plan_trim("90-0", [holder]).minid == "20-3"


def test_id_helpers() -> None:
    assert after("5-9") == "5-10"
    assert minid_for_age(10_000, 4_000) == "6000-0"
