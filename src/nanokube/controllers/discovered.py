"""Resources the API serves beyond the built-in table (custom resources), found through discovery as
Kubernetes' namespace controller and garbage collector find them (/apis, then each group's preferred version)."""

from __future__ import annotations

from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.served_resources import RESOURCES, Resource
from nanokube.client import ApiClient

_BUILTIN_GROUPS = frozenset(r.group for r in RESOURCES)


async def custom_resources(client: ApiClient) -> list[Resource]:
    """Every resource of a group the built-in table does not have (at its preferred version)."""
    try:
        groups: Any = await client.request("GET", "/apis")
    except ApiError:
        return []
    out: list[Resource] = []
    for group in (groups or {}).get("groups") or []:
        name = group.get("name") or ""
        preferred = (group.get("preferredVersion") or {}).get("version")
        if not name or name in _BUILTIN_GROUPS or not preferred:
            continue
        try:
            listing: Any = await client.request("GET", f"/apis/{name}/{preferred}")
        except ApiError:
            continue
        for entry in (listing or {}).get("resources") or []:
            if "/" in entry.get("name", "") or not {"list", "delete"} <= set(entry.get("verbs") or []):
                continue
            out.append(Resource(name, preferred, entry["kind"], entry["name"], bool(entry.get("namespaced")),
                                verbs=tuple(entry.get("verbs") or ())))
    return out
