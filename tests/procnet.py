"""A process's open files and TCP sockets as /proc shows them: what tests wait on to know a server has closed
its side of a connection (a socket the peer closed stays CLOSE_WAIT until the server notices and closes it)."""

from __future__ import annotations

import os
import socket
from typing import NamedTuple

CLOSE_WAIT = "08"


class TcpSocket(NamedTuple):
    local: tuple[str, int]
    remote: tuple[str, int]
    state: str  # the kernel's hex state code, as in /proc/net/tcp


def _address(text: str) -> tuple[str, int]:
    host, port = text.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return ip, int(port, 16)


def fd_targets(pid: int) -> list[str]:
    """What each open file descriptor of process `pid` points at (paths, `socket:[inode]`, `pipe:[...]`)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:  # closed since the listing
            continue
    return out


def tcp_sockets(pid: int) -> list[TcpSocket]:
    """The TCP sockets process `pid` holds open (listening ones included)."""
    inodes = {target[8:-1] for target in fd_targets(pid) if target.startswith("socket:[")}
    out = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                rows = [line.split() for line in fh.readlines()[1:]]
        except FileNotFoundError:
            continue
        out += [TcpSocket(_address(row[1]), _address(row[2]), row[3]) for row in rows if row[9] in inodes]
    return out
