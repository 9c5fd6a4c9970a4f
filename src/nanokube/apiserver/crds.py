"""CustomResourceDefinitions: what apiextensions-apiserver adds to kube-apiserver.

- The catalog of served custom resources (one `CustomResource` per served version of an accepted CRD),
  consulted by routing, discovery, OpenAPI and printing, updated as CRDs are written (registry hooks, so the
  next request already sees a new CRD) and loaded from the store at start.
- The CRD strategy: defaults, validation (crd_validation), and the status the naming and establishing
  controllers would write (NamesAccepted / Established, acceptedNames, storedVersions).
- The strategy of each custom resource: structural defaulting and validation, status subresource.
- Deletion (crd_finalizer.go): DELETE adds `customresourcecleanup.apiextensions.k8s.io`; `run_finalizer`
  deletes every instance, then removes the finalizer so the CRD goes, and its routes with it.

Custom objects are stored under /registry/<group>/<plural>/... in the version they were written with; reads
at another served version rewrite apiVersion (conversion strategy None) and apply the schema's defaults.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from nanokube.api import crd_validation, errors, meta, structural
from nanokube.api.errors import ApiError, FieldError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource, by_kind, lookup
from nanokube.apiserver import alt_versions, deletion, naming
from nanokube.apiserver.allocators import Allocation
from nanokube.apiserver.scaling import ScalePaths
from nanokube.apiserver.strategies import Strategy
from nanokube.store.base import Compacted, Store

log = logging.getLogger(__name__)

CRDS = by_kind("apiextensions.k8s.io", "CustomResourceDefinition")
CLEANUP_FINALIZER = deletion.CRD_CLEANUP


@dataclass(frozen=True)
class CustomResource(Resource):
    """A served version of a custom resource. Routing, storage keys and discovery use the Resource fields."""

    crd_name: str = ""
    schema: Obj = field(default_factory=dict, compare=False, hash=False, repr=False)
    strategy: Strategy | None = field(default=None, compare=False, hash=False, repr=False)
    printer: Any = field(default=None, compare=False, hash=False, repr=False)
    scale_paths: ScalePaths | None = field(default=None, compare=False, hash=False)
    list_kind_name: str = ""
    definition: str = ""  # OpenAPI definition name, e.g. com.example.stable.v1.CronTab
    rewrites: bool = False  # reads may need apiVersion rewritten or defaults applied
    # Objects written before the schema last changed may lack its defaults (written after: defaulted on write).
    defaults_on_read: bool = False
    custom: bool = True

    @property
    def list_kind(self) -> str:
        return self.list_kind_name or self.kind + "List"

    def present(self, raw: bytes) -> bytes:
        """A stored object as this version serves it: apiVersion of this version, the schema's defaults."""
        if not self.rewrites:
            return raw
        if not self.defaults_on_read and b'"apiVersion":"' + self.api_version.encode() + b'"' in raw:
            return raw  # stored in this version: nothing to do (the common case of a multi-version CRD)
        obj = orjson.loads(raw)
        obj["apiVersion"] = self.api_version
        structural.apply_defaults(obj, self.schema)
        return orjson.dumps(obj)


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version ordering (sort descending): GA > beta > alpha by major then minor, then others."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if m is None:
        return (0, 0, 0, version)
    level = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    return (level, int(m.group(1)), int(m.group(3) or 0), "")


def sorted_versions(versions: list[str]) -> list[str]:
    known = sorted((v for v in versions if version_priority(v)[0]), key=version_priority, reverse=True)
    return known + sorted(v for v in versions if not version_priority(v)[0])


def _definition_name(group: str, version: str, kind: str) -> str:
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def _condition(ctype: str, status: str, reason: str, message: str) -> Obj:
    return {"type": ctype, "status": status, "lastTransitionTime": meta.rfc3339(), "reason": reason,
            "message": message}


def condition_true(crd: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def set_condition(crd: Obj, new: Obj) -> None:
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for i, old in enumerate(conditions):
        if old.get("type") == new["type"]:
            if old.get("status") == new["status"]:
                new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
            conditions[i] = new
            return
    conditions.append(new)


# ---------------------------------------------------------------- the catalog


class Catalog:
    def __init__(self) -> None:
        self.by_gvp: dict[tuple[str, str, str], CustomResource] = {}
        self.by_crd: dict[str, list[CustomResource]] = {}
        self.crds: dict[str, Obj] = {}
        self.terminating: set[str] = set()
        self.generation = 0  # bumped on every change: discovery and OpenAPI caches key on it

    def lookup(self, group: str, version: str, plural: str) -> CustomResource | None:
        return self.by_gvp.get((group, version, plural))

    def resources(self) -> list[CustomResource]:
        return [r for rs in self.by_crd.values() for r in rs]

    def groups(self) -> dict[str, list[str]]:
        versions: dict[str, set[str]] = {}
        for r in self.resources():
            versions.setdefault(r.group, set()).add(r.version)
        return {g: sorted_versions(list(vs)) for g, vs in sorted(versions.items())}

    def update(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        self._drop(name)
        self.crds[name] = copy.deepcopy(crd)
        if condition_true(crd, "NamesAccepted") or condition_true(crd, "Established"):
            resources = build_resources(crd, self)
            self.by_crd[name] = resources
            for r in resources:
                self.by_gvp[(r.group, r.version, r.plural)] = r
        self.generation += 1

    def remove(self, name: str) -> None:
        self._drop(name)
        self.crds.pop(name, None)
        self.terminating.discard(name)
        self.generation += 1

    def _drop(self, name: str) -> None:
        for r in self.by_crd.pop(name, []):
            self.by_gvp.pop((r.group, r.version, r.plural), None)

    def names_in_use(self, group: str, skip: str) -> tuple[set[str], set[str]]:
        """The resource names (plural, singular, short names) and kinds (kind, listKind) the other CRDs of
        the group have been granted."""
        resources: set[str] = set()
        kinds: set[str] = set()
        for name, crd in self.crds.items():
            if name == skip or (crd.get("spec") or {}).get("group") != group:
                continue
            accepted = (crd.get("status") or {}).get("acceptedNames") or {}
            resources.update(n for n in (accepted.get("plural"), accepted.get("singular"), *(accepted.get("shortNames")
                                                                                            or [])) if n)
            kinds.update(n for n in (accepted.get("kind"), accepted.get("listKind")) if n)
        return resources, kinds


CATALOG = Catalog()


def resolve(group: str, version: str, plural: str) -> Resource | None:
    """A built-in resource (in its own version or another: alt_versions), else a served custom resource."""
    return lookup(group, version, plural) or alt_versions.lookup(group, version, plural) or \
        CATALOG.lookup(group, version, plural)


def build_resources(crd: Obj, catalog: Catalog) -> list[CustomResource]:
    spec = crd["spec"]
    names = (crd.get("status") or {}).get("acceptedNames") or spec["names"]
    group = spec["group"]
    crd_name = crd["metadata"]["name"]
    versions = [v for v in spec.get("versions") or [] if v.get("served")]
    multi = len(versions) > 1
    schema_changed = int((crd.get("metadata") or {}).get("generation") or 1) > 1
    out = []
    from nanokube.apiserver.printing.custom import printer_for_columns

    for v in versions:
        schema = (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        subresources = v.get("subresources") or {}
        scale = subresources.get("scale")
        defaults_on_read = schema_changed and structural.has_defaults(schema)
        subs = tuple(s for s in ("status", "scale") if isinstance(subresources.get(s), dict))
        scale_paths = ScalePaths(scale.get("specReplicasPath") or ".spec.replicas",
                                 scale.get("statusReplicasPath") or ".status.replicas",
                                 scale.get("labelSelectorPath") or "") if isinstance(scale, dict) else None
        res = CustomResource(
            group=group, version=v["name"], kind=names["kind"], plural=names["plural"],
            namespaced=spec.get("scope") == "Namespaced", short_names=tuple(names.get("shortNames") or ()),
            subresources=subs, categories=tuple(names.get("categories") or ()),
            singular=names.get("singular") or names["kind"].lower(), crd_name=crd_name, schema=schema,
            printer=printer_for_columns(v.get("additionalPrinterColumns") or []), scale_paths=scale_paths,
            list_kind_name=names.get("listKind") or "", definition=_definition_name(group, v["name"], names["kind"]),
            rewrites=multi or defaults_on_read, defaults_on_read=defaults_on_read)
        object.__setattr__(res, "strategy", _custom_strategy(res, catalog))
        out.append(res)
    return out


# ---------------------------------------------------------------- custom resource strategy


def _custom_strategy(res: CustomResource, catalog: Catalog) -> Strategy:
    has_status = "status" in res.subresources

    def default(obj: Obj) -> None:
        structural.apply_defaults(obj, res.schema)

    def validate(obj: Obj) -> list[FieldError]:
        return structural.validate(obj, res.schema)

    def prepare_create(obj: Obj) -> None:
        if res.crd_name in catalog.terminating:
            raise errors.method_not_allowed("create not allowed while custom resource definition is terminating")
        if has_status:
            obj.pop("status", None)
            # Kubernetes stores it without status and defaults status on every read (a CRD's status default,
            # e.g. a "Waiting for controller" condition, shows from the start): default it once, here.
            structural.apply_defaults(obj, res.schema)

    return Strategy(default=default, validate=validate, prepare_create=prepare_create,
                    has_status_subresource=has_status, tracks_generation=True)


# ---------------------------------------------------------------- the CRD's own strategy and hooks


def _accepted_status(crd: Obj, catalog: Catalog) -> None:
    """The naming controller (names free within the group are accepted, one by one; the last conflict names the
    reason) and the establishing controller (Established once the names are, and never back)."""
    spec = crd.get("spec") or {}
    requested = spec.get("names") or {}
    status = crd.setdefault("status", {})
    accepted = dict(status.get("acceptedNames") or {})
    resources, kinds = catalog.names_in_use(spec.get("group") or "", crd["metadata"]["name"])
    names = dict(accepted)
    reason = message = ""

    def fresh(wanted: str, current: str, used: set[str]) -> bool:
        return not wanted or wanted == current or wanted not in used

    for key, used, why in (("plural", resources, "PluralConflict"), ("singular", resources, "SingularConflict")):
        if fresh(requested.get(key) or "", accepted.get(key) or "", used):
            names[key] = requested.get(key) or ""
        else:
            reason, message = why, f'"{requested[key]}" is already in use'
    taken = [n for n in requested.get("shortNames") or [] if n not in (accepted.get("shortNames") or [])
             and n in resources]
    if taken:
        reason, message = "ShortNamesConflict", ", ".join(f'"{n}" is already in use' for n in taken)
        if len(taken) > 1:
            message = "[" + message + "]"
    else:
        names["shortNames"] = list(requested.get("shortNames") or [])
    for key, why in (("kind", "KindConflict"), ("listKind", "ListKindConflict")):
        if fresh(requested.get(key) or "", accepted.get(key) or "", kinds):
            names[key] = requested.get(key) or ""
        else:
            reason, message = why, f'"{requested[key]}" is already in use'
    names["categories"] = list(requested.get("categories") or [])
    status["acceptedNames"] = {k: v for k, v in names.items() if v} or {"plural": "", "kind": ""}
    if reason:
        set_condition(crd, _condition("NamesAccepted", "False", reason, message))
    else:
        set_condition(crd, _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found"))
    if not condition_true(crd, "Established"):
        if reason:
            set_condition(crd, _condition("Established", "False", "NotAccepted", "not all names are accepted"))
        else:
            set_condition(crd, _condition("Established", "True", "InitialNamesAccepted",
                                          "the initial names have been accepted"))
    stored = status.setdefault("storedVersions", [])
    version = crd_validation.storage_version(crd)
    if version and version not in stored:
        stored.append(version)


def _validate_crd(crd: Obj) -> list[FieldError]:
    return [*naming.validate_object_meta(crd, False, "dns1123-subdomain"), *crd_validation.validate_crd(crd)]


def _validate_crd_update(old: Obj, new: Obj) -> list[FieldError]:
    errs = _validate_crd(new)
    old_scope, new_scope = (old.get("spec") or {}).get("scope"), (new.get("spec") or {}).get("scope")
    if old_scope != new_scope:
        errs.append(errors.invalid("spec.scope", new_scope, "field is immutable"))
    return errs


def crd_strategy(catalog: Catalog = CATALOG) -> Strategy:
    def prepare_create(crd: Obj) -> None:
        crd["status"] = {"conditions": [], "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": []}
        if not _validate_crd(crd):
            _accepted_status(crd, catalog)

    def prepare_update(new: Obj, old: Obj) -> None:
        new["status"] = copy.deepcopy(old.get("status") or {})
        if not new["metadata"].get("deletionTimestamp") and not _validate_crd(new):
            _accepted_status(new, catalog)  # names and storage versions follow the spec

    return Strategy(default=crd_validation.set_defaults, validate=_validate_crd, validate_update=_validate_crd_update,
                    validates_meta=True, has_status_subresource=True, prepare_create=prepare_create,
                    prepare_update=prepare_update, tracks_generation=True, allocator=CatalogFollower(catalog))


@dataclass
class _CatalogChange(Allocation):
    """An Allocation that takes nothing and, once the CRD write committed, brings the catalog in step."""

    apply: Callable[[], None] | None = field(default=None, repr=False)

    def revert(self) -> None:
        # an update that turned into a delete (its finalizers emptied) reverts its change: the commit that
        # still follows must not put the deleted CRD back into the catalog
        self.apply = None
        super().revert()

    def commit(self) -> None:
        if self.apply is not None and not self.dry_run:
            apply, self.apply = self.apply, None
            apply()


class CatalogFollower:
    """The CRD strategy's allocator (strategies.Allocator): the next request already sees a written CRD."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def begin_create(self, obj: Obj, dry_run: bool) -> Allocation:
        return _CatalogChange(dry_run=dry_run, apply=lambda: self.catalog.update(obj))

    def begin_update(self, old: Obj, new: Obj, dry_run: bool) -> Allocation:
        return _CatalogChange(dry_run=dry_run, apply=lambda: self.catalog.update(new))

    def begin_delete(self, obj: Obj) -> Allocation:
        return _CatalogChange(apply=lambda: self.catalog.remove(obj["metadata"]["name"]))


# ---------------------------------------------------------------- start-up and the finalizer


async def load(store: Store, catalog: Catalog = CATALOG) -> None:
    """Fill the catalog from the store (at start, before serving)."""
    catalog.__init__()  # type: ignore[misc]  # one API server per process: start from what this store holds
    items, _ = await store.list(CRDS.key_prefix())
    for kv in items:
        catalog.update(orjson.loads(kv.value))


async def run_finalizer(registry: Any, store: Store, catalog: Catalog = CATALOG) -> None:
    """Watches CRDs; one being deleted has its instances deleted, then its cleanup finalizer removed."""
    running: dict[str, asyncio.Task[None]] = {}

    def consider(raw: bytes) -> None:
        crd = orjson.loads(raw)
        name = crd["metadata"]["name"]
        if crd["metadata"].get("deletionTimestamp") and CLEANUP_FINALIZER in (crd["metadata"].get("finalizers") or []) \
                and (name not in running or running[name].done()):
            running[name] = asyncio.create_task(_clean_up(registry, store, catalog, name), name=f"apiserver: crd cleanup {name}")

    while True:
        items, rev = await store.list(CRDS.key_prefix())
        for kv in items:
            consider(kv.value)
        try:
            async for ev in store.watch(CRDS.key_prefix(), rev):
                # Writes through this server updated the catalog already; these keep it in step with the
                # writes of other API servers sharing the store.
                name = orjson.loads(ev.value)["metadata"]["name"]
                if ev.type == "DELETED":
                    if name in catalog.crds:
                        catalog.remove(name)
                    continue
                stored = catalog.crds.get(name)
                if stored is None or stored.get("metadata", {}).get("resourceVersion") != \
                        orjson.loads(ev.value)["metadata"].get("resourceVersion"):
                    catalog.update(orjson.loads(ev.value))
                consider(ev.value)
        except Compacted:
            continue
        except asyncio.CancelledError:
            for task in running.values():
                task.cancel()
            raise


async def _clean_up(registry: Any, store: Store, catalog: Catalog, name: str) -> None:
    delay = 0.5
    while True:
        try:
            await _delete_instances(registry, store, catalog, name)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed step is tried again (the CRD's objects must go); never fatal to the server
            log.exception("cleaning up custom resources of %s; retrying in %.1f s", name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def _write_status(registry: Any, name: str, condition: Obj) -> None:
    for _ in range(5):
        try:
            current = await registry.get_raw(CRDS, None, name)
        except ApiError:
            return
        crd = orjson.loads(current.value)
        set_condition(crd, condition)
        try:
            await registry.update(CRDS, None, name, crd, subresource="status", current=current)
            return
        except ApiError as err:
            if err.code != 409:
                raise


async def _delete_instances(registry: Any, store: Store, catalog: Catalog, name: str) -> None:
    catalog.terminating.add(name)
    catalog.generation += 1
    crd = catalog.crds.get(name)
    if crd is None:
        return
    await _write_status(registry, name, _condition("Terminating", "True", "InstanceDeletionInProgress",
                                                   "CustomResource deletion is in progress"))
    resources = build_resources(crd, catalog) if (crd.get("spec") or {}).get("versions") else []
    if resources:
        res = resources[0]
        delay = 0.05
        while True:
            items, _ = await store.list(res.key_prefix())
            if not items:
                break
            for kv in items:
                md = orjson.loads(kv.value)["metadata"]
                if md.get("deletionTimestamp"):
                    continue
                try:
                    await registry.delete(res, md.get("namespace"), md["name"])
                except ApiError as err:
                    if err.code != 404:
                        raise
            await asyncio.sleep(delay)  # instances with finalizers of their own go when their owners let them
            delay = min(delay * 2, 1.0)
    await _write_status(registry, name, _condition("Terminating", "True", "InstanceDeletionCompleted",
                                                   "removed all instances"))
    for _ in range(5):
        current = await registry.get_raw(CRDS, None, name)
        obj = orjson.loads(current.value)
        md = obj["metadata"]
        md["finalizers"] = [f for f in md.get("finalizers") or [] if f != CLEANUP_FINALIZER]
        md["resourceVersion"] = str(current.revision)
        try:
            await registry.update(CRDS, None, name, obj, current=current)
            return
        except ApiError as err:
            if err.code == 404:
                return
            if err.code != 409:
                raise

