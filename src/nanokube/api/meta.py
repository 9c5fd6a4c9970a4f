"""Small typed readers and writers for object metadata."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]

# Kubernetes' rand.String alphabet: no vowels, no ambiguous characters.
RANDOM_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def random_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(RANDOM_ALPHABET) for _ in range(n))


def now() -> datetime:
    return datetime.now(UTC)


def _utc(t: datetime | float | None) -> datetime:
    if t is None:
        return now()
    if isinstance(t, datetime):
        return t
    return datetime.fromtimestamp(t, UTC)


def rfc3339(t: datetime | float | None = None) -> str:
    """metav1.Time's text (whole seconds, UTC) of a datetime or of seconds since the epoch; default now."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: datetime | float | None = None) -> str:
    """metav1.MicroTime's text (microseconds, UTC) of a datetime or of seconds since the epoch; default now."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def new_uid() -> str:
    return str(uuid.uuid4())


def meta(obj: Obj) -> Obj:
    md: Obj = obj.setdefault("metadata", {})
    return md


def name_of(obj: Obj) -> str:
    name: str = obj.get("metadata", {}).get("name", "")
    return name


def namespace_of(obj: Obj) -> str | None:
    namespace: str | None = obj.get("metadata", {}).get("namespace")
    return namespace


def labels_of(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def owner_refs(obj: Obj) -> list[Obj]:
    return obj.get("metadata", {}).get("ownerReferences") or []


def controller_ref(obj: Obj) -> Obj | None:
    for ref in owner_refs(obj):
        if ref.get("controller"):
            return ref
    return None


def is_deleting(obj: Obj) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def condition(obj: Obj, ctype: str) -> Obj | None:
    conditions: list[Obj] = obj.get("status", {}).get("conditions") or []
    return next((cond for cond in conditions if cond.get("type") == ctype), None)


def is_pod_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")
