"""Connecting to a pod's port as the runtime does for port-forward: to localhost inside the pod's network
namespace in netns mode (so a server bound only to 127.0.0.1 in the pod answers too), to the pod's address in
loopback mode. The socket is created by a thread that enters the namespace and comes back; a socket keeps the
namespace it was made in."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_home: int | None = None  # the agent's own network namespace, to come back to


class DialError(Exception):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _socket_in(netns_path: str) -> socket.socket:
    global _home
    if _home is None:
        _home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(_home)  # a pool thread must never stay in a pod's namespace
    finally:
        os.close(target)


async def connect(port: int, *, netns_path: str | None, pod_ip: str) -> socket.socket:
    """A connected, non-blocking TCP socket to ``port`` of the pod, TCP_NODELAY set (a relayed request must not
    wait for Nagle's timer); DialError carries the runtime-style reason."""
    loop = asyncio.get_running_loop()
    if netns_path:
        try:
            sock = await asyncio.to_thread(_socket_in, netns_path)
        except OSError as err:
            raise DialError(f'failed to enter network namespace "{netns_path}": {err.strerror}') from err
        address, reason = ("127.0.0.1", port), (f'failed to connect to localhost:{port} inside namespace '
                                                f'"{netns_path}", IPv4: dial tcp4 127.0.0.1:{port}: connect: ')
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in pod_ip else socket.AF_INET, socket.SOCK_STREAM)
        address, reason = (pod_ip, port), f"dial tcp4 {pod_ip}:{port}: connect: "
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except OSError as err:
        sock.close()
        raise DialError(reason + _reason(err)) from err
    except BaseException:
        sock.close()
        raise
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def dial(port: int, *, netns_path: str | None, pod_ip: str
               ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a TCP connection to ``port`` of the pod as asyncio streams."""
    sock = await connect(port, netns_path=netns_path, pod_ip=pod_ip)
    return await asyncio.open_connection(sock=sock, limit=1 << 20)


def _reason(err: OSError) -> str:
    # uvloop's sock_connect gives errno without strerror ("connect call failed")
    return (os.strerror(err.errno) if err.errno else err.strerror or str(err)).lower()
