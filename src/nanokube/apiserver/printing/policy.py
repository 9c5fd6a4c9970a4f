"""Ingresses, IngressClasses, NetworkPolicies, PodDisruptionBudgets, HorizontalPodAutoscalers, RBAC bindings,
PriorityClasses, RuntimeClasses, ResourceQuotas and APIServices (Roles, ClusterRoles and LimitRanges have no printer of
their own in Kubernetes: they get the default Name / Created At table)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nanokube.apiserver.printing.base import (
    Cell,
    Column,
    Obj,
    Printer,
    age_column,
    age_of,
    api_doc,
    as_int,
    name_column,
    name_of,
    spec,
    status,
    wide,
)
from nanokube.apiserver.printing.labels import format_label_selector
from nanokube.apiserver.printing.quantity import canonical_quantity


def _ingress_hosts(rules: list[Obj]) -> str:
    """formatHosts: up to four hosts, `*` when no rule names one."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 4:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 4} more..." if more else text


def _ingress_address(ing: Obj) -> str:
    found: set[str] = set()
    for entry in (status(ing).get("loadBalancer") or {}).get("ingress") or []:
        if entry.get("ip"):
            found.add(entry["ip"])
        elif entry.get("hostname"):
            found.add(entry["hostname"])
    return ",".join(sorted(found))


def _ingress_row(ing: Obj, now: datetime) -> list[Cell]:
    s = spec(ing)
    return [name_of(ing), s.get("ingressClassName") or "<none>", _ingress_hosts(s.get("rules") or []),
            _ingress_address(ing), "80, 443" if s.get("tls") else "80", age_of(ing, now)]


INGRESSES = Printer(
    (
        name_column(),
        Column("Class", description="The name of the IngressClass resource that should be used for additional "
                                    "configuration"),
        Column("Hosts", description="Hosts that incoming requests are matched against before the ingress rule"),
        Column("Address", description="Address is a list containing ingress points for the load-balancer"),
        Column("Ports", description="Ports of TLS configurations that open"),
        age_column(),
    ),
    _ingress_row,
)


def _ingress_class_row(ic: Obj, now: datetime) -> list[Cell]:
    params = spec(ic).get("parameters")
    text = "<none>"
    if isinstance(params, dict):
        text = params.get("kind") or ""
        if params.get("apiGroup") is not None:
            text += "." + params["apiGroup"]
        text += "/" + (params.get("name") or "")
    return [name_of(ic), spec(ic).get("controller") or "", text, age_of(ic, now)]


INGRESS_CLASSES = Printer(
    (
        name_column(),
        Column("Controller", description="Controller that is responsible for handling this class"),
        Column("Parameters", description="A reference to a resource with additional parameters"),
        age_column(),
    ),
    _ingress_class_row,
)

NETWORK_POLICIES = Printer(
    (name_column(), Column("Pod-Selector", description=api_doc("networking.v1.NetworkPolicySpec", "podSelector")),
     age_column()),
    lambda np, now: [name_of(np), format_label_selector(spec(np).get("podSelector") or {}), age_of(np, now)],
)


def _int_or_string(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _pdb_row(pdb: Obj, now: datetime) -> list[Cell]:
    s = spec(pdb)
    return [name_of(pdb), _int_or_string(s.get("minAvailable")), _int_or_string(s.get("maxUnavailable")),
            as_int(status(pdb).get("disruptionsAllowed")), age_of(pdb, now)]


POD_DISRUPTION_BUDGETS = Printer(
    (
        name_column(),
        Column("Min Available", description="The minimum number of pods that must be available."),
        Column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        Column("Allowed Disruptions", "integer",
               "Calculated number of pods that may be disrupted at this time."),
        age_column(),
    ),
    _pdb_row,
)

_SOURCE_FIELD = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
                 "ContainerResource": "containerResource"}


def _metric(metric: Obj, current: Obj | None) -> str:
    """One entry of formatHPAMetrics: `current/target`, named for resource metrics, `(avg)` for averages."""
    mtype = metric.get("type") or ""
    field = _SOURCE_FIELD.get(mtype)
    if field is None:
        return "<unknown type>"
    source = metric.get(field) or {}
    target = source.get("target") or {}
    now_source = (current or {}).get(field) if current else None
    now_values = (now_source or {}).get("current") or {}
    unknown = "<unknown>"
    if mtype == "Pods":
        shown = canonical_quantity(now_values.get("averageValue")) if now_source else unknown
        return f"{shown}/{canonical_quantity(target.get('averageValue'))}"
    if mtype in ("External", "Object"):
        if target.get("averageValue") is not None:
            shown = canonical_quantity(now_values["averageValue"]) if now_values.get("averageValue") is not None \
                else unknown
            return f"{shown}/{canonical_quantity(target['averageValue'])} (avg)"
        shown = canonical_quantity(now_values.get("value")) if now_source else unknown
        return f"{shown}/{canonical_quantity(target.get('value'))}"
    name = source.get("name") or ""
    if target.get("averageValue") is not None:
        shown = canonical_quantity(now_values.get("averageValue")) if now_source else unknown
        return f"{name}: {shown}/{canonical_quantity(target['averageValue'])}"
    shown = f"{now_values['averageUtilization']}%" if now_values.get("averageUtilization") is not None else unknown
    wanted = f"{target['averageUtilization']}%" if target.get("averageUtilization") is not None else "<auto>"
    return f"{name}: {shown}/{wanted}"


def hpa_targets(hpa: Obj) -> str:
    metrics = spec(hpa).get("metrics") or []
    if not metrics:
        return "<none>"
    currents = status(hpa).get("currentMetrics") or []
    shown = [_metric(m, currents[i] if i < len(currents) else None) for i, m in enumerate(metrics)]
    text = ", ".join(shown[:2])
    return f"{text} + {len(shown) - 2} more..." if len(shown) > 2 else text


def _hpa_row(hpa: Obj, now: datetime) -> list[Cell]:
    s = spec(hpa)
    ref = s.get("scaleTargetRef") or {}
    min_pods = "<unset>" if s.get("minReplicas") is None else str(as_int(s["minReplicas"]))
    return [name_of(hpa), f"{ref.get('kind') or ''}/{ref.get('name') or ''}", hpa_targets(hpa), min_pods,
            as_int(s.get("maxReplicas")), as_int(status(hpa).get("currentReplicas")), age_of(hpa, now)]


def _hpa_doc(field: str) -> str:
    return api_doc("autoscaling.v2.HorizontalPodAutoscalerSpec", field)


HORIZONTAL_POD_AUTOSCALERS = Printer(
    (
        name_column(),
        Column("Reference", description=_hpa_doc("scaleTargetRef")),
        Column("Targets", description=_hpa_doc("metrics")),
        Column("MinPods", description=_hpa_doc("minReplicas")),
        Column("MaxPods", description=_hpa_doc("maxReplicas")),
        Column("Replicas", description=api_doc("autoscaling.v2.HorizontalPodAutoscalerStatus", "currentReplicas")),
        age_column(),
    ),
    _hpa_row,
)


def _subjects(binding: Obj) -> tuple[str, str, str]:
    """rbac.SubjectsStrings: users, groups and `namespace/name` service accounts, each `, `-joined."""
    users, groups, sas = [], [], []
    for subject in binding.get("subjects") or []:
        kind = subject.get("kind")
        if kind == "User":
            users.append(subject.get("name") or "")
        elif kind == "Group":
            groups.append(subject.get("name") or "")
        elif kind == "ServiceAccount":
            sas.append(f"{subject.get('namespace') or ''}/{subject.get('name') or ''}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _binding_row(binding: Obj, now: datetime) -> list[Cell]:
    ref = binding.get("roleRef") or {}
    users, groups, sas = _subjects(binding)
    return [name_of(binding), f"{ref.get('kind') or ''}/{ref.get('name') or ''}", age_of(binding, now), users,
            groups, sas]


def _binding_printer(what: str) -> Printer:
    return Printer(
        (
            name_column(),
            Column("Role", description=api_doc(f"rbac.v1.{what[0].upper()}{what[1:]}", "roleRef")),
            age_column(),
            wide("Users", f"Users in the {what}"),
            wide("Groups", f"Groups in the {what}"),
            wide("ServiceAccounts", f"ServiceAccounts in the {what}"),
        ),
        _binding_row,
    )


ROLE_BINDINGS = _binding_printer("roleBinding")
CLUSTER_ROLE_BINDINGS = _binding_printer("clusterRoleBinding")


def _priority_class_row(pc: Obj, now: datetime) -> list[Cell]:
    return [name_of(pc), as_int(pc.get("value")), bool(pc.get("globalDefault")), age_of(pc, now),
            pc.get("preemptionPolicy") or ""]


PRIORITY_CLASSES = Printer(
    (
        name_column(),
        Column("Value", "integer", api_doc("scheduling.v1.PriorityClass", "value")),
        Column("Global-Default", "boolean", api_doc("scheduling.v1.PriorityClass", "globalDefault")),
        age_column(),
        Column("PreemptionPolicy", description=api_doc("scheduling.v1.PriorityClass", "preemptionPolicy")),
    ),
    _priority_class_row,
)

RUNTIME_CLASSES = Printer(
    # Kubernetes describes this column with ObjectMeta's (absent) "handler" doc: an empty description.
    (name_column(), Column("Handler"), age_column()),
    lambda rc, now: [name_of(rc), rc.get("handler") or "", age_of(rc, now)],
)



def _api_service_row(svc: Obj, now: datetime) -> list[Cell]:
    """kube-aggregator's apiservice REST.ConvertToTable: "Local" or namespace/name, and the Available condition
    with its reason unless it is True."""
    ref = spec(svc).get("service")
    service = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else "Local"
    available = "Unknown"
    for cond in status(svc).get("conditions") or []:
        if cond.get("type") == "Available":
            available = str(cond.get("status", ""))
            if available != "True" and cond.get("reason"):
                available = f"{available} ({cond['reason']})"
            break
    return [name_of(svc), service, available, age_of(svc, now)]


API_SERVICES = Printer(
    (name_column(), Column("Service", description="The reference to the service that hosts this API endpoint."),
     Column("Available", description="Whether this service is available."), age_column()),
    _api_service_row,
)


def _quota_row(quota: Obj, now: datetime) -> list[Cell]:
    hard = status(quota).get("hard") or {}
    used = status(quota).get("used") or {}
    requests, limits = [], []
    for name in sorted(hard):
        text = f"{name}: {canonical_quantity(used.get(name, '0'))}/{canonical_quantity(hard[name])}"
        pieces = name.split(".")
        (limits if len(pieces) > 1 and pieces[0] == "limits" else requests).append(text)
    return [name_of(quota), age_of(quota, now), ", ".join(requests), ", ".join(limits)]


RESOURCE_QUOTAS = Printer(
    (
        name_column(),
        age_column(),
        Column("Request", description="Request represents a minimum amount of cpu/memory that a container may "
                                      "consume."),
        Column("Limit", description="Limits control the maximum amount of cpu/memory that a container may use "
                                    "independent of contention on the node."),
    ),
    _quota_row,
)
