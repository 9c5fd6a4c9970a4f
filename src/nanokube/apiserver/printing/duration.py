"""Ages as kubectl shows them: apimachinery's `duration.HumanDuration` and the printers' timestamp helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nanokube.api.meta import parse_time

UNKNOWN = "<unknown>"
_DAY_HOURS = 24
_YEAR_HOURS = 24 * 365


def human_duration(seconds: float) -> str:
    """A succinct rendering of an elapsed time with ~2-3 significant figures (`113s`, `5m23s`, `5h23m`, `5d15h`).

    Go truncates every unit towards zero; up to 2 s of clock skew (a negative age) still reads `0s`.
    """
    whole_seconds = int(seconds)
    if whole_seconds < -1:
        return "<invalid>"
    if whole_seconds < 0:
        return "0s"
    if whole_seconds < 60 * 2:
        return f"{whole_seconds}s"
    minutes = int(seconds // 60)
    if minutes < 10:
        s = int(seconds) % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = int(seconds // 3600)
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < _DAY_HOURS * 8:
        h = hours % _DAY_HOURS
        days = hours // _DAY_HOURS
        return f"{days}d" if h == 0 else f"{days}d{h}h"
    if hours < _YEAR_HOURS * 2:
        return f"{hours // _DAY_HOURS}d"
    if hours < _YEAR_HOURS * 8:
        years = hours // _YEAR_HOURS
        days = (hours // _DAY_HOURS) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // _YEAR_HOURS}y"


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 metav1.Time / MicroTime, or None for the zero time (absent, empty, unparsable)."""
    if not value or not isinstance(value, str):
        return None
    t = parse_time(value)
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def elapsed_seconds(then: datetime, now: datetime) -> float:
    """now - then in seconds, exact to the microsecond (integer arithmetic, so boundaries do not wobble)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    delta = now - then
    return (delta.days * 86400 + delta.seconds) + delta.microseconds / 1_000_000


def since(value: Any, now: datetime) -> str:
    """translateTimestampSince / translateMicroTimestampSince: `<unknown>` for the zero time."""
    then = parse_timestamp(value)
    if then is None:
        return UNKNOWN
    return human_duration(elapsed_seconds(then, now))
