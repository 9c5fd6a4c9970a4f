"""Which pods a Service sends traffic to, and on which port (podutil.FindPort and friends)."""

from __future__ import annotations

import ipaddress
from typing import Any

from nanokube.api.meta import Obj, is_pod_ready
from nanokube.api.pods import find_port

__all__ = ["endpoint_hostname", "endpoint_relevant", "find_port", "ips_of_family", "is_terminal", "pod_ips", "should_be_in_endpoints", "target_ref"]


def is_terminal(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status", {})
    ips = [entry.get("ip") for entry in status.get("podIPs") or [] if entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def ips_of_family(pod: Obj, address_type: str) -> list[str]:
    """Pod IPs of one family (IPv4/IPv6), re-stringified canonically."""
    out = []
    for text in pod_ips(pod):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if (ip.version == 6) == (address_type == "IPv6"):
            out.append(str(ip))
    return out


def should_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    if is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not pod.get("metadata", {}).get("deletionTimestamp")


def endpoint_hostname(pod: Obj, service: Obj) -> str | None:
    spec = pod.get("spec", {})
    smd, pmd = service.get("metadata", {}), pod.get("metadata", {})
    if spec.get("hostname") and spec.get("subdomain") == smd.get("name") \
            and smd.get("namespace") == pmd.get("namespace"):
        return spec["hostname"]
    return None


def target_ref(pod: Obj) -> Obj:
    md = pod.get("metadata", {})
    return {"kind": "Pod", "namespace": md.get("namespace"), "name": md.get("name"), "uid": md.get("uid")}


def endpoint_relevant(pod: Obj) -> tuple[Any, ...]:
    """The parts of a pod that endpoint objects depend on; unchanged -> no resync needed."""
    md, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    ports = tuple((c.get("name"), tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                                        for p in c.get("ports") or []))
                  for c in (spec.get("containers") or []) + (spec.get("initContainers") or []))
    return (tuple(pod_ips(pod)), is_pod_ready(pod), bool(md.get("deletionTimestamp")), spec.get("nodeName"),
            spec.get("hostname"), spec.get("subdomain"), status.get("phase"), ports)
