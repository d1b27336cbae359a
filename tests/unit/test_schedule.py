from datetime import UTC, datetime, timedelta

import pytest

from roster.sync.schedule import last_slot, latest_due, next_due, next_slot, parse_time, spread, zone


def test_daily_slots_in_the_organizations_time_zone() -> None:
    now = datetime(2026, 7, 1, 21, 30, tzinfo=UTC)  # 23:30 in Prague (summer time, UTC+2)
    assert last_slot(now, "Europe/Prague", "23:00") == datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
    assert last_slot(now, "Europe/Prague", "23:45") == datetime(2026, 6, 30, 21, 45, tzinfo=UTC)
    assert next_slot(now, "Europe/Prague", "00:00") == datetime(2026, 7, 1, 22, 0, tzinfo=UTC)
    assert last_slot(now, "UTC", "00:00") == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


def test_bad_settings_name_the_field() -> None:
    with pytest.raises(ValueError, match="daily_sync_time: '25:61' is not HH:MM"):
        last_slot(datetime(2026, 1, 1, tzinfo=UTC), "UTC", "25:61")
    with pytest.raises(ValueError, match="timezone: 'Mars/Olympus' is not a time zone"):
        zone("Mars/Olympus")
    assert parse_time("07:05").minute == 5


def test_a_directory_is_due_at_its_slot_plus_its_own_offset() -> None:
    offset = spread("directory_01ABC", 600)
    assert timedelta(0) <= offset < timedelta(seconds=600) and offset == spread("directory_01ABC", 600)
    slot = datetime(2026, 7, 1, 22, 0, tzinfo=UTC)  # 00:00 in Prague
    before, after = slot + offset - timedelta(seconds=1), slot + offset + timedelta(seconds=1)
    assert next_due(before, "Europe/Prague", "00:00", offset) == slot + offset
    assert latest_due(before, "Europe/Prague", "00:00", offset) == slot + offset - timedelta(days=1)
    assert latest_due(after, "Europe/Prague", "00:00", offset) == slot + offset
    assert next_due(after, "Europe/Prague", "00:00", offset) == slot + offset + timedelta(days=1)
    assert spread("directory_01ABC", 0) == timedelta(0)
