"""CronJob schedules as Kubernetes parses them (robfig/cron v3, standard 5 fields plus @descriptors): the parse
errors CronJob validation reports, and the next activation time a controller needs.

Semantics of the parser: `*`/`?`, ranges `a-b`, steps `/n` (`5/15` runs from 5 to the field's maximum),
lists, month and weekday names; when both day-of-month and day-of-week are restricted a day matching either runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

_MONTHS = {name: i + 1 for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                 "oct", "nov", "dec"))}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (minimum, maximum, names) of minute, hour, day of month, month, day of week
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS),
                                                     (0, 6, _DAYS))
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}


class CronError(ValueError):
    """A schedule the parser refuses; str() is robfig/cron's message."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool  # day of month or day of week is `*`: both must match (else either)
    every: timedelta | None = None  # @every <duration>

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        return (dom and dow) if self.any_day else (dom or dow)

    def next_after(self, after: datetime, tz: tzinfo | None = None) -> datetime | None:
        """The first activation strictly after `after` (in `tz`, default after's own zone); None within 5 years."""
        if self.every is not None:
            return after + self.every
        start = (after.astimezone(tz) if tz is not None else after).replace(second=0, microsecond=0)
        start += timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for offset in range(366 * 5):
            current = day + timedelta(days=offset) if offset else day
            if current.month not in self.months or not self._day_matches(current):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    candidate = current.replace(hour=hour, minute=minute)
                    if candidate >= start:
                        return candidate
        return None


def _int(text: str) -> int:
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        raise CronError(f"failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax")
    value = int(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value


def _int_or_name(text: str, names: dict[str, int]) -> int:
    return names[text.lower()] if text.lower() in names else _int(text)


def _range(expr: str, low: int, high: int, names: dict[str, int]) -> tuple[set[int], bool]:
    """getRange: the values one comma-separated part selects, and whether it is a bare star."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    star = False
    if low_and_high[0] in ("*", "?"):
        start, end, star = low, high, True
    else:
        start = _int_or_name(low_and_high[0], names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if single:
            end = high
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < low:
        raise CronError(f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError(f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    low, high, names = _BOUNDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        selected, part_star = _range(part, low, high, names)
        values |= selected
        star = star or part_star
    return frozenset(values), star


def _duration(text: str) -> timedelta:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not number:
            raise CronError(f'failed to parse duration {text}: time: invalid duration "{text}"')
        total += float(number) * units[unit]
        number, i = "", i + len(unit)
    if number or total <= 0:
        raise CronError(f'failed to parse duration {text}: time: invalid duration "{text}"')
    return timedelta(seconds=total)


def parse(schedule: str) -> Schedule:
    """cron.ParseStandard (the Minute|Hour|Dom|Month|Dow|Descriptor parser CronJob validation uses)."""
    spec = schedule.strip()
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):  # a location prefix the parser accepts (CronJob validation not)
        zone, _, spec = spec.partition(" ")
        name = zone.split("=", 1)[1]
        if load_zone(name) is None:
            raise CronError(f"provided bad location {name}: unknown time zone {name}")
        spec = spec.strip()
    if spec.startswith("@"):
        if spec.startswith("@every "):
            return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), True,
                            every=_duration(spec[len("@every "):].strip()))
        if spec not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = _DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minutes, _ = _field(fields[0], 0)
    hours, _ = _field(fields[1], 1)
    days, dom_star = _field(fields[2], 2)
    months, _ = _field(fields[3], 3)
    weekdays, dow_star = _field(fields[4], 4)
    return Schedule(minutes, hours, days, months, weekdays, dom_star or dow_star)


def load_zone(name: str) -> tzinfo | None:
    """time.LoadLocation: an IANA zone (or UTC), None when unknown."""
    if name in ("", "UTC"):
        from datetime import UTC

        return UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
