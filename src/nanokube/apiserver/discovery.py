"""Legacy (non-aggregated) discovery documents built from the scheme, as kube-apiserver serves them, plus the
groups of established CustomResourceDefinitions (apiextensions' discovery controller), rebuilt when they change."""

from __future__ import annotations

import hashlib
from functools import cache, lru_cache
from typing import Any

import orjson

from nanokube.api.served_resources import RESOURCES, Resource, groups
from nanokube.apiserver import alt_versions, crds

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-nanokube",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "python3.11",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "binding": ["create"],
    "eviction": ["create"],
    "finalize": ["update"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "proxy": ["create", "delete", "get", "patch", "update"],
    "ephemeralcontainers": ["get", "patch", "update"],
}
_SUBRESOURCE_KINDS = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                      "portforward": "PodPortForwardOptions", "ephemeralcontainers": "Pod"}


def _storage_hash(res: Resource) -> str:
    digest = hashlib.sha256(f"{res.group}/{res.version}/{res.kind}".encode()).digest()
    import base64

    return base64.b64encode(digest[:8]).decode()


def _resource_entries(res: Resource) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": res.plural,
        "singularName": res.singular_name,
        "namespaced": res.namespaced,
        "kind": res.kind,
        "verbs": list(res.verbs),
        "storageVersionHash": _storage_hash(res),
    }
    if res.short_names:
        entry["shortNames"] = list(res.short_names)
    if res.categories:
        entry["categories"] = list(res.categories)
    out = [entry]
    for sub in res.subresources:
        sub_entry: dict[str, Any] = {
            "name": f"{res.plural}/{sub}",
            "singularName": "",
            "namespaced": res.namespaced,
            "kind": res.kind,
            "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
        }
        if sub == "scale":
            sub_entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub == "binding":
            sub_entry["kind"] = "Binding"
        elif sub == "eviction":
            sub_entry.update(group="policy", version="v1", kind="Eviction")
        elif sub == "log":
            sub_entry["kind"] = "Pod"
        elif sub == "proxy":
            sub_entry["kind"] = f"{res.kind}ProxyOptions"
        elif sub in _SUBRESOURCE_KINDS:
            sub_entry["kind"] = _SUBRESOURCE_KINDS[sub]
        out.append(sub_entry)
    return out


def resource_list(group: str, version: str) -> bytes | None:
    static = _static_resource_list(group, version)
    if static is not None:
        return static
    return _custom_resource_list(group, version, crds.CATALOG.generation)


def _extra_resources() -> list[Resource]:
    """Built-in resources in a second version (alt_versions), then custom resources."""
    return [*alt_versions.ALT_RESOURCES, *crds.CATALOG.resources()]


@cache
def _static_resource_list(group: str, version: str) -> bytes | None:
    return _resource_list_doc(group, version, [r for r in RESOURCES if r.group == group and r.version == version])


@lru_cache(maxsize=64)
def _custom_resource_list(group: str, version: str, _generation: int) -> bytes | None:
    return _resource_list_doc(group, version, [r for r in _extra_resources()
                                               if r.group == group and r.version == version])


def _resource_list_doc(group: str, version: str, members: list[Resource]) -> bytes | None:
    if not members:
        return None
    gv = f"{group}/{version}" if group else version
    resources: list[dict[str, Any]] = []
    for r in members:
        resources.extend(_resource_entries(r))
    return orjson.dumps({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                         "resources": resources})


@cache
def core_versions() -> bytes:
    return orjson.dumps({"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})


def _group_doc(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


# groups served by dedicated handlers rather than from the store (apiserver/metrics_api.py)
EXTRA_GROUPS = {"metrics.k8s.io": ["v1beta1"]}


def _all_groups() -> dict[str, list[str]]:
    out = {name: list(versions) for name, versions in groups().items()}
    for name, versions in alt_versions.groups().items():  # after the preferred (storage) version
        out[name] = [*out.get(name, []), *versions]
    for name, versions in crds.CATALOG.groups().items():
        out.setdefault(name, versions)
    for name, versions in EXTRA_GROUPS.items():
        out.setdefault(name, versions)
    return out


def group_list() -> bytes:
    return _group_list(crds.CATALOG.generation)


@lru_cache(maxsize=4)
def _group_list(_generation: int) -> bytes:
    docs = [_group_doc(name, versions) for name, versions in _all_groups().items() if name]
    return orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": docs})


def group(name: str) -> bytes | None:
    return _group(name, crds.CATALOG.generation)


@lru_cache(maxsize=64)
def _group(name: str, _generation: int) -> bytes | None:
    versions = _all_groups().get(name)
    if not versions or not name:
        return None
    return orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **_group_doc(name, versions)})


@cache
def version() -> bytes:
    return orjson.dumps(VERSION_INFO)
