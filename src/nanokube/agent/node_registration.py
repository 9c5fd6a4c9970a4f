"""The Node object this agent registers, its status, and its Lease heartbeat in kube-node-lease."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from pathlib import Path

from nanokube.agent.settings import KUBELET_VERSION, AgentSettings
from nanokube.api.errors import ApiError
from nanokube.api.meta import Obj, rfc3339, rfc3339_micro
from nanokube.api.served_resources import by_kind
from nanokube.client import ApiClient

log = logging.getLogger(__name__)

NODES = by_kind("", "Node")
LEASES = by_kind("coordination.k8s.io", "Lease")
NAMESPACES = by_kind("", "Namespace")
LEASE_NAMESPACE = "kube-node-lease"
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def machine_capacity(data_dir: Path, max_pods: int = 110) -> dict[str, str]:
    mem_kib = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        st = os.statvfs(data_dir)
        disk_kib = st.f_blocks * st.f_frsize // 1024
    except OSError:
        disk_kib = 0
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki", "pods": str(max_pods),
            "ephemeral-storage": f"{disk_kib}Ki", "hugepages-2Mi": "0", "hugepages-1Gi": "0"}


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def node_status(settings: AgentSettings, kubelet_port: int, capacity: dict[str, str]) -> Obj:
    now = rfc3339()
    conds = [("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
             ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
             ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
             ("Ready", "True", "KubeletReady", "kubelet is posting ready status")]
    return {
        "capacity": capacity,
        "allocatable": dict(capacity),
        "conditions": [{"type": t, "status": s, "lastHeartbeatTime": now, "lastTransitionTime": now,
                        "reason": r, "message": m} for t, s, r, m in conds],
        "addresses": [{"type": "InternalIP", "address": settings.node_ip},
                      {"type": "Hostname", "address": settings.node_name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"), "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": _os_image(), "containerRuntimeVersion": "nanokube://0.1.0",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux", "architecture": ARCH.get(platform.machine(), platform.machine()),
        },
    }


def node_labels(settings: AgentSettings) -> dict[str, str]:
    arch = ARCH.get(platform.machine(), platform.machine())
    labels = {"kubernetes.io/hostname": settings.node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}
    labels.update({f"node-role.kubernetes.io/{role}": "" for role in settings.node_roles})
    return labels


def node_object(settings: AgentSettings) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": settings.node_name,
                                                             "labels": node_labels(settings)}, "spec": {}}


async def register(client: ApiClient, settings: AgentSettings, kubelet_port: int, capacity: dict[str, str]) -> Obj:
    """Create the Node (or take over the existing one) and write its status; returns the Node."""
    try:
        node = await client.create(NODES, node_object(settings))
    except ApiError as err:
        if err.code != 409:
            raise
        node = await client.get(NODES, settings.node_name)
        wanted = node_labels(settings)
        if any(node["metadata"].get("labels", {}).get(k) != v for k, v in wanted.items()):
            node = await client.patch(NODES, settings.node_name, {"metadata": {"labels": wanted}})
    status = node_status(settings, kubelet_port, capacity)
    try:
        node = await client.patch(NODES, settings.node_name, {"status": status}, subresource="status")
    except ApiError as err:
        log.warning("node status update failed: %s", err)
    return node


async def pod_cidr_of(client: ApiClient, node: Obj, settings: AgentSettings) -> str:
    """The node's spec.podCIDR (given by the server), else the configured or default range."""
    deadline = time.monotonic() + (0 if settings.pod_cidr else settings.pod_cidr_wait)
    while True:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            return cidr
        if time.monotonic() >= deadline:
            if settings.pod_cidr or settings.pod_cidr_fallback:
                return settings.pod_cidr or settings.default_pod_cidr
            raise RuntimeError(f"node {settings.node_name} got no spec.podCIDR from the server within "
                               f"{settings.pod_cidr_wait:.0f}s (does the server run its controllers?)")
        await asyncio.sleep(0.05)
        node = await client.get(NODES, settings.node_name)


async def _ensure_lease_namespace(client: ApiClient) -> None:
    try:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": LEASE_NAMESPACE}})
    except ApiError as err:
        if err.code != 409:
            raise


async def heartbeat(client: ApiClient, settings: AgentSettings, node: Obj, kubelet_port: int,
                    capacity: dict[str, str]) -> None:
    """Renew the node Lease every node_lease_seconds and refresh the Node's conditions every minute, and right
    after a renewal that came late (the process was frozen or cut off from the API: the node lifecycle
    controller may have turned the node Ready=Unknown meanwhile, which only a status post turns back)."""
    name = settings.node_name
    lease: Obj | None = None
    last_status = last_renewal = time.monotonic()
    duration = max(40, int(settings.node_lease_seconds * 4))
    while True:
        try:
            body = {"holderIdentity": name, "leaseDurationSeconds": duration, "renewTime": rfc3339_micro()}
            if lease is None:
                try:
                    lease = await client.get(LEASES, name, LEASE_NAMESPACE)
                except ApiError as err:
                    if err.code != 404:
                        raise
                    await _ensure_lease_namespace(client)
                    lease = await client.create(LEASES, {
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": [{
                            "apiVersion": "v1", "kind": "Node", "name": name,
                            "uid": node.get("metadata", {}).get("uid", "")}]},
                        "spec": body}, LEASE_NAMESPACE)
                    body = {}
            if body:
                lease["spec"] = {**(lease.get("spec") or {}), **body}
                lease = await client.update(LEASES, lease)
            now = time.monotonic()
            late = now - last_renewal > 2 * settings.node_lease_seconds
            last_renewal = now
            if late or now - last_status > 60:
                last_status = now
                await client.patch(NODES, name, {"status": node_status(settings, kubelet_port, capacity)},
                                   subresource="status")
        except ApiError as err:
            log.info("node heartbeat: %s", err)
            lease = None
        except OSError as err:
            log.info("node heartbeat: %s", err)
        await asyncio.sleep(settings.node_lease_seconds)
