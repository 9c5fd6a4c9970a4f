"""Pod networking in netns mode: the node bridge ``nk0`` and one veth + network namespace per pod.

Everything is done with iproute2 batches (``ip -batch -``): two short-lived processes per pod. Names are
derived from the pod (netns ``nk-<pod name>-<uid prefix>``, host veth ``nkv<uid prefix>`` with the pod's
namespace/name as its alias) so a leftover is easy to tell apart and to remove.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

BRIDGE = "nk0"
NETNS_DIR = Path("/run/netns")


class NetworkError(Exception):
    pass


def netns_name(pod_name: str, uid: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", pod_name)[:40]
    return f"nk-{safe}-{uid.replace('-', '')[:8]}"


def veth_name(uid: str) -> str:
    return f"nkv{uid.replace('-', '')[:10]}"  # 13 chars, under IFNAMSIZ


async def ip_batch(commands: list[str], netns: str | None = None, *, check: bool = True) -> str:
    """Run iproute2 commands in one process (``-force`` keeps going after an error when check is False)."""
    argv = ["ip"]
    if netns:
        argv += ["-n", netns]
    if not check:
        argv.append("-force")
    argv += ["-batch", "-"]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate(("\n".join(commands) + "\n").encode())
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' / '.join(commands)}: {err.decode(errors='replace').strip()}")
    return err.decode(errors="replace")


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError as err:
        log.debug("sysctl %s=%s: %s", path, value, err)


async def ensure_bridge(cidr: str) -> bool:
    """Create ``nk0`` with the pod CIDR's first address; returns True when this call created it."""
    net = ipaddress.ip_network(cidr, strict=False)
    gateway = f"{net.network_address + 1}/{net.prefixlen}"
    created = not link_exists(BRIDGE)
    if created:
        await ip_batch([f"link add {BRIDGE} type bridge"], check=False)
    out = await ip_batch([f"addr replace {gateway} dev {BRIDGE}", f"link set {BRIDGE} up"])
    del out
    _write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
    # service traffic answered by a pod on the same bridge must pass the host's conntrack to be un-DNATed
    _write_sysctl("/proc/sys/net/bridge/bridge-nf-call-iptables", "1")
    return created


async def remove_bridge() -> None:
    await ip_batch([f"link del {BRIDGE}"], check=False)


async def create_pod_network(netns: str, veth: str, ip: str, cidr: str, alias: str) -> None:
    net = ipaddress.ip_network(cidr, strict=False)
    gateway = net.network_address + 1
    await ip_batch([
        f"netns add {netns}",
        f"link add {veth} type veth peer name eth0 netns {netns}",
        f'link set {veth} alias "{alias}"',
        f"link set {veth} master {BRIDGE}",
        f"link set {veth} type bridge_slave hairpin on",
        f"link set {veth} up",
    ])
    await ip_batch([
        "link set lo up",
        f"addr add {ip}/{net.prefixlen} dev eth0",
        "link set eth0 up",
        f"route add default via {gateway}",
    ], netns=netns)


async def delete_pod_network(netns: str, veth: str) -> None:
    commands = []
    if link_exists(veth):
        commands.append(f"link del {veth}")
    if exists(netns):
        commands.append(f"netns del {netns}")
    if commands:
        await ip_batch(commands, check=False)


def netns_path(netns: str) -> str:
    return str(NETNS_DIR / netns)


def exists(netns: str) -> bool:
    return os.path.exists(netns_path(netns))
