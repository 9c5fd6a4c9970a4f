"""The API resources the controllers read and write."""

from __future__ import annotations

from nanokube.api.served_resources import Resource, by_kind

PODS = by_kind("", "Pod")
SERVICES = by_kind("", "Service")
ENDPOINTS = by_kind("", "Endpoints")
NODES = by_kind("", "Node")
NAMESPACES = by_kind("", "Namespace")
EVENTS = by_kind("", "Event")
PVCS = by_kind("", "PersistentVolumeClaim")
PVS = by_kind("", "PersistentVolume")
DEPLOYMENTS = by_kind("apps", "Deployment")
REPLICASETS = by_kind("apps", "ReplicaSet")
ENDPOINTSLICES = by_kind("discovery.k8s.io", "EndpointSlice")
LEASES = by_kind("coordination.k8s.io", "Lease")
STORAGECLASSES = by_kind("storage.k8s.io", "StorageClass")
STATEFULSETS = by_kind("apps", "StatefulSet")
DAEMONSETS = by_kind("apps", "DaemonSet")
CONTROLLERREVISIONS = by_kind("apps", "ControllerRevision")
JOBS = by_kind("batch", "Job")
CRONJOBS = by_kind("batch", "CronJob")
REPLICATIONCONTROLLERS = by_kind("", "ReplicationController")
RESOURCEQUOTAS = by_kind("", "ResourceQuota")


def resource_for(api_version: str, kind: str) -> Resource | None:
    """The resource an ownerReference (apiVersion + kind) points at, if we serve it."""
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    try:
        return by_kind(group, kind)
    except KeyError:
        return None
