"""Pod IP allocation from the node's pod CIDR (network, gateway .1 and broadcast are never handed out)."""

from __future__ import annotations

import ipaddress


class PoolExhausted(Exception):
    pass


class Ipam:
    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.gateway = self.network.network_address + 1
        self._used: dict[str, str] = {}  # ip -> owner (pod uid)
        self._next = 2

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    def allocate(self, owner: str, prefer: str | None = None) -> str:
        """An address for ``owner``: the one it holds, else ``prefer`` (the pod's IP before the agent restarted)
        when that is in the pool and free, else the next free one."""
        for ip, who in self._used.items():
            if who == owner:
                return ip
        if prefer and self._assignable(prefer) and prefer not in self._used:
            self._used[prefer] = owner
            return prefer
        size = self.network.num_addresses
        for step in range(size):
            offset = 2 + (self._next - 2 + step) % max(1, size - 3)
            ip = str(self.network.network_address + offset)
            if ip not in self._used:
                self._used[ip] = owner
                self._next = offset + 1
                return ip
        raise PoolExhausted(f"no free pod IP left in {self.network}")

    def _assignable(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return address in self.network and address not in (
            self.network.network_address, self.gateway, self.network.broadcast_address)

    def release(self, ip: str) -> None:
        self._used.pop(ip, None)
