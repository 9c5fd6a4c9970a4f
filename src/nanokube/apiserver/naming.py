"""Metadata validation for every resource, choosing the name rule each kind uses."""

from __future__ import annotations

from typing import Any

from nanokube.api import validation
from nanokube.api.errors import FieldError


def _path_segment(name: str, prefix: bool = False) -> list[str]:
    """IsValidPathSegmentName (RBAC objects: `system:basic-user` is a valid name)."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


NAME_RULES = {
    "path-segment": _path_segment,
    "dns1123-subdomain": validation.name_is_dns_subdomain,
    "dns1035-label": validation.name_is_dns1035_label,
    "dns1123-label": validation.name_is_dns_label,
}


def validate_object_meta(obj: dict[str, Any], namespaced: bool, name_kind: str) -> list[FieldError]:
    return validation.validate_object_meta(obj, namespaced, NAME_RULES[name_kind])
