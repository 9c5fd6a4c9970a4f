"""Authorization as kube-apiserver's RBAC authorizer decides it (plugin/pkg/auth/authorizer/rbac): a request is
allowed when a rule of a (Cluster)Role bound to the user, one of its groups or its ServiceAccount covers the
request's attributes. Members of system:masters are allowed everything (the admin token). Also: the request
attributes of an HTTP request, and the default cluster roles every cluster starts with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj
from nanokube.api.served_resources import by_kind
from nanokube.apiserver.tokens import UserInfo

ROLES = by_kind("rbac.authorization.k8s.io", "Role")
CLUSTER_ROLES = by_kind("rbac.authorization.k8s.io", "ClusterRole")
ROLE_BINDINGS = by_kind("rbac.authorization.k8s.io", "RoleBinding")
CLUSTER_ROLE_BINDINGS = by_kind("rbac.authorization.k8s.io", "ClusterRoleBinding")
MASTERS = "system:masters"
_VERB_OF = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Attributes:
    verb: str
    resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


def request_attributes(method: str, path: str, query: Any, target: Any | None) -> Attributes:
    """RequestInfoFactory.NewRequestInfo for what the server serves (target: the parsed resource path)."""
    if target is None:
        return Attributes(verb=method.lower(), resource_request=False, path=path)
    if method == "GET":
        verb = "get" if target.name else ("watch" if query.get("watch", "") in ("1", "true") else "list")
    elif method == "DELETE":
        verb = "delete" if target.name else "deletecollection"
    else:
        verb = _VERB_OF.get(method, method.lower())
    return Attributes(verb=verb, resource_request=True, namespace=target.namespace or "",
                      api_group=target.res.group, resource=target.res.plural, subresource=target.subresource or "",
                      name=target.name or "")


def _subject_matches(subject: Obj, user: UserInfo, binding_ns: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.username
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.username == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


def rule_allows(rule: Obj, a: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        return any(u == a.path or u == "*" or (u.endswith("*") and a.path.startswith(u[:-1]))
                   for u in rule.get("nonResourceURLs") or [])
    groups = rule.get("apiGroups") or []
    if "*" not in groups and a.api_group not in groups:
        return False
    wanted = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    resources = rule.get("resources") or []
    if not any(r in ("*", wanted) or (a.subresource and r == f"*/{a.subresource}") for r in resources):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


async def rules_for(registry: Any, user: UserInfo, namespace: str) -> list[Obj]:
    """Every rule that applies to the user in the namespace ("" = cluster scope only)."""
    rules: list[Obj] = []
    bindings: list[tuple[Obj, str]] = []
    raws, *_ = await registry.list(CLUSTER_ROLE_BINDINGS, None)
    bindings += [(orjson.loads(r), "") for r in raws]
    if namespace:
        raws, *_ = await registry.list(ROLE_BINDINGS, namespace)
        bindings += [(orjson.loads(r), namespace) for r in raws]
    for binding, ns in bindings:
        if not any(_subject_matches(s, user, ns) for s in binding.get("subjects") or []):
            continue
        ref = binding.get("roleRef") or {}
        try:
            if ref.get("kind") == "ClusterRole":
                role = await registry.get(CLUSTER_ROLES, None, ref.get("name", ""))
            else:
                role = await registry.get(ROLES, ns, ref.get("name", ""))
        except ApiError:
            continue
        rules += role.get("rules") or []
    return rules


async def allowed(registry: Any, user: UserInfo, a: Attributes) -> bool:
    if MASTERS in user.groups:
        return True
    return any(rule_allows(rule, a) for rule in await rules_for(registry, user, a.namespace))


def forbidden(user: UserInfo, a: Attributes) -> ApiError:
    """The 403 kube-apiserver writes (responsewriters.forbiddenMessage)."""
    who = f'User "{user.username}"'
    if not a.resource_request:
        return ApiError(403, "Forbidden", f'forbidden: {who} cannot {a.verb} path "{a.path}"', {})
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    where = f' in the namespace "{a.namespace}"' if a.namespace else " at the cluster scope"
    named = f'"{a.name}" ' if a.name else ""
    message = (f'{qualified} {named}is forbidden: {who} cannot {a.verb} resource "{resource}" in API group '
               f'"{a.api_group}"{where}')
    details: Obj = {"kind": a.resource}
    if a.name:
        details = {"name": a.name, **({"group": a.api_group} if a.api_group else {}), "kind": a.resource}
    elif a.api_group:
        details = {"group": a.api_group, "kind": a.resource}
    return ApiError(403, "Forbidden", message, details)


# ---------------------------------------------------------------- bootstrap policy (a subset of the defaults)

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_VIEW_RULES = [
    {"apiGroups": [""], "resources": ["configmaps", "endpoints", "persistentvolumeclaims", "pods", "pods/log",
                                      "pods/status", "replicationcontrollers", "services", "services/status",
                                      "serviceaccounts", "events", "limitranges", "resourcequotas", "namespaces"],
     "verbs": _READ},
    {"apiGroups": ["apps"], "resources": ["daemonsets", "deployments", "deployments/scale", "replicasets",
                                          "replicasets/scale", "statefulsets"], "verbs": _READ},
    {"apiGroups": ["batch"], "resources": ["cronjobs", "jobs"], "verbs": _READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"], "verbs": _READ},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _READ},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": _READ},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": _READ},
]
_EDIT_RULES = [
    {**rule, "verbs": _READ + _WRITE} for rule in _VIEW_RULES if rule["apiGroups"] != ["events.k8s.io"]
] + [{"apiGroups": [""], "resources": ["secrets", "pods/exec", "pods/portforward", "pods/eviction",
                                        "serviceaccounts/token"], "verbs": _READ + _WRITE}]
_ADMIN_RULES = [*_EDIT_RULES, {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
                               "verbs": _READ + _WRITE}]
_SELF_REVIEWS = [
    {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
     "verbs": ["create"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
]
_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                   "/version", "/version/"]
DEFAULT_CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                      {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    "admin": _ADMIN_RULES,
    "edit": _EDIT_RULES,
    "view": _VIEW_RULES,
    "system:basic-user": _SELF_REVIEWS,
    "system:discovery": [{"nonResourceURLs": _DISCOVERY_URLS, "verbs": ["get"]}],
    "system:public-info-viewer": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                                   "verbs": ["get"]}],
}
DEFAULT_BINDINGS: dict[str, list[str]] = {  # ClusterRoleBinding (= role) name -> groups
    "cluster-admin": [MASTERS],
    "system:basic-user": ["system:authenticated"],
    "system:discovery": ["system:authenticated"],
    "system:public-info-viewer": ["system:authenticated", "system:unauthenticated"],
}


def bootstrap_objects() -> list[Obj]:
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    annotations = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    out: list[Obj] = []
    for name, rules in DEFAULT_CLUSTER_ROLES.items():
        out.append({"apiVersion": CLUSTER_ROLES.api_version, "kind": "ClusterRole",
                    "metadata": {"name": name, "labels": labels, "annotations": annotations}, "rules": rules})
    for name, groups in DEFAULT_BINDINGS.items():
        out.append({"apiVersion": CLUSTER_ROLE_BINDINGS.api_version, "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": labels, "annotations": annotations},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                                 for g in groups]})
    return out
