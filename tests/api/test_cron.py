"""CronJob schedules parsed as robfig/cron v3 parses them, for Kubernetes' CronJob validation and controller alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nanokube.api import cron

AFTER = datetime(2026, 12, 7, 18, 3, 30, tzinfo=UTC)  # a Monday


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("schedule", "expected"), [
    ("*/5 * * * *", datetime(2026, 12, 7, 18, 5, tzinfo=UTC)),
    ("3 18 * * *", datetime(2026, 12, 8, 18, 3, tzinfo=UTC)),  # strictly after
    ("0 0 1 1 *", datetime(2027, 1, 1, tzinfo=UTC)),
    ("@hourly", datetime(2026, 12, 7, 19, 0, tzinfo=UTC)),
    ("@yearly", datetime(2027, 1, 1, tzinfo=UTC)),
    ("0 9 * * mon-fri", datetime(2026, 12, 8, 9, 0, tzinfo=UTC)),
    ("0 9 13 * 5", datetime(2026, 12, 11, 9, 0, tzinfo=UTC)),  # day 13 or a Friday: either runs
    ("0 9 13 * *", datetime(2026, 12, 13, 9, 0, tzinfo=UTC)),
    ("0 9 * * */1", datetime(2026, 12, 8, 9, 0, tzinfo=UTC)),  # */1 is still a star: both must match
    ("5/20 * * * *", datetime(2026, 12, 7, 18, 5, tzinfo=UTC)),  # 5, 25, 45
    ("0 9-17/4 * * *", datetime(2026, 12, 8, 9, 0, tzinfo=UTC)),  # 9, 13, 17
    ("0 0 1 feb *", datetime(2027, 2, 1, tzinfo=UTC)),
    ("0 0 29 2 *", datetime(2028, 2, 29, tzinfo=UTC)),
    ("@every 1h30m", datetime(2026, 12, 7, 19, 33, 30, tzinfo=UTC)),
    ("@every 300ms", datetime(2026, 12, 7, 18, 3, 31, tzinfo=UTC)),  # at least a second
])
def test_next_activation(schedule: str, expected: datetime) -> None:
    assert cron.parse(schedule).next_after(AFTER) == expected


def test_a_day_that_never_comes_has_no_next_activation() -> None:
    assert cron.parse("59 23 31 2 *").next_after(AFTER) is None


def test_time_zones_from_the_prefix_or_the_time_zone_field() -> None:
    # 18:03 UTC is 19:03 in Berlin: 20:00 there the same evening, 19:00 UTC
    berlin = cron.parse("CRON_TZ=Europe/Berlin 0 20 * * *")
    assert berlin.next_after(AFTER) == at("2026-12-07T19:00:00")
    assert berlin.next_after(at("2026-07-01T00:00:00")) == at("2026-07-01T18:00:00")  # summer time
    assert cron.parse("TZ=America/New_York 0 9 * * *").next_after(at("2026-01-01T00:00:00")) == \
        at("2026-01-01T14:00:00")
    # the controller's formatSchedule: spec.timeZone becomes the prefix unless the schedule has its own
    assert cron.schedule_in_zone("0 9 * * *", "Europe/Berlin") == "TZ=Europe/Berlin 0 9 * * *"
    assert cron.schedule_in_zone("TZ=UTC 0 9 * * *", "Europe/Berlin") == "TZ=UTC 0 9 * * *"
    assert cron.schedule_in_zone("0 9 * * *", None) == "0 9 * * *"


@pytest.mark.parametrize(("schedule", "message"), [
    ("", "empty spec string"),
    ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("-1 * * * *", 'failed to parse int from : strconv.Atoi: parsing "": invalid syntax'),
    ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1/2/3 * * * *", "too many slashes: 1/2/3"),
    ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every nope", 'failed to parse duration @every nope: time: invalid duration "nope"'),
    ("@every 5", 'failed to parse duration @every 5: time: missing unit in duration "5"'),
    ("@every 5d", 'failed to parse duration @every 5d: time: unknown unit "d" in duration "5d"'),
    ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
])
def test_parse_errors_are_the_parsers(schedule: str, message: str) -> None:
    with pytest.raises(cron.CronError) as info:
        cron.parse(schedule)
    assert str(info.value) == message


def test_most_recent_activation_and_missed_count() -> None:
    minutely = cron.parse("* * * * *")
    assert cron.most_recent(minutely, at("2026-01-01T10:00:00"), at("2026-01-01T10:00:59")) == (None, 0)
    assert cron.most_recent(minutely, at("2026-01-01T10:00:00"), at("2026-01-01T10:01:30")) == \
        (at("2026-01-01T10:01:00"), 0)
    assert cron.most_recent(minutely, at("2026-01-01T10:00:00"), at("2026-01-01T10:05:30")) == \
        (at("2026-01-01T10:05:00"), 5)
    latest, missed = cron.most_recent(minutely, at("2026-01-01T00:00:00"), at("2026-01-03T00:00:30"))
    assert latest == at("2026-01-03T00:00:00") and missed > cron.MANY_MISSED
    # irregular gaps (weekdays only): the estimate steps back one interval and walks forward to the latest
    weekdays = cron.parse("30 6-16/4 * * 1-5")
    assert cron.most_recent(weekdays, at("2026-01-02T15:00:00"), at("2026-01-05T11:00:00"))[0] == \
        at("2026-01-05T10:30:00")
    assert cron.most_recent(cron.parse("59 23 31 2 *"), at("2026-01-01T00:00:00"), AFTER) == (None, 0)
