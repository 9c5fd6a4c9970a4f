"""meta.k8s.io Table responses: which printer serves which resource, and the Table envelope around its rows.

The server always prints the wide variant (every column, every cell); kubectl hides priority > 0 columns
unless asked for `-o wide`. Rows carry the object as PartialObjectMetadata unless the client asked
otherwise (`?includeObject=Object|None`), like the apiserver's response transformation (asTable).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nanokube.api.errors import bad_request
from nanokube.api.meta import rfc3339
from nanokube.apiserver.printing import basic, batch, events, nodes, pods, policy, services, storage, workloads
from nanokube.apiserver.printing.base import Column, Obj, Printer, doc, name_of
from nanokube.apiserver.printing.duration import parse_timestamp

PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "namespaces"): basic.NAMESPACES,
    ("", "pods"): pods.PODS,
    ("", "services"): services.SERVICES,
    ("", "endpoints"): services.ENDPOINTS,
    ("", "secrets"): basic.SECRETS,
    ("", "configmaps"): basic.CONFIG_MAPS,
    ("", "persistentvolumeclaims"): storage.PERSISTENT_VOLUME_CLAIMS,
    ("", "persistentvolumes"): storage.PERSISTENT_VOLUMES,
    ("", "nodes"): nodes.NODES,
    ("", "events"): events.EVENTS,
    ("", "serviceaccounts"): basic.SERVICE_ACCOUNTS,
    ("apps", "deployments"): workloads.DEPLOYMENTS,
    ("apps", "replicasets"): workloads.REPLICA_SETS,
    ("apps", "controllerrevisions"): workloads.CONTROLLER_REVISIONS,
    ("discovery.k8s.io", "endpointslices"): services.ENDPOINT_SLICES,
    ("coordination.k8s.io", "leases"): basic.LEASES,
    ("storage.k8s.io", "storageclasses"): storage.STORAGE_CLASSES,
    ("events.k8s.io", "events"): events.EVENTS_K8S_IO,
    ("", "replicationcontrollers"): workloads.REPLICATION_CONTROLLERS,
    ("", "resourcequotas"): policy.RESOURCE_QUOTAS,
    ("apps", "statefulsets"): workloads.STATEFUL_SETS,
    ("apps", "daemonsets"): workloads.DAEMON_SETS,
    ("batch", "jobs"): batch.JOBS,
    ("batch", "cronjobs"): batch.CRON_JOBS,
    ("autoscaling", "horizontalpodautoscalers"): policy.HORIZONTAL_POD_AUTOSCALERS,
    ("networking.k8s.io", "ingresses"): policy.INGRESSES,
    ("networking.k8s.io", "ingressclasses"): policy.INGRESS_CLASSES,
    ("networking.k8s.io", "networkpolicies"): policy.NETWORK_POLICIES,
    ("policy", "poddisruptionbudgets"): policy.POD_DISRUPTION_BUDGETS,
    ("rbac.authorization.k8s.io", "rolebindings"): policy.ROLE_BINDINGS,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): policy.CLUSTER_ROLE_BINDINGS,
    ("scheduling.k8s.io", "priorityclasses"): policy.PRIORITY_CLASSES,
    ("node.k8s.io", "runtimeclasses"): policy.RUNTIME_CLASSES,
    ("apiregistration.k8s.io", "apiservices"): policy.API_SERVICES,
}

INCLUDE_OBJECT_VALUES = ("None", "Metadata", "Object")
TABLE_API_VERSIONS = ("meta.k8s.io/v1", "meta.k8s.io/v1beta1")


def _created_at(obj: Obj, _now: datetime) -> list[Any]:
    """rest.NewDefaultTableConvertor: the creation time as RFC 3339 UTC (Go's zero time when unset)."""
    created = parse_timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    text = rfc3339(created.astimezone(UTC)) if created else "0001-01-01T00:00:00Z"
    return [name_of(obj), text]


DEFAULT_PRINTER = Printer(
    (
        Column("Name", format="name", description=doc("ObjectMeta.name")),
        Column("Created At", "date", doc("ObjectMeta.creationTimestamp")),
    ),
    _created_at,
)


def printer_for(resource_plural: str, group: str) -> Printer:
    return PRINTERS.get((group, resource_plural), DEFAULT_PRINTER)


def _row_object(obj: Obj, include_object: str, api_version: str) -> Obj | None:
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": obj.get("metadata") or {}}


def to_table(
    resource_plural: str,
    group: str,
    objects: list[Obj],
    *,
    now: datetime,
    include_object: str = "Metadata",
    list_meta: dict[str, Any] | None = None,
    api_version: str = "meta.k8s.io/v1",
    no_headers: bool = False,
    printer: Printer | None = None,
) -> dict[str, Any]:
    """The whole Table for these objects of one resource.

    - `objects`: the list's items, or one object for a single GET (a one-row Table).
    - `include_object`: "Metadata" (default, also for ""), "Object" or "None"; anything else -> 400.
    - `list_meta`: the list's metadata (resourceVersion, continue, remainingItemCount); for a single GET
      pass {"resourceVersion": <the object's>}. Empty keys are omitted, like Go's omitempty.
    - `api_version`: "meta.k8s.io/v1" or "meta.k8s.io/v1beta1", the version the client negotiated; the
      PartialObjectMetadata in the rows carries the same one.
    - `no_headers`: columnDefinitions null, as the apiserver sends for every watch event after the first.
    - `printer`: the printer to use instead of the resource's (custom resources: from their CRD).
    """
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT_VALUES:
        raise bad_request(f'unrecognized includeObject value: "{include}"')
    printer = printer or printer_for(resource_plural, group)  # a custom resource brings its own
    rows: list[Obj] = []
    for obj in objects:
        row: Obj = {"cells": printer.row(obj, now)}
        if printer.conditions is not None and (conditions := printer.conditions(obj)):
            row["conditions"] = [dict(c) for c in conditions]
        row["object"] = _row_object(obj, include, api_version)
        rows.append(row)
    metadata = {k: v for k, v in (list_meta or {}).items() if k in _LIST_META_KEYS and v not in (None, "")}
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": None if no_headers else printer.definitions(),
        # The default convertor appends to a nil slice, so an empty list encodes as null there.
        "rows": rows if rows or printer is not DEFAULT_PRINTER else None,
    }


_LIST_META_KEYS = ("selfLink", "resourceVersion", "continue", "remainingItemCount")
