"""CronJob schedules parsed as robfig/cron v3 parses them (Kubernetes' CronJob validation and controller)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from nanokube.api import cron

AFTER = datetime(2026, 12, 7, 18, 3, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("schedule", "expected"), [
    ("*/5 * * * *", datetime(2026, 12, 7, 18, 5, tzinfo=UTC)),
    ("3 18 * * *", datetime(2026, 12, 8, 18, 3, tzinfo=UTC)),  # strictly after
    ("0 0 1 1 *", datetime(2027, 1, 1, tzinfo=UTC)),
    ("@hourly", datetime(2026, 12, 7, 19, 0, tzinfo=UTC)),
    ("0 9 * * mon-fri", datetime(2026, 12, 8, 9, 0, tzinfo=UTC)),
    ("0 9 13 * 5", datetime(2026, 12, 11, 9, 0, tzinfo=UTC)),  # day 13 or a Friday: either runs
    ("0 9 13 * *", datetime(2026, 12, 13, 9, 0, tzinfo=UTC)),
    ("5/20 * * * *", datetime(2026, 12, 7, 18, 5, tzinfo=UTC)),  # 5, 25, 45
    ("0 0 29 2 *", datetime(2028, 2, 29, tzinfo=UTC)),
])
def test_next_activation(schedule: str, expected: datetime) -> None:
    assert cron.parse(schedule).next_after(AFTER) == expected


def test_next_activation_in_a_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 18:03 UTC is 19:03 in Berlin: 20:00 there the same evening
    assert cron.parse("0 20 * * *").next_after(AFTER, berlin) == datetime(2026, 12, 7, 20, 0, tzinfo=berlin)


@pytest.mark.parametrize(("schedule", "message"), [
    ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
])
def test_parse_errors_are_the_parsers(schedule: str, message: str) -> None:
    with pytest.raises(cron.CronError) as info:
        cron.parse(schedule)
    assert str(info.value) == message
