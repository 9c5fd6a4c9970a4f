"""The node's own network in netns mode, set up by `nanokube server` before any component starts.

* bridge `nk0` with the node's pod gateway address: the node IP when none is given, so the API, the kubelet
  log server and node ports can bind it before the agent runs its first pod (the agent finds it ready);
* the DNS address made local when `--dns-listen` names an address of the service CIDR (by default the DNS
  listens on the node IP and the proxy DNATs the kube-dns ClusterIP there), on `lo` with label `lo:nkdns`
  so a leftover from a crash is recognised;
* IPv4 forwarding, and bridged pod-to-pod traffic through netfilter so replies from a pod behind a
  ClusterIP are un-DNATed on their way back to a pod on the same bridge (both per network namespace).

Everything is removed again by `teardown`, after the components have stopped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

BRIDGE = "nk0"
DNS_LABEL = "lo:nkdns"
SYSCTLS = {"/proc/sys/net/ipv4/ip_forward": "1", "/proc/sys/net/bridge/bridge-nf-call-iptables": "1"}


class NodeNetworkError(RuntimeError):
    pass


async def ip_batch(commands: list[str], *, check: bool = True) -> None:
    argv = ["ip", "-batch", "-"] if check else ["ip", "-force", "-batch", "-"]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(("\n".join(commands) + "\n").encode())
    if check and proc.returncode != 0:
        raise NodeNetworkError(f"ip {' / '.join(commands)}: {err.decode(errors='replace').strip()}")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as err:
        log.warning("cannot set %s=%s: %s", path, value, err.strerror)


@dataclass
class NodeNetwork:
    pod_cidr: str  # this node's pod range; the bridge gets its first address
    dns_address: str | None = None  # an address to make local for the DNS server, or None

    @property
    def gateway(self) -> str:
        net = ipaddress.ip_network(self.pod_cidr, strict=False)
        return f"{net.network_address + 1}/{net.prefixlen}"

    async def setup(self) -> None:
        await ip_batch([f"link add {BRIDGE} type bridge"], check=False)  # may exist; the next batch checks
        commands = [f"addr replace {self.gateway} dev {BRIDGE}", f"link set {BRIDGE} up"]
        if self.dns_address:
            commands.append(f"addr replace {self.dns_address}/32 dev lo label {DNS_LABEL}")
        await ip_batch(commands)
        for path, value in SYSCTLS.items():
            _write_sysctl(path, value)

    async def teardown(self) -> None:
        """Remove the DNS address and the bridge (with the pod routes and LB addresses left on it)."""
        commands = [f"link del {BRIDGE}"]
        if self.dns_address:
            commands.insert(0, f"addr del {self.dns_address}/32 dev lo")
        await ip_batch(commands, check=False)
