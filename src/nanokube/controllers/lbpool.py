"""LoadBalancer address pool: which Service holds which address, and who may share one.

Pure bookkeeping, no I/O. Several Services may hold the same address when none of their (protocol, port)
pairs collide; an automatic allocation only takes an address nobody holds, sharing happens when a
Service asks for an address by name (spec.loadBalancerIP or the nanokube.io/lb-ip annotation).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from nanokube.api.meta import Obj

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
PortSet = frozenset[tuple[str, int]]


def parse_pool(text: str) -> list[tuple[int, int]]:
    """`CIDR` or `A-B` (several separated by commas) -> inclusive integer ranges."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if "-" in part:
            first, last = (ipaddress.ip_address(x.strip()) for x in part.split("-", 1))
            if first.version != last.version or int(last) < int(first):
                raise ValueError(f"invalid address range {part!r}")
            ranges.append((int(first), int(last)))
            continue
        net = ipaddress.ip_network(part, strict=False)
        if net.version == 4 and net.prefixlen < 31:  # skip network and broadcast addresses
            ranges.append((int(net.network_address) + 1, int(net.broadcast_address) - 1))
        else:
            ranges.append((int(net.network_address), int(net.broadcast_address)))
    if not ranges:
        raise ValueError(f"empty address pool {text!r}")
    return ranges


def service_ports(service: Obj) -> PortSet:
    return frozenset((p.get("protocol") or "TCP", int(p.get("port") or 0))
                     for p in service.get("spec", {}).get("ports") or [])


class Pool:
    def __init__(self, text: str) -> None:
        self.text = text
        self._ranges = parse_pool(text)
        self._holders: dict[str, dict[str, PortSet]] = {}  # address -> service key -> ports
        self._by_service: dict[str, str] = {}

    def __contains__(self, text: object) -> bool:
        try:
            value = int(ipaddress.ip_address(str(text)))
        except ValueError:
            return False
        return any(lo <= value <= hi for lo, hi in self._ranges)

    def addresses(self) -> Iterator[str]:
        for lo, hi in self._ranges:
            for value in range(lo, hi + 1):
                yield str(ipaddress.ip_address(value))

    def size(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._ranges)

    def address_of(self, service_key: str) -> str | None:
        return self._by_service.get(service_key)

    def holders(self, address: str) -> dict[str, PortSet]:
        return dict(self._holders.get(address, {}))

    def conflict(self, service_key: str, address: str, ports: PortSet) -> str | None:
        """Key of a Service that holds `address` with a colliding port, if any."""
        for other, other_ports in self._holders.get(address, {}).items():
            if other != service_key and other_ports & ports:
                return other
        return None

    def assign(self, service_key: str, address: str, ports: PortSet) -> bool:
        if address not in self or self.conflict(service_key, address, ports):
            return False
        current = self._by_service.get(service_key)
        if current is not None and current != address:
            self.release(service_key)
        self._holders.setdefault(address, {})[service_key] = ports
        self._by_service[service_key] = address
        return True

    def release(self, service_key: str) -> str | None:
        address = self._by_service.pop(service_key, None)
        if address is not None:
            holders = self._holders.get(address, {})
            holders.pop(service_key, None)
            if not holders:
                self._holders.pop(address, None)
        return address

    def allocate(self, service_key: str, ports: PortSet, requested: str | None = None
                 ) -> tuple[str | None, str | None]:
        """(address, None) on success, else (None, reason). Keeps a still-valid current address."""
        current = self._by_service.get(service_key)
        if requested:
            if requested not in self:
                return None, f"requested IP {requested} is not in the pool {self.text}"
            holder = self.conflict(service_key, requested, ports)
            if holder is not None:
                return None, f"requested IP {requested} is in use by {holder} on a colliding port"
            self.assign(service_key, requested, ports)
            return requested, None
        if current is not None and self.conflict(service_key, current, ports) is None:
            self._holders[current][service_key] = ports
            return current, None
        for address in self.addresses():
            if address not in self._holders:
                self.assign(service_key, address, ports)
                return address, None
        return None, "no available IPs"
