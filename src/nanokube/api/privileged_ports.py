"""Ports below `net.ipv4.ip_unprivileged_port_start` (1024 by default): only root (CAP_NET_BIND_SERVICE) binds them.

Loopback mode run by a user cannot serve them: the DNS falls back to an unprivileged port, the proxy reports
such frontends as `privileged-port` (not as taken by another process), and the server says so in one line.
"""

from __future__ import annotations

import errno
import os

SYSCTL = "net.ipv4.ip_unprivileged_port_start"
SYSCTL_FILE = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
CAP_NET_BIND_SERVICE = 10
# The reason recorded for an unserved frontend whose bind failed with EACCES (read by `nanokube explain`).
PRIVILEGED_PORT_ERROR = f"permission denied: ports below {SYSCTL} need root"
REMEDIES = (f"use --network rootless (user namespaces) or run as root (--network netns), "
            f"or let users bind low ports: sudo sysctl -w {SYSCTL}=0")


def unprivileged_port_start() -> int:
    try:
        with open(SYSCTL_FILE) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 1024


def can_bind_privileged() -> bool:
    """Whether this process may bind any port: root, or CAP_NET_BIND_SERVICE in its effective set."""
    if os.geteuid() == 0:
        return True
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_BIND_SERVICE & 1)
    except OSError:
        pass
    return False


def is_privileged(port: int) -> bool:
    """True when this process cannot bind `port` for lack of privilege."""
    return 0 < port < unprivileged_port_start() and not can_bind_privileged()


def listen_error(err: OSError) -> str:
    """The reason an unserved frontend records for a failed bind."""
    if err.errno == errno.EACCES:
        return PRIVILEGED_PORT_ERROR
    return err.strerror or str(err)
