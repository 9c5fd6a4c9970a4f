"""Generic create/get/list/update/patch/delete over the store, the way Kubernetes' generic registry
(staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go) orders them.

Every rejected request changes nothing: validation and allocation happen before the one store
transaction, and allocations are reverted when the transaction fails.
"""

from __future__ import annotations

import base64
import copy
from typing import Any, Protocol

import orjson

from nanokube.api import errors, meta
from nanokube.api.errors import ApiError, FieldError, go_repr
from nanokube.api.selectors import matches_labels, parse_field_selector, parse_label_selector
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver import deletion, naming, strategies
from nanokube.store.base import KeyExists, KeyNotFound, KeyValue, Op, RevisionConflict, Store

Obj = dict[str, Any]
NAMESPACES = by_kind("", "Namespace")


class Allocation(Protocol):
    """What a create/update hook reserved: store ops to write with the object, undo and finish."""

    def ops(self) -> list[Op]: ...

    def revert(self) -> None: ...

    def commit(self) -> None: ...


class Hooks(Protocol):
    """Extra behaviour for one resource (Services: ClusterIP/NodePort allocation)."""

    def before_create(self, obj: Obj, dry_run: bool) -> Allocation | None: ...

    def before_update(self, old: Obj, new: Obj, dry_run: bool) -> Allocation | None: ...

    def on_delete(self, obj: Obj) -> Allocation | None: ...


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


def _decode(kv: KeyValue) -> Obj:
    return orjson.loads(kv.value)


class Registry:
    def __init__(self, store: Store, hooks: dict[str, Hooks] | None = None) -> None:
        self.store = store
        self.hooks: dict[str, Hooks] = hooks or {}
        self.after_delete: list[Any] = []  # callables (resource, obj) -> awaitable

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
                   resource_version: str | None = None) -> tuple[list[bytes], int, str | None, int]:
        """Returns (raw items, list revision, continue token, remaining count estimate)."""
        reqs = parse_label_selector(label_selector)
        fmatch = parse_field_selector(field_selector, res.plural, res.kind)
        start_key, revision = None, 0
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
    async def _check_namespace(self, res: Resource, ns: str | None) -> None:
        if not res.namespaced:
            return
        kv = await self.store.get(NAMESPACES.key(None, ns or ""))
        if kv is None:
            raise errors.not_found("", "namespaces", ns or "")
        if b'"deletionTimestamp"' not in kv.value:  # the common case needs no decoding
            return
        nsobj = _decode(kv)
        if nsobj.get("metadata", {}).get("deletionTimestamp") and res.plural != "events":
            raise ApiError(403, "Forbidden",
                           f'{res.plural} "{meta.name_of(nsobj) and ""}" is forbidden: unable to create new content '
                           f'in namespace {ns} because it is being terminated',
                           {"kind": res.plural, "causes": [{"reason": "NamespaceTerminating",
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

    async def create(self, res: Resource, ns: str | None, obj: Obj, *, dry_run: bool = False) -> WriteResult:
        obj = self._prepare_new(res, ns, obj)
        md = obj["metadata"]
        if md.get("resourceVersion"):
            raise errors.bad_request("resourceVersion should not be set on objects to be created")
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + meta.random_suffix()
        strat = strategies.strategy_for(res)
        if strat.default:
            strat.default(obj)
        md["uid"] = meta.new_uid()
        md["creationTimestamp"] = meta.rfc3339()
        for drop in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            md.pop(drop, None)
        if res.plural in strategies.GENERATION:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        if strat.has_status_subresource and res.plural in ("services",):
            obj["status"] = {"loadBalancer": {}}
        elif strat.has_status_subresource and res.plural in ("deployments", "replicasets"):
            obj["status"] = {}
        hook = self.hooks.get(res.plural)
        # A hook validates the whole object itself, after allocating (as kube-apiserver does for Services).
        if hook is None and not strat.validates_meta:
            errs = naming.validate_object_meta(obj, res.namespaced, strat.name_kind)
            if errs:
                raise errors.invalid_object(res.group, res.kind, md.get("name") or md.get("generateName", ""),
                                            errs)
        alloc = hook.before_create(obj, dry_run) if hook else None
        try:
            errs = strat.validate(obj) if strat.validate else []
            if errs:
                raise errors.invalid_object(res.group, res.kind, md.get("name") or "", errs)
            await self._check_namespace(res, md.get("namespace"))
            if dry_run:
                raw = orjson.dumps(obj)
                if alloc:
                    alloc.revert()
                return WriteResult(obj, raw, created=True)
            ops = [Op("create", res.key(md.get("namespace"), md["name"]), obj)]
            if alloc:
                ops.extend(alloc.ops())
            try:
                kvs = await self.store.txn(ops)
            except KeyExists as exc:
                if exc.key == ops[0].key:
                    raise errors.already_exists(res.group, res.plural, md["name"]) from exc
                raise errors.invalid_object(res.group, res.kind, md["name"], [
                    FieldError("FieldValueInvalid", "metadata.name", md["name"],
                               f"allocation conflict on {exc.key}; retry")]) from exc
        except BaseException:
            if alloc:
                alloc.revert()
            raise
        if alloc:
            alloc.commit()
        return WriteResult(None, kvs[0].value, created=True)

    # -- update ----------------------------------------------------------------------------------------
    async def update(self, res: Resource, ns: str | None, name: str, new: Obj, *, subresource: str | None = None,
                     dry_run: bool = False, current: KeyValue | None = None) -> WriteResult:
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
        strat = strategies.strategy_for(res)
        if subresource == "status":
            new = strategies.copy_all_but_status(old, new)
            md = new["metadata"]
        else:
            if strat.default:
                strat.default(new)
            if strat.has_status_subresource and res.plural != "namespaces":
                strategies.copy_status_from(old, new)
            elif res.plural == "namespaces":
                new["status"] = copy.deepcopy(old.get("status", {}))
        omd = old["metadata"]
        for keep in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace"):
            if keep in omd:
                md[keep] = omd[keep]
            else:
                md.pop(keep, None)
        if "generation" in omd:
            md["generation"] = omd["generation"] + (1 if strategies.spec_changed(res, old, new) else 0)
        md.pop("resourceVersion", None)
        errs = naming.validate_object_meta(new, res.namespaced, strat.name_kind)
        if omd.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(omd.get("finalizers") or [])
            if added:
                errs.append(FieldError("FieldValueForbidden", "metadata.finalizers",
                                       detail="no new finalizers can be added if the object is being deleted, "
                                              f"found new finalizers {go_repr(sorted(added))}"))
        if errs:
            raise errors.invalid_object(res.group, res.kind, name, errs)
        hook = self.hooks.get(res.plural) if subresource is None else None
        alloc = hook.before_update(old, new, dry_run) if hook else None
        try:
            errs = []
            if subresource is None:
                if strat.validate_update:
                    errs.extend(strat.validate_update(old, new))
                elif strat.validate:
                    errs.extend(strat.validate(new))
            if errs:
                raise errors.invalid_object(res.group, res.kind, name, errs)
            if dry_run:
                if alloc:
                    alloc.revert()
                new["metadata"]["resourceVersion"] = str(kv.revision)
                return WriteResult(new, orjson.dumps(new))
            key = res.key(ns, name)
            if self._delete_during_update(res, old, new):
                if alloc:
                    alloc.revert()
                    alloc = None
                return await self._delete_now(res, ns, name, kv)
            ops = [Op("update", key, new, kv.revision)]
            if alloc:
                ops.extend(alloc.ops())
            try:
                kvs = await self.store.txn(ops)
            except RevisionConflict as exc:
                raise errors.conflict(res.group, res.plural, name) from exc
            except KeyNotFound as exc:
                raise errors.not_found(res.group, res.plural, name) from exc
            except KeyExists as exc:
                raise errors.conflict(res.group, res.plural, name, f"allocation conflict on {exc.key}") from exc
        except BaseException:
            if alloc:
                alloc.revert()
            raise
        if alloc:
            alloc.commit()
        return WriteResult(None, kvs[0].value)

    @staticmethod
    def _delete_during_update(res: Resource, old: Obj, new: Obj) -> bool:
        """ShouldDeleteDuringUpdate: an update that empties the finalizers of an object whose deletion only
        waited for them deletes it (a gracefully terminating object waits for its grace period instead)."""
        omd, md = old["metadata"], new["metadata"]
        if res.plural == "namespaces":  # namespaces wait for spec.finalizers too (emptied by /finalize)
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
            held = graceful and res.plural == "namespaces"  # until spec.finalizers are done
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
        hook = self.hooks.get(res.plural)
        alloc = hook.on_delete(obj) if hook else None
        ops = [Op("delete", res.key(ns, name), None, kv.revision)]
        if alloc:
            ops.extend(alloc.ops())
        try:
            kvs = await self.store.txn(ops)
        except RevisionConflict as exc:
            if alloc:
                alloc.revert()
            raise errors.conflict(res.group, res.plural, name) from exc
        except KeyNotFound as exc:
            if alloc:
                alloc.revert()
            raise errors.not_found(res.group, res.plural, name) from exc
        if alloc:
            alloc.commit()
        for callback in self.after_delete:
            await callback(res, obj)
        return WriteResult(None, kvs[0].value)
