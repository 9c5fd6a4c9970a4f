"""Objects every cluster has from its first start: system namespaces, the `kubernetes` and `kube-dns`
Services and the endpoints the apiserver itself owns. Idempotent: run on every start."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nanokube.api.errors import ApiError
from nanokube.api.kube_dns import KUBE_DNS_METRICS_PORT, KUBE_DNS_PROXY_NAME, SERVICE_PROXY_NAME_LABEL
from nanokube.api.served_resources import by_kind
from nanokube.apiserver import rbac
from nanokube.apiserver.registry import Registry

log = logging.getLogger(__name__)

NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# The apiserver writes these Endpoints' slices itself; the mirroring controller must leave them alone
# (kube-apiserver's EndpointsAdapter labels the `kubernetes` Endpoints the same way).
SKIP_MIRROR = {"endpointslice.kubernetes.io/skip-mirror": "true"}


@dataclass
class BootstrapSpec:
    kubernetes_ip: str
    api_address: str
    api_port: int
    kube_dns_ip: str
    # where the cluster DNS answers; its own ClusterIP (loopback mode) means the proxy must skip kube-dns.
    # The DNS server writes kube-dns's endpoints itself (dns/publish.py).
    dns_address: str


def _service(name: str, ns: str, ip: str, ports: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "ports": ports}}


def _slice(name: str, ns: str, service: str, address: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "nanokube-apiserver"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True, "serving": True,
                                                                  "terminating": False}}],
            "ports": ports}


def _endpoints(name: str, ns: str, address: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": ns, "labels": dict(SKIP_MIRROR)},
            "subsets": [{"addresses": [{"ip": address}], "ports": ports}]}


async def _ensure(registry: Registry, kind: str, group: str, obj: dict[str, Any], *, replace: bool) -> None:
    res = by_kind(group, kind)
    md = obj["metadata"]
    try:
        current = await registry.get(res, md.get("namespace"), md["name"])
    except ApiError as err:
        if err.code != 404:
            raise
        try:
            await registry.create(res, md.get("namespace"), obj)
        except ApiError as err:
            if err.code != 409:  # AlreadyExists: another API server on the same store bootstrapped it
                raise
        return
    if replace:
        body = {k: v for k, v in current.items() if k not in ("subsets", "endpoints", "ports", "addressType")}
        body.update({k: v for k, v in obj.items() if k != "metadata"})
        body["metadata"] = {**current["metadata"], "labels": md.get("labels", current["metadata"].get("labels"))}
        if body != current:
            try:
                await registry.update(res, md.get("namespace"), md["name"], body)
            except ApiError as err:
                if err.code != 409:  # Conflict: another API server on the same store wrote it meanwhile
                    raise


async def bootstrap(registry: Registry, spec: BootstrapSpec) -> None:
    for ns in NAMESPACES:
        await _ensure(registry, "Namespace", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                      replace=False)
    for obj in rbac.bootstrap_objects():  # the default cluster roles, as kube-apiserver's bootstrap policy
        await _ensure(registry, obj["kind"], "rbac.authorization.k8s.io", obj, replace=False)
    await _ensure(registry, "Service", "", _service(
        "kubernetes", "default", spec.kubernetes_ip,
        [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": spec.api_port}],
        {"component": "apiserver", "provider": "kubernetes"}), replace=False)
    api_ports = [{"name": "https", "port": spec.api_port, "protocol": "TCP"}]
    await _ensure(registry, "Endpoints", "", _endpoints("kubernetes", "default", spec.api_address, api_ports),
                  replace=True)
    await _ensure(registry, "EndpointSlice", "discovery.k8s.io",
                  _slice("kubernetes", "default", "kubernetes", spec.api_address, api_ports), replace=True)
    dns_ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                 {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                 {"name": "metrics", "port": KUBE_DNS_METRICS_PORT, "protocol": "TCP",
                  "targetPort": KUBE_DNS_METRICS_PORT}]
    dns_labels = {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}
    bound = spec.dns_address == spec.kube_dns_ip  # the DNS binds the ClusterIP itself: not the proxy's to serve
    if bound:
        dns_labels[SERVICE_PROXY_NAME_LABEL] = KUBE_DNS_PROXY_NAME
    await _ensure(registry, "Service", "", _service("kube-dns", "kube-system", spec.kube_dns_ip, dns_ports, dns_labels),
                  replace=False)
    await _proxy_name_label(registry, KUBE_DNS_PROXY_NAME if bound else None)


async def _proxy_name_label(registry: Registry, value: str | None) -> None:
    """Set or clear kube-dns's service-proxy-name label on a Service made by an earlier start (a data dir of
    a version whose DNS bound the ClusterIP in every mode, or after a changed --dns-listen)."""
    res = by_kind("", "Service")
    svc = await registry.get(res, "kube-system", "kube-dns")
    labels = dict(svc["metadata"].get("labels") or {})
    if labels.get(SERVICE_PROXY_NAME_LABEL) == value or (value is None and SERVICE_PROXY_NAME_LABEL not in labels):
        return
    if labels.get(SERVICE_PROXY_NAME_LABEL) not in (None, KUBE_DNS_PROXY_NAME):
        return  # the user's own proxy name: theirs to keep
    if value is None:
        labels.pop(SERVICE_PROXY_NAME_LABEL, None)
    else:
        labels[SERVICE_PROXY_NAME_LABEL] = value
    try:
        await registry.update(res, "kube-system", "kube-dns", {**svc, "metadata": {**svc["metadata"], "labels": labels}})
    except ApiError as err:
        if err.code != 409:  # Conflict: another API server on the same store fixed it meanwhile
            raise
