"""Cron schedules as the CronJob controller reads them (robfig/cron's ParseStandard): five fields
(minute hour day-of-month month day-of-week) with `*`, `a-b`, `/step`, lists and month/day names, the
descriptors @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly and `@every <duration>`, and a
`TZ=<zone> ` / `CRON_TZ=<zone> ` prefix. Day-of-month and day-of-week are ORed unless one of them is `*`.
Times are computed in the schedule's zone (zoneinfo), minute by minute fields, never by scanning minutes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    pass


class UnknownTimeZone(ScheduleError):
    pass


def zone(name: str) -> tzinfo:
    if name in ("", "UTC"):
        return UTC
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        return local or UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise UnknownTimeZone(f"unknown time zone {name}") from err


def _field(text: str, low: int, high: int, names: dict[str, int] | None) -> tuple[frozenset[int], bool]:
    """(allowed values, whether the field is a star)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"invalid step in {part!r}")
            step = int(step_text)
        if rng in ("*", "?"):
            first, last = low, high
            star = not step_text
        else:
            a, dash, b = rng.partition("-")
            first = _value(a, names)
            last = _value(b, names) if dash else (high if step_text else first)
        if first < low or last > high or first > last:
            raise ScheduleError(f"value out of range ({low}-{high}): {part!r}")
        values.update(range(first, last + 1, step))
    return frozenset(values), star


def _value(text: str, names: dict[str, int] | None) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ScheduleError(f"failed to parse int from {text}")
    return int(text)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_star: bool
    weekday_star: bool
    tz: tzinfo
    every: float | None = None  # seconds, for "@every"

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.day_star or self.weekday_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime:
        """The first activation strictly after t (aware datetime), in UTC."""
        if self.every is not None:
            return t.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=max(1, int(self.every)))
        local = t.astimezone(self.tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = local.year + 5
        while local.year <= limit:
            if local.month not in self.months:
                local = (local.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(local):
                local = local.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if local.hour not in self.hours:
                local = local.replace(minute=0) + timedelta(hours=1)
                continue
            if local.minute not in self.minutes:
                local += timedelta(minutes=1)
                continue
            return local.replace(tzinfo=self.tz).astimezone(UTC)
        raise ScheduleError("no activation within five years")


def parse(schedule: str, time_zone: str | None = None) -> Schedule:
    text = schedule.strip()
    tz_name = time_zone
    for prefix in ("TZ=", "CRON_TZ="):
        if text.startswith(prefix):
            tz_name, _, text = text[len(prefix):].partition(" ")
            text = text.strip()
    tz = zone(tz_name or "UTC") if tz_name is not None else UTC
    if text.startswith("@every "):
        total = 0.0
        rest = text[len("@every "):].strip()
        pos = 0
        for match in _DURATION.finditer(rest):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(rest) or not rest or total <= 0:
            raise ScheduleError(f"failed to parse duration {text}: time: invalid duration {rest!r}")
        everything = frozenset(range(0, 60))
        return Schedule(everything, everything, everything, everything, everything, True, True, tz, every=total)
    text = DESCRIPTORS.get(text, text)
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(f"expected exactly 5 fields, found {len(fields)}: {text!r}")
    minutes, _ = _field(fields[0], 0, 59, None)
    hours, _ = _field(fields[1], 0, 23, None)
    days, day_star = _field(fields[2], 1, 31, None)
    months, _ = _field(fields[3], 1, 12, MONTHS)
    weekdays, weekday_star = _field(fields[4].replace("7", "0") if fields[4] == "7" else fields[4], 0, 7, DAYS)
    weekdays = frozenset(d % 7 for d in weekdays)
    return Schedule(minutes, hours, days, months, weekdays, day_star, weekday_star, tz)


def most_recent(schedule: Schedule, earliest: datetime, now: datetime, cap: int = 100) -> tuple[datetime | None, int]:
    """The latest activation in (earliest, now] and how many there were (counting stops just past `cap`)."""
    t = schedule.next_after(earliest)
    if t > now:
        return None, 0
    count = 1
    while (following := schedule.next_after(t)) <= now:
        t = following
        count += 1
        if count > cap:  # too many missed: find the latest from a day back instead of walking all of them
            probe = max(t, now - timedelta(days=1))
            while (following := schedule.next_after(probe)) <= now:
                t = probe = following
            return t, count
    return t, count
