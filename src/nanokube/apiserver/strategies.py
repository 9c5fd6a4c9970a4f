"""Per-kind rules the generic registry applies: defaulting, what an update may change, validation.

Mirrors the `rest.RESTCreateStrategy` / `RESTUpdateStrategy` split of Kubernetes' registries.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nanokube.api import secret
from nanokube.api.errors import FieldError, invalid, required
from nanokube.api.served_resources import Resource

Obj = dict[str, Any]

# Resources whose metadata.generation Kubernetes v1.32 maintains (bumped on spec changes).
GENERATION = {"deployments", "replicasets"}


def _default_container(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = c.get("image", "")
    if "imagePullPolicy" not in c:
        tag = image.rsplit("/", 1)[-1]
        c["imagePullPolicy"] = "Always" if (":" not in tag or tag.endswith(":latest")) else "IfNotPresent"
    c.setdefault("resources", {})
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


@dataclass
class Strategy:
    default: Callable[[Obj], None] | None = None
    validate: Callable[[Obj], list[FieldError]] | None = None
    # ValidateUpdate of the kind; Kubernetes' update validators run the create checks themselves, so the
    # registry calls this one *instead of* validate on update.
    validate_update: Callable[[Obj, Obj], list[FieldError]] | None = None
    # validate includes ObjectMeta validation (as every Kubernetes validator does); the registry then skips
    # its generic metadata check on create, which would report the same errors again.
    validates_meta: bool = False
    name_kind: str = "dns1123-subdomain"  # or dns1035-label, dns1123-label
    # Fields a status write may change; everything else is copied from the old object.
    status_fields: tuple[str, ...] = ("status",)
    has_status_subresource: bool = False


STRATEGIES: dict[str, Strategy] = {
    "pods": Strategy(default=_default_pod, validate=_validate_pod, has_status_subresource=True),
    "services": Strategy(name_kind="dns1035-label", has_status_subresource=True),
    "namespaces": Strategy(default=_default_namespace, name_kind="dns1123-label",
                           has_status_subresource=True),
    "deployments": Strategy(default=_default_deployment, validate=_validate_deployment,
                            has_status_subresource=True),
    "replicasets": Strategy(default=_default_template_owner, validate=_validate_deployment,
                            has_status_subresource=True),
    "persistentvolumeclaims": Strategy(default=_default_pvc, has_status_subresource=True),
    "persistentvolumes": Strategy(default=_default_pv, has_status_subresource=True),
    "nodes": Strategy(default=_default_node, has_status_subresource=True),
    "endpoints": Strategy(default=_default_endpoints),
    "endpointslices": Strategy(default=_default_slice),
    "secrets": Strategy(default=secret.prepare_secret, validate=secret.validate_secret,
                        validate_update=secret.validate_secret_update, validates_meta=True),
}


def strategy_for(resource: Resource) -> Strategy:
    return STRATEGIES.get(resource.plural, Strategy())


def spec_changed(resource: Resource, old: Obj, new: Obj) -> bool:
    if resource.plural not in GENERATION:
        return False
    keys = (set(old) | set(new)) - {"metadata", "status", "kind", "apiVersion"}
    return any(old.get(k) != new.get(k) for k in keys)


def copy_status_from(old: Obj, new: Obj) -> None:
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
