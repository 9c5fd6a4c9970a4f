"""The resources nanokube serves: group, version, kind, plural, scope, short names, subresources.

This table feeds discovery, routing, storage keys and the OpenAPI documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    singular: str = field(default="")

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def key_prefix(self, namespace: str | None = None) -> str:
        """Storage key prefix, laid out as kube-apiserver lays it: /registry/<resource prefix>/[<ns>/]."""
        base = f"/registry/{self.storage_prefix}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"/registry/{self.storage_prefix}/{namespace}/{name}"
        return f"/registry/{self.storage_prefix}/{name}"

    @property
    def storage_prefix(self) -> str:
        # custom resources (apiserver/crds.py's CustomResource sets `custom`) keep their group in the key
        return storage_prefix(self.group, self.plural, custom=getattr(self, "custom", False))


# kube-apiserver's storage keys: the plural without its group, except these (SpecialDefaultResourcePrefixes in
# pkg/kubeapiserver/default_storage_factory_builder.go). events.k8s.io Events cohabit with core Events there,
# converted to one internal form; nanokube stores each API's own JSON, so they keep a key space of their own.
SPECIAL_PREFIXES = {
    ("", "services"): "services/specs",
    ("", "endpoints"): "services/endpoints",
    ("", "nodes"): "minions",
    ("", "replicationcontrollers"): "controllers",
    ("networking.k8s.io", "ingresses"): "ingress",
    ("extensions", "ingresses"): "ingress",
    ("events.k8s.io", "events"): "events.k8s.io/events",
}


def storage_prefix(group: str, plural: str, *, custom: bool = False) -> str:
    """The resource's part of its storage keys (`/registry/<this>/...`): one place for every key. Custom
    resources are `<group>/<plural>` (apiextensions-apiserver's ResourcePrefix), so a CRD whose plural is also
    a built-in's never shares its keys."""
    if custom:
        return f"{group}/{plural}"
    return SPECIAL_PREFIXES.get((group, plural), plural)


RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "Namespace", "namespaces", False, ("ns",), ("status", "finalize")),
    Resource("", "v1", "Pod", "pods", True, ("po",), ("status", "log", "binding", "eviction", "exec", "attach",
                                                              "portforward", "proxy", "ephemeralcontainers"), ("all",)),
    Resource("", "v1", "Service", "services", True, ("svc",), ("status", "proxy"), ("all",)),
    Resource("", "v1", "Endpoints", "endpoints", True, ("ep",), singular="endpoints"),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    Resource("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), ("status",)),
    Resource("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), ("status",)),
    Resource("", "v1", "Node", "nodes", False, ("no",), ("status",)),
    Resource("", "v1", "Event", "events", True, ("ev",)),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"), ("all",)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), ("all",)),
    Resource("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    Resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True),
    Resource("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    Resource("events.k8s.io", "v1", "Event", "events", True, ("ev",)),
    # Served, validated and listed; docs/cli.md says which of them a controller acts on.
    Resource("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",), ("status", "scale"),
             ("all",)),
    Resource("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), ("status",)),
    Resource("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"), ("all",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), ("all",)),
    Resource("batch", "v1", "Job", "jobs", True, (), ("status",), ("all",)),
    Resource("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("status",), ("all",)),
    Resource("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",),
             ("status",), ("all",)),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",)),
    Resource("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("status",)),
    Resource("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
             verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=("create",)),
    Resource("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
             verbs=("create",)),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    Resource("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Resource("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    Resource("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    # Stored only: no aggregation layer behind it (clients and charts create them; the official client's e2e too)
    Resource("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("status",), ("api-extensions",)),
    Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
             ("crd", "crds"), ("status",), ("api-extensions",)),
)

BY_GROUP_VERSION_PLURAL: dict[tuple[str, str, str], Resource] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
BY_KIND: dict[tuple[str, str], Resource] = {(r.group, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> Resource | None:
    return BY_GROUP_VERSION_PLURAL.get((group, version, plural))


def by_kind(group: str, kind: str) -> Resource:
    return BY_KIND[(group, kind)]


def groups() -> dict[str, list[str]]:
    """Group name -> served versions (core group is '')."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out
