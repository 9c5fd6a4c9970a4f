"""The cron schedule parser the CronJob controller uses (robfig/cron ParseStandard semantics)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nanokube.controllers import cron


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "after", "expected"), [
    ("* * * * *", "2026-01-01T10:00:30", "2026-01-01T10:01:00"),
    ("*/15 * * * *", "2026-01-01T10:01:00", "2026-01-01T10:15:00"),
    ("0 9-17/4 * * *", "2026-01-01T10:00:00", "2026-01-01T13:00:00"),
    ("30 2 * * mon", "2026-01-01T00:00:00", "2026-01-05T02:30:00"),  # 2026-01-01 is a Thursday
    ("0 0 1 feb *", "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
    ("0 0 13 * 5", "2026-01-01T00:00:00", "2026-01-02T00:00:00"),  # day-of-month OR day-of-week
    ("@hourly", "2026-01-01T10:59:59", "2026-01-01T11:00:00"),
    ("@yearly", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 29 2 *", "2026-03-01T00:00:00", "2028-02-29T00:00:00"),
])
def test_next_activation(schedule, after, expected):
    assert cron.parse(schedule).next_after(at(after)) == at(expected)


def test_time_zones_from_the_field_or_the_prefix():
    berlin = cron.parse("0 9 * * *", "Europe/Berlin")
    assert berlin.next_after(at("2026-01-01T00:00:00")) == at("2026-01-01T08:00:00")
    assert berlin.next_after(at("2026-07-01T00:00:00")) == at("2026-07-01T07:00:00")  # summer time
    assert cron.parse("CRON_TZ=America/New_York 0 9 * * *").next_after(at("2026-01-01T00:00:00")) == \
        at("2026-01-01T14:00:00")
    with pytest.raises(cron.UnknownTimeZone):
        cron.parse("* * * * *", "Mars/Olympus")


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "*/0 * * * *", "a b c d e", "@every nope"])
def test_bad_schedules(bad):
    with pytest.raises(cron.ScheduleError):
        cron.parse(bad)


def test_every_and_most_recent_with_missed_count():
    assert cron.parse("@every 1h30m").next_after(at("2026-01-01T00:00:00")) == at("2026-01-01T01:30:00")
    minutely = cron.parse("* * * * *")
    assert cron.most_recent(minutely, at("2026-01-01T10:00:00"), at("2026-01-01T10:05:30")) == \
        (at("2026-01-01T10:05:00"), 5)
    assert cron.most_recent(minutely, at("2026-01-01T10:00:00"), at("2026-01-01T10:00:59")) == (None, 0)
    latest, missed = cron.most_recent(minutely, at("2026-01-01T00:00:00"), at("2026-01-03T00:00:30"))
    assert latest == at("2026-01-03T00:00:00") and missed > 100
