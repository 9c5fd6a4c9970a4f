"""Name grammar of the cluster zone (Kubernetes DNS spec 1.1.0 as CoreDNS reads it) and reverse names."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(slots=True)
class ZoneName:
    """A name inside the cluster zone, split per the spec; `kind` says which form it has."""

    kind: str  # apex | dns-version | ns-dns | type-only | namespace | service | endpoint | srv | pod | invalid
    namespace: str = ""
    name: str = ""  # service name, or the dashed-IP pod label
    endpoint: str = ""
    port: str = ""
    protocol: str = ""
    is_pod: bool = False


def parse_zone_name(rel: list[str]) -> ZoneName:
    """`rel` = lower-cased labels left of the zone, leftmost first."""
    if not rel:
        return ZoneName("apex")
    if rel == ["dns-version"]:
        return ZoneName("dns-version")
    if rel == ["ns", "dns"]:
        return ZoneName("ns-dns")
    kind = rel[-1]
    if kind not in ("svc", "pod"):
        return ZoneName("invalid")
    is_pod = kind == "pod"
    if len(rel) == 1:
        return ZoneName("type-only", is_pod=is_pod)
    namespace = rel[-2]
    if len(rel) == 2:
        return ZoneName("namespace", namespace=namespace, is_pod=is_pod)
    name = rel[-3]
    extra = rel[:-3]
    if is_pod:
        return ZoneName("pod", namespace, name, is_pod=True) if not extra else ZoneName("invalid")
    if not extra:
        return ZoneName("service", namespace, name)
    if len(extra) == 1:
        return ZoneName("endpoint", namespace, name, endpoint=extra[0])
    if len(extra) == 2:
        return ZoneName("srv", namespace, name, port=_strip_underscore(extra[0]),
                        protocol=_strip_underscore(extra[1]))
    return ZoneName("invalid")


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def pod_label_ip(label: str) -> bytes | None:
    """`10-0-0-1` -> IPv4; otherwise dashes are colons of an IPv6 address (`fd00--1`)."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
    try:
        return ipaddress.ip_address(text).packed
    except ValueError:
        return None


def reverse_ip(rel: list[str], suffix: str) -> bytes | None:
    """The address a reverse name stands for; `rel` = labels left of in-addr.arpa / ip6.arpa."""
    try:
        if suffix == "in-addr.arpa":
            if len(rel) != 4 or not all(p.isdigit() for p in rel):
                return None
            return ipaddress.IPv4Address(".".join(reversed(rel))).packed
        if len(rel) != 32 or not all(len(p) == 1 for p in rel):
            return None
        return bytes.fromhex("".join(reversed(rel)))
    except ValueError:
        return None
