"""CronJob schedules as Kubernetes reads them, for CronJob validation and the CronJob controller alike.

The parser is robfig/cron v3's `ParseStandard` (five fields minute, hour, day of month, month, day of week, plus the
@yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly descriptors and `@every <duration>`), with its error
messages, which validation reports as they are. Semantics: `*`/`?`, ranges `a-b`, steps `/n` (`5/15` runs from 5
to the field's maximum), lists, month and weekday names (weekday 7 is out of range); when both day of month and
day of week are restricted a day matching either runs. A `TZ=<zone> ` / `CRON_TZ=<zone> ` prefix gives the zone
the fields are read in; without one they are read in the zone of the time asked about (robfig's time.Local).

`schedule_in_zone` is the controller's formatSchedule (spec.timeZone becomes a `TZ=` prefix) and `most_recent`
its mostRecentScheduleTime (pkg/controller/cronjob/utils.go), estimate of missed starts included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_MONTHS = {name: i + 1 for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                 "oct", "nov", "dec"))}
_DAYS = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (minimum, maximum, names) of minute, hour, day of month, month, day of week
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS),
                                                     (0, 6, _DAYS))
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
                "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MANY_MISSED = 100  # more missed starts than this is "too many" (the controller's TooManyMissedTimes)


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
    every: timedelta | None = None  # @every <duration>, whole seconds, at least one
    zone: tzinfo | None = None  # from a TZ=/CRON_TZ= prefix; None: the zone of the time asked about

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        return (dom and dow) if self.any_day else (dom or dow)

    def next_after(self, after: datetime) -> datetime | None:
        """The first activation strictly after `after` (aware), in after's zone; None when none within 5 years
        (robfig's zero time: `59 23 31 2 *`)."""
        if self.every is not None:
            return after.replace(microsecond=0) + self.every
        start = (after.astimezone(self.zone) if self.zone is not None else after).replace(second=0, microsecond=0)
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
                        return candidate.astimezone(after.tzinfo)
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


def _every(spec: str) -> timedelta:
    """Go's time.ParseDuration of what follows `@every `, then robfig's Every: whole seconds, at least one."""
    text = spec[len("@every "):]
    error = CronError(f'failed to parse duration {spec}: time: invalid duration "{text}"')
    body = text[1:] if text[:1] in "+-" else text
    if not body:
        raise error
    if body == "0":  # the one number Go takes without a unit
        return timedelta(seconds=1)
    total, i = 0.0, 0
    while i < len(body):
        j = i
        while j < len(body) and (body[j].isdigit() or body[j] == "."):
            j += 1
        number = body[i:j]
        k = j
        while k < len(body) and not (body[k].isdigit() or body[k] == "."):
            k += 1
        unit = body[j:k]
        if not number or number == "." or number.count(".") > 1:
            raise error
        if unit not in _DURATION_UNITS:
            if not unit:
                raise CronError(f'failed to parse duration {spec}: time: missing unit in duration "{text}"')
            raise CronError(f'failed to parse duration {spec}: time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
        i = k
    if text.startswith("-"):
        total = -total
    return timedelta(seconds=max(1, int(total)))


def load_zone(name: str) -> tzinfo | None:
    """time.LoadLocation: an IANA zone (or UTC), None when unknown."""
    if name in ("", "UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse(schedule: str) -> Schedule:
    """cron.ParseStandard (the Minute|Hour|Dom|Month|Dow|Descriptor parser of CronJob validation and controller)."""
    spec = schedule
    if not spec:
        raise CronError("empty spec string")
    zone: tzinfo | None = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        name = spec[spec.index("=") + 1:space if space >= 0 else len(spec)]
        zone = load_zone(name)
        if zone is None:
            raise CronError(f"provided bad location {name}: unknown time zone {name}")
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), True, _every(spec), zone)
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
    return Schedule(minutes, hours, days, months, weekdays, dom_star or dow_star, zone=zone)


def schedule_in_zone(schedule: str, time_zone: str | None) -> str:
    """formatSchedule: a schedule with its own TZ= stays as written; else a valid spec.timeZone becomes its prefix."""
    if "TZ" in schedule or time_zone is None or load_zone(time_zone) is None:
        return schedule
    return f"TZ={time_zone} {schedule}"


def most_recent(schedule: Schedule, earliest: datetime, now: datetime) -> tuple[datetime | None, int]:
    """mostRecentScheduleTime: the latest activation in (earliest, now] (None if none) and the estimated number of
    missed starts (the span since the first one divided by the interval between the first two, plus one)."""
    first = schedule.next_after(earliest)
    if first is None or now < first:
        return None, 0
    second = schedule.next_after(first)
    if second is None or now < second:
        return first, 0
    interval = round((second - first).total_seconds())
    if interval < 1:
        return None, 0
    missed = int((now - first).total_seconds()) // interval + 1
    latest = None
    t = schedule.next_after(first + timedelta(seconds=(missed - 2) * interval))
    while t is not None and t <= now:
        latest = t
        t = schedule.next_after(t)
    return latest, missed
