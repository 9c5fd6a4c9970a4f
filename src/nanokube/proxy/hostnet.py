"""Routes and addresses the nftables proxy owns on the node.

The service CIDR and the LB pool are routed to the pod bridge (never to an uplink), and each allocated LB
address is made local on the bridge so the node and its link reach it. Our routes carry protocol number
ROUTE_PROTO and our addresses the label `<bridge>:lb`, so stale ones from a crashed run are recognised.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json

from nanokube.proxy.commands import CommandError, Commands

ROUTE_PROTO = 78


def pool_networks(pool: str) -> list[str]:
    """CIDRs covering an LB pool given as a CIDR or as an A-B range."""
    if not pool:
        return []
    if "-" in pool:
        first, last = (ipaddress.IPv4Address(p.strip()) for p in pool.split("-", 1))
        return [str(n) for n in ipaddress.summarize_address_range(first, last)]
    return [str(ipaddress.IPv4Network(pool, strict=False))]


def nft_pool_expr(pool: str) -> str:
    if not pool:
        return ""
    if "-" in pool:
        first, last = (p.strip() for p in pool.split("-", 1))
        return f"{first}-{last}"
    return str(ipaddress.IPv4Network(pool, strict=False))


class HostNetwork:
    def __init__(self, commands: Commands, *, bridge: str, route_cidrs: list[str], lb_pool: str) -> None:
        self.commands = commands
        self.bridge = bridge
        self.route_cidrs = route_cidrs
        self.label = f"{bridge}:lb"[:15]
        self._pool = [ipaddress.IPv4Network(n) for n in pool_networks(lb_pool)]
        self._addresses: set[str] | None = None  # None = unknown, read from the kernel at next sync
        self._routes_done = False

    def in_pool(self, ip: str) -> bool:
        addr = ipaddress.IPv4Address(ip)
        return any(addr in net for net in self._pool)

    async def _current_addresses(self) -> set[str]:
        out = await self.commands.run(["ip", "-j", "-4", "addr", "show", "dev", self.bridge])
        found: set[str] = set()
        for link in json.loads(out or "[]"):
            for a in link.get("addr_info", []):
                if a.get("label") == self.label:
                    found.add(a["local"])
        return found

    async def sync(self, lb_ips: set[str]) -> None:
        """Make routes and LB addresses match; reads the kernel's state after start or a failure."""
        wanted = {ip for ip in lb_ips if self.in_pool(ip)}
        cmds: list[str] = []
        if not self._routes_done:
            cmds += [f"route replace {cidr} dev {self.bridge} proto {ROUTE_PROTO}" for cidr in self.route_cidrs]
        if self._addresses is None:
            self._addresses = await self._current_addresses()
        cmds += [f"addr del {ip}/32 dev {self.bridge}" for ip in sorted(self._addresses - wanted)]
        cmds += [f"addr replace {ip}/32 dev {self.bridge} label {self.label}" for ip in sorted(wanted - self._addresses)]
        if not cmds:
            return
        try:
            await self.commands.run(["ip", "-batch", "-"], input="\n".join(cmds) + "\n")
        except Exception:
            self._addresses = None
            self._routes_done = False
            raise
        self._addresses = wanted
        self._routes_done = True

    async def remove(self) -> None:
        """Delete our routes and addresses (best effort: the bridge may already be gone)."""
        cmds = [f"route del {cidr} dev {self.bridge} proto {ROUTE_PROTO}" for cidr in self.route_cidrs]
        with contextlib.suppress(CommandError, OSError, ValueError):  # no bridge (or no `ip`): nothing to list
            cmds += [f"addr del {ip}/32 dev {self.bridge}" for ip in sorted(await self._current_addresses())]
        await self.commands.run(["ip", "-force", "-batch", "-"], input="\n".join(cmds) + "\n", check=False)
        self._addresses = None
        self._routes_done = False
