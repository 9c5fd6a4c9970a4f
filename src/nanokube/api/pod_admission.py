"""What kube-apiserver adds to a Pod it creates: the admission plugins DefaultTolerationSeconds and Priority,
and the pod strategy's PrepareForCreate (status.phase Pending with the QoS class, pkg/apis/core/helper/qos)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from nanokube.api.meta import Obj, random_suffix
from nanokube.api.quantity import parse_quantity

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300
# the priority classes every cluster has (scheduling/v1 SystemPriorityClasses)
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
_QOS_RESOURCES = ("cpu", "memory")


def add_default_tolerations(spec: Obj) -> None:
    """DefaultTolerationSeconds: tolerate not-ready and unreachable nodes for 300s unless already tolerated."""
    tolerations = spec.get("tolerations") or []

    def tolerated(key: str) -> bool:
        return any(t.get("key") in (key, "", None) and t.get("effect") in ("NoExecute", "", None)
                   for t in tolerations if isinstance(t, dict))

    added = [{"key": key, "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": DEFAULT_TOLERATION_SECONDS}
             for key in (NOT_READY_TAINT, UNREACHABLE_TAINT) if not tolerated(key)]
    if added:
        spec["tolerations"] = [*tolerations, *added]


def add_priority(spec: Obj) -> None:
    """Priority admission: the class's priority (0 without a class) and preemptionPolicy PreemptLowerPriority."""
    if spec.get("priority") is None:
        spec["priority"] = SYSTEM_PRIORITIES.get(spec.get("priorityClassName") or "", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")


def qos_class(spec: Obj) -> str:
    """ComputePodQOS: BestEffort without cpu/memory requests or limits, Guaranteed when every container limits
    both and requests equal limits, else Burstable."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        resources = container.get("resources") or {}
        for name, value in (resources.get("requests") or {}).items():
            amount = _amount(value)
            if name in _QOS_RESOURCES and amount > 0:
                requests[name] = requests.get(name, Decimal(0)) + amount
        found = set()
        for name, value in (resources.get("limits") or {}).items():
            amount = _amount(value)
            if name in _QOS_RESOURCES and amount > 0:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + amount
        if not found.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(name) == amount for name, amount in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def _amount(value: Any) -> Decimal:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return Decimal(0)


def admit_new_pod(pod: Obj) -> None:
    """Mutating admission of a Pod create (ServiceAccount, DefaultTolerationSeconds, Priority)."""
    spec = pod.setdefault("spec", {})
    add_service_account(spec)
    add_token_volume(spec)
    add_default_tolerations(spec)
    add_priority(spec)


TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3607  # what the ServiceAccount admission plugin asks for (an hour, plus a little)


def add_token_volume(spec: Obj) -> None:
    """ServiceAccount admission: the projected `kube-api-access-xxxxx` volume (token, ca.crt, namespace) mounted
    read-only at /var/run/secrets/kubernetes.io/serviceaccount in every container, unless the pod opts out."""
    if spec.get("automountServiceAccountToken") is False:
        return
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers")
                  for c in spec.get(key) or [] if isinstance(c, dict)]
    if any(vm.get("mountPath") == TOKEN_MOUNT_PATH for c in containers for vm in c.get("volumeMounts") or []):
        return
    name = "kube-api-access-" + random_suffix()
    spec["volumes"] = [*(spec.get("volumes") or []), {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                         "fieldPath": "metadata.namespace"}}]}}]}}]
    for c in containers:
        c["volumeMounts"] = [*(c.get("volumeMounts") or []),
                             {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]


def add_service_account(spec: Obj) -> None:
    """ServiceAccount admission: a pod without one runs as its namespace's `default` ServiceAccount."""
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = name
    spec["serviceAccount"] = name  # the deprecated alias, kept equal


def prepare_for_create(pod: Obj) -> None:
    """podStrategy.PrepareForCreate: whatever status was sent, a new pod is Pending with its QoS class."""
    pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod.get("spec") or {})}
