"""Trimmed records built from Kubernetes objects at ingest; the original JSON is dropped.

A record also answers the few mapping lookups an informer makes on its cached objects
(`obj["metadata"]["name"]`, `.get("namespace")`, `.get("resourceVersion")`), so an informer whose transform is
one of the `trim_*` functions caches these small records instead of whole objects.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

from nanokube.api.endpointslices import LABEL_SERVICE_NAME as SERVICE_NAME_LABEL
from nanokube.api.meta import Obj

ServiceKey = tuple[str, str]  # (namespace, name)



def pack_ip(text: str) -> bytes | None:
    """IPv4 -> 4 bytes, IPv6 -> 16 bytes, anything else -> None."""
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def ip_text(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def dashed_ip(packed: bytes) -> str:
    """The endpoint name CoreDNS derives from an address: dots (or colons) become dashes."""
    if len(packed) == 4:
        return ip_text(packed).replace(".", "-")
    name = ip_text(packed).replace(":", "-")
    return name + "0" if name.endswith("-") else name


class _MetaView:
    """Lets an informer read name/namespace/resourceVersion from a record as if it were object metadata."""

    __slots__ = ()
    namespace: str
    name: str
    resource_version: str

    def get(self, key: str, default: Any = None) -> Any:
        if key == "metadata":
            return self
        if key == "namespace":
            return self.namespace or default
        if key == "name":
            return self.name
        if key == "resourceVersion":
            return self.resource_version
        return default

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)


class ServiceRecord(_MetaView):
    __slots__ = ("cluster_ips", "external_name", "headless", "name", "namespace", "ports", "publish_not_ready",
                 "resource_version")

    def __init__(self, namespace: str, name: str, resource_version: str, *, cluster_ips: tuple[bytes, ...],
                 headless: bool, external_name: str, ports: tuple[tuple[str, str, int], ...],
                 publish_not_ready: bool) -> None:
        self.namespace = namespace
        self.name = name
        self.resource_version = resource_version
        self.cluster_ips = cluster_ips
        self.headless = headless
        self.external_name = external_name
        self.ports = ports  # (name, protocol, port); protocol upper case as in the API
        self.publish_not_ready = publish_not_ready

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.name)

    def content(self) -> tuple[Any, ...]:
        return (self.cluster_ips, self.headless, self.external_name, self.ports, self.publish_not_ready)


class SliceRecord(_MetaView):
    """One EndpointSlice: its ports and its endpoints split into ready and not-ready addresses."""

    __slots__ = ("hostnames", "name", "namespace", "not_ready", "ports", "ready", "resource_version", "service")

    def __init__(self, namespace: str, name: str, resource_version: str, *, service: str,
                 ports: tuple[tuple[str, str, int], ...], ready: tuple[bytes, ...], not_ready: tuple[bytes, ...],
                 hostnames: dict[bytes, str] | None) -> None:
        self.namespace = namespace
        self.name = name
        self.resource_version = resource_version
        self.service = service
        self.ports = ports
        self.ready = ready
        self.not_ready = not_ready
        self.hostnames = hostnames  # only addresses whose endpoint has a hostname; None when there are none

    def hostname(self, packed: bytes) -> str:
        if self.hostnames is not None:
            name = self.hostnames.get(packed)
            if name:
                return name
        return dashed_ip(packed)

    def content(self) -> tuple[Any, ...]:
        return (self.service, self.ports, self.ready, self.not_ready, self.hostnames)


class PodRecord(_MetaView):
    __slots__ = ("ips", "name", "namespace", "resource_version")

    def __init__(self, namespace: str, name: str, resource_version: str, ips: tuple[bytes, ...]) -> None:
        self.namespace = namespace
        self.name = name
        self.resource_version = resource_version
        self.ips = ips

    def content(self) -> tuple[Any, ...]:
        return (self.ips,)


class NamespaceRecord(_MetaView):
    __slots__ = ("name", "namespace", "resource_version")

    def __init__(self, name: str, resource_version: str) -> None:
        self.namespace = ""
        self.name = name
        self.resource_version = resource_version

    def content(self) -> tuple[Any, ...]:
        return ()


def _meta(obj: Obj) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return sys.intern(meta.get("namespace") or ""), meta.get("name", ""), meta.get("resourceVersion", "")


def _ports(items: list[Obj] | None) -> tuple[tuple[str, str, int], ...]:
    out = []
    for p in items or ():
        port = p.get("port")
        if port is None:
            continue
        out.append((sys.intern(p.get("name") or ""), sys.intern(p.get("protocol") or "TCP"), int(port)))
    return tuple(out)


def trim_service(obj: Obj) -> ServiceRecord:
    if isinstance(obj, ServiceRecord):
        return obj
    namespace, name, rv = _meta(obj)
    spec = obj.get("spec") or {}
    svc_type = spec.get("type") or "ClusterIP"
    ips_text = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    headless = svc_type != "ExternalName" and (spec.get("clusterIP") == "None" or ips_text == ["None"])
    cluster_ips: tuple[bytes, ...] = ()
    if svc_type != "ExternalName" and not headless:
        cluster_ips = tuple(p for p in (pack_ip(t) for t in ips_text) if p is not None)
    external = (spec.get("externalName") or "").rstrip(".").lower() if svc_type == "ExternalName" else ""
    return ServiceRecord(namespace, name, rv, cluster_ips=cluster_ips, headless=headless, external_name=external,
                         ports=_ports(spec.get("ports")),
                         publish_not_ready=bool(spec.get("publishNotReadyAddresses")))


def trim_endpointslice(obj: Obj) -> SliceRecord:
    if isinstance(obj, SliceRecord):
        return obj
    namespace, name, rv = _meta(obj)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    service = sys.intern(labels.get(SERVICE_NAME_LABEL, ""))
    ready: list[bytes] = []
    not_ready: list[bytes] = []
    hostnames: dict[bytes, str] = {}
    if obj.get("addressType", "IPv4") in ("IPv4", "IPv6"):
        for ep in obj.get("endpoints") or ():
            is_ready = (ep.get("conditions") or {}).get("ready") is not False  # nil counts as ready
            hostname = (ep.get("hostname") or "").lower()
            for text in ep.get("addresses") or ():
                packed = pack_ip(text)
                if packed is None:
                    continue
                (ready if is_ready else not_ready).append(packed)
                if hostname:
                    hostnames[packed] = hostname
    return SliceRecord(namespace, name, rv, service=service, ports=_ports(obj.get("ports")), ready=tuple(ready),
                       not_ready=tuple(not_ready), hostnames=hostnames or None)


def trim_pod(obj: Obj) -> PodRecord:
    if isinstance(obj, PodRecord):
        return obj
    namespace, name, rv = _meta(obj)
    status = obj.get("status") or {}
    texts = [p.get("ip") for p in status.get("podIPs") or ()] or ([status["podIP"]] if status.get("podIP") else [])
    ips = tuple(p for p in (pack_ip(t) for t in texts if t) if p is not None)
    return PodRecord(namespace, name, rv, ips)


def trim_namespace(obj: Obj) -> NamespaceRecord:
    if isinstance(obj, NamespaceRecord):
        return obj
    _, name, rv = _meta(obj)
    return NamespaceRecord(sys.intern(name), rv)
