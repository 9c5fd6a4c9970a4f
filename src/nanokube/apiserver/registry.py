"""Generic create/get/list/update/patch/delete over the store, the way Kubernetes' generic registry
(staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go) orders them.

Every rejected request changes nothing: validation and allocation happen before the one store
transaction, and allocations are reverted when the transaction fails. What differs per kind is a field of
its Strategy (apiserver/strategies.py); this module names no kind.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import orjson

from nanokube.api import errors, meta
from nanokube.api.errors import ApiError, FieldError, go_repr
from nanokube.api.meta import Obj
from nanokube.api.selectors import matches_labels, parse_field_selector, parse_label_selector
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver import admission_quota, deletion, naming, strategies
from nanokube.apiserver.allocators import NO_ALLOCATION, ServiceAllocator
from nanokube.store.base import Event, KeyExists, KeyNotFound, KeyValue, Op, RevisionConflict, Store

FieldTracker = Callable[[Obj | None, Obj], None]  # records the writer's fields in managedFields
NAMESPACES = by_kind("", "Namespace")
ALLOCATION_ATTEMPTS = 8


class WriteResult:
    """A written object: its stored bytes, decoded only if someone asks (the HTTP reply ships the bytes)."""

    __slots__ = ("_obj", "created", "raw")

    def __init__(self, obj: Obj | None, raw: bytes, created: bool = False) -> None:
        self._obj = obj
        self.raw = raw
        self.created = created

    @property
    def obj(self) -> Obj:
        if self._obj is None:
            self._obj = orjson.loads(self.raw)
        return self._obj


def carry_system_metadata(strat: strategies.Strategy, old: Obj, new: Obj) -> None:
    """The metadata an update cannot change comes from the stored object; the generation counts spec changes."""
    md, omd = new["metadata"], old["metadata"]
    for keep in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
        if keep in omd:
            md[keep] = omd[keep]
        else:
            md.pop(keep, None)
    if "generation" in omd:
        md["generation"] = omd["generation"] + (1 if strat.spec_changed(old, new) else 0)
    md.pop("resourceVersion", None)


def _decode(kv: KeyValue) -> Obj:
    return orjson.loads(kv.value)


def _unchanged(old: Obj, new: Obj) -> bool:
    """new (without resourceVersion) equals the stored old: GuaranteedUpdate then writes nothing."""
    if old.keys() != new.keys():
        return False
    omd = {k: v for k, v in old["metadata"].items() if k != "resourceVersion"}
    return bool(omd == new["metadata"]) and all(old[k] == new[k] for k in old if k != "metadata")


@dataclass
class WatchStart:
    """Where a watch begins: the current objects to send as ADDED (a watch from "now"), the revision the events
    follow, and the events (None when that revision is compacted away: the stream then opens with a 410)."""

    initial: list[bytes]
    start: int
    events: AsyncIterator[Event] | None


class Registry:
    def __init__(self, store: Store, strategy_table: Mapping[str, strategies.Strategy] | None = None) -> None:
        self.store = store
        self.strategies = strategy_table if strategy_table is not None else strategies.table(ServiceAllocator())
        # Set when other API servers share the store: told the allocation key another server holds, so that a
        # create can try again with another value (and an update's client retry gets one).
        self.allocation_taken: Callable[[str], None] | None = None

    def strategy(self, res: Resource) -> strategies.Strategy:
        custom: strategies.Strategy | None = getattr(res, "strategy", None)  # a custom resource brings its own
        return custom or self.strategies.get(res.plural, strategies.GENERIC)

    # -- reads -----------------------------------------------------------------------------------------
    async def get_raw(self, res: Resource, ns: str | None, name: str) -> KeyValue:
        kv = await self.store.get(res.key(ns, name))
        if kv is None:
            raise errors.not_found(res.group, res.plural, name)
        return kv

    async def get(self, res: Resource, ns: str | None, name: str) -> Obj:
        return _decode(await self.get_raw(res, ns, name))

    async def list(self, res: Resource, ns: str | None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 0, continue_token: str | None = None,
                   resource_version: str | None = None, revision: int = 0
                   ) -> tuple[list[bytes], int, str | None, int]:
        """Returns (raw items, list revision, continue token, remaining count estimate); revision 0 = now."""
        reqs = parse_label_selector(label_selector)
        fmatch = parse_field_selector(field_selector, res.plural, res.kind)
        start_key = None
        if continue_token:
            try:
                token = orjson.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start_key, revision = token["start"], int(token["rv"])
            except Exception as exc:
                raise errors.bad_request("continue key is not valid: illegal base64 data") from exc
        prefix = res.key_prefix(ns)
        filtering = bool(reqs) or fmatch is not None
        out: list[bytes] = []
        # Without filters the store pages for us (one extra item tells whether more remain); with filters
        # every key under the prefix is read and filtered here.
        page = 0 if not limit or filtering else limit + 1
        items, list_rev = await self.store.list(prefix, start_key=start_key, limit=page, revision=revision)
        for kv in items:
            if filtering:
                obj = _decode(kv)
                if reqs and not matches_labels(reqs, obj.get("metadata", {}).get("labels")):
                    continue
                if fmatch is not None and not fmatch(obj):
                    continue
            out.append(kv.value)
            if limit and len(out) > limit:
                break
        next_token = None
        remaining = 0
        if limit and len(out) > limit:
            out = out[:limit]
            last = orjson.loads(out[-1])["metadata"]
            last_key = res.key(last.get("namespace"), last["name"])
            next_token = base64.urlsafe_b64encode(orjson.dumps({"start": last_key, "rv": list_rev})).decode()
            remaining = 1
        return out, list_rev, next_token, remaining

    # -- create ----------------------------------------------------------------------------------------
    async def _check_namespace(self, res: Resource, strat: strategies.Strategy, ns: str | None) -> None:
        if not res.namespaced:
            return
        kv = await self.store.get(NAMESPACES.key(None, ns or ""))
        if kv is None:
            raise errors.not_found("", "namespaces", ns or "")
        if b'"deletionTimestamp"' not in kv.value:  # the common case needs no decoding
            return
        nsobj = _decode(kv)
        if nsobj.get("metadata", {}).get("deletionTimestamp") and not strat.allowed_in_terminating_namespace:
            raise ApiError(403, "Forbidden",
                           f'{res.plural} "{meta.name_of(nsobj) and ""}" is forbidden: unable to create new content '
                           f'in namespace {ns} because it is being terminated',
                           {"kind": res.plural, "causes": [{"reason": errors.NAMESPACE_TERMINATING,
                                                            "message": f"namespace {ns} is being terminated",
                                                            "field": "metadata.namespace"}]})

    def _prepare_new(self, res: Resource, ns: str | None, obj: Obj) -> Obj:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request is not an object")
        obj["kind"] = res.kind
        obj["apiVersion"] = res.api_version
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if res.namespaced:
            if md.get("namespace") and ns and md["namespace"] != ns:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        return obj

    async def create(self, res: Resource, ns: str | None, obj: Obj, *, dry_run: bool = False,
                     manager: FieldTracker | None = None) -> WriteResult:
        for _ in range(ALLOCATION_ATTEMPTS - 1 if self.allocation_taken else 0):
            try:
                return await self._create(res, ns, copy.deepcopy(obj), dry_run=dry_run, manager=manager)
            except ApiError as err:
                taken = getattr(err, "allocation_key", None)
                if taken is None or self.allocation_taken is None:
                    raise
                self.allocation_taken(taken)
        return await self._create(res, ns, obj, dry_run=dry_run, manager=manager)

    async def _create(self, res: Resource, ns: str | None, obj: Obj, *, dry_run: bool = False,
                      manager: FieldTracker | None = None) -> WriteResult:
        obj = self._prepare_new(res, ns, obj)
        md = obj["metadata"]
        if md.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + meta.random_suffix()
        strat = self.strategy(res)
        if strat.default:
            strat.default(obj)
        md["uid"] = meta.new_uid()
        md["creationTimestamp"] = meta.rfc3339()
        for drop in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(drop, None)
        if strat.tracks_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if manager is not None:
            manager(None, obj)
        await admission_quota.admit_create(self.store, res, obj)
        allocation = strat.before_create(res, obj, dry_run)
        with allocation.kept_if_written():
            await self._check_namespace(res, strat, md.get("namespace"))
            if dry_run:
                return WriteResult(obj, orjson.dumps(obj), created=True)
            ops = [Op("create", res.key(md.get("namespace"), md["name"]), obj), *allocation.ops()]
            try:
                kvs = await self.store.txn(ops)
            except KeyExists as exc:
                if exc.key == ops[0].key:
                    raise errors.already_exists(res.group, res.plural, md["name"]) from exc
                taken = errors.invalid_object(res.group, res.kind, md["name"], [
                    FieldError("FieldValueInvalid", "metadata.name", md["name"],
                               f"allocation conflict on {exc.key}; retry")])
                taken.allocation_key = exc.key  # type: ignore[attr-defined]
                raise taken from exc
        return WriteResult(None, kvs[0].value, created=True)

    # -- update ----------------------------------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str, new: Obj, *, subresource: str | None = None,
                     dry_run: bool = False, current: KeyValue | None = None,
                     manager: FieldTracker | None = None) -> WriteResult:
        new = self._prepare_new(res, ns, new)
        md = new["metadata"]
        if md.get("name") and md["name"] != name:
            raise errors.bad_request(f"the name of the object ({md['name']}) does not match the name on the URL "
                                     f"({name})")
        md["name"] = name
        kv = current or await self.get_raw(res, ns, name)
        old = _decode(kv)
        wanted_rv = md.get("resourceVersion")
        if wanted_rv and wanted_rv != str(kv.revision):
            raise errors.conflict(res.group, res.plural, name)
        strat = self.strategy(res)
        if subresource == "status":
            new = strategies.copy_all_but_status(old, new)
            md = new["metadata"]
        elif strat.default:
            strat.default(new)
        carry_system_metadata(strat, old, new)
        if manager is not None:
            manager(old, new)
        omd = old["metadata"]
        errs = naming.validate_object_meta(new, res.namespaced, strat.name_kind)
        if omd.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                errs.append(FieldError("FieldValueForbidden", "metadata.finalizers",
                                       detail="no new finalizers can be added if the object is being deleted, "
                                              f"found new finalizers {go_repr(sorted(added))}"))
        if errs:
            raise errors.invalid_object(res.group, res.kind, name, errs)
        allocation = strat.before_update(res, old, new, dry_run) if subresource is None else NO_ALLOCATION
        with allocation.kept_if_written():
            if dry_run:
                new["metadata"]["resourceVersion"] = str(kv.revision)
                return WriteResult(new, orjson.dumps(new))
            if _unchanged(old, new):
                allocation.revert()
                return WriteResult(None, kv.value)
            if self._delete_during_update(strat, old, new):
                allocation.revert()
                return await self._delete_now(res, ns, name, kv)
            ops = [Op("update", res.key(ns, name), new, kv.revision), *allocation.ops()]
            try:
                kvs = await self.store.txn(ops)
            except RevisionConflict as exc:
                raise errors.conflict(res.group, res.plural, name) from exc
            except KeyNotFound as exc:
                raise errors.not_found(res.group, res.plural, name) from exc
            except KeyExists as exc:
                if self.allocation_taken is not None:
                    self.allocation_taken(exc.key)
                raise errors.conflict(res.group, res.plural, name, f"allocation conflict on {exc.key}") from exc
        return WriteResult(None, kvs[0].value)

    @staticmethod
    def _delete_during_update(strat: strategies.Strategy, old: Obj, new: Obj) -> bool:
        """ShouldDeleteDuringUpdate: an update that empties the finalizers of an object whose deletion only
        waited for them deletes it (a gracefully terminating object waits for its grace period instead)."""
        omd, md = old["metadata"], new["metadata"]
        if strat.waits_for_spec_finalizers:
            return bool(omd.get("deletionTimestamp")) and not md.get("finalizers") and \
                not (new.get("spec") or {}).get("finalizers")
        return (not md.get("finalizers") and bool(omd.get("finalizers")) and bool(omd.get("deletionTimestamp"))
                and not omd.get("deletionGracePeriodSeconds"))

    # -- delete ----------------------------------------------------------------------------------------
    async def delete(self, res: Resource, ns: str | None, name: str, options: Obj | None = None, *,
                     dry_run: bool = False) -> tuple[Obj, bytes, bool]:
        """Returns (object, raw, deleted_now), as the generic store's Delete (registry/store.go) decides:
        a graceful delete (pods on a node) or pending finalizers only mark the object (deletionTimestamp);
        propagationPolicy puts the `orphan` / `foregroundDeletion` finalizer the garbage collector acts on."""
        options = options or {}
        kv = await self.get_raw(res, ns, name)
        obj = _decode(kv)
        policy = deletion.check_options(options)
        deletion.check_preconditions(res, obj, options.get("preconditions") or {})
        new = copy.deepcopy(obj)
        graceful, pending = deletion.before_delete(res, new, options)
        if pending:  # a graceful deletion is under way and this one would not shorten it
            return obj, kv.value, False
        finalizers = deletion.gc_finalizers(res, new, options, policy)
        changed_finalizers = finalizers != (new["metadata"].get("finalizers") or [])
        if graceful or finalizers or changed_finalizers:
            nmd = new["metadata"]
            if finalizers:
                nmd["finalizers"] = finalizers
            else:
                nmd.pop("finalizers", None)
            if not graceful and finalizers:
                deletion.mark_as_deleting(new)
            held = graceful and self.strategy(res).waits_for_spec_finalizers
            if finalizers or held or (nmd.get("deletionGracePeriodSeconds") or 0) > 0:
                return await self._mark_deleting(res, ns, name, kv, obj, new, dry_run)
        if dry_run:
            return obj, kv.value, True
        deleted = await self._delete_now(res, ns, name, kv)
        return deleted.obj, deleted.raw, True

    async def _mark_deleting(self, res: Resource, ns: str | None, name: str, kv: KeyValue, old: Obj, new: Obj,
                             dry_run: bool) -> tuple[Obj, bytes, bool]:
        if new == old or dry_run:  # an unchanged object is not written again (GuaranteedUpdate skips it)
            return new, kv.value if new == old else orjson.dumps(new), False
        try:
            kv2 = await self.store.update(res.key(ns, name), new, kv.revision)
        except RevisionConflict as exc:
            raise errors.conflict(res.group, res.plural, name) from exc
        return _decode(kv2), kv2.value, False

    async def _delete_now(self, res: Resource, ns: str | None, name: str, kv: KeyValue) -> WriteResult:
        obj = _decode(kv)
        strat = self.strategy(res)
        allocation = strat.begin_delete(obj)
        with allocation.kept_if_written():
            try:
                kvs = await self.store.txn([Op("delete", res.key(ns, name), None, kv.revision), *allocation.ops()])
            except RevisionConflict as exc:
                raise errors.conflict(res.group, res.plural, name) from exc
            except KeyNotFound as exc:
                raise errors.not_found(res.group, res.plural, name) from exc
        for along in strat.deletes_along:
            try:
                await self.delete(along, ns, name)
            except ApiError as err:
                if err.code != 404:
                    raise
        return WriteResult(None, kvs[0].value)

    # -- watch -----------------------------------------------------------------------------------------
    async def watch(self, res: Resource, ns: str | None, resource_version: str) -> WatchStart:
        """Start a watch at `resource_version` ("" or "0": the current objects, then what changes next)."""
        prefix = res.key_prefix(ns)
        initial: list[bytes] = []
        if resource_version in ("", "0"):
            items, start = await self.store.list(prefix)
            initial = [kv.value for kv in items]
        else:
            try:
                start = int(resource_version)
            except ValueError as exc:
                raise errors.bad_request(f'invalid resource version "{resource_version}"') from exc
        # Same as kube-apiserver: a watch from a compacted revision is established, then ends with a 410 ERROR.
        events = None if start < self.store.compact_revision else self.store.watch(prefix, start)
        return WatchStart(initial, start, events)

    @property
    def current_revision(self) -> int:
        return self.store.current_revision

    @property
    def compact_revision(self) -> int:
        return self.store.compact_revision
