"""Port numbers for servers a test or benchmark starts that cannot bind port 0 and report the port they got.

bind(port 0) hands out ports from the kernel's ephemeral range, the same range outgoing connections take their
source ports from: a port found free that way and released can be taken by any connection on the machine
before the server binds it. Ports here are drawn below that range (and below the NodePort range 30000-32767),
where only servers that ask for a number bind, and checked free for both TCP and UDP.
"""

from __future__ import annotations

import random
import socket

LOW, HIGH = 20000, 29999


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for TCP and UDP on `host`, outside the ephemeral range."""
    high = min(HIGH, _ephemeral_low() - 1)
    for _ in range(200):
        port = random.randint(LOW, high)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                tcp.bind((host, port))
                udp.bind((host, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no free port in {LOW}-{high} on {host}")
