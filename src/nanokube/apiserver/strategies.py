"""Per-kind rules the generic registry applies: defaulting, allocation, what a write may change, validation.

Mirrors the `rest.RESTCreateStrategy` / `RESTUpdateStrategy` split of Kubernetes' registries; the Service
strategy defaults and validates through api/service.py and allocates through apiserver/allocators.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from nanokube.api import pod_admission, secret, service
from nanokube.api.errors import FieldError, invalid, invalid_object, required
from nanokube.api.meta import Obj
from nanokube.api.served_resources import Resource, by_kind
from nanokube.apiserver import naming
from nanokube.apiserver.allocators import NO_ALLOCATION, Allocation, ServiceAllocator


def _default_container(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = "Always" if (":" not in tag or tag.endswith(":latest")) else "IfNotPresent"
    resources = c.setdefault("resources", {})
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict) and resources["limits"]:
        requests = resources.setdefault("requests", {})  # SetDefaults_Pod: requests default to limits
        for name, value in resources["limits"].items():
            requests.setdefault(name, value)
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if probe:
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if "httpGet" in probe:
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for c in spec.get("initContainers") or []:
        _default_container(c)
    for c in spec.get("containers") or []:
        _default_container(c)
    for vol in spec.get("volumes") or []:
        for source in ("secret", "configMap"):
            if source in vol:
                vol[source].setdefault("defaultMode", 420)
        if "emptyDir" in vol and vol["emptyDir"] is None:
            vol["emptyDir"] = {}
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]


def _default_pod(obj: Obj) -> None:
    default_pod_spec(obj.setdefault("spec", {}))


def _default_template_owner(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.setdefault("template", {})
    default_pod_spec(template.setdefault("spec", {}))
    template.setdefault("metadata", {})


def _default_deployment(obj: Obj) -> None:
    _default_template_owner(obj)
    spec = obj["spec"]
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = strategy.setdefault("rollingUpdate", {})
        ru.setdefault("maxUnavailable", "25%")
        ru.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)


def _default_namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    meta = obj.setdefault("metadata", {})
    if meta.get("name"):
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]


def _default_pvc(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_pv(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")
    obj.setdefault("status", {}).setdefault("phase", "Pending")


def _default_endpoints(obj: Obj) -> None:
    for subset in obj.get("subsets") or []:
        for port in subset.get("ports") or []:
            port.setdefault("protocol", "TCP")


def _default_slice(obj: Obj) -> None:
    for port in obj.get("ports") or []:
        port.setdefault("protocol", "TCP")


def _default_node(obj: Obj) -> None:
    obj.setdefault("spec", {})


def _prepare_pod_create(obj: Obj) -> None:
    pod_admission.admit_new_pod(obj)
    pod_admission.prepare_for_create(obj)


def _validate_pod(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    containers = obj.get("spec", {}).get("containers")
    if not containers:
        errs.append(required("spec.containers"))
    names: set[str] = set()
    for i, c in enumerate(containers or []):
        name = c.get("name", "")
        if not name:
            errs.append(required(f"spec.containers[{i}].name"))
        elif name in names:
            errs.append(FieldError("FieldValueDuplicate", f"spec.containers[{i}].name", name))
        names.add(name)
        if not c.get("image"):
            errs.append(required(f"spec.containers[{i}].image"))
    return errs


def _validate_deployment(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = obj.get("spec", {})
    selector = spec.get("selector")
    if not selector:
        errs.append(required("spec.selector"))
    else:
        from nanokube.api.selectors import matches_labels, selector_from_label_selector

        labels = (spec.get("template", {}).get("metadata") or {}).get("labels") or {}
        reqs = selector_from_label_selector(selector) or []
        if not reqs:
            errs.append(invalid("spec.selector", selector, "empty selector is invalid for deployment"))
        elif not matches_labels(reqs, labels):
            errs.append(invalid("spec.template.metadata.labels", labels,
                                "`selector` does not match template `labels`"))
    replicas = spec.get("replicas")
    if isinstance(replicas, int) and replicas < 0:
        errs.append(invalid("spec.replicas", replicas, "must be greater than or equal to 0"))
    containers = spec.get("template", {}).get("spec", {}).get("containers")
    if not containers:
        errs.append(required("spec.template.spec.containers"))
    return errs


def _no_status(obj: Obj) -> None:
    obj["status"] = {}


def _keep_namespace_status(new: Obj, old: Obj) -> None:
    new["status"] = copy.deepcopy(old.get("status", {}))


def copy_status_from(new: Obj, old: Obj) -> None:
    """The PrepareForUpdate of kinds with a status subresource: a write to the object keeps the stored status."""
    if "status" in old:
        new["status"] = copy.deepcopy(old["status"])
    else:
        new.pop("status", None)


def copy_all_but_status(old: Obj, new: Obj) -> Obj:
    """For /status writes: keep everything from old except status (and labels/annotations as k8s allows)."""
    result = copy.deepcopy(old)
    if "status" in new:
        result["status"] = new["status"]
    else:
        result.pop("status", None)
    return result


class Allocator(Protocol):
    """Values a kind's objects hold outside themselves (a Service's cluster IPs and node ports): each write
    reserves or frees them through one Allocation, written in the object's store transaction."""

    def begin_create(self, obj: Obj, dry_run: bool) -> Allocation: ...

    def begin_update(self, old: Obj, new: Obj, dry_run: bool) -> Allocation: ...

    def begin_delete(self, obj: Obj) -> Allocation: ...


@dataclass(frozen=True)
class Strategy:
    """What the generic registry does differently per kind (RESTCreateStrategy / RESTUpdateStrategy plus the
    generic store's BeginCreate / BeginUpdate hooks). The registry consults only this table."""

    default: Callable[[Obj], None] | None = None  # decode-time defaulting, on create and update
    # PrepareForCreate / PrepareForUpdate(new, old): what a client may not set. Without prepare_update, kinds
    # with a status subresource keep the stored status.
    prepare_create: Callable[[Obj], None] | None = None
    prepare_update: Callable[[Obj, Obj], None] | None = None
    validate: Callable[[Obj], list[FieldError]] | None = None
    # ValidateUpdate of the kind; Kubernetes' update validators run the create checks themselves, so the
    # registry calls this one *instead of* validate on update.
    validate_update: Callable[[Obj, Obj], list[FieldError]] | None = None
    # validate includes ObjectMeta validation (as every Kubernetes validator does); the registry then skips
    # its generic metadata check on create, which would report the same errors again.
    validates_meta: bool = False
    name_kind: str = "dns1123-subdomain"  # or dns1035-label, dns1123-label
    has_status_subresource: bool = False
    tracks_generation: bool = False  # metadata.generation, bumped on spec changes (v1.32: these kinds)
    # Fills fields of stored objects written before those fields existed; the update path sees the old object so.
    default_on_read: Callable[[Obj], Obj] | None = None
    allocator: Allocator | None = None
    # Objects of this kind may be created in a namespace being deleted (Events report on the deletion itself).
    allowed_in_terminating_namespace: bool = False
    # Deletion also waits for spec.finalizers (namespaces: emptied by /finalize), not only metadata.finalizers.
    waits_for_spec_finalizers: bool = False
    # Objects of these resources with the same namespace and name go with the deleted one (a Service's Endpoints).
    deletes_along: tuple[Resource, ...] = ()

    def spec_changed(self, old: Obj, new: Obj) -> bool:
        if not self.tracks_generation:
            return False
        keys = (set(old) | set(new)) - {"metadata", "status", "kind", "apiVersion"}
        return any(old.get(k) != new.get(k) for k in keys)

    def before_create(self, res: Resource, obj: Obj, dry_run: bool) -> Allocation:
        """BeginCreate, then BeforeCreate's prepare and validate (the generic store's order). Raises ApiError,
        having given back whatever it reserved; the caller commits or reverts the returned Allocation."""
        md = obj.get("metadata") or {}
        if not self.validates_meta:
            errs = naming.validate_object_meta(obj, res.namespaced, self.name_kind)
            if errs:
                raise invalid_object(res.group, res.kind, md.get("name") or md.get("generateName", ""), errs)
        allocation = self.allocator.begin_create(obj, dry_run) if self.allocator else NO_ALLOCATION
        with allocation.reverted_on_error():
            if self.prepare_create:
                self.prepare_create(obj)
            errs = self.validate(obj) if self.validate else []
            if errs:
                raise invalid_object(res.group, res.kind, md.get("name") or "", errs)
        return allocation

    def before_update(self, res: Resource, old: Obj, new: Obj, dry_run: bool) -> Allocation:
        """BeginUpdate, then BeforeUpdate's prepare and validate, for a write to the object itself (not /status)."""
        if self.default_on_read:
            old = self.default_on_read(copy.deepcopy(old))
        allocation = self.allocator.begin_update(old, new, dry_run) if self.allocator else NO_ALLOCATION
        with allocation.reverted_on_error():
            if self.prepare_update:
                self.prepare_update(new, old)
            elif self.has_status_subresource:
                copy_status_from(new, old)
            if self.validate_update:
                errs = self.validate_update(old, new)
            else:
                errs = self.validate(new) if self.validate else []
            if errs:
                raise invalid_object(res.group, res.kind, new["metadata"].get("name") or "", errs)
        return allocation

    def begin_delete(self, obj: Obj) -> Allocation:
        return self.allocator.begin_delete(obj) if self.allocator else NO_ALLOCATION


GENERIC = Strategy()
ENDPOINTS = by_kind("", "Endpoints")


def table(service_allocator: ServiceAllocator) -> dict[str, Strategy]:
    """The strategy of every kind that has one, for one API server (its Service allocator)."""
    family = service_allocator.primary_family
    return {
        "pods": Strategy(default=_default_pod, prepare_create=_prepare_pod_create, validate=_validate_pod,
                         has_status_subresource=True),
        "services": Strategy(default=service.default_service, prepare_create=service.prepare_for_create,
                             prepare_update=service.prepare_for_update, validate=service.validate_service,
                             validate_update=service.validate_service_update, validates_meta=True,
                             name_kind="dns1035-label", has_status_subresource=True,
                             default_on_read=lambda svc: service.default_on_read(svc, family),
                             allocator=service_allocator, deletes_along=(ENDPOINTS,)),
        "namespaces": Strategy(default=_default_namespace, prepare_update=_keep_namespace_status,
                               name_kind="dns1123-label", has_status_subresource=True,
                               waits_for_spec_finalizers=True),
        "deployments": Strategy(default=_default_deployment, prepare_create=_no_status,
                                validate=_validate_deployment, has_status_subresource=True, tracks_generation=True),
        "replicasets": Strategy(default=_default_template_owner, prepare_create=_no_status,
                                validate=_validate_deployment, has_status_subresource=True, tracks_generation=True),
        "persistentvolumeclaims": Strategy(default=_default_pvc, has_status_subresource=True),
        "persistentvolumes": Strategy(default=_default_pv, has_status_subresource=True),
        "nodes": Strategy(default=_default_node, has_status_subresource=True),
        "endpoints": Strategy(default=_default_endpoints),
        "endpointslices": Strategy(default=_default_slice),
        "secrets": Strategy(default=secret.prepare_secret, validate=secret.validate_secret,
                            validate_update=secret.validate_secret_update, validates_meta=True),
        "events": Strategy(allowed_in_terminating_namespace=True),
        **_generic_kinds(),
    }


def _generic_kinds() -> dict[str, Strategy]:
    """The kinds served from their official schemas (builtin_strategies) and CustomResourceDefinitions (crds),
    imported here: they use Strategy."""
    from nanokube.apiserver import builtin_strategies, crds

    return {**builtin_strategies.table(), crds.CRDS.plural: crds.crd_strategy()}
